"""The memory benchmark compiles with each checkout, with the build cache as asked, and compares the bundles."""

from __future__ import annotations

import re
import subprocess
import sys
import time
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
    assert all(re.search(r" ([0-9]+|nan) MB all processes$", line) for line in lines if line.startswith("run ")), lines


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="reads /proc/PID/smaps_rollup")
def test_the_sampler_sums_the_memory_of_a_command_and_its_helpers() -> None:
    """A helper's memory counts against the target: the sum covers every process under the command."""
    sys.path.insert(0, str(CHECKOUT / "benchmarks"))
    import bench_memory

    # The child holds 200 MB in its forked helper only, and waits for it.
    script = ("import os, time\n"
              "pid = os.fork()\n"
              "if pid == 0:\n    held = b\"x\" * (200 * 2**20)\n    time.sleep(1.5)\n    os._exit(0)\n"
              "os.waitpid(pid, 0)\n")
    child = subprocess.Popen([sys.executable, "-c", script])
    sampler = bench_memory.TreeSampler(child.pid)
    deadline = time.monotonic() + 30
    while len(bench_memory._process_tree(child.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(bench_memory._process_tree(child.pid)) == 2
    child.wait()
    assert sampler.stop() > 200
