"""Time `tiops query` on a compiled repository against sqlite3 on the same rows.

    python benchmarks/bench_query.py [--objects 100000] [--repeat 3]

Generates a synthetic repository (benchmarks/generate_repo.py), compiles it (as
`tiops compile` does) and then, in the same run:

* tiops in process: what `tiops query` does once started (read the kept compiled
  view, check and evaluate the expression, count or list), best of --repeat;
* tiops as a process: `tiops query EXPR` (adds Python's and tiops' start-up), wall
  time, best of --repeat; the first query, which builds the view, is printed on its own;
* baseline: SQLite answering the same question with SQL over
  the same rows in a SQLite file: table ``objects`` (id, type, name, confidence,
  object JSON) with indexes on type and confidence, and ``observables`` (id, value)
  and ``tags`` (id, value) indexed on value, as a store would keep them. The file is
  built before timing; its build time is printed but not counted. In process the
  baseline is Python's sqlite3 module (connect, query, fetch); as a process it is the
  `sqlite3` command-line shell.

Each question prints both times and the ratio tiops / sqlite3; both sides must give
the same number of results, or the script stops.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate_repo import write_repository

from tiops.pipeline import build
from tiops.query import Query, group_counts, parse_query, query_fields, rows_from_objects, select
from tiops.query.view import bundle_view, read_bundle_objects


def best_in_process(run: Callable[[], int], repeat: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = run()
        best = min(best, time.perf_counter() - start)
    return best, count


def tiops_in_process(bundle: Path, cache: Path, expression: str, group_by: str | None) -> int:
    view = bundle_view(bundle, cache)
    query = parse_query(expression, seen=view.property_names)
    rows = view.rows(query_fields(query, group_by), only=view.candidates(query.condition))
    if group_by is not None:
        return len(group_counts(select(rows, Query(query.condition)), group_by))
    return len(select(rows, query))


def sqlite_in_process(database: Path, sql: str) -> int:
    db = sqlite3.connect(database)
    try:
        return len(db.execute(sql).fetchall())
    finally:
        db.close()


def best_wall(command: list[str], repeat: int) -> tuple[float, str]:
    best, output = float("inf"), ""
    for _ in range(repeat):
        start = time.perf_counter()
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        best = min(best, time.perf_counter() - start)
    return best, output


def baseline_database(bundle: Path, path: Path) -> None:
    import orjson

    rows = rows_from_objects(read_bundle_objects(bundle))
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE objects (id TEXT PRIMARY KEY, type TEXT, name TEXT, confidence INTEGER, object TEXT);
        CREATE TABLE observables (id TEXT, value TEXT);
        CREATE TABLE tags (id TEXT, value TEXT);
    """)
    db.executemany("INSERT INTO objects VALUES (?, ?, ?, ?, ?)",
                   [(r.id, r.obj["type"], r.obj.get("name"), r.obj.get("confidence"), orjson.dumps(r.obj).decode()) for r in rows])
    db.executemany("INSERT INTO observables VALUES (?, ?)",
                   [(r.id, v) for r in rows for v in r.data.get("observable", ())])
    db.executemany("INSERT INTO tags VALUES (?, ?)", [(r.id, v) for r in rows for v in r.obj.get("labels", ())])
    db.executescript("""
        CREATE INDEX objects_type ON objects (type); CREATE INDEX objects_confidence ON objects (confidence);
        CREATE INDEX observables_value ON observables (value); CREATE INDEX tags_value ON tags (value);
    """)
    db.commit()
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tiops-bench-query-") as temporary:
        root = Path(temporary) / "repo"
        write_repository(root, args.objects)
        start = time.perf_counter()
        result = build(root)
        (root / "dist").mkdir()
        bundle = root / "dist" / "bundle.json"
        bundle.write_bytes(result.bundle)
        print(f"{result.object_count} objects compiled in {time.perf_counter() - start:.2f} s (not counted)")
        value = next(r.data["observable"][0] for r in rows_from_objects(read_bundle_objects(bundle)) if "observable" in r.data)
        database = Path(temporary) / "baseline.sqlite"
        start = time.perf_counter()
        baseline_database(bundle, database)
        print(f"baseline SQLite file built in {time.perf_counter() - start:.2f} s (not counted)")
        tiops = [sys.executable, "-m", "tiops", "-C", str(root), "query"]
        start = time.perf_counter()
        subprocess.run([*tiops, "type = identity", "--format", "ids"], check=True, capture_output=True)
        print(f"first query, building the kept view: {time.perf_counter() - start:.2f} s")
        questions: list[tuple[str, list[str], str]] = [
            (f"observable = {value}", ["--format", "ids"],
             f"SELECT DISTINCT id FROM observables WHERE value = '{value}'"),
            ("type = indicator and confidence >= 80", ["--format", "ids"],
             "SELECT id FROM objects WHERE type = 'indicator' AND confidence >= 80"),
            ("type = indicator", ["--group-by", "tags", "--format", "csv"],
             "SELECT t.value, COUNT(DISTINCT t.id) FROM tags t JOIN objects o ON o.id = t.id"
             " WHERE o.type = 'indicator' GROUP BY t.value"),
        ]
        print(f"\nin process\n{'question':58} {'tiops':>8} {'sqlite3':>8} {'ratio':>7}")
        for expression, options, sql in questions:
            group_by = options[1] if options[0] == "--group-by" else None
            ours, count = best_in_process(
                lambda e=expression, g=group_by: tiops_in_process(bundle, root / ".tiops" / "cache", e, g), args.repeat)  # type: ignore[misc]
            theirs, their_count = best_in_process(lambda s=sql: sqlite_in_process(database, s), args.repeat)  # type: ignore[misc]
            if count != their_count:
                raise SystemExit(f"{expression}: tiops gave {count} results, sqlite3 {their_count}")
            label = expression + (f" --group-by {group_by}" if group_by else "")
            print(f"{label[:58]:58} {ours:7.3f}s {theirs:7.3f}s {ours / theirs:6.1f}x  ({count} results)")
        startup, _ = best_wall([sys.executable, "-m", "tiops", "--version"], args.repeat)
        print(f"\nas processes (tiops query / sqlite3 shell); 'tiops --version' alone takes {startup:.2f} s")
        print(f"{'question':58} {'tiops':>8} {'sqlite3':>8} {'ratio':>7}")
        given, _ = best_wall([*tiops, questions[0][0], str(bundle), *questions[0][1]], args.repeat)
        print(f"(with the bundle given as an argument, no freshness check of the repository: {given:.2f} s for the first question)")
        for expression, options, sql in questions:
            ours, out = best_wall([*tiops, expression, *options], args.repeat)
            theirs, their_out = best_wall(["sqlite3", str(database), sql], args.repeat)
            ours_count = len(out.splitlines()) - (1 if "--group-by" in options else 0)
            if ours_count != len(their_out.splitlines()):
                raise SystemExit(f"{expression}: tiops gave {ours_count} results, sqlite3 {len(their_out.splitlines())}")
            label = expression + (" " + " ".join(options[:2]) if "--group-by" in options else "")
            print(f"{label[:58]:58} {ours:7.2f}s {theirs:7.2f}s {ours / theirs:6.1f}x  ({ours_count} results)")


if __name__ == "__main__":
    main()
