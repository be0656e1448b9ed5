"""Running a script of benchmarks/ as a user would: from that folder, by this interpreter."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def run_benchmark() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_benchmark("bench_x.py", *args)``: the finished run; fails the test when the script fails."""

    def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, script, *args], cwd=BENCHMARKS,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result

    return run
