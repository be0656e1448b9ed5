"""What each table of the SQLite store costs an apply, as ratios against a bare executemany of the same run.

    python benchmarks/bench_store_tables.py BUNDLE [--repeat 2]

``BUNDLE`` is a compiled bundle (``tiops compile`` of a generated repository: ``generate_repo.py``).
Its objects' rows are built beforehand, as the store builds them (``tiops.stores.sql.version_rows``
and ``tiops.stores.sentinel_tables.sentinel_rows``), and not timed. Each round, into a fresh store:

* baseline: the version rows into a bare table without keys or indexes (``BARE_TABLE`` of
  ``bench_plan_apply.py``), one ``executemany`` in one transaction;
* each statement of an apply alone (``stix_versions``, ``stix_current``, then the Sentinel
  tables' inserts), with the store's keys, indexes, triggers and pragmas;
* all of them together: the schema floor ``bench_plan_apply.py`` prints;
* the least a store keyed by id can write: each object's row built (serialised, digested,
  its version keyed) and written once, into ``stix_current`` alone, against the bare table
  with each object serialised in the timing too (``bench_plan_apply.py``'s baseline).

Every figure runs to the connection's close, where a new store is put on the disk.

It says where the floor of apply / executemany comes from (docs/performance.md, "What apply's
SQL costs, table by table"). Best of ``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from bench_plan_apply import BARE_TABLE, plain_rows

from tiops.stores import sentinel_tables as tables
from tiops.stores import sql as shared
from tiops.stores.sqlite import SqliteStore

Statement = tuple[str, str, list[tuple[Any, ...]]]


def statements(objects: list[dict[str, Any]]) -> list[Statement]:
    """(name, SQL, rows) of every insert an apply of ``objects`` into an empty store runs."""
    rows = shared.version_rows(objects)
    found: list[Statement] = [("stix_versions", shared.INSERT_VERSION, rows),
                              ("stix_current", shared.UPSERT_CURRENT.format(true="1"), rows)]
    for sql, params in tables.sentinel_rows(objects, None, tables.SQLITE).statements(tables.SQLITE, set()):
        if params:  # an empty store: no row to delete first
            found.append((sql.split("(")[0].removeprefix("INSERT INTO ").strip(), sql, list(params)))
    return found


def fresh(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def timed_store(path: Path, chosen: list[Statement]) -> float:
    fresh(path)
    store = SqliteStore(path, target="bench")
    db = store._db
    start = time.perf_counter()
    db.execute("BEGIN")
    for _name, sql, params in chosen:
        db.executemany(sql, params)
    db.execute("COMMIT")
    store.close()  # counted: a new store is put on the disk when closed (tiops.stores.sqlite.CreationMark)
    return time.perf_counter() - start


def timed_bare(path: Path, rows: Callable[[], list[tuple[Any, ...]]]) -> float:
    """The bare baseline: ``rows()`` (built in the timing, or taken as built) in one executemany."""
    fresh(path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")  # as the store runs it
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(BARE_TABLE)
    db.commit()
    start = time.perf_counter()
    with db:
        db.executemany("INSERT INTO bare VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows())
    db.close()  # counted, as the store's close is
    return time.perf_counter() - start


def timed_least_store(path: Path, objects: list[dict[str, Any]]) -> float:
    """The least a store keyed by id can write: each object's row built (serialised, digested, its
    version keyed) and written once, into ``stix_current`` alone, its key and type index kept."""
    fresh(path)
    store = SqliteStore(path, target="bench")
    db = store._db
    start = time.perf_counter()
    db.execute("BEGIN")
    db.executemany(shared.UPSERT_CURRENT.format(true="1"), shared.version_rows(objects))
    db.execute("COMMIT")
    store.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--repeat", type=int, default=2)
    arguments = parser.parse_args()
    objects = orjson.loads(arguments.bundle.read_bytes())["objects"]
    chosen = statements(objects)
    bare_rows = [row[:8] for row in chosen[0][2]]  # the version rows, less object_digest
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tiops-bench-tables-") as scratch:
        path = Path(scratch) / "store.sqlite"
        for _ in range(arguments.repeat):
            runs = {"bare executemany": lambda: timed_bare(path, lambda: bare_rows),
                    **{name: (lambda one=(name, sql, params): timed_store(path, [one])) for name, sql, params in chosen},
                    "all together": lambda: timed_store(path, chosen),
                    "bare, rows built in the timing": lambda: timed_bare(path, lambda: plain_rows(objects)),
                    "stix_current alone, rows built": lambda: timed_least_store(path, objects)}
            for name, run in runs.items():
                best[name] = min(best.get(name, float("inf")), run())
    baseline = best["bare executemany"]
    print(f"{len(objects)} objects, best of {arguments.repeat}")
    for name, seconds in best.items():
        rows = next((len(params) for n, _, params in chosen if n == name), len(bare_rows))
        print(f"  {name:32} {rows:7d} rows {seconds:6.3f} s {seconds / baseline:5.2f}x")
    least = best["stix_current alone, rows built"] / best["bare, rows built in the timing"]
    print(f"the least a keyed store writes / bare, rows built in both: {least:.2f}x (apply's target: 2x)")


if __name__ == "__main__":
    main()
