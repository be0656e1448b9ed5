"""Time ``tiops validate FILE`` (what the pre-commit hook runs) against ``tiops validate``.

    python benchmarks/bench_named_paths.py [--size 20000] [--repeat 3] [--seed 1]

A repository of N objects is generated into a temporary folder (not timed). Validating
one named file still loads and validates the whole repository (references need every
object), then keeps the findings in that file and the repository-wide ones that involve
it (duplicate ids, relationships from and to its objects). The baseline is the whole
repository validated in the same run; the figure is the ratio, i.e. what selecting the
involved findings costs on top.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import generate_repo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    from tiops.validate import validate_paths

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "repo"
        generate_repo.main([str(args.size), str(root), "--seed", str(args.seed)])
        named = next(root.glob("intel/feeds/*/indicators/*/*.yaml"))

        def best(targets: list[Path]) -> float:
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                validate_paths(root, targets)
                times.append(time.perf_counter() - start)
            return min(times)

        whole = best([])
        one_file = best([named])
    print(f"{args.size} objects: validate (whole repository) {whole:.2f} s (baseline), "
          f"validate FILE {one_file:.2f} s, ratio {one_file / whole:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
