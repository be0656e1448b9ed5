"""Non-string keys, odd types, deep nesting and out-of-range numbers are findings, the same in validate, compile and import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops.cli import main
from tiops.importers.write import import_file
from tiops.limits import MAX_NESTING_DEPTH, STIX_INTEGER_MAX, STIX_INTEGER_MIN, check_structure
from tiops.load import load_bundle, load_repo
from tiops.validate import validate_repo

INDICATOR = """\
type: indicator
spec_version: "2.1"
id: indicator--0f6f9b5e-4c1e-4d8e-9a3b-6a1d2c3b4e5f
created: 2025-03-04T10:00:00.000Z
modified: 2025-03-04T10:00:00.000Z
name: C2
pattern: "[ipv4-addr:value = '203.0.113.45']"
pattern_type: stix
valid_from: 2025-03-04T10:00:00Z
"""
MALWARE = "malware--2f1c7a9e-8b0d-4d6e-9a3a-5b4e1f0a7d21"


def errors(root: Path) -> list[tuple[str, str, int]]:
    return [(f.code, f.location.file, f.location.line) for f in validate_repo(load_repo(root)) if f.severity.name == "ERROR"]


def run(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-C", str(root), *args])
    assert result.exit_code != 3, result.output
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("files", "where"),
    [
        ({"intel/a.yaml": INDICATOR + "1: x\n"}, ("intel/a.yaml", 10)),
        ({"intel/a.yaml": INDICATOR + "x_map:\n  ~: x\n"}, ("intel/a.yaml", 11)),
        ({"intel/a.yaml": INDICATOR, "intel/_defaults.yaml": "defaults:\n  ~: x\n"}, ("intel/_defaults.yaml", 2)),
        ({"intel/a.yaml": INDICATOR + f"relationships:\n  - indicates: {MALWARE}\n    1: x\n"}, ("intel/a.yaml", 12)),
    ],
    ids=["object", "nested-null", "defaults", "inline-relationship"],
)
def test_a_key_that_is_not_a_string_is_a_finding_at_the_key(make_repo, files: dict[str, str], where: tuple[str, int]) -> None:  # type: ignore[no-untyped-def]
    root = make_repo(files)
    assert errors(root) == [("TI113", *where)]
    assert run(root, "compile")[0] == 1


@pytest.mark.parametrize("value", [["indicator"], {"a": 1}, 7, None])
def test_a_bundle_item_whose_type_is_not_a_string_is_a_finding(tmp_path: Path, value: object) -> None:
    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": [
        {"type": value, "id": "x--1"}, {"type": value, "id": "y--2", "spec_version": "2.1"}]}), encoding="utf-8")
    findings = validate_repo(load_bundle(bundle))
    assert [f.code for f in findings] == ["TI201", "TI201"]
    assert run(tmp_path, "validate", str(bundle))[0] == 1


@pytest.mark.parametrize("value", ["[indicator]", "{a: 1}"])
def test_a_yaml_object_whose_type_is_not_a_string_takes_its_folders_defaults_without_a_crash(
        make_repo, value: str) -> None:  # type: ignore[no-untyped-def]
    # The folder's defaults are chosen per type (an SCO takes fewer); a list or a mapping
    # written as the type is no key to choose by, and was an internal error here.
    root = make_repo({"intel/a.yaml": INDICATOR.replace("type: indicator", f"type: {value}"),
                      "intel/_defaults.yaml": "defaults:\n  confidence: 50\n"})
    assert ("TI201", "intel/a.yaml", 1) in errors(root)
    assert run(root, "validate")[0] == 1
    assert run(root, "compile")[0] == 1


def nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_the_nesting_limit_is_the_same_in_validate_and_compile(make_repo) -> None:  # type: ignore[no-untyped-def]
    # The object mapping is level 1, so x_deep may hold MAX - 1 levels of lists.
    fits = make_repo({"intel/a.yaml": INDICATOR + "x_deep: " + json.dumps(nested(MAX_NESTING_DEPTH - 1)) + "\n"})
    assert errors(fits) == []
    assert run(fits, "compile")[0] == 0
    (fits / "intel" / "a.yaml").write_text(INDICATOR + "x_deep: " + json.dumps(nested(MAX_NESTING_DEPTH)) + "\n", encoding="utf-8")
    assert errors(fits) == [("TI112", "intel/a.yaml", 10)]
    assert run(fits, "compile")[0] == 1


@pytest.mark.parametrize("depth", [260, 10_000])
@pytest.mark.parametrize("style", ["flow", "block", "compact"])
def test_deep_yaml_is_a_finding_in_objects_and_defaults(make_repo, depth: int, style: str) -> None:  # type: ignore[no-untyped-def]
    if style == "flow":
        text = "x_deep: " + "[" * depth + "]" * depth + "\n"
    elif style == "block":
        text = "x_deep:\n" + "".join(" " * (level + 1) + "k:\n" for level in range(depth)) + " " * (depth + 1) + "k: 1\n"
    else:
        text = "x_deep:\n" + "- " * depth + "1\n"
    root = make_repo({"intel/a.yaml": INDICATOR + text, "intel/_defaults.yaml": "defaults:\n  " + text.replace("\n", "\n  ")})
    found = errors(root)
    assert {code for code, _, _ in found} == {"TI112"}
    assert {file for _, file, _ in found} == {"intel/a.yaml", "intel/_defaults.yaml"}
    assert all(line > 1 for _, file, line in found if file == "intel/a.yaml")
    assert run(root, "compile")[0] == 1


@pytest.mark.parametrize("indicator", ["- ", "? "])
def test_50k_compact_levels_do_not_crash_the_process(make_repo, indicator: str) -> None:  # type: ignore[no-untyped-def]
    # yaml-rs ends the process on this (a native stack overflow, signal 11): tiops must refuse
    # it first. In a child process, so that a crash fails this test instead of ending the run.
    root = make_repo({"intel/a.yaml": "x:\n" + indicator * 50_000 + "1\n"})
    result = subprocess.run([sys.executable, "-m", "tiops", "-C", str(root), "validate"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "TI112" in result.stdout


def test_deep_json_is_a_finding_in_validate_and_import(tmp_path: Path) -> None:
    item = {"type": "x-thing", "spec_version": "2.1", "id": "x-thing--0f6f9b5e-4c1e-4d8e-9a3b-6a1d2c3b4e5f",
            "x_deep": nested(300)}
    bundle = tmp_path / "deep.json"
    bundle.write_text(json.dumps([item]), encoding="utf-8")
    assert [f.code for f in validate_repo(load_bundle(bundle))] == ["TI112"]
    report = import_file(tmp_path / "repo", bundle, "stix", "Deep")
    assert report.failed == 1 and "nested more than" in report.rejections[0].reasons[0]
    too_deep_for_orjson = tmp_path / "deeper.json"
    too_deep_for_orjson.write_text("[" * 5000 + "]" * 5000, encoding="utf-8")
    assert [f.code for f in validate_repo(load_bundle(too_deep_for_orjson))] == ["TI112"]


def test_check_structure_is_not_recursive() -> None:
    check_structure(nested(MAX_NESTING_DEPTH - 1))
    with pytest.raises(Exception, match="nested more than"):
        check_structure(nested(100_000))  # would overflow a recursive walk


@pytest.mark.parametrize(
    ("yaml_value", "bad"),
    [
        (str(STIX_INTEGER_MAX + 1), True),
        (str(STIX_INTEGER_MIN - 1), True),
        ("123456789012345678901234567890", True),
        ("9" * 5000, True),  # past the 4,300 digits Python writes an int in: named by its size
        (".nan", True),
        ("-.inf", True),
        (str(STIX_INTEGER_MAX), False),
        (str(STIX_INTEGER_MIN), False),
        ("1.5e300", False),
    ],
)
def test_numbers_beyond_the_stix_range_are_findings_at_the_value(make_repo, yaml_value: str, bad: bool) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/a.yaml": INDICATOR + f"x_list: [1, {yaml_value}]\n"})
    assert errors(root) == ([("TI220", "intel/a.yaml", 10)] if bad else [])
    assert run(root, "compile")[0] == (1 if bad else 0)


def test_json_integers_beyond_64_bits_stay_integers_and_are_findings(tmp_path: Path) -> None:
    bundle = tmp_path / "b.json"
    bundle.write_text('[{"type": "x-thing", "spec_version": "2.1", "id": "x-thing--0f6f9b5e-4c1e-4d8e-9a3b-6a1d2c3b4e5f",'
                      ' "x_n": 123456789012345678901234567890, "x_m": 9007199254740993, "x_f": 1.5e300}]', encoding="utf-8")
    findings = [f for f in validate_repo(load_bundle(bundle)) if f.code == "TI220"]
    assert sorted(f.message.split(":")[0] for f in findings) == ["x_m", "x_n"]
    report = import_file(tmp_path / "repo", bundle, "stix", "Numbers")
    assert report.failed == 1 and report.created == 0
    assert "outside the STIX 2.1 integer range" in " ".join(report.rejections[0].reasons)


def test_nan_and_infinity_in_json_are_not_numbers(tmp_path: Path) -> None:
    bundle = tmp_path / "b.json"
    bundle.write_text('[{"type": "x-thing", "x_f": NaN, "x_g": Infinity}]', encoding="utf-8")
    assert [f.code for f in validate_repo(load_bundle(bundle))] == ["TI100"]


def test_objects_pulled_from_a_server_are_checked_one_by_one() -> None:
    from tiops.importers.stix import parse_items

    base = {"type": "x-thing", "spec_version": "2.1", "id": "x-thing--0f6f9b5e-4c1e-4d8e-9a3b-6a1d2c3b4e5f"}
    parsed = parse_items([{**base, "x_deep": nested(500)}, {**base, 1: "x"}, {**base, "x_n": 2**80}, base])
    assert [(r.position, r.reasons[0].split(":")[-1].strip()) for r in parsed.rejections] == [
        ("index 0", "nested more than 100 levels deep"), ("index 1", "the key 1 is not a string")]
    assert [c.position for c in parsed.candidates] == ["index 2", "index 3"]  # index 2: TI220 when checked
    assert parsed.total == 4


def test_an_object_whose_id_would_be_derived_from_a_huge_integer_is_a_finding(make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/m.yaml": 'type: malware\nspec_version: "2.1"\nname: 123456789012345678901234567890\nis_family: true\n'})
    assert errors(root) == [("TI201", "intel/m.yaml", 1)]
    (root / "intel" / "m.yaml").write_text(f'type: malware\nspec_version: "2.1"\nname: {"9" * 5000}\nis_family: true\n')
    assert ("TI201", "intel/m.yaml", 1) in errors(root)
    assert run(root, "validate")[0] == 1
