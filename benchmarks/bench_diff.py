"""Time ``tiops diff HEAD~1`` after a one-file commit against a full ``tiops compile``.

    python benchmarks/bench_diff.py [--size 20000 | --repo DIR] [--repeat 3] [--seed 1]

A repository of N objects is generated into a temporary folder and committed (or
``--repo DIR``, a git repository, is cloned there; neither is timed). One indicator's
description is then edited and committed. Both commands run as a user runs them, one
process each (``python -m tiops``, startup included), alternating, and the best of
``--repeat`` runs of each is kept, in wall-clock time and in CPU time (the process and
the git processes it runs; steadier than wall-clock time on a shared machine). The
baseline is the full compile in the same run (``tiops compile --no-cache``); the figures
are the ratios (the target is at most 1.2x).

The diff runs with the build cache warm, as a developer has it: a ``tiops compile``
before the edit and a ``tiops validate`` after it (neither timed) wrote
``.tiops/build-cache/``. ``--cold`` removes the cache before every timed diff instead.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import generate_repo

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Benchmark", "GIT_AUTHOR_EMAIL": "bench@example.org",
    "GIT_COMMITTER_NAME": "Benchmark", "GIT_COMMITTER_EMAIL": "bench@example.org",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}  # fmt: skip


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, env={**os.environ, **_GIT_ENV},
                          check=True, capture_output=True, text=True)
    return done.stdout


def edit_one_file(root: Path) -> str:
    """Change the description of the first indicator file in git's order; returns its path."""
    for relative in git(root, "ls-files", "-z", "intel").split("\0"):
        if "/indicators/" not in relative:
            continue
        path = root / relative
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for index, line in enumerate(lines):
            if line.startswith("description:"):
                lines[index] = "description: Edited for the diff benchmark.\n"
                path.write_text("".join(lines), encoding="utf-8")
                return relative
    raise SystemExit("no indicator with a description to edit")


def timed(root: Path, *command: str) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of the process and the git processes it ran)."""
    cpu_before = _children_cpu()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tiops", "-C", str(root), *command], check=True,
                   stdout=subprocess.DEVNULL, cwd=root.parent)
    return time.perf_counter() - start, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--repo", type=Path, help="a git repository to clone instead of generating one")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cold", action="store_true", help="time the diff without a build cache")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tiops-bench-diff-") as folder:
        root = Path(folder) / "repo"
        if args.repo is not None:
            git(Path(folder), "clone", "-q", str(args.repo.resolve()), str(root))
        else:
            generate_repo.main([str(args.size), str(root), "--seed", str(args.seed)])
            git(root, "init", "-q", "-b", "main")
            git(root, "add", "-A")
            git(root, "commit", "-q", "-m", "base")
        (root / ".git" / "info" / "exclude").write_text(".tiops/\n")
        timed(root, "compile")  # the cache a developer has: compiled before the change...
        edited = edit_one_file(root)
        git(root, "commit", "-q", "-am", "one-file change")
        timed(root, "validate")  # ...and validated after it
        objects = len(git(root, "ls-files", "intel").splitlines())
        compile_times: list[tuple[float, float]] = []
        diff_times: list[tuple[float, float]] = []
        for _ in range(args.repeat):
            compile_times.append(timed(root, "compile", "--no-cache"))
            if args.cold:
                shutil.rmtree(root / ".tiops", ignore_errors=True)
            diff_times.append(timed(root, "diff", "HEAD~1", "--format", "json", "-o", str(Path(folder) / "diff.json")))
        diff = (Path(folder) / "diff.json").read_text(encoding="utf-8")
    compile_wall, diff_wall = min(t[0] for t in compile_times), min(t[0] for t in diff_times)
    compile_cpu, diff_cpu = min(t[1] for t in compile_times), min(t[1] for t in diff_times)
    print(f"{objects} files, {edited} changed in HEAD; diff with the build cache {'cold' if args.cold else 'warm'}")
    print(f"wall clock: compile {compile_wall:.2f} s (baseline), diff HEAD~1 {diff_wall:.2f} s, "
          f"ratio {diff_wall / compile_wall:.2f}x")
    print(f"CPU time:   compile {compile_cpu:.2f} s (baseline), diff HEAD~1 {diff_cpu:.2f} s, "
          f"ratio {diff_cpu / compile_cpu:.2f}x")
    if '"changed"' not in diff:
        print("warning: the diff output has no changed section", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
