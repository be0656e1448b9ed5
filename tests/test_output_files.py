"""Files an option names (--output, --out, --trace): a place that cannot take them is a usage error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops.cli import main


@pytest.mark.parametrize(("command", "what"), [
    (["validate", "--format", "sarif", "--output", "{bad}"], "findings"),
    (["compile", "-o", "{tmp}/bundle.json", "--trace", "{bad}"], "trace"),
    (["plan", "--out", "{bad}"], "plan"),
    (["diff", "HEAD", "--format", "json", "--output", "{bad}"], "diff"),
])
def test_an_output_file_under_a_file_is_a_usage_error(example_repo: Path, tmp_path: Path, command: list[str],
                                                      what: str) -> None:
    subprocess.run(["git", "init", "-q"], cwd=example_repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=example_repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "base"],
                   cwd=example_repo, check=True)
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    bad = tmp_path / "a-file" / "out.json"  # its folder is a file: neither made nor written
    args = [arg.replace("{bad}", str(bad)).replace("{tmp}", str(tmp_path)) for arg in command]
    result = CliRunner().invoke(main, ["-C", str(example_repo), *args])
    assert result.exit_code == 2, result.output
    assert f"cannot write the {what} to {bad}" in result.output and "internal error" not in result.output
    good = tmp_path / "made" / "for-it" / "out.json"  # a missing folder is made
    ok = CliRunner().invoke(main, ["-C", str(example_repo), *[a.replace(str(bad), str(good)) for a in args]])
    assert ok.exit_code in (0, 1) and good.is_file(), ok.output
