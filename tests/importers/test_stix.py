"""STIX JSON input (tiops/importers/stix.py): names given twice, and objects nested deeper than a parser reads."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tiops.cli import main
from tiops.importers import stix
from tiops.importers.write import import_file

DATA = Path(__file__).resolve().parents[1] / "data" / "importers"
T = "2025-01-01T00:00:00.000Z"
BUNDLE_ID = "bundle--7a5c8f0e-3b1d-4e2a-9c6f-1d2e3f4a5b6c"


def malware(number: int, **more: object) -> dict[str, object]:
    return {"type": "malware", "spec_version": "2.1", "id": f"malware--{number:08d}-1111-4111-8111-111111111111",
            "created": T, "modified": T, "name": f"Malware {number}", "is_family": True, **more}


def too_deep(levels: int) -> str:
    return '{"x_a": ' * levels + "1" + "}" * levels


def import_cli(tmp_path: Path, source: Path, *args: str) -> tuple[int, str, str]:
    (tmp_path / "repo" / "intel").mkdir(parents=True, exist_ok=True)
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--format", "stix",
                                       "--source", "Feed", *args])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, result.stdout, result.stderr


def test_an_object_naming_a_property_twice_is_rejected_when_the_values_differ(tmp_path: Path) -> None:
    # Before, the last "name" won without a word: WickStealer was imported as WickLoader.
    code, out, err = import_cli(tmp_path, DATA / "duplicate-keys.json")
    assert code == 1
    assert ("total 5, created 2, updated 0, unchanged 0, repaired 1, older ignored 0, rejected 2, "
            "rejected as dependent 1") in out
    assert ("index 1 malware--1b2c3d4e-5f6a-4b7c-8d8e-9f0a1b2c3d4e: name: written twice with different values "
            "('WickStealer', 'WickLoader'): which one the producer meant is a guess") in err
    assert ("index 3 \"Nested\" (attack-pattern--3d4e5f6a-7b8c-4d9e-8f0a-1b2c3d4e5f6a): external_references.0.url: "
            "written twice with different values ('https://capec.mitre.org/data/definitions/98.html', "
            "'https://example.com/elsewhere')") in err
    assert "index 4" in err and "depends on rejected malware--1b2c3d4e" in err  # the relationship goes with it
    assert ("index 2 \"Repeated\" (malware--2c3d4e5f-6a7b-4c8d-9e9f-0a1b2c3d4e5f): repaired: description: written "
            "twice with the same value; one kept") in err
    written = {path.stem for path in (tmp_path / "repo" / "intel" / "feed" / "malware").glob("*.yaml")}
    assert written == {"0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d", "2c3d4e5f-6a7b-4c8d-9e9f-0a1b2c3d4e5f"}


def test_a_name_twice_with_the_same_value_is_a_repair_that_strict_refuses(tmp_path: Path) -> None:
    report = import_file(tmp_path, DATA / "duplicate-keys.json", "stix", "Feed", strict=True)
    assert (report.total, report.created, report.repaired, report.rejected) == (5, 1, 0, 3)
    reasons = {r.position: r.reasons for r in report.rejections}
    assert reasons["index 2"] == ("needs a repair (--strict applies none): description: written twice with the "
                                  "same value; one kept (RFC 8259 section 4: names SHOULD be unique)",)


def test_an_id_given_twice_leaves_the_rejection_without_an_id() -> None:
    raw = json.dumps([malware(1)]).replace('"id": ', '"id": "malware--99999999-1111-4111-8111-111111111111", "id": ')
    parsed = stix.parse(raw.encode(), "Feed")
    (rejection,) = parsed.rejections
    assert rejection.stix_id is None and rejection.name == "Malware 1"
    assert rejection.reasons[0].startswith("id: written twice with different values "
                                           "('malware--99999999-1111-4111-8111-111111111111', ")


def test_a_bundle_naming_its_objects_twice_is_refused_naming_the_key() -> None:
    first, second = json.dumps([malware(1), malware(2)]), json.dumps([malware(3)])
    raw = f'{{"type": "bundle", "id": "{BUNDLE_ID}", "objects": {first}, "objects": {second}}}'.encode()
    parsed = stix.parse(raw, "Feed")
    assert parsed.candidates == [] and parsed.total == 3  # every object of both arrays is accounted for
    (rejection,) = parsed.rejections
    assert (rejection.position, rejection.rows) == ("bundle", 3)
    assert rejection.reasons[0].startswith("the bundle names 'objects' more than once: which value counts is a guess")


def test_a_bundle_naming_its_type_twice_is_a_bundle_refused() -> None:
    raw = f'{{"type": "bundle", "type": "x-other", "id": "{BUNDLE_ID}", "objects": {json.dumps([malware(1)])}}}'
    (rejection,) = stix.parse(raw.encode(), "Feed").rejections
    assert rejection.position == "bundle" and "names 'type' more than once" in rejection.reasons[0]


def test_a_single_object_document_naming_a_property_twice_is_that_objects_rejection() -> None:
    raw = json.dumps(malware(1)).replace('"is_family": true', '"is_family": true, "is_family": false')
    parsed = stix.parse(raw.encode(), "Feed")
    assert parsed.total == 1 and parsed.candidates == []
    assert parsed.rejections[0].position == "index 0" and "is_family: written twice" in parsed.rejections[0].reasons[0]


def test_a_colon_written_as_an_escape_is_not_taken_for_a_repeated_name() -> None:
    # The proof counts ':' bytes; an escaped colon has none, and the document is read again to be sure.
    raw = json.dumps([malware(1, description="a:b")]).replace("a:b", "a\\u003ab")
    parsed = stix.parse(raw.encode(), "Feed")
    assert parsed.rejections == [] and parsed.candidates[0].data["description"] == "a:b"
    assert parsed.candidates[0].repairs == ()


def test_one_object_nested_deeper_than_the_parser_reads_is_rejected_alone(tmp_path: Path) -> None:
    # orjson stops at 1,024 levels: the whole file was one rejection ("line 1"), the other objects lost.
    deep = json.dumps(malware(2)).replace('"is_family": true', f'"is_family": true, "x_deep": {too_deep(1100)}')
    later = json.dumps(malware(3)).replace('"name": "Malware 3"', '"name": "Malware 3", "name": "Other"')
    deep = deep.replace(", ", ",\n")  # over several lines: the lines after it keep their numbers
    text = (f'{{"type": "bundle", "id": "{BUNDLE_ID}", "objects": [\n{json.dumps(malware(1))},\n'
            f'{deep},\n{later},\n{json.dumps(malware(4))}\n]}}')
    source = tmp_path / "deep.json"
    source.write_text(text, encoding="utf-8")
    code, out, err = import_cli(tmp_path, source)
    assert code == 1
    assert "total 4, created 2," in out and "rejected 2," in out
    assert "index 1: nested more than 100 levels deep (deeper than a JSON parser reads)" in err
    assert "index 2" in err and "name: written twice with different values" in err  # the rest is checked as ever


def test_an_object_over_the_limit_but_within_the_parser_names_the_deep_path() -> None:
    deep = json.dumps(malware(2)).replace('"is_family": true', f'"is_family": true, "x_deep": {too_deep(120)}')
    parsed = stix.parse(f"[{json.dumps(malware(1))}, {deep}]".encode(), "Feed")
    assert [c.position for c in parsed.candidates] == ["index 0"]
    (rejection,) = parsed.rejections
    assert rejection.position == "index 1"
    assert rejection.reasons[0].startswith("x_deep.x_a.x_a.") and rejection.reasons[0].endswith(
        ": nested more than 100 levels deep")


def test_a_document_too_deep_where_items_cannot_be_told_apart_is_one_rejection() -> None:
    # One object on its own: nothing to separate.
    alone = json.dumps(malware(1)).replace('"is_family": true', f'"is_family": true, "x_deep": {too_deep(1100)}')
    parsed = stix.parse(alone.encode(), "Feed")
    assert parsed.total == 1 and parsed.candidates == []
    assert parsed.rejections[0].reasons == ("nested more than 100 levels deep",)
    # A bundle broken elsewhere: that defect is the document's, at its own line past the deep object's lines.
    spread = alone.replace(", ", ",\n")
    broken = f'[\n{spread},\n{{"type": ]\n]'
    parsed = stix.parse(broken.encode(), "Feed")
    assert parsed.total == 1 and parsed.candidates == []
    line = broken.splitlines().index('{"type": ]') + 1
    assert parsed.rejections[0].position == f"line {line}" and "invalid JSON" in parsed.rejections[0].reasons[0]
