"""Time what `tiops compile` does after validation, against validation in the same run.

    python benchmarks/bench_compile_stage.py [--objects 100000] [--repeat 3] [--repo DIR] [--as-of 2025-06-01]

Loads and validates a repository once (a generated one, benchmarks/generate_repo.py,
unless --repo names one), then times the compile stage as ``tiops.build`` runs it:
ingestion rules (with any enrichment lock), the bundle's objects, and the bundle
streamed to a file with its digest, plus the build metadata. Each part is this
process's CPU time, best of --repeat; the baseline is the CPU time of
``validate_repo`` in the same run (what `tiops validate` does after loading). The
bundle's SHA-256 is printed so runs of two checkouts can be compared for identical bytes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate_repo import write_repository

from tiops.compile import bundle_objects, write_bundle
from tiops.enrich import lock as enrichment_lock
from tiops.load import load_repo
from tiops.memory import paused_gc
from tiops.rules import apply_repo_rules, build_metadata, resolve_as_of
from tiops.validate import validate_repo


def measure(root: Path, repeat: int, as_of: str) -> None:
    with paused_gc(), tempfile.TemporaryDirectory() as folder:
        repo = load_repo(root)
        validate = float("inf")
        for _ in range(repeat):
            enrichment_lock._CACHE.clear()  # validation reads the lock, as in a fresh process
            start = time.process_time()
            validate_repo(repo)
            validate = min(validate, time.process_time() - start)
        parts = {"rules": float("inf"), "bundle objects": float("inf"), "bundle file": float("inf")}
        digest = ""
        for _ in range(repeat):
            start = time.process_time()
            outcome, rule_set, moment = apply_repo_rules(repo, resolve_as_of(root, as_of))
            ruled = time.process_time()
            objects = bundle_objects(repo, rules=outcome)
            assembled = time.process_time()
            digest = write_bundle(objects, Path(folder) / "bundle.json").sha256
            build_metadata(root, outcome, rule_set, moment)
            written = time.process_time()
            for name, seconds in (("rules", ruled - start), ("bundle objects", assembled - ruled),
                                  ("bundle file", written - assembled)):
                parts[name] = min(parts[name], seconds)
    stage = sum(parts.values())
    print(f"{len(repo.objects)} objects, best of {repeat}, CPU: validate_repo {validate:.3f} s; compile stage "
          f"{stage:.3f} s (" + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in parts.items())
          + f"); stage / validate = {stage / validate:.3f}")
    print(f"  bundle sha256 {digest}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--repo", type=Path, help="an existing repository instead of a generated one")
    parser.add_argument("--as-of", default="2025-06-01")
    args = parser.parse_args(argv)
    if args.repo is not None:
        measure(args.repo, max(1, args.repeat), args.as_of)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        write_repository(Path(folder), args.objects)
        measure(Path(folder), max(1, args.repeat), args.as_of)
    return 0


if __name__ == "__main__":
    sys.exit(main())
