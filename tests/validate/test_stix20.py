"""STIX 2.0 bundles linted by what STIX 2.0 says, at the places of the 2.0 text.

The samples in tests/data/stix20/ are written for these tests from the STIX 2.0
specification (Parts 1 to 5, OASIS Committee Specification 01): every SDO and SRO, the
2.0 TLP and statement markings, observed-data with the 2.0 cyber observables (2.0
property names: file.created, process.name, user-account.password_last_changed...) and
their extensions, 2.0 patterns over those names, a custom object and custom observable.
The valid ones are valid for the OASIS reference validator in its 2.0 mode too.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from tiops.findings import Finding, Severity
from tiops.load import load_bundle
from tiops.stix import BUILTIN_OBJECTS, TLP1_MARKINGS
from tiops.stix20 import upgrade_from_20
from tiops.validate import validate_paths, validate_repo

DATA = Path(__file__).resolve().parents[1] / "data" / "stix20"
VALID = ["sdos.json", "observables.json", "patterns.json"]
REFERENCE_VALID = [*VALID, "misp-shaped.json"]


def _line_of(path: Path, text: str, after: str | None = None) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(n for n, line in enumerate(lines) if after in line) if after else 0
    return next(number for number, line in enumerate(lines[start:], start + 1) if text in line)


def _lint(name: str) -> list[Finding]:
    return validate_repo(load_bundle(DATA / name))


@pytest.mark.parametrize("name", REFERENCE_VALID)
def test_valid_20_samples_are_valid_for_the_reference_validator_in_20_mode(name: str) -> None:
    stix2validator = pytest.importorskip("stix2validator")
    result = stix2validator.validate_instance(json.loads((DATA / name).read_text(encoding="utf-8")),
                                              stix2validator.ValidationOptions(version="2.0"))
    assert result.is_valid and not result.errors


@pytest.mark.parametrize("name", VALID)
def test_valid_20_bundles_give_only_the_version_notice(name: str) -> None:
    findings = _lint(name)
    assert [f.code for f in findings] == ["TI210"], [str(f) for f in findings]
    objects = len(json.loads((DATA / name).read_text(encoding="utf-8"))["objects"])
    assert f"{objects} object(s) are STIX 2.0" in findings[0].message


def test_20_defects_are_found_at_their_20_places() -> None:
    path = DATA / "defects.json"
    findings = [f for f in _lint("defects.json") if f.code != "TI210"]
    got = [(f.code, f.severity, f.location.line, f.stix_id) for f in findings]
    assert got == [
        # labels is REQUIRED on 2.0 malware (2.1's malware_types is optional): at the object (its opening brace)
        ("TI201", Severity.ERROR, _line_of(path, '"type": "malware"') - 1, "malware--0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
        # identity_class is REQUIRED on a 2.0 identity; "defence" is in 2.0's industry-sector-ov: no finding
        ("TI201", Severity.ERROR, _line_of(path, '"type": "identity"') - 1, "identity--1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"),
        # 'tool' is in neither tool-label-ov (2.0) nor tool-type-ov (2.1): at the 2.0 labels item
        ("TI209", Severity.WARNING, _line_of(path, '"labels": ["tool"]'), "tool--2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d"),
        # dst_ref names key "2", which the objects dictionary does not have
        ("TI300", Severity.ERROR, _line_of(path, '"dst_ref": "2"'), "observed-data--3a4b5c6d-7e8f-4a9b-8c1d-2e3f4a5b6c7d"),
        # string literals in patterns are single-quoted (2.0 Part 5 as 2.1 section 9)
        ("TI207", Severity.ERROR, _line_of(path, '"pattern"'), "indicator--4a5b6c7d-8e9f-4a0b-9c2d-3e4f5a6b7c8d"),
        ("TI205", Severity.ERROR, _line_of(path, '"modified": "2017-01-01', after='"type": "report"'),
         "report--5a6b7c8d-9e0f-4a1b-8c3d-4e5f6a7b8c9d"),
        # TLP:GREEN's reserved id with TLP:RED's definition: the 2.0 object lacks only the 2.1 name, not reported
        ("TI247", Severity.ERROR, _line_of(path, '"type": "marking-definition"') - 1,
         "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"),
    ]
    by_code = {f.code: f for f in findings}
    malware, identity = (f.message for f in findings if f.code == "TI201")
    assert "STIX 2.0 Part 2 section 2.7" in malware and "malware_types" in malware
    assert "STIX 2.0 Part 2 section 2.4" in identity
    assert by_code["TI209"].message.startswith("labels: 'tool' is in neither the STIX 2.0 tool-label-ov vocabulary")
    assert by_code["TI209"].hint is not None and "remote-access" in by_code["TI209"].hint
    assert "objects.1.dst_ref" in by_code["TI300"].message and "STIX 2.0 Part 3" in by_code["TI300"].message
    assert "differs from the specification's in definition (" in by_code["TI247"].message
    assert all(f.message.endswith("[STIX 2.0 object, checked as upgraded to 2.1]") for f in findings)


def test_a_value_only_20_suggests_is_no_finding_and_one_neither_suggests_names_both() -> None:
    item = {"type": "identity", "id": "identity--1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "created": "2017-01-01T00:00:00.000Z",
            "modified": "2017-01-01T00:00:00.000Z", "name": "x", "identity_class": "organization",
            "sectors": ["defence", "shipbuilding", "defense"]}
    findings = _lint_object(item)
    assert [(f.code, f.location.path[-2:]) for f in findings] == [("TI209", ("sectors", 1))]
    assert "STIX 2.0 industry-sector-ov" in findings[0].message and "STIX 2.1 industry-sector-ov" in findings[0].message


def _lint_object(item: dict[str, object]) -> list[Finding]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bundle.json"
        path.write_text(json.dumps({"type": "bundle", "id": "bundle--7a7a7a7a-7a7a-4a7a-8a7a-7a7a7a7a7a00",
                                    "spec_version": "2.0", "objects": [item]}, indent=2), encoding="utf-8")
        return [f for f in validate_repo(load_bundle(path)) if f.code != "TI210"]


def test_2_0_objects_in_a_2_1_bundle_are_checked_as_2_0_and_counted() -> None:
    findings = _lint("mixed-20-in-21.json")
    assert [f.code for f in findings] == ["TI210"]
    assert "2 object(s) are STIX 2.0" in findings[0].message


def test_a_2_1_object_in_a_2_0_bundle_is_named_and_checked_as_2_1() -> None:
    path = DATA / "mixed-21-in-20.json"
    findings = _lint("mixed-21-in-20.json")
    assert Counter(f.code for f in findings) == {"TI210": 1, "TI215": 1}
    (mixed,) = [f for f in findings if f.code == "TI215"]
    assert mixed.severity == Severity.WARNING and mixed.stix_id == "malware--3b4c5d6e-7f8a-4b9c-8d1e-2f3a4b5c6d7e"
    assert mixed.location.line == _line_of(path, '"spec_version": "2.1"')
    # checked as 2.1: its free-text labels are not moved to malware_types, nor is a missing 2.0 label required
    assert "1 object(s) are STIX 2.0" in next(f for f in findings if f.code == "TI210").message


def test_the_20_tlp_markings_are_the_21_ones_once_upgraded() -> None:
    for level, marking_id in TLP1_MARKINGS.items():
        as_in_20 = {"type": "marking-definition", "id": marking_id, "created": "2017-01-20T00:00:00.000Z",
                    "definition_type": "tlp", "definition": {"tlp": level}}
        assert upgrade_from_20(as_in_20, Counter()) == BUILTIN_OBJECTS[marking_id]


def test_a_bundle_named_by_a_relative_path_in_a_folder_is_located(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "received").mkdir()
    (tmp_path / "received" / "defects.json").write_bytes((DATA / "defects.json").read_bytes())
    monkeypatch.chdir(tmp_path)
    findings = validate_paths(tmp_path, [Path("received/defects.json")])
    placed = [f for f in findings if f.code != "TI210"]
    assert placed and all(f.location.line > 1 for f in placed)
    assert {f.location.file for f in findings} == {"received/defects.json"}


def test_a_cyber_observable_at_the_top_of_a_20_bundle_is_named() -> None:
    # STIX 2.0 Part 3: observables are only inside observed-data; at the top they are 2.1 SCOs
    findings = _lint_object({"type": "file", "id": "file--31b940d4-6f7f-459a-80ea-9c1f17b5891b", "name": "x"})
    assert [(f.code, f.severity, f.location.path) for f in findings] == [("TI215", Severity.WARNING, ("objects", 0, "type"))]
    assert "only inside observed-data" in findings[0].message


def test_each_20_observable_is_an_object_with_a_type() -> None:
    findings = _lint_object({
        "type": "observed-data", "id": "observed-data--b67d30ff-02ac-498a-92f9-32f845f448cf",
        "created": "2016-04-06T19:58:16.000Z", "modified": "2016-04-06T19:58:16.000Z",
        "first_observed": "2015-12-21T19:00:00Z", "last_observed": "2015-12-21T19:00:00Z", "number_observed": 1,
        "objects": {"0": "198.51.100.3", "1": {"value": "198.51.100.3"}, "2": {"type": "ipv4-addr", "value": "198.51.100.3"}},
    })
    assert [(f.code, f.location.path[-2:]) for f in findings] == [("TI200", ("objects", "0")), ("TI201", ("objects", "1"))]
    assert all("STIX 2.0 Part 3" in f.message for f in findings)


def test_the_version_notice_of_a_lone_20_object_is_not_taken_for_a_finding_on_it(tmp_path: Path) -> None:
    path = tmp_path / "malware.json"
    path.write_text(json.dumps({"type": "malware", "id": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b",
                                "created": "2016-04-06T20:07:09.000Z", "modified": "2016-04-06T20:07:09.000Z",
                                "name": "x", "labels": ["worm"]}), encoding="utf-8")
    (notice,) = validate_repo(load_bundle(path))
    assert notice.code == "TI210" and "checked as upgraded to 2.1]" not in notice.message


def test_a_misp_shaped_20_export_has_warnings_only_for_its_tags_in_labels() -> None:
    # MISP writes its tags into labels; STIX 2.0 says labels SHOULD come from the type's
    # label vocabulary (a SHOULD: warnings). A tag on an object whose labels are free (the
    # observed-data, the custom object, the vulnerability) is no finding.
    path = DATA / "misp-shaped.json"
    findings = _lint("misp-shaped.json")
    assert Counter((f.code, f.severity) for f in findings) == {("TI210", Severity.WARNING): 1, ("TI209", Severity.WARNING): 4}
    assert {f.location.line for f in findings if f.code == "TI209"} == {
        _line_of(path, 'misp:tool='), _line_of(path, '"misp:name=\\"email\\""'),
        _line_of(path, '"misp:meta-category=\\"network\\""'), _line_of(path, 'misp:to_ids=')}


GROUPING_WITHOUT_SPEC_VERSION = {
    "type": "grouping", "id": "grouping--84e4d88f-44ea-4bcd-bbf3-b2c1c320bcb3", "created": "2020-01-01T00:00:00.000Z",
    "modified": "2020-01-01T00:00:00.000Z", "context": "suspicious-activity",
    "object_refs": ["grouping--84e4d88f-44ea-4bcd-bbf3-b2c1c320bcb3"],
}


CUSTOM_WITHOUT_SPEC_VERSION = {
    "type": "x-acme-ticket", "id": "x-acme-ticket--84e4d88f-44ea-4bcd-bbf3-b2c1c320bcb3",
    "created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z", "x_acme_queue": "soc",
}


def test_a_custom_object_outside_a_20_bundle_is_21_content_missing_spec_version(tmp_path: Path) -> None:
    # STIX 2.1 section 11.2: a custom object has the common properties, spec_version among
    # them; only the types STIX 2.0 defines fall back to the implicit 2.0 of section 3.2.
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--7a7a7a7a-7a7a-4a7a-8a7a-7a7a7a7a7a00",
                                "objects": [CUSTOM_WITHOUT_SPEC_VERSION]}, indent=2), encoding="utf-8")
    findings = validate_repo(load_bundle(path))
    assert [(f.code, f.severity) for f in findings] == [("TI201", Severity.ERROR)]
    assert "'spec_version'" in findings[0].message
    # In a bundle that says 2.0, the same object is that bundle's 2.0 content.
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--7a7a7a7a-7a7a-4a7a-8a7a-7a7a7a7a7a00",
                                "spec_version": "2.0", "objects": [CUSTOM_WITHOUT_SPEC_VERSION]}), encoding="utf-8")
    assert [f.code for f in validate_repo(load_bundle(path)) if f.severity is Severity.ERROR] == []
    # So it is beside other 2.0 objects in a list (2.0 content that lost its bundle), and
    # not beside an object that says 2.1.
    identity_20 = {"type": "identity", "id": "identity--84e4d88f-44ea-4bcd-bbf3-b2c1c320bcb4", "name": "Acme",
                   "identity_class": "organization", "created": "2020-01-01T00:00:00.000Z",
                   "modified": "2020-01-01T00:00:00.000Z"}
    path.write_text(json.dumps([identity_20, CUSTOM_WITHOUT_SPEC_VERSION]), encoding="utf-8")
    findings = validate_repo(load_bundle(path))
    assert [f.code for f in findings if f.severity is Severity.ERROR] == []
    assert "2 object(s) are STIX 2.0" in next(f.message for f in findings if f.code == "TI210")
    identity_21 = {**identity_20, "id": "identity--84e4d88f-44ea-4bcd-bbf3-b2c1c320bcb5", "spec_version": "2.1"}
    path.write_text(json.dumps([identity_20, identity_21, CUSTOM_WITHOUT_SPEC_VERSION]), encoding="utf-8")
    findings = validate_repo(load_bundle(path))
    assert [f.code for f in findings if f.severity is Severity.ERROR] == ["TI201"]


@pytest.mark.parametrize("bundle_version", [None, "2.0"])
def test_a_type_21_added_is_21_content_missing_spec_version(tmp_path: Path, bundle_version: str | None) -> None:
    # No STIX 2.0 object is a grouping: without spec_version it breaks STIX 2.1 section 3.2,
    # and is not taken for 2.0 content that the upgrade would quietly give a spec_version.
    bundle: dict[str, object] = {"type": "bundle", "id": "bundle--7a7a7a7a-7a7a-4a7a-8a7a-7a7a7a7a7a00",
                                 "objects": [GROUPING_WITHOUT_SPEC_VERSION]}
    if bundle_version:
        bundle["spec_version"] = bundle_version
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle, indent=2), encoding="utf-8")
    findings = validate_repo(load_bundle(path))
    expected = {("TI201", Severity.ERROR)} | ({("TI215", Severity.WARNING)} if bundle_version else set())
    assert {(f.code, f.severity) for f in findings} == expected
    assert 'missing required property "spec_version"' in next(f.message for f in findings if f.code == "TI201")
