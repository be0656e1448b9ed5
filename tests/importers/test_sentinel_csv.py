"""Sentinel CSV input (tiops/importers/sentinel_csv.py): cells kept as written."""

from __future__ import annotations

from pathlib import Path

from tiops.importers.sentinel_csv import parse
from tiops.importers.write import import_file

DATA = Path(__file__).resolve().parents[1] / "data" / "importers"
SPACES = DATA / "spaces.csv"  # CRLF line ends, as Excel writes them


def candidates(raw: bytes) -> dict[str, dict[str, object]]:
    return {str(c.data.get("name")).strip(): c.data for c in parse(raw, "Feed").candidates}


def test_names_and_descriptions_keep_every_byte_as_written() -> None:
    # Before, every cell was stripped without a word: "  Padded name  " was imported as "Padded name".
    by_name = candidates(SPACES.read_bytes())
    assert by_name["Padded name"]["name"] == "  Padded name  "
    assert by_name["Padded name"]["description"] == "Ends with a space "
    assert by_name["Padded name"]["labels"] == ["c2", "demo"]  # ", " separates list items (Sentinel's own example)
    # Whitespace can be part of a mutex's name: kept, in the pattern too.
    assert by_name["Mutex"]["pattern"] == "[mutex:name = ' Global\\\\Evil ']"


def test_whitespace_around_a_value_whose_syntax_has_none_is_a_reported_repair() -> None:
    parsed = parse(SPACES.read_bytes(), "Feed")
    repairs = {c.data["name"]: c.repairs for c in parsed.candidates}
    assert repairs["  Padded name  "] == (
        "confidence: whitespace around '80' removed", "revoked: whitespace around 'true' removed",
        "validFrom: whitespace around '2025-03-01T00:00:00.000Z' removed",
        "observableValue: whitespace around '203.0.113.7' removed")
    assert repairs["Digest"] == ("observableValue: whitespace around 'd41d8cd98f00b204e9800998ecf8427e' removed",)
    assert repairs["Mutex"] == () and repairs["Plain"] == ()
    by_name = {c.data["name"]: c.data for c in parsed.candidates}
    assert by_name["  Padded name  "]["pattern"] == "[ipv4-addr:value = '203.0.113.7']"
    assert (by_name["  Padded name  "]["confidence"], by_name["  Padded name  "]["revoked"]) == (80, True)
    assert "valid_until" not in by_name["  Padded name  "]  # a cell of spaces only is an empty cell
    assert by_name["Digest"]["pattern"] == "[file:hashes.'MD5' = 'd41d8cd98f00b204e9800998ecf8427e']"


def test_repairs_are_counted_and_strict_rejects_the_rows_that_need_them(tmp_path: Path) -> None:
    report = import_file(tmp_path, SPACES, "sentinel-csv", "Feed")
    assert (report.total, report.created, report.repaired, report.rejected) == (5, 4, 2, 1)
    assert [r.reasons for r in report.rejections] == [("observableValue is blank (required)",)]
    strict = import_file(tmp_path / "strict", SPACES, "sentinel-csv", "Feed", strict=True)
    assert (strict.total, strict.created, strict.repaired, strict.rejected) == (5, 2, 0, 3)
