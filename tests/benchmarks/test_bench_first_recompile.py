"""The first-recompile benchmark, run as a user would on a small generated git repository."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_benchmark_times_both_recompiles_and_leaves_the_repository_as_it_was(
        tmp_path: Path, run_benchmark: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    repo = tmp_path / "repo"
    subprocess.run([sys.executable, str(BENCHMARKS / "generate_repo.py"), "300", str(repo)], check=True,
                   capture_output=True)
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "base"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    output = run_benchmark("bench_first_recompile.py", str(repo), "--rounds", "1").stdout
    [(first, second, ratio)] = re.findall(
        r"^this checkout\s+first recompile\s+([\d.]+) s\s+second\s+([\d.]+) s\s+first / second ([\d.]+)x$",
        output, re.MULTILINE)
    assert float(first) > 0 and float(second) > 0
    assert abs(float(first) / float(second) - float(ratio)) < 0.02
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True, check=True)
    assert status.stdout == "" and not (repo / ".tiops").exists()
