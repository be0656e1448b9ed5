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
    first_s, second_s = float(first), float(second)
    assert first_s > 0 and second_s > 0
    # The ratio is of the unrounded times: allow the printed roundings (3 decimals of seconds, 2 of the ratio).
    allowed = 0.005 + 0.0005 / second_s + 0.0005 * first_s / second_s**2
    assert abs(first_s / second_s - float(ratio)) <= allowed + 1e-9
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True, check=True)
    assert status.stdout == "" and not (repo / ".tiops").exists()
