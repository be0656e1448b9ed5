"""Every real STIX bundle in the shared corpora imports into a fresh repository that validates and compiles.

No relationship table or other configuration is derived from the data under test:
the repository holds only what `tiops import` wrote.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from tiops.cli import main
from tiops.importers.write import ImportReport, import_file
from tiops.stix import ID_RE

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
# The OASIS TAXII server's database file is not a bundle (it is checked below on its own).
NOT_BUNDLES = {"oasis/medallion-default-data.json"}
# Files of one object that break a STIX 2.1 rule: rejected, and said why.
DEFECTIVE_LONE_OBJECTS = {
    # a versioned marking-definition (section 7.2.1 says they are not versioned)
    "oasis/markings/marking-definition--62fd3f9b-15f3-4ebc-802c-91fce9536bcf.json": "modified must be absent from a marking-definition",
}
# Files of one object whose author identity is not published with it: rejected, and said why.
LONE_OBJECTS_WITH_MISSING_REFERENCES = {
    "oasis/examples/json-schemas/interop-objectmarking-test.json": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
}
# (The TLP 2.0 extension-definition names CISA's identity, which OASIS does not publish with it:
# a known id, as the TLP markings are, so the file imports whole.)


def _bundles() -> list[str]:
    if not CORPORA.is_dir():
        return ["stix21/attack-ics-18.1.json"]  # the fixture skips with the reason
    return sorted(p.relative_to(CORPORA).as_posix() for p in CORPORA.rglob("*.json")
                  if p.relative_to(CORPORA).as_posix() not in NOT_BUNDLES)


def _accounted(report: ImportReport) -> None:
    """Each object of the input is in exactly one figure, and each rejection and repair names its object."""
    outcomes = (report.created + report.updated + report.unchanged + report.older_ignored
                + report.rejected + report.rejected_as_dependent)
    assert outcomes == report.total, report.counts()
    assert all(r.reasons and r.position for r in report.rejections)
    assert all(ID_RE.match(r.stix_id) for r in report.repairs)
    assert report.repaired <= report.created + report.updated


def _import_validate_compile(root: Path, path: Path, fmt: str) -> ImportReport:
    (root / "intel").mkdir(parents=True)  # a fresh repository, with nothing else in it
    report = import_file(root, path, fmt, "Corpus")
    _accounted(report)
    validated = CliRunner().invoke(main, ["-C", str(root), "validate", "--format", "json"])
    assert validated.exit_code == 0, [f for f in orjson.loads(validated.stdout)["findings"] if f["severity"] == "error"]
    compiled = CliRunner().invoke(main, ["-C", str(root), "compile"])
    assert compiled.exit_code == 0, compiled.output
    bundle = orjson.loads((root / "dist" / "bundle.json").read_bytes())
    assert {o["id"] for o in bundle["objects"]} >= _written_ids(root)
    return report


def _written_ids(root: Path) -> set[str]:
    return {f"{p.parent.name}--{p.stem}" for p in (root / "intel").glob("*/*/*.yaml")}


@pytest.mark.parametrize("name", [n for n in _bundles() if n != "stix20/enterprise-attack.json"])
def test_bundle_imports_into_a_repository_that_validates(tmp_path: Path, corpora: Path, name: str) -> None:
    report = _import_validate_compile(tmp_path, corpora / name, "stix")
    if name in DEFECTIVE_LONE_OBJECTS:
        (rejection,) = report.rejections
        assert DEFECTIVE_LONE_OBJECTS[name] in rejection.reasons[0]
    elif name in LONE_OBJECTS_WITH_MISSING_REFERENCES:
        (rejection,) = report.rejections
        assert rejection.depends_on == LONE_OBJECTS_WITH_MISSING_REFERENCES[name]
        assert "which is neither in the input nor in the repository" in rejection.reasons[0]
    else:
        assert report.created > 0
    if name == "stix21/capec-2.1.json":  # the two URLs with a leading space are repaired, nothing is lost
        assert (report.created, report.repaired, report.failed) == (report.total, 2, 0)
    if name.startswith("stix21/attack"):  # ATT&CK's own relationship types are warnings, nothing is rejected
        assert report.failed == 0 and any("relationship_tables: [attack]" in note for note in report.notes)


def test_sentinel_samples_import_into_a_repository_that_validates(tmp_path: Path, corpora: Path) -> None:
    report = _import_validate_compile(tmp_path / "csv", corpora / "sentinel/sentinel_all_other_indicator_types_example.csv",
                                      "sentinel-csv")
    assert report.created == 1
    report = _import_validate_compile(tmp_path / "json", corpora / "sentinel/sentinel_json_template_example.json", "stix")
    # the indicator is repaired ("95", lang "", empty lists); the attack-pattern carries a granular
    # marking with both lang and marking_ref (STIX 2.1 section 7.2.3 allows one) and is rejected
    assert (report.created, report.repaired, report.rejected) == (1, 1, 1)


def test_medallion_database_is_a_clear_rejection(tmp_path: Path, corpora: Path) -> None:
    report = import_file(tmp_path, corpora / "oasis/medallion-default-data.json", "stix", "Corpus")
    assert [r.reasons for r in report.rejections] == [
        ("expected a STIX bundle, a JSON array of STIX objects or one STIX object",)]


@pytest.mark.slow
def test_enterprise_attack_20_imports_into_a_repository_that_validates(tmp_path: Path, corpora: Path) -> None:
    report = _import_validate_compile(tmp_path, corpora / "stix20/enterprise-attack.json", "stix")
    assert report.total == 24771 and report.failed == 0
    assert report.notes[0].startswith("upgraded 24771 STIX 2.0 object(s) to 2.1")
