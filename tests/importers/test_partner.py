"""Partner-source protection: imported intel is read-only except through _overlay.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops import load_repo, validate_repo
from tiops.cli import main
from tiops.compile import compiled_objects
from tiops.findings import Finding
from tiops.importers.write import import_file
from tiops.tagging import tag_objects
from tiops.where import parse_where
from tiops.yamlio import parse_yaml

DATA = Path(__file__).resolve().parent.parent / "data" / "importers"
FIRST = "indicator--11111111-1111-4111-8111-111111111111"
SECOND = "indicator--22222222-2222-4222-8222-222222222222"
FIRST_FILE = "intel/partner-a/indicator/11111111-1111-4111-8111-111111111111.yaml"
OVERLAY = "intel/partner-a/_overlay.yaml"


def _imported(tmp_path: Path) -> Path:
    import_file(tmp_path, DATA / "partner_v1.json", "stix", "Partner A")
    return tmp_path


def _ti7(root: Path) -> list[Finding]:
    return [f for f in validate_repo(load_repo(root)) if f.code.startswith("TI7")]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_untouched_import_is_clean(tmp_path: Path) -> None:
    assert _ti7(_imported(tmp_path)) == []


def test_editing_a_read_only_field_is_reported_at_the_field(tmp_path: Path) -> None:
    root = _imported(tmp_path)
    _edit(root / FIRST_FILE, "name: Evil IP", "name: Nice IP")
    (finding,) = _ti7(root)
    assert finding.code == "TI700" and finding.stix_id == FIRST
    assert "'name'" in finding.message and "read-only" in finding.message
    line = next(n for n, text in enumerate((root / FIRST_FILE).read_text().splitlines(), 1) if text.startswith("name:"))
    assert (finding.location.file, finding.location.line, finding.location.column) == (FIRST_FILE, line, 1)


def test_added_and_removed_fields_are_reported(tmp_path: Path) -> None:
    root = _imported(tmp_path)
    _edit(root / FIRST_FILE, "name: Evil IP\n", "description: mine\n")
    messages = sorted(f.message for f in _ti7(root))
    assert [m.split("'")[1] for m in messages] == ["description", "name"]
    assert "was added" in messages[0] and "was removed" in messages[1]


def test_allowed_field_edited_in_the_imported_file_gets_a_hint_to_the_overlay(tmp_path: Path) -> None:
    root = _imported(tmp_path)
    _edit(root / FIRST_FILE, "confidence: 70", "confidence: 10")
    (finding,) = _ti7(root)
    assert finding.code == "TI701" and "'confidence'" in finding.message
    assert finding.hint is not None and OVERLAY in finding.hint


def test_overlay_replaces_the_four_fields_and_records_provenance(tmp_path: Path) -> None:
    root = _imported(tmp_path)
    (root / OVERLAY).write_text(
        f"{FIRST}:\n  labels: [c2, reviewed]\n  confidence: 20\n  revoked: true\n"
        f"  valid_until: '2026-01-01T00:00:00Z'\n{SECOND}:\n  labels: []\n"
    )
    assert _ti7(root) == []
    objects = {o.id: o for o in load_repo(root).objects}
    first = objects[FIRST]
    assert (first.data["labels"], first.data["confidence"], first.data["revoked"]) == (["c2", "reviewed"], 20, True)
    assert first.data["valid_until"] == "2026-01-01T00:00:00Z"
    assert first.overlay_file == OVERLAY
    assert first.overlaid_properties == ("labels", "valid_until", "confidence", "revoked")
    assert objects[SECOND].overlaid_properties == ("labels",) and "labels" not in objects[SECOND].data
    compiled = {o["id"]: o for o in compiled_objects(load_repo(root))}
    assert compiled[FIRST]["confidence"] == 20 and compiled[FIRST]["revoked"] is True
    explained = CliRunner().invoke(main, ["-C", str(root), "explain", FIRST])
    assert f"properties from overlay {OVERLAY}: labels, valid_until, confidence, revoked" in explained.output


def test_bad_overlays_are_findings(tmp_path: Path) -> None:
    root = _imported(tmp_path)
    (root / OVERLAY).write_text(
        f"{FIRST}:\n  name: Renamed\n  confidence: 300\n"
        "indicator--99999999-9999-4999-8999-999999999999:\n  labels: [x]\n"
    )
    findings = {(f.code, f.location.line) for f in _ti7(root)}
    assert findings == {("TI703", 2), ("TI704", 3), ("TI702", 4)}
    objects = {o.id: o for o in load_repo(root).objects}
    assert objects[FIRST].data["name"] == "Evil IP"  # a forbidden overlay field never applies
    # Nor a value of the wrong shape: the imported confidence stays, and the only finding about it is
    # TI704 at the overlay's line (not a TI200 at the imported file's line, which holds a valid value).
    assert objects[FIRST].data.get("confidence") == objects[FIRST].imported_data.get("confidence")
    every = [f for f in validate_repo(load_repo(root)) if f.stix_id == FIRST]
    assert {f.code for f in every if f.severity.name == "ERROR"} == {"TI703", "TI704"}


def test_hand_written_object_in_a_partner_folder_is_reported(tmp_path: Path) -> None:
    root = _imported(tmp_path)
    text = (root / FIRST_FILE).read_text().replace("11111111-1111-4111-8111-111111111111", "33333333-3333-4333-8333-333333333333")
    (root / "intel/partner-a/indicator/mine.yaml").write_text(text)
    (finding,) = _ti7(root)
    assert finding.code == "TI705" and "was not imported" in finding.message


def test_own_objects_stay_fully_editable(tmp_path: Path) -> None:
    root = _imported(tmp_path)
    (root / "intel/own").mkdir()
    (root / "intel/own/ind.yaml").write_text((root / FIRST_FILE).read_text()
                                            .replace("11111111-1111-4111-8111-111111111111", "44444444-4444-4444-8444-444444444444")
                                            .replace("Evil IP", "Edited"))
    assert _ti7(root) == []


def test_tag_writes_the_overlay_for_partner_objects_only(tmp_path: Path) -> None:
    root = _imported(tmp_path)
    (root / "intel/own").mkdir()
    (root / "intel/own/ind.yaml").write_text((root / FIRST_FILE).read_text()
                                            .replace("11111111-1111-4111-8111-111111111111", "44444444-4444-4444-8444-444444444444"))
    imported_before = (root / FIRST_FILE).read_bytes()
    changes = tag_objects(root, "add", ["reviewed"], condition=parse_where("type = indicator"))
    assert sorted(c.file for c in changes) == ["intel/own/ind.yaml", OVERLAY, OVERLAY]
    assert (root / FIRST_FILE).read_bytes() == imported_before
    overlay = parse_yaml((root / OVERLAY).read_text())
    assert overlay == {FIRST: {"labels": ["c2", "reviewed"]}, SECOND: {"labels": ["reviewed"]}}
    assert parse_yaml((root / "intel/own/ind.yaml").read_text())["labels"] == ["c2", "reviewed"]
    assert _ti7(root) == []
    # Removing the tag again gives the partner's own labels back: the entries go away.
    tag_objects(root, "remove", ["reviewed"], ids=[FIRST, SECOND])
    assert parse_yaml((root / OVERLAY).read_text()) == {}
    result = CliRunner().invoke(main, ["-C", str(root), "tag", "remove", "c2", "--id", FIRST])
    assert result.exit_code == 0, result.output
    assert f"{OVERLAY}: \"Evil IP\" ({FIRST}): labels [c2] -> []" in result.output
    assert parse_yaml((root / OVERLAY).read_text()) == {FIRST: {"labels": []}}
    assert "labels" not in {o.id: o for o in load_repo(root).objects}[FIRST].data


def test_reimport_keeps_the_overlay_and_applies_it_to_the_newer_version(tmp_path: Path) -> None:
    root = _imported(tmp_path)
    overlay_text = f"# mine\n{FIRST}:\n  confidence: 5\n  labels: [reviewed]\n"
    (root / OVERLAY).write_text(overlay_text)
    import_file(root, DATA / "partner_v1.json", "stix", "Partner A")
    assert (root / OVERLAY).read_text() == overlay_text
    bundle = json.loads((DATA / "partner_v1.json").read_text())
    first = bundle["objects"][0]
    first.update(modified="2025-02-01T00:00:00.000Z", name="Evil IP v2", confidence=90)
    (tmp_path / "v2.json").write_text(json.dumps(bundle))
    report = import_file(root, tmp_path / "v2.json", "stix", "Partner A")
    assert (report.updated, report.unchanged) == (1, 1)
    assert (root / OVERLAY).read_text() == overlay_text
    obj = {o.id: o for o in load_repo(root).objects}[FIRST]
    assert (obj.data["name"], obj.data["confidence"], obj.data["labels"]) == ("Evil IP v2", 5, ["reviewed"])
    assert _ti7(root) == []


def test_reimport_restores_a_hand_edited_partner_file(tmp_path: Path) -> None:
    root = _imported(tmp_path)
    pristine = (root / FIRST_FILE).read_bytes()
    _edit(root / FIRST_FILE, "name: Evil IP", "name: Nice IP")
    report = import_file(root, DATA / "partner_v1.json", "stix", "Partner A")
    assert (report.updated, report.unchanged, report.failed) == (1, 1, 0)
    assert any("restored 1 hand-edited partner file" in note for note in report.notes)
    assert (root / FIRST_FILE).read_bytes() == pristine
    assert _ti7(root) == []


OUR_IDENTITY = "identity--3b241a2b-0f6e-45f2-8247-30783a977105"
TLP_GREEN_20 = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
TLP_AMBER_10 = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
TLP_RED_10 = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"
PARTNER_BUNDLE = {"type": "bundle", "id": "bundle--5b5b5b5b-5b5b-4b5b-8b5b-5b5b5b5b5b5b", "objects": [
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--7e4f5b3a-1111-4a1a-9b9b-222222222222",
     "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "name": "Partner IOC",
     "pattern": "[ipv4-addr:value = '198.51.100.77']", "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z",
     "object_marking_refs": [TLP_AMBER_10]},
    {"type": "marking-definition", "spec_version": "2.1", "id": TLP_AMBER_10, "created": "2017-01-20T00:00:00.000Z",
     "definition_type": "tlp", "name": "TLP:AMBER", "definition": {"tlp": "amber"}},
]}


def _repository_with_our_defaults(tmp_path: Path) -> Path:
    """A repository whose root _defaults.yaml credits our team and marks our intel, as tiops init writes it."""
    root = tmp_path / "repo"
    (root / "intel" / "ours").mkdir(parents=True)
    (root / "intel" / "_defaults.yaml").write_text(
        f"source: Our CTI\ndefaults:\n  created_by_ref: {OUR_IDENTITY}\n  object_marking_refs: [{TLP_GREEN_20}]\n")
    (root / "intel" / "ours" / "identity.yaml").write_text(
        f"type: identity\nspec_version: '2.1'\nid: {OUR_IDENTITY}\nname: Our CTI\nidentity_class: organization\n"
        "created: '2025-01-01T00:00:00.000Z'\nmodified: '2025-01-01T00:00:00.000Z'\n")
    bundle = tmp_path / "partner.json"
    bundle.write_text(json.dumps(PARTNER_BUNDLE))
    import_file(root, bundle, "stix", "Partner Z")
    return root


def test_partner_intel_takes_no_defaults_of_the_folders_above(tmp_path: Path) -> None:
    root = _repository_with_our_defaults(tmp_path)
    repo = load_repo(root)
    findings = [f for f in validate_repo(repo) if f.severity.value == "error"]
    assert findings == []
    by_id = {obj.id: obj for obj in repo.objects}
    partner = by_id["indicator--7e4f5b3a-1111-4a1a-9b9b-222222222222"]
    # What the partner sent: not credited to us, not marked with our marking.
    assert "created_by_ref" not in partner.data and partner.data["object_marking_refs"] == [TLP_AMBER_10]
    assert partner.source == "Partner Z"
    assert by_id[OUR_IDENTITY].data["object_marking_refs"] == [TLP_GREEN_20]  # our own intel still is


def test_a_tlp_marking_is_compiled_exactly_as_the_specification_gives_it(tmp_path: Path) -> None:
    stix2validator = pytest.importorskip("stix2validator")
    root = _repository_with_our_defaults(tmp_path)
    # Also one written into our own folder, under our defaults and our source system.
    red = {"type": "marking-definition", "spec_version": "2.1", "id": TLP_RED_10, "created": "2017-01-20T00:00:00.000Z",
           "definition_type": "tlp", "name": "TLP:RED", "definition": {"tlp": "red"}}
    (root / "intel" / "ours" / "tlp-red.yaml").write_text(json.dumps(red))
    result = CliRunner().invoke(main, ["-C", str(root), "compile", "--no-cache", "-o", str(tmp_path / "bundle.json")])
    assert result.exit_code == 0, result.output
    objects = {o["id"]: o for o in json.loads((tmp_path / "bundle.json").read_text())["objects"]}
    assert objects[TLP_AMBER_10] == PARTNER_BUNDLE["objects"][1]
    assert objects[TLP_RED_10] == red
    options = stix2validator.ValidationOptions(version="2.1")
    for marking in (TLP_AMBER_10, TLP_RED_10):
        assert stix2validator.validate_instance(objects[marking], options).is_valid


def test_the_import_record_named_to_validate_is_the_repositorys_not_a_bundle_to_lint(tmp_path: Path) -> None:
    root = _imported(tmp_path)
    (record,) = (root / "intel").rglob("_imported.json")
    for flags in ([], ["--no-cache"]):
        result = CliRunner().invoke(main, ["-C", str(root), "validate", str(record), *flags])
        assert result.exit_code == 0 and "TI201" not in result.output, result.output


def test_a_deleted_partner_file_is_reported_not_silently_dropped(tmp_path: Path) -> None:
    root = _imported(tmp_path)
    (root / FIRST_FILE).unlink()
    for flags in ([], ["--no-cache"], []):  # the last one through the cache the first wrote
        result = CliRunner().invoke(main, ["-C", str(root), "validate", *flags])
        assert result.exit_code == 1 and "TI706" in result.output and FIRST in result.output, result.output
        assert "_imported.json:" in result.output
    assert CliRunner().invoke(main, ["-C", str(root), "compile"]).exit_code == 1


def test_a_partner_file_that_is_there_but_broken_is_its_own_finding_not_ti706(tmp_path: Path) -> None:
    root = _imported(tmp_path)
    with (root / FIRST_FILE).open("a", encoding="utf-8") as broken:
        broken.write("x_note: [unclosed\n")
    for flags in ([], ["--no-cache"]):
        result = CliRunner().invoke(main, ["-C", str(root), "validate", *flags])
        assert result.exit_code == 1 and "TI100" in result.output and FIRST_FILE in result.output, result.output
        assert "TI706" not in result.output  # the file is there: "gone from it" would send the user looking for it


@pytest.mark.parametrize("cache", [False, True])
def test_a_folder_default_inside_a_partner_folder_is_an_error_and_not_applied(tmp_path: Path, cache: bool) -> None:
    root = _imported(tmp_path)
    defaults = root / "intel/partner-a/_defaults.yaml"
    written = defaults.read_text()
    defaults.write_text(written + "defaults:\n  description: rewritten by us\n")
    description_line = written.count("\n") + 2
    (root / "intel/partner-a/indicator/_defaults.yaml").write_text("defaults:\n  x_injected: 1\n  confidence: 5\n")
    # Folder defaults rewrote every partner object below them, and no edit check saw it (the import
    # lock's digests are of the files).
    repo = load_repo(root)
    assert all("description" not in obj.data and "x_injected" not in obj.data and obj.data.get("confidence") != 5
               for obj in repo.objects), [obj.data for obj in repo.objects]
    flags = [] if cache else ["--no-cache"]
    for _ in range(2 if cache else 1):  # the second run through the build cache
        result = CliRunner().invoke(main, ["-C", str(root), "validate", *flags])
        assert result.exit_code == 1, result.output
        reported = sorted(line.split(": error ")[0] for line in result.output.splitlines() if " error TI700 " in line)
        assert reported == [f"intel/partner-a/_defaults.yaml:{description_line}:3",
                            "intel/partner-a/indicator/_defaults.yaml:2:3",
                            "intel/partner-a/indicator/_defaults.yaml:3:3"], result.output
        assert "_overlay.yaml" in result.output
