"""What the input checks of docs/limits.md cost, against loading the same repository.

    python benchmarks/bench_input_checks.py REPO_DIR [--rounds 3]

REPO_DIR is a repository from generate_repo.py. Prints the best of ``--rounds`` for:
loading it (the baseline, checks included), the structure walk (non-string keys and
nesting depth) and the number check over every object, and reading every file with
tiops.inputs.read_input against a bare os.open/os.read loop.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

from tiops.inputs import read_input
from tiops.limits import check_structure, number_problems
from tiops.load import load_repo


def best(rounds: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def bare_read(files: list[str]) -> None:
    for path in files:
        descriptor = os.open(path, os.O_RDONLY)
        while os.read(descriptor, 1 << 20):
            pass
        os.close(descriptor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    root = options.repo.resolve()
    load = best(options.rounds, lambda: load_repo(root))
    objects = [obj.data for obj in load_repo(root).objects]
    structure = best(options.rounds, lambda: [check_structure(data) for data in objects])
    numbers = best(options.rounds, lambda: [list(number_problems(data)) for data in objects])
    files = [os.path.join(folder, name) for folder, _, names in os.walk(root / "intel") for name in names]
    checked = best(options.rounds, lambda: [read_input(path, root=os.fspath(root)) for path in files])
    bare = best(options.rounds, lambda: bare_read(files))
    print(f"{len(objects)} objects in {len(files)} files; load_repo {load:.2f} s (baseline 1.00)")
    print(f"structure walk   {structure:.3f} s  {structure / load:.2f} x load")
    print(f"number check     {numbers:.3f} s  {numbers / load:.2f} x load")
    print(f"read_input       {checked:.3f} s  {checked / bare:.2f} x a bare os.read loop ({bare:.3f} s)")


if __name__ == "__main__":
    main()
