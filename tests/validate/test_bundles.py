"""Bundles linted as received: the wrapper (STIX 2.1 section 8) and STIX 2.0 content,
checked through the 2.1 upgrade with findings at the 2.0 text's places."""

from __future__ import annotations

import json
from pathlib import Path

from tiops.findings import Severity
from tiops.load import load_bundle
from tiops.validate import validate_paths, validate_repo

INDICATOR_20 = {
    "type": "indicator",
    "id": "indicator--7a7a7a7a-7a7a-4a7a-8a7a-7a7a7a7a7a01",
    "created": "2017-01-01T00:00:00.000Z",
    "modified": "2017-01-01T00:00:00.000Z",
    "labels": ["malicious-activity", "spooky"],
    "pattern": "[ipv4-addr:value = '999.1.1.1']",
    "valid_from": "2017-01-01T00:00:00Z",
}


def _write(tmp_path: Path, bundle: object) -> Path:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle, indent=2), encoding="utf-8")
    return path


def _line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_bundle_without_an_id_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, {"type": "bundle", "objects": []})
    findings = validate_repo(load_bundle(path))
    assert [(f.code, f.severity) for f in findings] == [("TI249", Severity.ERROR), ("TI243", Severity.ERROR)]
    assert "section 8" in findings[0].message


def test_a_bundle_id_of_another_type_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, {"type": "bundle", "id": "report--7a7a7a7a-7a7a-4a7a-8a7a-7a7a7a7a7a00",
                             "objects": [{**INDICATOR_20, "spec_version": "2.1", "pattern_type": "stix",
                                          "pattern": "[ipv4-addr:value = '198.51.100.1']"}]})
    findings = validate_repo(load_bundle(path))
    assert [(f.code, f.location.line) for f in findings] == [("TI249", _line_of(path, '"id": "report--'))]


def test_stix20_bundle_is_checked_at_the_20_places(tmp_path: Path) -> None:
    path = _write(tmp_path, {"type": "bundle", "id": "bundle--7a7a7a7a-7a7a-4a7a-8a7a-7a7a7a7a7a00",
                             "spec_version": "2.0", "objects": [INDICATOR_20]})
    findings = validate_repo(load_bundle(path))
    by_code = {f.code: f for f in findings}
    assert sorted(by_code) == ["TI209", "TI210", "TI230"]
    # labels became indicator_types in the upgrade; the finding points at the 2.0 labels.
    assert by_code["TI209"].location.line == _line_of(path, '"spooky"')
    assert by_code["TI230"].location.line == _line_of(path, '"pattern"')
    assert "STIX 2.0" in by_code["TI230"].message
    assert "1 object(s) are STIX 2.0" in by_code["TI210"].message


def test_spec_version_20_objects_in_a_21_bundle_are_checked_as_20(tmp_path: Path) -> None:
    item = {**INDICATOR_20, "spec_version": "2.0", "pattern": "[ipv4-addr:value = '198.51.100.1']"}
    path = _write(tmp_path, {"type": "bundle", "id": "bundle--7a7a7a7a-7a7a-4a7a-8a7a-7a7a7a7a7a00", "objects": [item]})
    findings = validate_repo(load_bundle(path))
    assert sorted(f.code for f in findings if f.severity >= Severity.WARNING) == ["TI209", "TI210"]


def test_a_21_bundle_with_a_spec_version_is_a_warning(tmp_path: Path) -> None:
    path = _write(tmp_path, {"type": "bundle", "id": "bundle--7a7a7a7a-7a7a-4a7a-8a7a-7a7a7a7a7a00",
                             "spec_version": "2.1", "objects": [{**INDICATOR_20, "spec_version": "2.1",
                                                                 "pattern_type": "stix", "indicator_types": ["malicious-activity"],
                                                                 "pattern": "[ipv4-addr:value = '198.51.100.1']"}]})
    findings = validate_repo(load_bundle(path))
    assert [(f.code, f.severity) for f in findings] == [("TI249", Severity.WARNING)]


def _attack_bundle(folder: Path) -> Path:
    """Two ATT&CK techniques joined by subtechnique-of: outside STIX 2.1 Appendix B, in ATT&CK's table."""
    def technique(n: int) -> dict[str, object]:
        return {"type": "attack-pattern", "spec_version": "2.1", "id": f"attack-pattern--7a7a7a7a-7a7a-4a7a-8a7a-7a7a7a7a7a0{n}",
                "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z", "name": f"T100{n}"}
    relationship = {"type": "relationship", "spec_version": "2.1", "id": "relationship--7a7a7a7a-7a7a-4a7a-8a7a-7a7a7a7a7a09",
                    "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
                    "relationship_type": "subtechnique-of", "source_ref": technique(2)["id"], "target_ref": technique(1)["id"]}
    folder.mkdir(parents=True, exist_ok=True)
    return _write(folder, {"type": "bundle", "id": "bundle--7a7a7a7a-7a7a-4a7a-8a7a-7a7a7a7a7a00",
                           "objects": [technique(1), technique(2), relationship]})


def test_a_bundle_linted_outside_a_repository_names_the_shipped_table_that_allows_a_relationship(tmp_path: Path) -> None:
    findings = validate_paths(tmp_path, [_attack_bundle(tmp_path / "received")])
    assert [(f.code, f.severity) for f in findings] == [("TI400", Severity.WARNING)]
    assert "relationship_tables: [attack]" in findings[0].hint


def test_a_bundle_linted_in_a_repository_uses_its_relationship_table(tmp_path: Path) -> None:
    # tiops.yaml's relationship_tables and rules/relationships.yaml decide, as for the team's own files.
    (tmp_path / "intel").mkdir()
    (tmp_path / "tiops.yaml").write_text("relationship_tables: [attack]\n", encoding="utf-8")
    bundle = _attack_bundle(tmp_path / "received")
    assert validate_paths(tmp_path, [bundle]) == []

    (tmp_path / "tiops.yaml").write_text("{}\n", encoding="utf-8")
    assert [f.code for f in validate_paths(tmp_path, [bundle])] == ["TI400"]

    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "relationships.yaml").write_text(
        "relationships:\n  - {source: attack-pattern, type: subtechnique-of, target: attack-pattern}\n", encoding="utf-8")
    assert validate_paths(tmp_path, [bundle]) == []


def test_a_bundle_linted_in_a_repository_with_a_broken_configuration_says_so(tmp_path: Path) -> None:
    (tmp_path / "intel").mkdir()
    (tmp_path / "tiops.yaml").write_text("relationship_tables: [attack\n", encoding="utf-8")
    findings = validate_paths(tmp_path, [_attack_bundle(tmp_path / "received")])
    assert [f.location.file for f in findings if f.severity is Severity.ERROR] == ["tiops.yaml"]
    # The table used meanwhile is Appendix B alone: the relationship is still reported.
    assert "TI400" in {f.code for f in findings}


def test_a_name_written_twice_in_a_json_bundle_is_ti101_at_its_place(tmp_path: Path) -> None:
    # A JSON parser keeps one of the two values without a word: before, such a bundle linted clean.
    path = Path(__file__).resolve().parents[1] / "data" / "importers" / "duplicate-keys.json"
    findings = [f for f in validate_repo(load_bundle(path)) if f.code == "TI101"]
    assert [(f.location.line, f.stix_id, f.message.split(":")[0]) for f in findings] == [
        (_line_of(path, '"WickStealer"'), "malware--1b2c3d4e-5f6a-4b7c-8d8e-9f0a1b2c3d4e",
         "name is written twice in one mapping, with different values"),
        (_line_of(path, '"description"'), "malware--2c3d4e5f-6a7b-4c8d-9e9f-0a1b2c3d4e5f",
         "description is written twice in one mapping, each time with the same value"),
        (_line_of(path, '"url"'), "attack-pattern--3d4e5f6a-7b8c-4d9e-8f0a-1b2c3d4e5f6a",
         "external_references.0.url is written twice in one mapping, with different values"),
    ]
    assert all(f.severity is Severity.ERROR for f in findings)
    wrapper = tmp_path / "wrapper.json"
    wrapper.write_text('{"type": "bundle", "id": "bundle--7a5c8f0e-3b1d-4e2a-9c6f-1d2e3f4a5b6c", "objects": [], '
                       '"objects": []}', encoding="utf-8")
    (finding,) = [f for f in validate_repo(load_bundle(wrapper)) if f.code == "TI101"]
    assert finding.stix_id is None and finding.message.startswith("objects is written twice")
