"""An object several sources send stays one object, in the folder of the source that brought it first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tiops import load_repo, validate_repo
from tiops.cli import main
from tiops.findings import Severity
from tiops.importers.write import import_file
from tiops.yamlio import parse_yaml

IDENTITY = {"type": "identity", "spec_version": "2.1", "id": "identity--c78cb6e5-0c4b-4611-8297-d1b8b55e40b5",
            "created": "2017-06-01T00:00:00.000Z", "modified": "2017-06-01T00:00:00.000Z",
            "name": "The MITRE Corporation", "identity_class": "organization"}


def _indicator(number: int) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{number:08d}-1111-4111-8111-111111111111",
            "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
            "created_by_ref": IDENTITY["id"], "pattern": f"[ipv4-addr:value = '198.51.100.{number}']",
            "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z"}


def _import(root: Path, source: str, objects: list[dict[str, Any]]) -> Any:
    path = root / f"{source}.json"
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", "objects": objects}))
    return import_file(root, path, "stix", source)


def _errors(root: Path) -> list[str]:
    return [f"{f.code} {f.message}" for f in validate_repo(load_repo(root)) if f.severity is Severity.ERROR]


def test_the_same_object_from_a_second_source_is_not_a_duplicate(tmp_path: Path) -> None:
    _import(tmp_path, "ics", [IDENTITY, _indicator(1)])
    report = _import(tmp_path, "mobile", [IDENTITY, _indicator(2)])
    assert (report.created, report.unchanged, report.failed) == (1, 1, 0)
    assert not (tmp_path / "intel/mobile/identity").exists()
    assert _errors(tmp_path) == []
    lock = json.loads((tmp_path / "intel/mobile/_imported.json").read_text())
    assert lock["shared"] == {IDENTITY["id"]: "intel/ics"} and IDENTITY["id"] not in lock["objects"]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    again = _import(tmp_path, "mobile", [IDENTITY, _indicator(2)])
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_newer_version_updates_it_where_it_lives_and_an_older_one_is_unchanged(tmp_path: Path) -> None:
    _import(tmp_path, "ics", [IDENTITY])
    newer = {**IDENTITY, "modified": "2024-05-01T00:00:00.000Z", "description": "newer"}
    report = _import(tmp_path, "mobile", [newer, _indicator(2)])
    assert (report.created, report.updated) == (1, 1)
    owned = parse_yaml((tmp_path / "intel/ics/identity/c78cb6e5-0c4b-4611-8297-d1b8b55e40b5.yaml").read_text())
    assert owned["description"] == "newer"
    assert _errors(tmp_path) == []  # the owner's _imported.json was updated too: no TI700
    report = _import(tmp_path, "other", [IDENTITY])
    assert (report.unchanged, report.older_ignored, report.updated) == (1, 0, 0)


def test_explain_shows_the_other_sources(tmp_path: Path) -> None:
    _import(tmp_path, "ics", [IDENTITY])
    _import(tmp_path, "mobile", [IDENTITY])
    result = CliRunner().invoke(main, ["-C", str(tmp_path), "explain", IDENTITY["id"]])
    assert "  from intel/ics/identity/" in result.output
    assert "  also sent by source 'mobile' (intel/mobile); the object lives once, here" in result.output
    as_json = CliRunner().invoke(main, ["-C", str(tmp_path), "explain", IDENTITY["id"], "--format", "json"])
    assert json.loads(as_json.output)["also_imported_by"] == [{"source": "mobile", "folder": "intel/mobile"}]


DOMAIN = {"type": "domain-name", "spec_version": "2.1", "id": "domain-name--ecb120bf-2694-4902-a737-62b74539a41b",
          "value": "example.com"}
ADDRESS = {"type": "ipv4-addr", "spec_version": "2.1", "id": "ipv4-addr--efcd5e80-570d-4131-b213-62cb18eaa6a8",
           "value": "198.51.100.3"}


def test_an_sco_sent_again_with_other_content_is_rejected_and_the_repository_still_validates(tmp_path: Path) -> None:
    """An object with no 'modified' has one content per id: the second content is rejected against the file
    written (docs/import.md, Versions), by the same source or another; the record keeps matching the file."""
    _import(tmp_path, "p", [DOMAIN])
    resolving = {**DOMAIN, "resolves_to_refs": [ADDRESS["id"]]}
    for source in ("p", "q"):
        report = _import(tmp_path, source, [ADDRESS, resolving])
        assert [r.stix_id for r in report.rejections] == [DOMAIN["id"]], source
        assert "neither has a 'modified'" in report.rejections[0].reasons[0]
        assert report.updated == 0
        assert _errors(tmp_path) == [], source  # was TI700: the file rewritten, _imported.json not
    kept = parse_yaml((tmp_path / "intel" / "p" / "domain-name" / "ecb120bf-2694-4902-a737-62b74539a41b.yaml").read_text())
    assert "resolves_to_refs" not in kept
    # The rejected object is neither recorded as q's own nor as one q also sends.
    record = json.loads((tmp_path / "intel" / "q" / "_imported.json").read_text())
    assert DOMAIN["id"] not in record["objects"] and DOMAIN["id"] not in record.get("shared", {})


def test_a_whole_feed_that_no_longer_sends_an_object_says_so_and_keeps_it(tmp_path: Path) -> None:
    _import(tmp_path, "ics", [IDENTITY, _indicator(1), _indicator(2)])
    report = _import(tmp_path, "ics", [IDENTITY, _indicator(1)])
    withdrawn = [note for note in report.notes if "not in this input" in note]
    assert withdrawn == ["1 object(s) imported earlier from 'ics' are not in this input: kept as they are; if the "
                         "source withdrew them, revoke them in intel/ics/_overlay.yaml (revoked: true)"]
    assert (tmp_path / "intel" / "ics" / "indicator" / "00000002-1111-4111-8111-111111111111.yaml").exists()
    assert _errors(tmp_path) == []
    # Everything sent again: nothing to say.
    assert not [n for n in _import(tmp_path, "ics", [IDENTITY, _indicator(1), _indicator(2)]).notes
                if "not in this input" in n]
