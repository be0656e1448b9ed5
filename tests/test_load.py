"""Loading: what the rest of the pipeline relies on from tiops.load."""

from __future__ import annotations

import dataclasses
import gc
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from varied_repo import clean_repository, varied_repository

from tiops import forkwork, load
from tiops.findings import Finding
from tiops.forkwork import can_fork
from tiops.load import IntelObject, fork_helper, load_repo
from tiops.pipeline import ValidationFailed, build
from tiops.validate import validate_paths, validate_repo
from tiops.validate.objects import check_object


def test_with_data_copies_every_other_field() -> None:
    # Give every field a distinct non-default value, so a field with_data forgot shows up.
    values = {f.name: f"value of {f.name}" for f in dataclasses.fields(IntelObject)}
    original = IntelObject(**values)  # type: ignore[arg-type]
    copy = original.with_data({"type": "indicator"})
    assert copy.data == {"type": "indicator"} and original.data == "value of data"
    assert {name: getattr(copy, name) for name in values if name != "data"} == {
        name: value for name, value in values.items() if name != "data"}


def test_windows_line_endings_read_as_text_mode_would(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    intel.mkdir()
    (intel / "actor.yaml").write_bytes(
        b"type: threat-actor\r\nspec_version: '2.1'\r\nid: threat-actor--6c1e0c0e-0d66-4b5e-9b4a-2f7f1e3a1a11\r\n"
        b"name: Copper\r  Lantern\r\ncreated: 2025-01-01T00:00:00.000Z\r\nmodified: 2025-01-01T00:00:00.000Z\r\n"
    )
    repo = load_repo(tmp_path)
    assert repo.findings == []
    [actor] = repo.objects
    assert actor.data["name"] == "Copper Lantern"  # a lone CR is a line break; the plain scalar folds it
    assert actor.data["modified"] == "2025-01-01T00:00:00.000Z"


def test_unreadable_and_empty_files_are_findings(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    intel.mkdir()
    (intel / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    (intel / "empty.yaml").write_bytes(b"")
    repo = load_repo(tmp_path)
    assert sorted((f.code, f.location.file) for f in repo.findings) == [
        ("TI104", "intel/empty.yaml"), ("TI106", "intel/latin1.yaml")]


def test_loading_leaves_the_collector_as_it_found_it(tmp_path: Path) -> None:
    (tmp_path / "intel").mkdir()
    (tmp_path / "intel" / "x.yaml").write_text("type: x-thing\nid: x-thing--6c1e0c0e-0d66-4b5e-9b4a-2f7f1e3a1a11\n")
    assert gc.isenabled()
    load_repo(tmp_path)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        load_repo(tmp_path)
        assert not gc.isenabled()  # a caller's own pause is kept
    finally:
        gc.enable()
    # A file closed aside by an earlier test (tiops.forkwork.close_aside) ends its thread whenever
    # it is done, and the objects that thread frees would leave the permanent generation meanwhile.
    forkwork._wait_for_closes_aside()
    gc.freeze()  # a program's own frozen objects stay frozen
    try:
        frozen = gc.get_freeze_count()
        load_repo(tmp_path)
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_objects_share_strings_and_tuples_but_not_data(tmp_path: Path) -> None:
    feed = tmp_path / "intel" / "feed"
    feed.mkdir(parents=True)
    (feed / "_defaults.yaml").write_text("source: Feed\ndefaults:\n  confidence: 50\n  labels: [bulk]\n")
    indicator = ("type: indicator\nspec_version: '2.1'\nid: indicator--{n}c1e0c0e-0d66-4b5e-9b4a-2f7f1e3a1a11\n"
                 "created: '2025-01-01T00:00:00.000Z'\nmodified: '2025-01-01T00:00:00.000Z'\n"
                 "pattern: \"[ipv4-addr:value = '203.0.113.{n}']\"\npattern_type: stix\nvalid_from: '2025-01-01T00:00:00Z'\n"
                 "external_references: [{{source_name: feed, external_id: '{n}'}}]\n")
    (feed / "one.yaml").write_text(indicator.format(n=1))
    (feed / "bulk.yaml").write_text("- " + indicator.format(n=2).replace("\n", "\n  ").rstrip() + "\n- "
                                    + indicator.format(n=3).replace("\n", "\n  ").rstrip() + "\n")
    repo = load_repo(tmp_path)
    assert repo.findings == []
    objects = sorted(repo.objects, key=lambda obj: obj.id)
    assert [obj.path for obj in objects] == [(), (0,), (1,)]
    one, two, three = objects
    assert two.data["pattern_type"] is one.data["pattern_type"] is three.data["pattern_type"]
    assert next(key for key in two.data if key == "pattern_type") is next(key for key in one.data if key == "pattern_type")
    assert two.defaulted_properties == ("confidence", "labels") and two.defaulted_properties is one.defaulted_properties
    # Each object's data is its own: a rule changing one changes no other.
    two.data["external_references"][0]["source_name"] = "changed"
    two.data["labels"] = ["changed"]
    assert one.data["external_references"][0]["source_name"] == "feed"
    assert three.data["external_references"][0]["source_name"] == "feed"
    assert one.data["labels"] == three.data["labels"] == ["bulk"]


needs_fork = pytest.mark.skipif(not can_fork(), reason="needs fork, two CPUs and no other thread")


def _parsing_processes(monkeypatch: pytest.MonkeyPatch, log: Path) -> None:
    """Note the process that parses each object file in ``log`` (one line per file)."""
    parse = load._parsed_document

    def noted(path: str, source: Any) -> Any:
        descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(descriptor, f"{os.getpid()}\n".encode())
        finally:
            os.close(descriptor)
        return parse(path, source)

    monkeypatch.setattr(load, "_parsed_document", noted)


def _same_findings(one: list[Finding], other: list[Finding]) -> bool:
    return [repr(f) for f in one] == [repr(f) for f in other]


@needs_fork
def test_loading_with_a_forked_helper_gives_what_one_process_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    varied_repository(root, 700)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "0")
    alone = load_repo(root)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    log = tmp_path / "parsed-by"
    _parsing_processes(monkeypatch, log)
    forked = load_repo(root)
    # Both processes parsed files: this one from the front, the helper from the end.
    assert len(set(log.read_text().split())) == 2
    assert len(alone.objects) > 400
    assert {f.code for f in alone.findings} >= {"TI100", "TI102", "TI104", "TI105", "TI106", "TI108", "TI120"}
    assert forked.objects == alone.objects
    assert _same_findings(forked.findings, alone.findings)
    assert [obj.overlaid_properties for obj in forked.objects if obj.overlaid_properties] == [("labels", "confidence")]
    # The helper's documents keep their strings shared (tiops.memory), as this process's do.
    last = forked.objects[-1].data
    assert all(sys.intern(key) is key for key in last) and sys.intern(last["type"]) is last["type"]


@needs_fork
def test_a_forked_load_reports_progress_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    varied_repository(tmp_path / "repo", 2100)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    seen: list[int] = []
    repo = load_repo(tmp_path / "repo", progress=lambda stage, done, total: seen.append(done))
    assert seen == sorted(seen) and seen[-1] == 2100 + 3 + 6 and len(seen) >= 2  # with the links and partner files
    monkeypatch.setenv("TIOPS_LOAD_FORK", "0")
    assert load_repo(tmp_path / "repo").objects == repo.objects


@needs_fork
def test_objects_checked_while_loading_give_the_findings_of_checking_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    varied_repository(root, 900)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    checked = load_repo(root, check=check_object)
    assert checked.object_findings is not None  # the forked load ran the check
    monkeypatch.setenv("TIOPS_LOAD_FORK", "0")
    alone = load_repo(root, check=check_object)
    assert alone.object_findings is None  # one process: validate_repo runs the check
    expected = validate_repo(alone)
    assert {f.code for f in expected} >= {"TI204", "TI207", "TI208", "TI302"}
    assert _same_findings(validate_repo(checked), expected)
    assert _same_findings(checked.object_findings, [f for obj in alone.objects for f in check_object(obj)])


@needs_fork
def test_validate_and_compile_give_the_same_findings_and_bytes_with_the_helper(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken, clean = tmp_path / "broken", tmp_path / "clean"
    varied_repository(broken, 600)
    clean_repository(clean, 600)

    def outcome(root: Path) -> tuple[bytes | None, list[Finding]]:
        try:
            result = build(root, as_of="2025-06-01", cache=False)
        except ValidationFailed as failed:
            return None, failed.findings
        return result.bundle, result.findings

    runs = {}
    for fork in ("0", "1"):
        monkeypatch.setenv("TIOPS_LOAD_FORK", fork)
        runs[fork] = (validate_paths(broken, [broken]), validate_paths(broken, [broken / "intel" / "feed"]),
                      outcome(broken), outcome(clean))
    alone, forked = runs["0"], runs["1"]
    assert alone[2][0] is None and alone[3][0] is not None and alone[3][0].count(b'"type":"indicator"') > 500
    assert _same_findings(forked[0], alone[0]) and _same_findings(forked[1], alone[1])
    assert 0 < len(alone[1]) < len(alone[0])
    assert forked[2][0] is None and _same_findings(forked[2][1], alone[2][1])
    assert forked[3][0] == alone[3][0] and _same_findings(forked[3][1], alone[3][1])


@needs_fork
def test_an_object_and_its_findings_come_from_one_read_of_its_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files saved while the two processes read them: each object, and what its check
    found, come from the document one process read, never a mix of the two."""
    root = tmp_path / "repo"
    clean_repository(root, 900)
    parent, parse = os.getpid(), load._parsed_document

    def changed_in_the_helper(path: str, source: Any) -> Any:
        document = parse(path, source)
        if os.getpid() != parent and isinstance(document, dict):
            document["colour"] = "red"  # what the helper reads is another version of the file
        return document

    monkeypatch.setattr(load, "_parsed_document", changed_in_the_helper)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    repo = load_repo(root, check=check_object)
    findings = validate_repo(repo)
    coloured = {obj.id for obj in repo.objects if "colour" in obj.data}
    reported = {f.stix_id for f in findings if f.code == "TI208" and "colour" in f.message}
    assert coloured and len(coloured) < len(repo.objects) / 2 + 50  # both versions were read, by one process each
    assert reported == coloured


def test_the_helper_is_forked_when_it_can_pay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "can_fork", lambda: True)
    monkeypatch.setattr(load, "second_cpu_idle", lambda: True)
    monkeypatch.delenv("TIOPS_LOAD_FORK", raising=False)
    assert fork_helper(load.PARALLEL_MIN_FILES) and not fork_helper(load.PARALLEL_MIN_FILES - 1)
    monkeypatch.setattr(load, "second_cpu_idle", lambda: False)
    assert not fork_helper(10 * load.PARALLEL_MIN_FILES)  # the machine is busy
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    assert fork_helper(10) and not fork_helper(1)  # asked for: forked whatever the load and size
    monkeypatch.setenv("TIOPS_LOAD_FORK", "0")
    monkeypatch.setattr(load, "second_cpu_idle", lambda: True)
    assert not fork_helper(10 * load.PARALLEL_MIN_FILES)
    monkeypatch.setattr(load, "can_fork", lambda: False)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    assert not fork_helper(10 * load.PARALLEL_MIN_FILES)  # one CPU, no fork, or threads


def test_a_helper_that_copies_this_process_is_wanted_only_with_room_for_the_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "can_fork", lambda: True)
    monkeypatch.setattr(load, "second_cpu_idle", lambda: True)
    monkeypatch.setattr(load, "room_for_a_copy", lambda: False)
    monkeypatch.delenv("TIOPS_LOAD_FORK", raising=False)
    assert load.helpers_wanted() and not load.helpers_wanted(copying=True)
    monkeypatch.setattr(load, "room_for_a_copy", lambda: True)
    assert load.helpers_wanted(copying=True)
    monkeypatch.setattr(load, "room_for_a_copy", lambda: False)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    assert load.helpers_wanted(copying=True)  # asked for
    monkeypatch.setenv("TIOPS_LOAD_FORK", "0")
    monkeypatch.setattr(load, "room_for_a_copy", lambda: True)
    assert not load.helpers_wanted(copying=True)


@pytest.mark.parametrize("cache", [False, True])
def test_a_nul_character_is_a_located_finding_not_the_end_of_the_file(make_repo, cache: bool) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from tiops.cli import main

    # yaml-rs stops reading at a NUL: the description and labels after it were dropped silently.
    root = make_repo({"intel/nul.yaml": "type: malware\nspec_version: '2.1'\nid: malware--98752b14-dcbf-5706-ae1a-dbb5142236d0\n"
                                        "created: '2024-01-01T00:00:00.000Z'\nmodified: '2024-01-01T00:00:00.000Z'\n"
                                        "name: BN\nis_family: true\n\x00description: after the NUL\nlabels: [x]\n"})
    flags = [] if cache else ["--no-cache"]
    for _ in range(2):
        result = CliRunner().invoke(main, ["-C", str(root), "validate", *flags])
        assert result.exit_code == 1 and "intel/nul.yaml:8:1" in result.output and "TI100" in result.output, result.output
        assert "NUL" in result.output
    compiled = CliRunner().invoke(main, ["-C", str(root), "compile", *flags])
    assert compiled.exit_code == 1 and not (root / "dist" / "bundle.json").exists()


def test_partner_intel_names_only_its_own_folders_defaults(make_repo) -> None:  # type: ignore[no-untyped-def]
    malware = ("type: malware\nspec_version: '2.1'\nid: malware--{uuid}\ncreated: '2024-01-01T00:00:00.000Z'\n"
               "modified: '2024-01-01T00:00:00.000Z'\nname: {name}\nis_family: true\n")
    root = make_repo({
        "intel/_defaults.yaml": "defaults:\n  confidence: 80\n",
        "intel/ours/m.yaml": malware.format(uuid="11111111-1111-4111-8111-111111111111", name="Ours"),
        "intel/partner/_defaults.yaml": "imported: true\nsource: Partner\n",
        "intel/partner/m.yaml": malware.format(uuid="22222222-2222-4222-8222-222222222222", name="Theirs"),
        "intel/unnamed/_defaults.yaml": "source: Named above\n",
        "intel/unnamed/partner/_defaults.yaml": "imported: true\n",
        "intel/unnamed/partner/m.yaml": malware.format(uuid="33333333-3333-4333-8333-333333333333", name="Unnamed"),
    })
    repo = load.load_repo(root)
    by_name = {obj.data["name"]: obj for obj in repo.objects}
    assert by_name["Ours"].defaults_files == ("intel/_defaults.yaml",) and by_name["Ours"].data["confidence"] == 80
    assert by_name["Theirs"].defaults_files == ("intel/partner/_defaults.yaml",)
    assert "confidence" not in by_name["Theirs"].data  # what the files above say never reaches partner intel
    # A partner folder that names no source takes the one above: those files did contribute.
    assert by_name["Unnamed"].source == "Named above"
    assert by_name["Unnamed"].defaults_files == ("intel/_defaults.yaml", "intel/unnamed/_defaults.yaml",
                                                 "intel/unnamed/partner/_defaults.yaml")


def test_a_file_that_starts_with_a_byte_order_mark_loads(make_repo) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from tiops.cli import main

    text = ("\ufefftype: malware\nspec_version: '2.1'\nid: malware--98752b14-dcbf-5706-ae1a-dbb5142236d0\n"
            "created: '2024-01-01T00:00:00.000Z'\nmodified: '2024-01-01T00:00:00.000Z'\nname: BOM\nis_family: true\n")
    root = make_repo({"intel/bom.yaml": text, "intel/bulk.yaml": "\ufeff- " + text[1:].replace("\n", "\n  ").rstrip()
                      .replace("98752b14", "98752b15") + "\n"})
    for flags in ([], ["--no-cache"]):
        result = CliRunner().invoke(main, ["-C", str(root), "validate", *flags])
        assert result.exit_code == 0, result.output
    assert [obj.data["name"] for obj in load.load_repo(root).objects] == ["BOM", "BOM"]


def test_a_second_document_and_a_byte_that_is_not_utf8_are_found_at_their_line(make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/two.yaml": "# two documents\ntype: malware\nname: a\n---\ntype: malware\nname: b\n"})
    (root / "intel" / "latin1.yaml").write_bytes(b"type: malware\nname: caf\xe9 noir\n")
    found = {f.location.file: (f.code, f.location.line, f.location.column) for f in load.load_repo(root).findings}
    assert found["intel/two.yaml"] == ("TI105", 4, 1)
    assert found["intel/latin1.yaml"] == ("TI106", 2, 10)


def test_a_property_name_stix_does_not_allow_is_found_at_its_key(make_repo) -> None:  # type: ignore[no-untyped-def]
    from tiops.validate import validate_paths

    root = make_repo({"intel/m.yaml": "type: malware\nspec_version: '2.1'\nid: malware--98752b14-dcbf-5706-ae1a-dbb5142236d0\n"
                                      "created: '2024-01-01T00:00:00.000Z'\nmodified: '2024-01-01T00:00:00.000Z'\n"
                                      "name: a\nis_family: true\nx-bad-key: 1\n"})
    for cache in (False, True):
        (finding,) = [f for f in validate_paths(root, [], cache=cache) if f.code == "TI200"]
        assert (finding.location.line, finding.location.column) == (8, 1) and "x-bad-key" in finding.message


def test_a_wrong_default_value_is_one_finding_at_its_line_and_not_applied(make_repo) -> None:  # type: ignore[no-untyped-def]
    from tiops import load_repo, validate_repo

    objects = "".join(f"- {{type: malware, spec_version: '2.1', name: m{n}, is_family: true, "
                      "created: '2025-01-01T00:00:00.000Z', modified: '2025-01-01T00:00:00.000Z'}\n" for n in range(20))
    root = make_repo({"intel/_defaults.yaml": "source: Team\ndefaults:\n  confidence: high\n  labels: [ok]\n",
                      "intel/malware.yaml": objects})
    repo = load_repo(root)
    findings = validate_repo(repo)
    assert [(f.code, f.location.file, f.location.line) for f in findings if f.severity.name == "ERROR"] == [
        ("TI111", "intel/_defaults.yaml", 3)]
    assert all("confidence" not in obj.data and obj.data["labels"] == ["ok"] for obj in repo.objects)


def test_an_object_whose_extension_makes_its_type_an_sco_takes_an_scos_defaults(make_repo) -> None:  # type: ignore[no-untyped-def]
    from tiops import load_repo, validate_repo

    definition = "extension-definition--3d3a9e0c-8a32-4c8e-9d3b-0b0f0f2b6a11"
    uses = "extensions:\n  " + definition + ": {extension_type: %s}\n"
    root = make_repo({
        "intel/_defaults.yaml": ("source: Team\ndefaults:\n  created_by_ref: identity--272de0aa-9200-5f58-860b-8d7220641ae2\n"
                                 "  confidence: 70\n  object_marking_refs: [marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb]\n"
                                 "  x_team: blue\n"),
        "intel/team.yaml": ("type: identity\nspec_version: '2.1'\nid: identity--272de0aa-9200-5f58-860b-8d7220641ae2\n"
                            "name: Team\ncreated: 2024-01-01T00:00:00.000Z\nmodified: 2024-01-01T00:00:00.000Z\n"),
        "intel/definition.yaml": ("type: extension-definition\nspec_version: '2.1'\nid: " + definition + "\n"
                                  "created: 2024-01-01T00:00:00.000Z\nmodified: 2024-01-01T00:00:00.000Z\nname: cells\n"
                                  "schema: https://example.com/cell.json\nversion: '1.0'\nextension_types: [new-sco, new-sdo]\n"),
        "intel/tower.yaml": ("type: x-cell-tower\nspec_version: '2.1'\nid: x-cell-tower--0b7c5f0e-3a1d-5a2e-9b7e-1c1d2e3f4a5b\n"
                             "tower_id: '310-410-1234'\n" + uses % "new-sco"),
        "intel/campaign.yaml": ("type: x-cell-campaign\nspec_version: '2.1'\nid: x-cell-campaign--1b7c5f0e-3a1d-4a2e-9b7e-1c1d2e3f4a5b\n"
                                "created: 2024-01-01T00:00:00.000Z\nmodified: 2024-01-01T00:00:00.000Z\n" + uses % "new-sdo"),
    })
    repo = load_repo(root)
    assert not validate_repo(repo)
    by_type = {obj.type: obj for obj in repo.objects}
    # An SCO has no created_by_ref or confidence (STIX 2.1 section 6.1); markings and custom ones it keeps.
    tower = by_type["x-cell-tower"]
    assert "created_by_ref" not in tower.data and "confidence" not in tower.data
    assert tower.defaulted_properties == ("object_marking_refs", "x_team")
    campaign = by_type["x-cell-campaign"]
    assert campaign.data["created_by_ref"].startswith("identity--") and campaign.data["confidence"] == 70


@pytest.mark.parametrize("flags", [["--no-cache"], [], ["FILE"]])
@pytest.mark.parametrize("written", ["[malware--11111111-2222-4333-8444-555555555555]", "{a: b}"])
def test_an_id_that_is_no_string_in_a_folder_with_defaults_is_a_finding(make_repo, flags: list[str],  # type: ignore[no-untyped-def]
                                                                        written: str) -> None:
    from click.testing import CliRunner

    from tiops.cli import main

    # The built-in marking check looked a list id up in a set: TypeError, "internal error", exit 3.
    root = make_repo({"intel/_defaults.yaml": "source: Us\n",
                      "intel/malware/x.yaml": f"type: malware\nspec_version: '2.1'\nid: {written}\n"
                                              "created: '2024-01-01T00:00:00.000Z'\nmodified: '2024-01-01T00:00:00.000Z'\n"
                                              "name: X\nis_family: true\n"})
    named = [str(root / "intel/malware/x.yaml") if flag == "FILE" else flag for flag in flags]
    result = CliRunner().invoke(main, ["-C", str(root), "validate", *named])
    assert result.exit_code == 1 and "intel/malware/x.yaml:3:" in result.output and "TI203" in result.output, result.output


@pytest.mark.parametrize("flags", [["--no-cache"], []])
def test_a_yaml_file_named_in_other_letters_is_a_warning_not_silently_skipped(make_repo, flags: list[str]) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from tiops.cli import main

    body = ("type: malware\nspec_version: '2.1'\nid: malware--98752b14-dcbf-5706-ae1a-dbb5142236d0\n"
            "created: '2024-01-01T00:00:00.000Z'\nmodified: '2024-01-01T00:00:00.000Z'\nname: BN\nis_family: true\n")
    root = make_repo({"intel/Upper.YAML": body, "intel/notes.md": "# not intel\n", "intel/_defaults.yaml": "source: Us\n"})
    for _ in range(2):  # the second run through the build cache
        result = CliRunner().invoke(main, ["-C", str(root), "validate", *flags])
        assert "intel/Upper.YAML:1:1: warning TI115 yaml-suffix-case" in result.output, result.output
        assert "notes.md" not in result.output


OWN_MALWARE = ("type: malware\nspec_version: '2.1'\nid: malware--98752b14-dcbf-5706-ae1a-dbb5142236d0\n"
               "created: '2024-01-01T00:00:00.000Z'\nmodified: '2024-01-01T00:00:00.000Z'\nname: BN\nis_family: true\n")


@pytest.mark.parametrize("flags", [["--no-cache"], []])
def test_an_overlay_in_a_folder_of_our_own_is_an_error_not_an_object_file(make_repo, flags: list[str]) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from tiops.cli import main

    overlay = "malware--98752b14-dcbf-5706-ae1a-dbb5142236d0:\n  labels: [reviewed]\n  revoked: true\n"
    root = make_repo({"intel/_defaults.yaml": "source: Us\n", "intel/malware/bn.yaml": OWN_MALWARE,
                      "intel/malware/_overlay.yaml": overlay})
    loaded = load_repo(root)
    assert [(f.code, f.location.file, f.location.line, f.location.column) for f in loaded.findings] == [
        ("TI707", "intel/malware/_overlay.yaml", 1, 1)]
    assert "holds no partner intel" in loaded.findings[0].message
    assert [(o.file, o.data.get("revoked")) for o in loaded.objects] == [("intel/malware/bn.yaml", None)]
    for _ in range(2):  # the second run through the build cache
        result = CliRunner().invoke(main, ["-C", str(root), "validate", *flags])
        assert result.exit_code == 1, result.output
        assert "intel/malware/_overlay.yaml:1:1: error TI707 overlay-outside-source-folder" in result.output, result.output
        assert "TI201" not in result.output  # it was read as an object without a type


def test_an_overlay_below_an_imported_source_folder_applies_to_nothing(make_repo) -> None:  # type: ignore[no-untyped-def]
    objects = "- " + OWN_MALWARE.replace("\n", "\n  ").rstrip() + "\n"
    root = make_repo({"intel/partner/_defaults.yaml": "source: Partner\nimported: true\n",
                      "intel/partner/malware/m.yaml": objects,
                      "intel/partner/malware/_overlay.yaml": "malware--98752b14-dcbf-5706-ae1a-dbb5142236d0:\n  revoked: true\n"})
    loaded = load_repo(root)
    (finding,) = [f for f in loaded.findings if f.code == "TI707"]
    assert finding.location.file == "intel/partner/malware/_overlay.yaml"
    assert "only in the source folder intel/partner itself" in finding.message
    assert [o.data.get("revoked") for o in loaded.objects] == [None]
    assert not [f for f in loaded.findings if f.location.file.endswith("_overlay.yaml") and f.code != "TI707"]


def test_a_first_build_hands_its_save_to_a_new_process_above_its_size_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compile copies the pages it writes while a forked helper lives: a large build, or one
    whose copy memory could not hold, saves in a new process, which holds only what it is handed."""
    from tiops import pipeline

    monkeypatch.delenv("TIOPS_LOAD_FORK", raising=False)
    monkeypatch.setattr(pipeline, "fork_helper", lambda files: files >= 2000)
    monkeypatch.setattr(pipeline, "room_for_a_copy", lambda: True)
    monkeypatch.setattr(pipeline, "resident_bytes", lambda: pipeline.SAVE_HELPER_MAX_RESIDENT - 1)
    assert pipeline._save_helper(5000) == (True, False)  # forked
    assert pipeline._save_helper(10) == (False, False)  # saved in the command
    monkeypatch.setattr(pipeline, "room_for_a_copy", lambda: False)
    assert pipeline._save_helper(5000) == (True, True)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    assert pipeline._save_helper(5000) == (True, False)  # a fork asked for
    monkeypatch.setattr(pipeline, "resident_bytes", lambda: pipeline.SAVE_HELPER_MAX_RESIDENT)
    assert pipeline._save_helper(5000) == (True, True)  # too large to fork all the same
    monkeypatch.delenv("TIOPS_LOAD_FORK")
    monkeypatch.setattr(pipeline, "room_for_a_copy", lambda: True)
    assert pipeline._save_helper(5000) == (True, True)
