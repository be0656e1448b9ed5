"""The scale benchmark runs its whole sequence end to end on a small repository, in rounds."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path


def test_bench_scale_prints_the_medians_of_its_rounds(run_benchmark: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    result = run_benchmark("bench_scale.py", "--size", "300", "--rounds", "2", "--no-browser")
    lines = result.stdout.splitlines()
    head = next(number for number, line in enumerate(lines) if line.startswith("tiops under test: "))
    assert lines[head].endswith("repository: generated, 300 objects; 2 round(s)")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines[head + 3:]}
    timed = ["full compile, `--no-cache` (baseline)", "first compile, writing the build cache", "one-file recompile",
             "`validate FILE`", "`diff HEAD~1` after a one-file commit", "`apply` to SQLite (empty store)",
             "no-change re-plan", "`report`"]
    for what in timed:
        assert "(median of 2)" in rows[what], rows[what]
        wall, cpu = re.search(r"\| ([0-9.]+)x / ([0-9.]+)x \|", rows[what]).groups()  # type: ignore[union-attr]
        assert float(wall) > 0 and float(cpu) > 0
    assert "| 1.00x / 1.00x |" in rows["full compile, `--no-cache` (baseline)"]
    assert "CHANGES FOUND" not in rows["no-change re-plan"]
    for what in ("`tiops --version`", "`tiops validate` on the example repository", "report on disk"):
        assert what in rows
    # Each round's ratios are shown as it ends, on standard error.
    assert len([line for line in result.stderr.splitlines() if line.startswith("round ")]) == 2


def test_bench_scale_compiles_the_large_repository_with_and_without_a_build_cache(
        run_benchmark: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import generate_repo

    large = tmp_path / "large"
    generate_repo.main(["200", str(large)])
    (large / ".tiops").mkdir()  # a cache of an earlier build: the first build's figure must not use it
    (large / ".tiops" / "stale").write_text("x", encoding="utf-8")
    result = run_benchmark("bench_scale.py", "--size", "200", "--rounds", "1", "--no-browser", "--million-repo", str(large))
    rows = [line for line in result.stdout.splitlines() if line.startswith("| compile of 1M objects")]
    assert [row.split(" | ")[0] for row in rows] == [
        "| compile of 1M objects, `--no-cache`", "| compile of 1M objects, first build (writes the build cache)"]
    assert all(re.search(r"\| [0-9.]+ s, [0-9.]+ GB peak, ([0-9.]+ GB all processes|all processes not sampled) \| +"
                         r"\| ≤ 60 s, < 3 GB \|", row) for row in rows), rows
    assert (large / ".tiops" / "build-cache").is_dir() and not (large / ".tiops" / "stale").exists()
