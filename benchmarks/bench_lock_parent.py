"""What an enrichment lock costs the build process itself, with and without the lock's helper.

    python benchmarks/bench_lock_parent.py REPO [--rounds 5]

REPO is a repository with an enrichment lock, such as the ``locked`` one that
``python benchmarks/bench_enrich.py --keep DIR`` writes (100k objects, 83,895 values).
In one process, with the repository loaded once (not timed), each round times three ways
of writing its bundle to a file (CPU seconds, ``time.process_time``), alternated:

* ``none``: no enrichment (the baseline: what the bundle costs without a lock);
* ``in-process``: the lock read, checked and attached here, as a build does without its
  helper (tiops.enrich.attach.LockedEnrichment);
* ``from-helper``: the helper's results handed over (``marshal``, as tiops.forkwork.run_beside
  hands them) and joined into each extension (tiops.enrich.beside.PreparedEnrichment).

The helper's own work (reading, checking, serialising the lock) is done once before
timing: it runs on the other core while the build loads. Bundles are checked to be the
same bytes both ways. The figure to read is what each way adds to ``none``.
"""

from __future__ import annotations

import argparse
import gc
import marshal
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tiops.compile import bundle_objects, write_bundle
from tiops.enrich import beside
from tiops.enrich.attach import LockedEnrichment
from tiops.enrich.lock import read_lock
from tiops.load import load_repo
from tiops.rules.engine import RulesOutcome


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    gc.disable()  # as a build runs (tiops.memory.paused_gc)
    repo = load_repo(args.repo)
    intel = repo.config.intel_path
    handed = marshal.dumps(beside._prepared(intel, repo.root))

    def write(way: str) -> tuple[float, str]:
        started = time.process_time()
        enrichment: Any = None
        if way == "in-process":
            enrichment = LockedEnrichment(read_lock(intel, repo.root)[0])
        elif way == "from-helper":
            _, _, _, geo, whois = marshal.loads(handed)
            enrichment = beside.PreparedEnrichment(geo, whois)
        outcome = RulesOutcome(objects=list(repo.objects))
        outcome.enrichment = enrichment
        written = write_bundle(bundle_objects(repo, rules=outcome), Path(f"/tmp/bench-lock-parent-{way}.json"))
        return time.process_time() - started, written.sha256

    ways = ("none", "in-process", "from-helper")
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    digests: dict[str, set[str]] = {way: set() for way in ways}
    for _ in range(args.rounds):
        for way in ways:
            cpu, digest = write(way)
            seconds[way].append(cpu)
            digests[way].add(digest)
    if digests["in-process"] != digests["from-helper"] or len(digests["from-helper"]) != 1:
        print("the two enriched bundles differ", file=sys.stderr)
        return 1
    base = statistics.median(seconds["none"])
    for way in ways:
        median = statistics.median(seconds[way])
        print(f"{way:12} CPU {' '.join(f'{s:.3f}' for s in seconds[way])} s; median {median:.3f} s, "
              f"{median - base:+.3f} s over no lock")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
