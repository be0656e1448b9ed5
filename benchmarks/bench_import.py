"""Time ``tiops import`` of a STIX bundle with this checkout and with a baseline commit, in the same run.

    python benchmarks/bench_import.py [--bundle ../shared/corpora/stix20/enterprise-attack.json]
                                      [--baseline main] [--repeat 3]

The baseline commit is checked out into a temporary ``git worktree`` (removed
afterwards). Each run is a fresh ``python -m tiops import BUNDLE --format stix`` into
an empty temporary repository, in a child process whose ``PYTHONPATH`` points at
the checkout being timed, the two checkouts alternating run by run so that a busy
machine slows both alike. For each the best wall-clock time and the best CPU time
(user + system of the child, which load from other processes barely moves) are
kept, and the ratio current / baseline is printed for both.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = REPO_ROOT.parent / "shared" / "corpora" / "stix20" / "enterprise-attack.json"


def time_import(checkout: Path, bundle: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one import of ``bundle`` into a fresh repository with ``checkout``'s tiops."""
    with tempfile.TemporaryDirectory(prefix="tiops-bench-import-") as repo:
        Path(repo, "intel").mkdir()  # a repository, as commands look for one (tiops init makes the same)
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "tiops", "-C", repo, "import", str(bundle), "--format", "stix", "--source", "Bench"],
            # cwd: `python -m` puts the current folder first on sys.path, so run from the
            # checkout the timed code would be whatever that folder holds, not `checkout`.
            env=env, cwd=repo, capture_output=True, text=True, check=False,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode not in (0, 1):  # 1: something was rejected, still a complete import
            raise SystemExit(f"import with {checkout} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--baseline", default="main", help="git revision to compare with (default: main)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.bundle.is_file():
        raise SystemExit(f"{args.bundle}: no such bundle (the shared corpora sit beside the checkout)")
    commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", args.baseline],
                            capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="tiops-bench-baseline-") as parent:
        baseline = Path(parent) / "baseline"
        subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", str(baseline), commit],
                       capture_output=True, check=True)
        try:
            best: dict[str, tuple[float, float]] = {}
            for _ in range(args.repeat):
                for name, checkout in (("baseline", baseline), ("current", REPO_ROOT)):
                    wall, cpu = time_import(checkout, args.bundle)
                    old = best.get(name, (wall, cpu))
                    best[name] = (min(old[0], wall), min(old[1], cpu))
        finally:
            subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(baseline)],
                           capture_output=True, check=False)
    print(f"import {args.bundle.name}, best of {args.repeat} (baseline {args.baseline} = {commit})")
    for name in ("baseline", "current"):
        wall, cpu = best[name]
        print(f"  {name:8}  wall {wall:6.2f} s   cpu {cpu:6.2f} s")
    ratio_wall = best["current"][0] / best["baseline"][0]
    ratio_cpu = best["current"][1] / best["baseline"][1]
    print(f"  ratio current/baseline: wall {ratio_wall:.2f}x, cpu {ratio_cpu:.2f}x")


if __name__ == "__main__":
    main()
