"""The compile-stage benchmark runs end to end and compiles the bundle tiops.build compiles."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tiops import build

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_bench_compile_stage_times_the_stage_of_the_same_bundle(tmp_path: Path, run_benchmark: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from generate_repo import write_repository
    finally:
        sys.path.remove(str(BENCHMARKS))
    write_repository(tmp_path / "repo", 300)
    run = run_benchmark("bench_compile_stage.py", "--repo", str(tmp_path / "repo"), "--repeat", "1")
    figures, digest = run.stdout.splitlines()
    assert figures.startswith("300 objects, best of 1, CPU: validate_repo ")
    assert "rules " in figures and "bundle objects " in figures and "stage / validate = " in figures
    expected = build(tmp_path / "repo", as_of="2025-06-01", output=tmp_path / "bundle.json").metadata["bundle_sha256"]
    assert digest.split()[-1] == expected
