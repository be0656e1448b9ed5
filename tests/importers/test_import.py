from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from tiops import build, load_repo, validate_repo
from tiops.cli import main
from tiops.compile import compiled_objects
from tiops.findings import Severity
from tiops.importers.write import LOCK_FILE, import_file
from tiops.stix import SOURCE_EXTENSION_ID, SOURCE_EXTENSION_OBJECTS, TLP2_MARKINGS
from tiops.yamlio import parse_yaml

DATA = Path(__file__).resolve().parent.parent / "data" / "importers"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_sentinel_csv_example_becomes_a_valid_indicator(tmp_path: Path, corpora: Path) -> None:
    report = import_file(tmp_path, corpora / "sentinel/sentinel_all_other_indicator_types_example.csv", "sentinel-csv", "Sentinel demo")
    assert (report.total, report.created, report.failed) == (1, 1, 0)
    (path,) = (tmp_path / "intel/sentinel-demo/indicator").glob("*.yaml")
    data = parse_yaml(path.read_text())
    assert data["pattern"] == "[domain-name:value = '1776769042.tailspintoys.com']"
    assert data["labels"] == ["demo", "csv"]
    assert data["indicator_types"] == ["Phishing"]
    assert data["confidence"] == 100
    assert data["object_marking_refs"] == [TLP2_MARKINGS["clear"][0]]  # white is TLP 2.0 clear
    assert data["valid_from"] == data["created"] == "2022-07-18T12:00:00.000Z"
    defaults = parse_yaml((tmp_path / "intel/sentinel-demo/_defaults.yaml").read_text())
    assert defaults == {"source": "Sentinel demo", "imported": True}
    errors = [f for f in validate_repo(load_repo(tmp_path)) if f.severity is Severity.ERROR]
    assert errors == []


def test_reimport_changes_nothing(tmp_path: Path, corpora: Path) -> None:
    source = corpora / "sentinel/sentinel_all_other_indicator_types_example.csv"
    import_file(tmp_path, source, "sentinel-csv", "Sentinel demo")
    before = _files(tmp_path)
    report = import_file(tmp_path, source, "sentinel-csv", "Sentinel demo")
    assert (report.created, report.updated, report.unchanged) == (0, 0, 1)
    assert _files(tmp_path) == before


def test_csv_quirks_are_reported_with_row_numbers_and_every_reason(tmp_path: Path) -> None:
    report = import_file(tmp_path, DATA / "quirks.csv", "sentinel-csv", "Quirky")
    assert (report.total, report.created, report.failed) == (5, 1, 4)
    reasons = {r.position: " | ".join(r.reasons) for r in report.rejections}
    assert "confidence: 'high' is not a whole number" in reasons["row 4"]
    assert "validFrom: '2025-15-08T00:00:00Z' is not an RFC 3339" in reasons["row 5"]
    assert "observableType: 'phone-number'" in reasons["row 6"] and "tlpLevel: 'purple'" in reasons["row 6"]
    assert "validFrom is empty" in reasons["row 7"] and "observableValue is empty" in reasons["row 7"]


def test_stix_quirks_keep_going_and_name_the_index(tmp_path: Path, corpora: Path) -> None:
    sample = corpora / "sentinel/sentinel_json_template_example.json"
    report = import_file(tmp_path, sample, "stix", "Sentinel JSON", strict=True)
    reasons = {r.position: r.reasons for r in report.rejections}
    assert "needs a repair (--strict applies none): confidence: the string '95' written as the number 95" in reasons["index 0"]
    assert any("lang: empty string removed" in reason for reason in reasons["index 0"])
    assert report.created == 0
    report = import_file(tmp_path, DATA / "items.json", "stix", "Items")
    reasons = {r.position: r.reasons for r in report.rejections}
    assert reasons["index 1"] == ("missing required property 'type'",)
    assert reasons["index 2"] == ("missing required property 'id'",)
    assert reasons["index 3"] == ("item is a JSON string, not a STIX object",)
    assert report.created == 1


def test_all_or_nothing_writes_nothing_when_anything_fails(tmp_path: Path) -> None:
    report = import_file(tmp_path, DATA / "items.json", "stix", "Items", mode="all-or-nothing")
    assert not report.written and report.failed == 3 and report.created == 0
    assert not (tmp_path / "intel").exists()
    # Every item is in one figure: the one valid object was not written, and is counted as such.
    assert report.not_written == 1 and ("not written (all-or-nothing)", 1) in report.counts()
    assert report.total == sum(count for name, count in report.counts() if name != "total")


def test_newer_version_updates_and_older_is_ignored(tmp_path: Path) -> None:
    first: dict[str, Any] = json.loads((DATA / "items.json").read_text())[0]
    original = [{**first, "modified": "2024-01-15T00:00:00.000Z"}]
    newer = [{**original[0], "modified": "2024-02-01T00:00:00.000Z", "confidence": 90}]
    older = [{**original[0], "modified": "2024-01-10T00:00:00.000Z", "confidence": 10}]
    for name, objects in (("v1.json", original), ("v2.json", newer), ("v0.json", older)):
        (tmp_path / name).write_text(json.dumps(objects))
    import_file(tmp_path, tmp_path / "v1.json", "stix", "Feed")
    report = import_file(tmp_path, tmp_path / "v2.json", "stix", "Feed")
    assert (report.updated, report.created) == (1, 0)
    report = import_file(tmp_path, tmp_path / "v0.json", "stix", "Feed")
    assert (report.updated, report.older_ignored) == (0, 1)
    path = tmp_path / "intel/feed/indicator/11111111-1111-4111-8111-111111111111.yaml"
    assert parse_yaml(path.read_text())["confidence"] == 90
    lock = orjson.loads((tmp_path / "intel/feed" / LOCK_FILE).read_bytes())
    assert set(lock["objects"]) == {"indicator--11111111-1111-4111-8111-111111111111"}


def test_stix20_is_upgraded_and_reported(tmp_path: Path) -> None:
    report = import_file(tmp_path, DATA / "stix20.json", "stix", "Old feed")
    assert report.created == 2
    assert report.notes == ["upgraded 2 STIX 2.0 object(s) to 2.1 (indicator pattern_type set to stix: 1, "
                            "labels moved to indicator_types: 1, labels moved to malware_types: 1, "
                            "malware is_family set to true: 1, objects: 2)"]
    malware = parse_yaml((tmp_path / "intel/old-feed/malware/44444444-4444-4444-8444-444444444444.yaml").read_text())
    assert malware["spec_version"] == "2.1" and malware["malware_types"] == ["remote-access-trojan"]
    assert "labels" not in malware and malware["is_family"] is True


def test_cli_summary_and_error_files(tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "intel").mkdir()  # a repository: import refuses to run outside one
    args = ["-C", str(tmp_path), "import", str(DATA / "quirks.csv"), "--format", "sentinel-csv", "--source", "Quirky"]
    result = runner.invoke(main, [*args, "--errors", str(tmp_path / "errors.csv")])
    assert result.exit_code == 1
    assert ("total 5, created 1, updated 0, unchanged 0, repaired 0, older ignored 0, rejected 4, "
            "rejected as dependent 0") in result.stdout
    assert "row 4: confidence: 'high'" in result.stderr
    rows = list(csv.DictReader((tmp_path / "errors.csv").open()))
    assert {row["position"] for row in rows} == {"row 4", "row 5", "row 6", "row 7"}
    assert len(rows) == 6  # one line per reason
    assert {row["outcome"] for row in rows} == {"rejected"}
    result = runner.invoke(main, [*args, "--errors", str(tmp_path / "errors.json")])
    entries = json.loads((tmp_path / "errors.json").read_text())
    assert [e["position"] for e in entries] == ["row 4", "row 5", "row 6", "row 7"]
    assert "unchanged 1" in result.stdout


def _without_source(obj: dict[str, Any]) -> dict[str, Any]:
    extensions = {k: v for k, v in (obj.get("extensions") or {}).items() if k != SOURCE_EXTENSION_ID}
    stripped = {k: v for k, v in obj.items() if k != "extensions"}
    return {**stripped, "extensions": extensions} if extensions else stripped


@pytest.mark.parametrize("name", ["attack-ics-18.1.json", "attack-mobile-17.1.json"])
def test_import_then_compile_round_trips_attack(tmp_path: Path, corpora: Path, name: str) -> None:
    bundle_path = tmp_path / name
    shutil.copy(corpora / "stix21" / name, bundle_path)
    bundle = orjson.loads(bundle_path.read_bytes())
    # No relationship table derived from the data: ATT&CK's own triples are warnings for partner intel.
    report = import_file(tmp_path, bundle_path, "stix", "MITRE ATT&CK")
    assert report.failed == 0 and report.created == len(bundle["objects"])
    build(tmp_path)  # validates: raises on any error
    compiled = {o["id"]: _without_source(o) for o in compiled_objects(load_repo(tmp_path))}
    added_by_tiops = {o["id"] for o in SOURCE_EXTENSION_OBJECTS}
    original = {o["id"]: o for o in bundle["objects"]}
    assert set(compiled) - added_by_tiops - set(original) <= {m for m, _ in TLP2_MARKINGS.values()}
    assert {i: compiled[i] for i in original} == original
