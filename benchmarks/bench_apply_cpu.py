"""CPU time of `apply` from a compiled bundle into an empty SQLite store, against a bare executemany.

    python benchmarks/bench_apply_cpu.py BUNDLE [--repeat 3] [--batch-size N] [--by-statement]

``BUNDLE`` is a compiled bundle (``tiops compile --no-cache --as-of 2025-06-01 -o
BUNDLE`` in a generated repository). Each round, in this process: the all-create plan
is made (not timed), then ``apply_plan`` into a fresh store is timed by CPU time
(``time.process_time``: SQLite works in this process, and the machine's other work
does not move it), then a plain ``executemany`` of the same objects into a bare table
without keys (serialisation included), as in bench_plan_apply.py. Printed: the best
of each and their ratio, and the store's size beside the bare table's.

``--by-statement`` also prints the CPU time of each kind of SQL statement apply ran
(summed over the rounds; what is left of apply's time is tiops building the rows in Python).

For an A/B of two checkouts, run it from a neutral folder with ``PYTHONPATH=CHECKOUT``
for each, alternating.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from tiops.apply import apply_plan
from tiops.plan import BundleDigests, make_plan
from tiops.stores import TargetSettings, version_key
from tiops.stores.sqlite import SqliteStore

AS_OF = "2025-06-01T00:00:00Z"


class TimedConnection:
    """A SQLite connection that adds the CPU time of each statement to ``spent``, by its first words."""

    def __init__(self, db: sqlite3.Connection, spent: dict[str, float]) -> None:
        self._db, self._spent = db, spent

    def _timed(self, run: Any, statement: str, *args: Any) -> Any:
        start = time.process_time()
        result = run(statement, *args)
        key = " ".join(statement.split()[:3])
        self._spent[key] = self._spent.get(key, 0.0) + time.process_time() - start
        return result

    def execute(self, statement: str, *args: Any) -> Any:
        return self._timed(self._db.execute, statement, *args)

    def executemany(self, statement: str, rows: Any) -> Any:
        return self._timed(self._db.executemany, statement, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def apply_cpu(objects: list[dict[str, Any]], path: Path, batch_size: int | None,
              spent: dict[str, float] | None = None) -> float:
    settings = TargetSettings.from_config("bench", {"type": "sqlite"})
    store = SqliteStore(path, target="bench", as_of=AS_OF)
    try:
        plan = make_plan(objects, store.manifest(), {}, settings, supports_delete=True, source_commit=None,
                         digests=BundleDigests.of(objects))
        if spent is not None:
            store._db = TimedConnection(store._db, spent)  # type: ignore[assignment]
        start = time.process_time()
        apply_plan(plan, store, batch_size=batch_size or settings.batch_size)
        seconds = time.process_time() - start
        if len(store.manifest()) != len({obj["id"] for obj in objects}):  # a figure of a partial apply is no figure
            raise RuntimeError("the store does not hold every object of the bundle after apply")
        return seconds
    finally:
        store.close()


def executemany_cpu(objects: list[dict[str, Any]], path: Path) -> float:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")  # as the store runs it
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE bare (id TEXT, version TEXT, version_sort TEXT, type TEXT, revoked BOOLEAN,"
               " digest TEXT, written_by TEXT, object TEXT)")
    db.commit()
    start = time.process_time()
    with db:
        db.executemany("INSERT INTO bare VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
            (obj["id"], version_key(obj), version_key(obj), obj["type"], bool(obj.get("revoked", False)), None, "tiops",
             orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode())
            for obj in objects
        ])
    seconds = time.process_time() - start
    db.close()
    return seconds


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, help="default: the SQLite target's")
    parser.add_argument("--by-statement", action="store_true", help="print the CPU time of each kind of statement")
    args = parser.parse_args()
    objects = orjson.loads(args.bundle.read_bytes())["objects"]
    best_apply = best_bare = float("inf")
    spent: dict[str, float] | None = {} if args.by_statement else None
    total_apply = 0.0
    with tempfile.TemporaryDirectory(prefix="tiops-bench-apply-") as scratch:
        for round_number in range(args.repeat):
            store, bare = Path(scratch) / f"store-{round_number}.sqlite", Path(scratch) / f"bare-{round_number}.sqlite"
            apply_seconds, bare_seconds = apply_cpu(objects, store, args.batch_size, spent), executemany_cpu(objects, bare)
            total_apply += apply_seconds
            print(f"round {round_number + 1}: apply {apply_seconds:.2f}s CPU  executemany {bare_seconds:.2f}s CPU",
                  file=sys.stderr, flush=True)
            best_apply, best_bare = min(best_apply, apply_seconds), min(best_bare, bare_seconds)
        print(f"sqlite {len(objects)} objects  apply {best_apply:.2f}s CPU  executemany {best_bare:.2f}s CPU  "
              f"store {size(store) / 1e6:.0f} MB  bare table {size(bare) / 1e6:.0f} MB\n"
              f"sqlite apply / executemany, CPU = {best_apply / best_bare:.2f}  (target <= 2)")
        if spent is not None:
            for statement, seconds in sorted(spent.items(), key=lambda item: -item[1]):
                print(f"  {seconds:6.2f}s  {statement}")
            print(f"  {total_apply - sum(spent.values()):6.2f}s  the rest of apply (rows built in Python, the plan's checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
