"""Peak memory and time of ``tiops compile`` with this checkout and a baseline, in the same run.

    python benchmarks/bench_memory.py REPO [--baseline main] [--baseline /path/to/checkout ...]
                                           [--repeat 2] [--as-of 2025-06-01T00:00:00Z]
                                           [--cache as-is|cold|off]

REPO is an intel repository, typically written by ``python benchmarks/generate_repo.py
1000000 REPO`` (about 10 minutes for a million objects). The baseline is a git revision,
checked out into a temporary ``git worktree`` (removed afterwards), or the folder of
another checkout; several baselines may be named. Each run is a fresh ``python -m tiops -C REPO compile -o OUT`` in a
child process whose ``PYTHONPATH`` points at the checkout being measured, the two
checkouts taking turns, in reversed order every other run, so that a busy machine slows both alike. The peak
resident memory of each child comes from ``os.wait4`` (the kernel's maximum RSS of
that process alone); where /proc is, the peak of the proportional set sizes (Pss) of the child
and every process under it (its helpers), summed, is sampled every 0.2 s besides: what the
machine holds for the command, which one process's peak does not show. For each checkout the best wall-clock time, the best CPU time
(user + system) and the lowest peaks are kept, and the ratio current / baseline is
printed for each. All bundles must be byte-for-byte identical: the script exits
with status 1 when they differ.

``--cache``: ``as-is`` (default) leaves REPO's build cache (``.tiops/build-cache/``) as
each run finds it; ``cold`` removes it before each run, so every run is the first
compile, the one that writes the cache; ``off`` compiles with ``--no-cache``.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Best:
    wall: float = float("inf")
    cpu: float = float("inf")
    peak_mb: float = float("inf")
    all_mb: float = float("inf")

    def add(self, wall: float, cpu: float, peak_mb: float, all_mb: float) -> None:
        self.wall, self.cpu, self.peak_mb = min(self.wall, wall), min(self.cpu, cpu), min(self.peak_mb, peak_mb)
        self.all_mb = min(self.all_mb, all_mb)


def _process_tree(pid: int) -> list[int]:
    """``pid`` and every process under it (/proc/PID/task/TID/children, proc(5))."""
    found, waiting = [], [pid]
    while waiting:
        process = waiting.pop()
        found.append(process)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{process}/task"):
                with open(f"/proc/{process}/task/{task}/children", encoding="ascii") as children:
                    waiting.extend(map(int, children.read().split()))
    return found


def _pss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


class TreeSampler:
    """The peak of the summed Pss of a process and those under it, sampled every 0.2 s on a thread
    (nan where /proc/PID/smaps_rollup is not, or the process ended before its first sample)."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self._pid = pid
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while True:  # at once, then every 0.2 s: a short command is sampled too
            self.peak = max(self.peak, sum(map(_pss_bytes, _process_tree(self._pid))))
            if self._done.wait(0.2):
                return

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak / 2**20 if self.peak else float("nan")


def compile_once(checkout: Path, repo: Path, output: Path, as_of: str,
                 cache: str = "as-is") -> tuple[float, float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB, peak Pss of all its processes in MB) of one
    ``tiops compile`` with ``checkout``'s tiops."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    if cache == "cold":
        shutil.rmtree(repo / ".tiops" / "build-cache", ignore_errors=True)
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "tiops", "-C", str(repo), "compile", "-o", str(output), "--as-of", as_of,
         *(["--no-cache"] if cache == "off" else [])],
        # cwd: `python -m` puts the current folder first on sys.path; a neutral folder keeps
        # the measured code that of `checkout`.
        env=env, cwd=output.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    assert child.stderr is not None
    sampler = TreeSampler(child.pid)
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    all_mb = sampler.stop()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"compile with {checkout} failed ({child.returncode}):\n{errors.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, all_mb  # ru_maxrss is in KB on Linux


def object_count(bundle: Path) -> int:
    with bundle.open("rb") as handle:
        return sum(1 for _ in handle) - 2  # one object per line between the head and the tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", type=Path)
    parser.add_argument("--baseline", action="append", help="git revision or checkout folder (default: main); repeatable")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--as-of", default="2025-06-01T00:00:00Z", help="fixed as-of time, so all builds agree")
    parser.add_argument("--cache", choices=["as-is", "cold", "off"], default="as-is",
                        help="the build cache: left as found, removed before each run, or not used (--no-cache)")
    args = parser.parse_args()
    if not (args.repo / "intel").is_dir():
        raise SystemExit(f"{args.repo}: not an intel repository (write one with benchmarks/generate_repo.py N DIR)")
    baselines: list[str] = args.baseline or ["main"]
    with tempfile.TemporaryDirectory(prefix="tiops-bench-memory-") as scratch:
        checkouts = {"current": REPO_ROOT}
        worktrees = []
        for number, baseline in enumerate(baselines, 1):
            folder = Path(baseline)
            if not folder.is_dir():
                folder = Path(scratch, f"checkout-{number}")
                subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "-q", "--detach", str(folder), baseline],
                               check=True, capture_output=True)
                worktrees.append(folder)
            checkouts[baseline] = folder
        try:
            best = {name: Best() for name in checkouts}
            outputs = {name: Path(scratch, f"output-{number}", "bundle.json") for number, name in enumerate(checkouts)}
            for path in outputs.values():
                path.parent.mkdir()
            for run in range(args.repeat):
                order = list(checkouts) if run % 2 == 0 else list(reversed(checkouts))
                for name in order:
                    wall, cpu, peak, all_mb = compile_once(checkouts[name], args.repo.resolve(), outputs[name],
                                                           args.as_of, args.cache)
                    best[name].add(wall, cpu, peak, all_mb)
                    print(f"run {run + 1} {name:20s} {wall:7.1f} s wall {cpu:7.1f} s CPU {peak:8.0f} MB peak"
                          f" {all_mb:8.0f} MB all processes", flush=True)
            identical = all(filecmp.cmp(outputs["current"], path, shallow=False) for path in outputs.values())
            objects = object_count(outputs["current"])
        finally:
            for folder in worktrees:
                subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(folder)], check=False)
    now = best["current"]
    print(f"tiops compile of {args.repo} ({objects:,} objects), best of {args.repeat}; ratio = current / that checkout")
    print(f"{'':20s} {'wall s':>9s} {'CPU s':>9s} {'peak MB':>9s} {'all MB':>9s} {'KB/object':>10s} {'wall':>7s}"
          f" {'CPU':>7s} {'peak':>7s} {'all':>7s}")
    for name, figures in best.items():
        print(f"{name:20s} {figures.wall:9.1f} {figures.cpu:9.1f} {figures.peak_mb:9.0f} {figures.all_mb:9.0f}"
              f" {figures.peak_mb * 1024 / objects:10.2f} {now.wall / figures.wall:6.2f}x {now.cpu / figures.cpu:6.2f}x"
              f" {now.peak_mb / figures.peak_mb:6.2f}x {now.all_mb / figures.all_mb:6.2f}x")
    print("bundles byte-for-byte identical" if identical else "BUNDLES DIFFER")
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
