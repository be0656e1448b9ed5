"""The one-file-change benchmark, run as a user would on a repository with partner intel."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"


def test_the_benchmark_times_a_partner_tag_and_leaves_the_repository_as_it_was(
        example_repo: Path, run_benchmark: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    partner = example_repo / "intel" / "partner-writer"
    shutil.copytree(DATA / "importers" / "writer.expected", partner)
    (partner / "_overlay.yaml").write_text("# tags of our own\n", encoding="utf-8")
    before = {path: path.read_bytes() for path in (example_repo / "intel").rglob("*") if path.is_file()}
    output = run_benchmark("bench_incremental.py", str(example_repo), "--repeat", "1").stdout
    rows = dict(re.findall(r"^(\S.*?)\s{2,}[\d.]+\s+([\d.]+)x$", output, re.MULTILINE))
    assert {"one-file recompile", "tag a partner object, compile", "tag one, validate _overlay.yaml"} <= rows.keys()
    assert rows["full compile (--no-cache)"] == "1.00"
    after = {path: path.read_bytes() for path in (example_repo / "intel").rglob("*") if path.is_file()}
    assert after == before
