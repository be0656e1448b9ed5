"""CSV that a spreadsheet opens as data: no cell of intel text becomes a formula.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets (OWASP, "CSV Injection"). Intel is
partner-written text: a malware named ``=HYPERLINK("http://…"&A1)`` must reach an
analyst's spreadsheet as that text, so such a cell gets a leading apostrophe, which the
spreadsheet shows as text and hides. That includes a signed number (``-5`` is a formula
to a spreadsheet too, and one cell rule cannot tell a number from ``-2+3``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Final

_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def inert_cell(cell: str) -> str:
    """``cell`` as a spreadsheet shows it as text, never evaluates it."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def csv_text(rows: Iterable[Sequence[str]]) -> str:
    """``rows`` as CSV text (RFC 4180 quoting, lines ending in LF), every cell inert (:func:`inert_cell`)."""
    buffer = io.StringIO()
    minimal = csv.writer(buffer, lineterminator="\n")
    # The writer quotes a cell holding a character of its line terminator only: a lone CR in
    # partner text would go out bare and split the row for every reader.
    quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        cells = [inert_cell(cell) for cell in row]
        (quoted if any("\r" in cell for cell in cells) else minimal).writerow(cells)
    return buffer.getvalue()
