"""CPU time of the per-object checks and of validate_repo, this checkout against another.

    python benchmarks/bench_object_checks.py REPO --baseline CHECKOUT [--rounds 3] [--repeat 3]

REPO is an intel repository (``benchmarks/generate_repo.py 100000 DIR`` makes one);
CHECKOUT is another checkout of tiops (the commit to compare with). Each round runs
one child process per checkout, the baseline first, alternating: the child loads REPO
once, without the per-object check, then times with ``time.process_time`` (CPU, so a
busy machine inflates it less than wall-clock time) ``check_object`` over every object
and ``validate_repo`` (the per-object checks and the repository-wide ones), each the
best of ``--repeat``. The figures printed are the best over the rounds and the ratio of
this checkout's to the baseline's. Loading, which the checks do not touch, is left out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

_CHILD = """
import json, os, sys, time
from pathlib import Path
from tiops.load import load_repo
from tiops.memory import paused_gc
from tiops.validate import validate_repo
from tiops.validate.objects import check_object
repo = load_repo(Path(sys.argv[1]))
best_check = best_validate = float("inf")
for _ in range(int(sys.argv[2])):
    with paused_gc():
        started = time.process_time()
        object_findings = sum(len(check_object(obj)) for obj in repo.objects)
        best_check = min(best_check, time.process_time() - started)
        started = time.process_time()
        findings = len(validate_repo(repo))
        best_validate = min(best_validate, time.process_time() - started)
print(json.dumps({"objects": len(repo.objects), "check": best_check, "validate": best_validate,
                  "object_findings": object_findings, "findings": findings}))
"""


def measure(checkout: Path, repo: Path, repeat: int) -> dict[str, float]:
    environment = {**os.environ, "PYTHONPATH": str(checkout), "TIOPS_LOAD_FORK": "0"}
    # -c puts the current folder first on sys.path: run from the repository, which holds no tiops package.
    output = subprocess.run([sys.executable, "-c", _CHILD, str(repo), str(repeat)], env=environment, cwd=repo,
                            check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout of tiops")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1]
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "this": []}
    for _ in range(args.rounds):
        runs["baseline"].append(measure(args.baseline.resolve(), args.repo.resolve(), args.repeat))
        runs["this"].append(measure(here, args.repo.resolve(), args.repeat))
    best = {side: {key: min(run[key] for run in found) for key in ("check", "validate")} for side, found in runs.items()}
    first = runs["this"][0]
    print(f"{int(first['objects']):,} objects ({int(first['object_findings'])} object findings, "
          f"{int(first['findings'])} findings with this checkout); CPU seconds, best of {args.rounds} rounds x {args.repeat}")
    for key, label in (("check", "check_object over every object"), ("validate", "validate_repo")):
        print(f"  {label:32} baseline {best['baseline'][key]:.3f}  this {best['this'][key]:.3f}  "
              f"ratio {best['this'][key] / best['baseline'][key]:.3f}")


if __name__ == "__main__":
    main()
