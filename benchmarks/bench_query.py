"""Time `tiops query` on a compiled repository against sqlite3 on the same rows.

    python benchmarks/bench_query.py [--objects 100000] [--repeat 3] [--repo DIR]

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
the same number of results, or the script stops. Processes are timed in wall time and
in CPU time (user + system, of the process and its children: on a loaded machine wall
time mostly measures the neighbours). The compile and the first query, which builds
the kept view, are printed with their ratio.

``--repo DIR`` uses a repository generated before (``python benchmarks/generate_repo.py
100000 DIR``, about a minute) instead of a new one; the script writes ``dist/`` and
``.tiops/`` in it.
"""

from __future__ import annotations

import argparse
import resource
import shutil
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


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def best_wall(command: list[str], repeat: int) -> tuple[float, str, float]:
    """Best wall time, the output, and the best CPU time (user + system) of ``command``."""
    best, output, best_cpu = float("inf"), "", float("inf")
    for _ in range(repeat):
        start, cpu = time.perf_counter(), children_cpu()
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, children_cpu() - cpu)
    return best, output, best_cpu


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
    parser.add_argument("--repo", type=Path, help="a repository generate_repo.py wrote (default: a new one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tiops-bench-query-") as temporary:
        root = args.repo.resolve() if args.repo is not None else Path(temporary) / "repo"
        if args.repo is None:
            write_repository(root, args.objects)
        shutil.rmtree(root / ".tiops" / "cache", ignore_errors=True)
        start, cpu = time.perf_counter(), time.process_time()
        result = build(root)
        (root / "dist").mkdir(exist_ok=True)
        bundle = root / "dist" / "bundle.json"
        bundle.write_bytes(result.bundle)
        compile_wall, compile_cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"{result.object_count} objects compiled in {compile_wall:.2f} s, CPU {compile_cpu:.2f} s (in process, not counted)")
        value = next(r.data["observable"][0] for r in rows_from_objects(read_bundle_objects(bundle)) if "observable" in r.data)
        database = Path(temporary) / "baseline.sqlite"
        start = time.perf_counter()
        baseline_database(bundle, database)
        print(f"baseline SQLite file built in {time.perf_counter() - start:.2f} s (not counted)")
        tiops = [sys.executable, "-m", "tiops", "-C", str(root), "query"]
        start, cpu = time.perf_counter(), children_cpu()
        subprocess.run([*tiops, "type = identity", "--format", "ids"], check=True, capture_output=True)
        first_wall, first_cpu = time.perf_counter() - start, children_cpu() - cpu
        print(f"first query, building the kept view: {first_wall:.2f} s, CPU {first_cpu:.2f} s"
              f" ({first_wall / compile_wall:.2f}x the compile's wall time, {first_cpu / compile_cpu:.2f}x its CPU time)")
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
        startup, _, startup_cpu = best_wall([sys.executable, "-m", "tiops", "--version"], args.repeat)
        print(f"\nas processes (tiops query / sqlite3 shell); 'tiops --version' alone takes {startup:.2f} s, CPU {startup_cpu:.2f} s")
        print(f"{'question':50} {'tiops':>7} {'sqlite3':>7} {'ratio':>6}  {'CPU':>6} {'sqlite3':>7} {'ratio':>6}")
        given, _, given_cpu = best_wall([*tiops, questions[0][0], str(bundle), *questions[0][1]], args.repeat)
        print(f"(with the bundle given as an argument, no freshness check of the repository: {given:.2f} s,"
              f" CPU {given_cpu:.2f} s for the first question)")
        for expression, options, sql in questions:
            ours, out, ours_cpu = best_wall([*tiops, expression, *options], args.repeat)
            theirs, their_out, theirs_cpu = best_wall(["sqlite3", str(database), sql], args.repeat)
            ours_count = len(out.splitlines()) - (1 if "--group-by" in options else 0)
            if ours_count != len(their_out.splitlines()):
                raise SystemExit(f"{expression}: tiops gave {ours_count} results, sqlite3 {len(their_out.splitlines())}")
            label = expression + (" " + " ".join(options[:2]) if "--group-by" in options else "")
            print(f"{label[:50]:50} {ours:6.2f}s {theirs:6.2f}s {ours / theirs:5.1f}x  {ours_cpu:5.2f}s {theirs_cpu:6.2f}s"
                  f" {ours_cpu / max(theirs_cpu, 0.001):5.1f}x  ({ours_count} results)")


if __name__ == "__main__":
    main()
