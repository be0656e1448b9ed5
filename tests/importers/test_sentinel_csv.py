"""Sentinel CSV input (tiops/importers/sentinel_csv.py): cells kept as written, and files in UTF-16 or UTF-32."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops.cli import main
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


@pytest.mark.parametrize(("codec", "mark"), [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"),
                                             ("utf-32-le", b"\xff\xfe\x00\x00"), ("utf-32-be", b"\x00\x00\xfe\xff")])
def test_utf16_and_utf32_with_a_byte_order_mark_read_as_the_utf8_file(codec: str, mark: bytes) -> None:
    # Before: "the header is not UTF-8" and every NUL-split line counted as a row (11 rows for 5).
    text = SPACES.read_text(encoding="utf-8")
    as_utf8, encoded = parse(text.encode(), "Feed"), parse(mark + text.encode(codec), "Feed")
    assert encoded.total == as_utf8.total == 5
    assert [(c.position, c.data, c.repairs) for c in encoded.candidates] == \
        [(c.position, c.data, c.repairs) for c in as_utf8.candidates]
    assert encoded.rejections == as_utf8.rejections
    name, order = codec.upper()[:6], "little endian" if codec.endswith("le") else "big endian"
    assert encoded.notes == [f"the file is {name}, {order} as its byte order mark says: read as such", *as_utf8.notes]


def test_excels_unicode_text_is_said_to_be_tab_separated_with_its_rows_counted(tmp_path: Path) -> None:
    # Excel's "Unicode Text" is UTF-16 LE with a byte order mark, cells separated by tabs.
    text = SPACES.read_text(encoding="utf-8").replace(",", "\t")
    source = tmp_path / "feed.txt"
    source.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    (tmp_path / "repo" / "intel").mkdir(parents=True)
    result = CliRunner().invoke(main, ["-C", str(tmp_path / "repo"), "import", str(source), "--format", "sentinel-csv",
                                       "--source", "Feed"])
    assert result.exit_code == 1
    assert "total 5, created 0," in result.stdout and "rejected 5," in result.stdout
    assert "the file looks separated by '\\t'" in result.stderr
    assert "every row under the header (5) is rejected with it" in result.stderr


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark_is_refused_with_its_rows_counted(codec: str) -> None:
    parsed = parse(SPACES.read_text(encoding="utf-8").encode(codec), "Feed")
    assert parsed.total == 5 and parsed.candidates == []
    (rejection,) = parsed.rejections
    assert rejection.rows == 5
    assert rejection.reasons[0].startswith("the file looks like UTF-16 or UTF-32 text "
                                           f"({'little' if codec.endswith('le') else 'big'} endian) without a byte "
                                           "order mark")


def test_a_utf16_file_that_breaks_off_is_refused_whole() -> None:
    text = SPACES.read_text(encoding="utf-8").replace("Global", "Glo\ud800bal")  # a lone surrogate
    parsed = parse(b"\xff\xfe" + text.encode("utf-16-le", "surrogatepass"), "Feed")
    assert parsed.total == 5 and parsed.candidates == [] and parsed.notes == []
    assert parsed.rejections[0].reasons[0].startswith("the file starts with the byte order mark of UTF-16 but is no "
                                                      "UTF-16 text from byte")
