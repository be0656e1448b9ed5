"""The memory benchmark compiles with each checkout, with the build cache as asked, and compares the bundles."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("cache", ["cold", "off"])
def test_bench_memory_measures_the_compile_it_is_asked_for(example_repo: Path, cache: str,
                                                           run_benchmark: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    run = run_benchmark("bench_memory.py", str(example_repo), "--baseline", str(CHECKOUT), "--repeat", "2",
                        "--cache", cache)
    lines = run.stdout.splitlines()
    assert sum(1 for line in lines if line.startswith("run ")) == 4
    assert lines[-1] == "bundles byte-for-byte identical"
    cache_folder = example_repo / ".tiops" / "build-cache"
    # cold: each run wrote the cache afresh (the last one left it); off: none was written.
    assert cache_folder.is_dir() == (cache == "cold")
