"""One option vocabulary: -o/--output everywhere (--out kept hidden), --format from the extension,
and an import that fails writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
from click.testing import CliRunner

from tiops.cli import main

DATA = Path(__file__).resolve().parent / "data" / "importers"


def test_every_file_output_is_dash_o_or_dash_dash_output() -> None:
    context = click.Context(main)
    names = main.list_commands(context)
    assert "plan" in names
    for name in names:
        command = main.get_command(context, name)
        assert command is not None
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden:
                continue
            if "-o" in param.opts:
                assert "--output" in param.opts, f"tiops {name}: -o is not --output"
            assert "--out" not in param.opts, f"tiops {name} shows --out"


def test_plan_output_and_the_hidden_out_alias(example_repo: Path) -> None:
    runner = CliRunner()
    for flag in ("-o", "--output", "--out"):
        target = example_repo / f"plan{flag.strip('-')}.json"
        result = runner.invoke(main, ["-C", str(example_repo), "plan", flag, str(target)])
        assert result.exit_code == 0, result.output
        assert json.loads(target.read_text())["changes"]
    help_text = runner.invoke(main, ["plan", "--help"]).output
    assert "--output" in help_text and "--out " not in help_text and "--out," not in help_text


def test_import_format_comes_from_the_extension(example_repo: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["-C", str(example_repo), "import", str(DATA / "partner_v1.json"), "--source", "Partner"])
    assert result.exit_code == 0, result.output
    assert "created 2" in result.output
    csv = tmp_path / "feed.CSV"
    shutil.copy(DATA / "quirks.csv", csv)
    result = runner.invoke(main, ["-C", str(example_repo), "import", str(csv), "--source", "Quirky"])
    assert "intel/quirky: total" in result.output  # read as sentinel-csv
    odd = tmp_path / "feed.txt"
    odd.write_text("x")
    result = runner.invoke(main, ["-C", str(example_repo), "import", str(odd), "--source", "Odd"])
    assert result.exit_code == 2 and "--format" in result.output
    assert not (example_repo / "intel" / "odd").exists()


def test_a_failed_import_writes_nothing(example_repo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "bundle", "id": "bundle--1", "objects": [{"type": "indicator", "spec_version": "2.1", '
                      '"id": "indicator--11111111-1111-4111-8111-111111111111"}]}')
    before = sorted(p.relative_to(example_repo) for p in example_repo.rglob("*"))
    result = CliRunner().invoke(main, ["-C", str(example_repo), "import", str(broken), "--source", "Broken"])
    assert result.exit_code == 1 and "rejected 1, rejected as dependent 0" in result.output
    assert not (example_repo / "intel" / "broken").exists()
    assert sorted(p.relative_to(example_repo) for p in example_repo.rglob("*")) == before
