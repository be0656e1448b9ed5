"""Import repairs common real-world defects (or rejects them under --strict) and takes dependents along."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops import build, load_repo, validate_repo
from tiops.cli import main
from tiops.findings import Severity
from tiops.importers.repairs import normalise_timestamp
from tiops.importers.write import import_file
from tiops.stix import BUILTIN_OBJECTS
from tiops.yamlio import parse_yaml

DATA = Path(__file__).resolve().parent.parent / "data" / "importers"
TLP_WHITE = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"
FOLDER = "intel/example-research"


@pytest.mark.parametrize(("text", "milliseconds", "expected"), [
    ("2025-01-01T00:00:00Z", True, "2025-01-01T00:00:00.000Z"),
    ("2025-01-01T00:00:00Z", False, "2025-01-01T00:00:00Z"),
    ("2025-01-01T02:30:00.5+02:30", True, "2025-01-01T00:00:00.500Z"),
    ("2024-12-31t23:00:00.123456789-01:00", False, "2025-01-01T00:00:00.123456789Z"),
    ("2025-01-01T00:00:00+00:00", False, "2025-01-01T00:00:00Z"),
    ("2025-02-30T00:00:00Z", False, None),
    ("yesterday", False, None),
])
def test_timestamps_of_any_precision_keep_their_instant(text: str, milliseconds: bool, expected: str | None) -> None:
    assert normalise_timestamp(text, milliseconds=milliseconds) == expected


def _objects(root: Path) -> dict[str, dict[str, object]]:
    return {str(d["id"]): d for d in (parse_yaml(p.read_text()) for p in (root / FOLDER).glob("*/*.yaml"))}


def test_defects_are_repaired_and_dependents_rejected_with_their_reason(tmp_path: Path) -> None:
    report = import_file(tmp_path, DATA / "defects.json", "stix", "Example Research")
    assert dict(report.counts()) == {"total": 11, "created": 5, "updated": 0, "unchanged": 0, "repaired": 4,
                                     "older ignored": 0, "rejected": 1, "rejected as dependent": 5}
    repairs = {(r.stix_id.split("--")[0], r.description.split(" ")[0].rstrip(":")) for r in report.repairs}
    assert repairs == {
        ("marking-definition", TLP_WHITE), ("identity", "created"), ("identity", "modified"),
        ("indicator", "created_by_ref"), ("indicator", "confidence"), ("indicator", "lang"), ("indicator", "labels"),
        ("indicator", "external_references.0.url"), ("malware", "spec_version"),
    }
    reasons = {r.stix_id: r for r in report.rejections}
    actor = "threat-actor--5c6d7e8f-9a0b-4c2d-9e3f-4a5b6c7d8e9f"
    assert reasons[actor].depends_on is None and "is before created" in reasons[actor].reasons[0]
    for dependent in ("relationship--6d7e8f9a-0b1c-4d3e-8f4a-5b6c7d8e9f0a", "sighting--7e8f9a0b-1c2d-4e4f-9a5b-6c7d8e9f0a1b",
                      "report--8f9a0b1c-2d3e-4f5a-8b6c-7d8e9f0a1b2c"):
        assert reasons[dependent].depends_on == actor
        assert reasons[dependent].reasons[0].startswith(f"depends on rejected {actor}")
    # a dependent of a dependent goes too
    assert reasons["note--9a0b1c2d-3e4f-4a6b-9c7d-8e9f0a1b2c3d"].reasons == (
        "depends on rejected report--8f9a0b1c-2d3e-4f5a-8b6c-7d8e9f0a1b2c",)
    assert "neither in the input nor in the repository" in reasons["campaign--0b1c2d3e-4f5a-4b7c-8d8e-9f0a1b2c3d4e"].reasons[0]
    written = _objects(tmp_path)
    assert written[TLP_WHITE] == BUILTIN_OBJECTS[TLP_WHITE]  # the spec's definition wins
    indicator = written["indicator--1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b"]
    assert indicator["confidence"] == 80 and "lang" not in indicator and "labels" not in indicator
    assert indicator["external_references"] == [{"source_name": "blog", "url": "https://research.example/c2"}]
    identity = written["identity--0b6a2f9e-8c6b-4c0e-9f4a-2a1b3c4d5e6f"]
    assert (identity["created"], identity["modified"]) == ("2024-03-01T10:00:00.000Z", "2024-03-01T10:00:00.000Z")
    assert written["malware--3a4b5c6d-7e8f-4a0b-9c1d-2e3f4a5b6c7d"]["spec_version"] == "2.1"
    assert [f for f in validate_repo(load_repo(tmp_path)) if f.severity is Severity.ERROR] == []
    build(tmp_path)


def test_strict_repairs_nothing_and_rejects_instead(tmp_path: Path) -> None:
    report = import_file(tmp_path, DATA / "defects.json", "stix", "Example Research", strict=True)
    assert report.repairs == [] and report.created == 0
    reasons = {r.stix_id: r for r in report.rejections}
    assert reasons[TLP_WHITE].reasons[0].startswith("needs a repair (--strict applies none): marking-definition--613f")
    assert any("'80' written as the number 80" in reason for reason in reasons["indicator--1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b"].reasons)
    # the identity needed a repair, so the indicator that refers to it could not stay either
    assert report.rejected + report.rejected_as_dependent == report.total
    # nothing was written: not even the intel folder, whose absence validation reports (TI107)
    assert not (tmp_path / "intel").exists()
    assert [f.code for f in validate_repo(load_repo(tmp_path)) if f.severity is Severity.ERROR] == ["TI107"]


def test_cli_prints_each_repair_and_the_errors_file_lists_every_outcome(tmp_path: Path) -> None:
    (tmp_path / "intel").mkdir()  # a repository: import refuses to run outside one
    args = ["-C", str(tmp_path), "import", str(DATA / "defects.json"), "--format", "stix", "--source", "Example Research",
            "--errors", str(tmp_path / "errors.json")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "index 2 \"Example C2\" (indicator--1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b): repaired: confidence: the string '80'" in result.stderr
    assert "repaired 4, older ignored 0, rejected 1, rejected as dependent 5" in result.stdout
    entries = json.loads((tmp_path / "errors.json").read_text())
    outcomes = sorted(entry["outcome"] for entry in entries)
    assert outcomes == ["rejected"] + ["rejected-as-dependent"] * 5 + ["repaired"] * 4


def test_a_reference_to_an_object_already_in_the_repository_is_kept(tmp_path: Path) -> None:
    """The author identity came with an earlier import of another source: the campaign resolves to it."""
    identity = {"type": "identity", "spec_version": "2.1", "id": "identity--ffffffff-ffff-4fff-bfff-ffffffffffff",
                "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z", "name": "Author"}
    (tmp_path / "author.json").write_text(json.dumps([identity]))
    import_file(tmp_path, tmp_path / "author.json", "stix", "Authors")
    report = import_file(tmp_path, DATA / "defects.json", "stix", "Example Research")
    assert "campaign--0b1c2d3e-4f5a-4b7c-8d8e-9f0a1b2c3d4e" not in {r.stix_id for r in report.rejections}
    assert report.created == 6
    assert [f for f in validate_repo(load_repo(tmp_path)) if f.severity is Severity.ERROR] == []


def test_csv_valid_from_of_any_precision_is_accepted(tmp_path: Path) -> None:
    header = "threatTypes,tags,name,description,confidence,revoked,validFrom,validUntil,tlpLevel,severity,observableType,observableValue\n"
    rows = (",,,,,,2025-01-01T00:00:00Z,2025-06-01T02:00:00+02:00,,,domain-name,a.example.com\n"
            ",,,,,,2025-01-01T00:00:00.123456Z,,,,domain-name,b.example.com\n"
            ",,,,,,2025-01-01,,,,domain-name,c.example.com\n")
    (tmp_path / "feed.csv").write_text(header + rows)
    report = import_file(tmp_path, tmp_path / "feed.csv", "sentinel-csv", "Feed")
    assert (report.created, report.rejected) == (2, 1)
    assert report.rejections[0].reasons == ("validFrom: '2025-01-01' is not an RFC 3339 timestamp like 2024-05-01T12:00:00.000Z",)
    written = {d["pattern"]: d for d in (parse_yaml(p.read_text()) for p in (tmp_path / "intel/feed/indicator").glob("*.yaml"))}
    first = written["[domain-name:value = 'a.example.com']"]
    assert (first["created"], first["valid_from"], first["valid_until"]) == (
        "2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00Z", "2025-06-01T00:00:00Z")
    assert written["[domain-name:value = 'b.example.com']"]["modified"] == "2025-01-01T00:00:00.123456Z"
    assert [f for f in validate_repo(load_repo(tmp_path)) if f.severity is Severity.ERROR] == []
