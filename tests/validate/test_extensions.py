"""STIX 2.1 section 7.3: types and properties defined by extension-definitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from tiops import build, load_repo, validate_repo
from tiops.findings import Severity
from tiops.importers.write import import_file
from tiops.load import load_bundle

BUNDLE = Path(__file__).resolve().parent.parent / "data" / "importers" / "extensions.json"
NEW_SDO = "extension-definition--9c59fd79-4215-4ba2-920d-3e4f320e1e62"


def _objects() -> list[dict[str, Any]]:
    return list(json.loads(BUNDLE.read_text())["objects"])


def _codes(findings: list[Any]) -> list[tuple[str, str, str | None]]:
    return sorted((f.code, str(f.severity), f.stix_id) for f in findings if f.code not in ("TI400",))


def test_a_bundle_with_new_sdo_types_keeps_every_object(tmp_path: Path) -> None:
    report = import_file(tmp_path, BUNDLE, "stix", "Catalogue")
    assert (report.total, report.created, report.failed) == (11, 11, 0)
    findings = validate_repo(load_repo(tmp_path))
    assert [f for f in findings if f.severity is Severity.ERROR] == []
    # the toplevel-property-extension's properties are not unknown properties
    assert [f for f in findings if f.code == "TI208"] == []
    compiled = {o["id"] for o in orjson.loads(build(tmp_path).bundle)["objects"]}
    assert {o["id"] for o in _objects()} <= compiled


def _bundle(tmp_path: Path, objects: list[dict[str, Any]]) -> Path:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000001", "objects": objects}))
    return path


def test_an_extension_must_name_a_definition_present(tmp_path: Path) -> None:
    objects = [o for o in _objects() if o["id"] != NEW_SDO]
    findings = validate_repo(load_bundle(_bundle(tmp_path, objects)))
    undefined = [f for f in findings if f.code == "TI212"]
    assert {f.stix_id for f in undefined} == {"malware-behavior--ac97aae4-83f1-46ca-a351-7aeb76678189",
                                             "malware-method--0b2f8e3a-6a4c-4d1e-9b7f-3c5d2e1f0a9b",
                                             "malware-objective--5e8a1f2b-7c3d-4e9f-8a0b-1c2d3e4f5a6b"}
    assert {f.severity for f in undefined} == {Severity.WARNING}  # a bundle from others: a warning
    assert undefined[0].location.line > 0
    # imported without their definition, the three objects and the relationships to them are rejected
    report = import_file(tmp_path / "repo", _bundle(tmp_path, objects), "stix", "Catalogue")
    assert (report.rejected, report.rejected_as_dependent) == (0, 5)
    assert all(NEW_SDO in r.reasons[0] or "depends on rejected" in r.reasons[0] for r in report.rejections)
    assert [f for f in validate_repo(load_repo(tmp_path / "repo")) if f.severity is Severity.ERROR] == []


def test_use_not_listed_by_the_definition_and_missing_common_properties(tmp_path: Path) -> None:
    objects = _objects()
    behaviour = next(o for o in objects if o["type"] == "malware-behavior")
    behaviour["extensions"][NEW_SDO]["extension_type"] = "new-sro"
    method = next(o for o in objects if o["type"] == "malware-method")
    del method["created"]
    method["labels"] = "not-a-list"
    findings = validate_repo(load_bundle(_bundle(tmp_path, objects)))
    assert [(f.code, f.stix_id) for f in findings if f.code == "TI213"] == [(
        "TI213", behaviour["id"])]
    invalid = sorted(f.message for f in findings if f.code == "TI214")
    assert len(invalid) == 2 and all(m.startswith("malware-method is a new SDO type") for m in invalid)
    assert any('"created" is a required property' in m for m in invalid) and any("labels" in m for m in invalid)


def test_an_unknown_type_without_a_definition_is_still_unknown(tmp_path: Path) -> None:
    objects = _objects()
    behaviour = next(o for o in objects if o["type"] == "malware-behavior")
    del behaviour["extensions"]
    findings = validate_repo(load_bundle(_bundle(tmp_path, objects)))
    assert [(f.code, f.stix_id) for f in findings if f.code == "TI202"] == [("TI202", behaviour["id"])]


def test_only_the_properties_the_definition_lists_are_extension_properties(tmp_path: Path) -> None:
    objects = _objects()
    indicator = next(o for o in objects if o["type"] == "indicator")
    indicator["colour"] = "red"
    findings = validate_repo(load_bundle(_bundle(tmp_path, objects)))
    assert [f.message for f in findings if f.code == "TI208"] == ["'colour' is not a property of indicator objects"]


def test_a_misspelt_extension_type_is_said_once_and_a_timestamp_without_milliseconds_plainly(tmp_path: Path) -> None:
    objects = _objects()
    behaviour = next(o for o in objects if o["type"] == "malware-behavior")
    method = next(o for o in objects if o["type"] == "malware-method")
    pattern = {"type": "attack-pattern", "spec_version": "2.1", "id": "attack-pattern--12121212-1212-4212-8212-121212121212",
               "created": "2022-01-01T00:00:00.000Z", "modified": "2022-01-01T00:00:00.000Z", "name": "typo",
               "extensions": {NEW_SDO: {"extension_type": "property-extention"}}}
    method["created"] = "2022-01-01T00:00:00Z"
    findings = validate_repo(load_bundle(_bundle(tmp_path, [*objects, pattern])))
    about_typo = [f.code for f in findings if f.stix_id == pattern["id"]]
    assert about_typo == ["TI200"]  # not also TI213 for the same value
    (created,) = [f.message for f in findings if f.code == "TI214" and f.stix_id == method["id"]]
    assert "not an RFC 3339 UTC timestamp precise to the millisecond" in created and "[0-9]" not in created
    assert behaviour["id"] not in {f.stix_id for f in findings if f.severity is Severity.ERROR}
