"""`tiops validate` checks report.yaml as `tiops report` does, so a pull request catches a broken panel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from tiops.cli import main

OBJECT = ("type: malware\nspec_version: '2.1'\nid: malware--6e1d7f4b-3c2f-4d9e-8a8b-2f4c6d8e0b3a\n"
          "created: 2025-01-01T00:00:00.000Z\nmodified: 2025-01-01T00:00:00.000Z\nname: M\nis_family: true\n"
          "custom_score: 3\n")


def test_a_broken_panel_fails_validate_and_a_field_of_the_intel_does_not(make_repo: Callable[[dict[str, str]], Path]) -> None:
    root = make_repo({"intel/m.yaml": OBJECT,
                      "report.yaml": "panels:\n  - title: X\n    group-by: nosuchfield\n"
                                     "  - {title: Y, group-by: custom_score}\n  - {title: Z, group-by: x_anything}\n"})
    runner = CliRunner()
    whole = runner.invoke(main, ["-C", str(root), "validate"])
    assert whole.exit_code == 1
    assert "report.yaml:3:5: error TI141 report-panel-query-invalid: panel 1: unknown field 'nosuchfield'" in whole.output
    assert "panel 2" not in whole.output and "panel 3" not in whole.output  # the intel's own field, an x_ field
    named = runner.invoke(main, ["-C", str(root), "validate", str(root / "report.yaml")])
    assert named.exit_code == 1 and "TI141" in named.output
    other = runner.invoke(main, ["-C", str(root), "validate", str(root / "intel" / "m.yaml")])
    assert "TI141" not in other.output  # pre-commit on an intel file reports that file's findings
    (root / "report.yaml").write_text("panels:\n  - {title: Y, group-by: custom_score}\n", encoding="utf-8")
    assert runner.invoke(main, ["-C", str(root), "validate"]).exit_code == 0
