"""The one-file recompile right after a build that began as its checkout was made, against the next one.

    python benchmarks/bench_first_recompile.py REPO [--rounds 3] [--baseline CHECKOUT]

``REPO`` is a git repository (cloned, never changed: ``generate_repo.py`` and ``git init`` make one).
Each round, in a fresh clone:

1. a first ``tiops compile`` at once: the files the clone wrote in its last second are racily
   recent for the stat index that build writes (tiops.buildcache.store, ``_RACY_NS``);
2. one object's name edited, ``tiops compile`` timed (the first recompile);
3. another edit, ``tiops compile`` timed again (the second: no record is racy any more).

Printed: the median wall time of each and first / second (1.00 when the racy records cost nothing
more). With ``--baseline CHECKOUT`` the rounds alternate between that checkout's tiops (put first on
``PYTHONPATH``) and this one's, and both rows are printed, with this checkout's first recompile
against the baseline's. Each command is a fresh process, start-up included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench_scale import edit_one_file

CHECKOUT = Path(__file__).resolve().parents[1]
AS_OF = "2025-06-01"


def _compile(repo: Path, checkout: Path) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tiops", "-C", str(repo), "compile", "--as-of", AS_OF,
                           "-o", str(repo.parent / "bundle.json")], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"tiops compile failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def one_round(source: Path, checkout: Path) -> tuple[float, float]:
    """(first recompile, second recompile) seconds in a fresh clone of ``source``, by ``checkout``'s tiops."""
    with tempfile.TemporaryDirectory(prefix="tiops-bench-first-recompile-") as scratch:
        repo = Path(scratch) / "repo"
        subprocess.run(["git", "clone", "-q", str(source), str(repo)], check=True)
        _compile(repo, checkout)  # at once: the clone's last files are racily recent for its stat index
        edit_one_file(repo)
        first = _compile(repo, checkout)
        edit_one_file(repo)
        return first, _compile(repo, checkout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("repo", type=Path, help="a git repository of intel (cloned, never changed)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another checkout of tiops, run in alternate rounds")
    args = parser.parse_args(argv)
    checkouts = {"this checkout": CHECKOUT} if args.baseline is None else {
        "baseline": args.baseline.resolve(), "this checkout": CHECKOUT}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in checkouts}
    for number in range(max(1, args.rounds)):
        for name, checkout in checkouts.items():
            first, second = one_round(args.repo.resolve(), checkout)
            times[name].append((first, second))
            print(f"round {number + 1} {name}: first recompile {first:.2f} s, second {second:.2f} s",
                  file=sys.stderr, flush=True)
    medians = {name: (statistics.median(t[0] for t in runs), statistics.median(t[1] for t in runs))
               for name, runs in times.items()}
    for name, (first, second) in medians.items():
        print(f"{name:14} first recompile {first:6.3f} s  second {second:6.3f} s  first / second {first / second:.2f}x")
    if args.baseline is not None:
        print(f"first recompile, this checkout / baseline: "
              f"{medians['this checkout'][0] / medians['baseline'][0]:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
