"""STIX 2.0 bundles imported: every object accounted for, the repository validates and
compiles, and the compiled bundle is STIX 2.1 the OASIS reference validator accepts."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from tiops.cli import main
from tiops.importers.write import ImportReport, import_file
from tiops.stix import TLP1_MARKINGS
from tiops.yamlio import parse_yaml

DATA = Path(__file__).resolve().parents[1] / "data" / "stix20"


def _import(root: Path, name: str) -> ImportReport:
    (root / "intel").mkdir(parents=True)  # a fresh repository holding only what import writes
    report = import_file(root, DATA / name, "stix", "Old feed")
    outcomes = (report.created + report.updated + report.unchanged + report.older_ignored
                + report.rejected + report.rejected_as_dependent)
    assert outcomes == report.total == len(orjson.loads((DATA / name).read_bytes())["objects"])
    return report


def _validate_and_compile(root: Path) -> list[dict[str, object]]:
    validated = CliRunner().invoke(main, ["-C", str(root), "validate", "--format", "json"])
    assert validated.exit_code == 0, validated.stdout
    assert [f for f in orjson.loads(validated.stdout)["findings"] if f["severity"] == "error"] == []
    compiled = CliRunner().invoke(main, ["-C", str(root), "compile"])
    assert compiled.exit_code == 0, compiled.output
    objects: list[dict[str, object]] = orjson.loads((root / "dist" / "bundle.json").read_bytes())["objects"]
    return objects


@pytest.mark.parametrize("name", ["sdos.json", "observables.json", "patterns.json", "misp-shaped.json"])
def test_a_valid_20_bundle_imports_into_a_repository_that_validates_and_compiles(tmp_path: Path, name: str) -> None:
    report = _import(tmp_path, name)
    assert report.created == report.total and report.failed == 0
    # nothing in valid 2.0 content is a defect to repair: the upgrade is reported once, as a note
    assert report.repairs == []
    assert report.notes[0].startswith(f"upgraded {report.total} STIX 2.0 object(s) to 2.1")
    objects = _validate_and_compile(tmp_path)
    assert all(o.get("spec_version") == "2.1" for o in objects if o["type"] not in ("file", "ipv4-addr"))


def test_the_20_tlp_markings_are_written_as_the_21_ones(tmp_path: Path) -> None:
    report = _import(tmp_path, "sdos.json")
    assert "TLP marking-definition name added: 2" in report.notes[0]
    white = parse_yaml((tmp_path / "intel/old-feed/marking-definition/613f2e26-407d-48c7-9eca-b8e91df99dc9.yaml").read_text())
    assert white["name"] == "TLP:WHITE" and white["id"] == TLP1_MARKINGS["white"]


def test_a_20_bundle_with_defects_rejects_each_with_its_reason(tmp_path: Path) -> None:
    report = _import(tmp_path, "defects.json")
    reasons = {r.stix_id: " ".join(r.reasons) for r in report.rejections}
    # 2.1 rules the upgrade does not repair: a pattern that does not parse, modified before created
    assert "indicator--4a5b6c7d-8e9f-4a0b-9c2d-3e4f5a6b7c8d" in reasons
    assert "report--5a6b7c8d-9e0f-4a1b-8c3d-4e5f6a7b8c9d" in reasons
    # an observed-data whose network-traffic names key "2" of an objects dictionary without one:
    # the reference validator rejects it in 2.1 too (section 4.14 keeps the 2.0 rule)
    assert "objects.1.dst_ref: '2' is no key" in reasons["observed-data--3a4b5c6d-7e8f-4a9b-8c1d-2e3f4a5b6c7d"]
    assert len(reasons) == 3
    _validate_and_compile(tmp_path)


def test_the_compiled_20_content_is_21_for_the_reference_validator(tmp_path: Path) -> None:
    stix2validator = pytest.importorskip("stix2validator")
    objects = []
    for name in ("sdos.json", "observables.json", "patterns.json", "misp-shaped.json"):
        _import(tmp_path / name, name)
        objects += _validate_and_compile(tmp_path / name)
    options = stix2validator.ValidationOptions(version="2.1")
    checked = 0
    for obj in objects:
        # Left out, whatever the input's version: compile adds the source extension to an
        # imported TLP marking-definition, which the reference validator then calls altered.
        if obj["id"] in TLP1_MARKINGS.values():
            continue
        result = stix2validator.validate_instance(obj, options)
        assert [str(e) for e in result.errors] == [], obj["id"]
        checked += 1
    assert checked >= 35


def test_20_observables_get_21_ids_the_same_in_every_import(tmp_path: Path) -> None:
    ids = []
    for run in ("one", "two"):
        _import(tmp_path / run, "observables.json")
        data = parse_yaml((tmp_path / run / "intel/old-feed/observed-data/1b0f0d3c-0b6e-4b9c-9d3e-5c2f1a0e9d8b.yaml").read_text())
        ids.append({key: item["id"] for key, item in data["objects"].items()})
        # STIX 2.1 section 6.12.2: each request header's value is a list of strings (a string in 2.0)
        assert data["objects"]["6"]["extensions"]["http-request-ext"]["request_header"] == {"Host": ["www.example.com"]}
        assert data["objects"]["6"]["src_ref"] == "4"  # references stay keys of the dictionary
    assert ids[0] == ids[1] and len(set(ids[0].values())) == 23
    assert all(value.startswith(f"{key_type}--") for value, key_type in
               ((ids[0]["0"], "file"), (ids[0]["2"], "process"), (ids[0]["22"], "x-acme-beacon")))


def test_in_a_20_bundle_the_21_object_is_the_odd_one_out(tmp_path: Path) -> None:
    report = _import(tmp_path, "mixed-21-in-20.json")
    assert report.created == 2 and report.repairs == []  # the 2.0 object is the bundle's own content
    assert report.notes == [
        "upgraded 1 STIX 2.0 object(s) to 2.1 (labels moved to malware_types: 1, malware is_family set to true: 1, objects: 1)",
        "1 object(s) are STIX 2.1 (spec_version 2.1, or a type STIX 2.0 has not) in a bundle that says 2.0: "
        "imported as STIX 2.1"]
    odd = parse_yaml((tmp_path / "intel/old-feed/malware/3b4c5d6e-7f8a-4b9c-8d1e-2f3a4b5c6d7e.yaml").read_text())
    assert odd["labels"] == ["our own tag"] and "malware_types" not in odd  # kept as the 2.1 it says it is
    _validate_and_compile(tmp_path)


def test_in_a_21_bundle_each_20_object_is_reported_as_upgraded(tmp_path: Path) -> None:
    report = _import(tmp_path, "mixed-20-in-21.json")
    assert report.created == 4
    assert sorted(r.stix_id for r in report.repairs) == ["indicator--9a0b1c2d-3e4f-4a5b-8c7d-8e9f0a1b2c3d",
                                                         "malware--8a9b0c1d-2e3f-4a4b-9c6d-7e8f9a0b1c2d"]
    assert all("a STIX 2.0 object in a 2.1 bundle" in r.description for r in report.repairs)
    _validate_and_compile(tmp_path)


def test_a_type_21_added_without_spec_version_is_repaired_as_21(tmp_path: Path) -> None:
    (tmp_path / "intel").mkdir()
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(orjson.dumps({"type": "bundle", "id": "bundle--7a7a7a7a-7a7a-4a7a-8a7a-7a7a7a7a7a00", "objects": [
        {"type": "note", "id": "note--84e4d88f-44ea-4bcd-bbf3-b2c1c320bcb3", "created": "2020-01-01T00:00:00.000Z",
         "modified": "2020-01-01T00:00:00.000Z", "content": "seen twice",
         "object_refs": ["note--84e4d88f-44ea-4bcd-bbf3-b2c1c320bcb3"]}]}))
    report = import_file(tmp_path, bundle, "stix", "Old feed")
    assert report.created == 1 and report.notes == []  # not counted as an upgraded 2.0 object
    (repair,) = report.repairs
    assert "a note is STIX 2.1 (no such type in STIX 2.0); spec_version 2.1 added" in repair.description
    _validate_and_compile(tmp_path)


CUSTOM_WITHOUT_SPEC_VERSION = {"type": "x-acme-ticket", "id": "x-acme-ticket--84e4d88f-44ea-4bcd-bbf3-b2c1c320bcb3",
                               "created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z"}
IDENTITY_20 = {"type": "identity", "id": "identity--84e4d88f-44ea-4bcd-bbf3-b2c1c320bcb4", "name": "Acme",
               "identity_class": "organization", "created": "2020-01-01T00:00:00.000Z",
               "modified": "2020-01-01T00:00:00.000Z"}


@pytest.mark.parametrize(("objects", "read_as_21"), [
    ([CUSTOM_WITHOUT_SPEC_VERSION], True),  # alone: a 2.1 custom object missing spec_version, as validate says
    ([IDENTITY_20, CUSTOM_WITHOUT_SPEC_VERSION], False),  # beside 2.0 content: that content's custom object
])
def test_a_custom_object_without_spec_version_is_read_as_validate_reads_it(tmp_path: Path, objects: list[object],
                                                                            read_as_21: bool) -> None:
    (tmp_path / "intel").mkdir()
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(orjson.dumps({"type": "bundle", "id": "bundle--7a7a7a7a-7a7a-4a7a-8a7a-7a7a7a7a7a00",
                                     "objects": objects}))
    report = import_file(tmp_path, bundle, "stix", "Old feed")
    assert report.created == len(objects) and report.rejected == 0
    custom_repairs = [r.description for r in report.repairs if r.stix_id == CUSTOM_WITHOUT_SPEC_VERSION["id"]]
    assert (custom_repairs == ["spec_version: a x-acme-ticket is STIX 2.1 (a custom object, and nothing beside it is "
                               "STIX 2.0 content); spec_version 2.1 added"]) is read_as_21, custom_repairs
    assert any("upgraded" in note for note in report.notes) is not read_as_21
    _validate_and_compile(tmp_path)


def test_a_20_object_and_its_21_release_from_another_source_are_one_object(tmp_path: Path) -> None:
    """ATT&CK's 2.0 release labels each malware "malware" and each tool "tool"; its 2.1 release has no
    malware_types. Imported from the 2.0 release, then from a 2.1 one with the same version, the object
    is the same object, shared, not a conflict blamed on the partner; nor a warning nobody can fix."""
    malware_20 = {"type": "malware", "id": "malware--00e7d565-9883-4ee5-b642-8fd17fd6a3f5",
                  "created": "2020-01-01T00:00:00.000Z", "modified": "2023-03-01T00:00:00.000Z",
                  "name": "EKANS", "labels": ["malware"]}
    tool_20 = {"type": "tool", "id": "tool--03342581-f790-4f03-ba41-e82e67392e23", "created": "2020-01-01T00:00:00.000Z",
               "modified": "2023-03-01T00:00:00.000Z", "name": "Net", "labels": ["tool", "remote-access"]}
    (tmp_path / "intel").mkdir()
    (tmp_path / "v20.json").write_bytes(orjson.dumps({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
                                                       "spec_version": "2.0", "objects": [malware_20, tool_20]}))
    first = import_file(tmp_path, tmp_path / "v20.json", "stix", "Enterprise")
    assert (first.created, first.rejected) == (2, 0)
    assert any("labels that only named the type left out (no malware_types): 1" in note for note in first.notes)
    written = parse_yaml((tmp_path / "intel/enterprise/malware/00e7d565-9883-4ee5-b642-8fd17fd6a3f5.yaml").read_text())
    assert "malware_types" not in written and "labels" not in written
    tool = parse_yaml((tmp_path / "intel/enterprise/tool/03342581-f790-4f03-ba41-e82e67392e23.yaml").read_text())
    assert tool["tool_types"] == ["remote-access"]  # a real category is kept, moved as STIX 2.1 asks
    malware_21 = {**{k: v for k, v in malware_20.items() if k != "labels"}, "spec_version": "2.1", "is_family": True}
    (tmp_path / "v21.json").write_bytes(orjson.dumps({"type": "bundle", "id": "bundle--6d0092c5-5f74-4287-9642-33f4c354e56d",
                                                       "objects": [malware_21]}))
    second = import_file(tmp_path, tmp_path / "v21.json", "stix", "ICS")
    assert (second.rejected, second.unchanged) == (0, 1)
    validated = CliRunner().invoke(main, ["-C", str(tmp_path), "validate", "--format", "json"])
    assert [f["code"] for f in orjson.loads(validated.stdout)["findings"]] == []  # no TI209 for "malware"
