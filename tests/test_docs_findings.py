"""docs/findings.md lists every finding code: keep its table in step with tiops.codes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tiops.codes import CODES

DOC = Path(__file__).resolve().parent.parent / "docs" / "findings.md"
CODE_ROW = re.compile(r"^\|\s*(TI\d+)\s*\|")


def split_row(row: str) -> list[str]:
    # Split on unescaped pipes, then undo Markdown backslash escapes and code spans.
    cells = re.split(r"(?<!\\)\|", row.strip())[1:-1]
    return [re.sub(r"\\(.)", r"\1", cell.strip()).strip("`") for cell in cells]


def documented_rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = CODE_ROW.match(line)
        if match:
            code = match.group(1)
            assert code not in rows, f"{code} is listed twice in docs/findings.md"
            rows[code] = split_row(line)
    return rows


def test_every_code_is_documented() -> None:
    missing = sorted(CODES.keys() - documented_rows().keys())
    assert missing == [], f"codes missing from the table in docs/findings.md: {missing}"


def test_documented_codes_exist() -> None:
    unknown = sorted(documented_rows().keys() - CODES.keys())
    assert unknown == [], f"docs/findings.md lists codes that tiops.codes does not: {unknown}"


@pytest.mark.parametrize("code", sorted(CODES))
def test_documented_row_matches_the_catalogue(code: str) -> None:
    row = documented_rows().get(code)
    if row is None:
        pytest.fail(f"{code} is missing from docs/findings.md")
    entry = CODES[code]
    assert row == [entry.code, entry.slug, str(entry.severity), entry.title, entry.hint]


def test_table_lists_codes_in_catalogue_order() -> None:
    assert list(documented_rows()) == list(CODES)
