"""Prompts without a terminal: exit 2 naming the flag that answers them, never an internal error."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


def run(root: Path, *args: str, stdin: int | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tiops", "-C", str(root), *args], capture_output=True, text=True,
                          stdin=stdin)


@pytest.mark.parametrize("stdin", [subprocess.DEVNULL, subprocess.PIPE], ids=["closed", "pipe"])
def test_apply_without_terminal_names_auto_approve_and_applies_nothing(example_repo: Path, stdin: int) -> None:
    result = run(example_repo, "apply", stdin=stdin)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--auto-approve" in result.stderr and "not a terminal" in result.stderr
    assert "internal error" not in result.stderr
    assert "to create" not in result.stdout  # refused before compiling or reading the target
    store = example_repo / ".tiops" / "store.sqlite"
    if store.exists():
        assert sqlite3.connect(store).execute("select count(*) from stix_versions").fetchone()[0] == 0


def test_force_unlock_without_terminal_names_yes(example_repo: Path) -> None:
    result = run(example_repo, "force-unlock", stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert "--yes" in result.stderr and "internal error" not in result.stderr
    assert run(example_repo, "force-unlock", "--yes", stdin=subprocess.DEVNULL).returncode == 0
