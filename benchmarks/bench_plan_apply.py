"""Time `plan` and `apply` against the SQLite and PostgreSQL stores.

    python benchmarks/bench_plan_apply.py [--sizes 10000 100000] [--stores sqlite postgres]

For each size N: N synthetic indicators (generated directly, deterministic),
then on an empty store: plan (all creates), apply, plan again (no changes). The
baseline is a plain ``executemany`` insert of the same version rows into a bare
table in the same run; the apply/baseline ratio is printed beside it.

PostgreSQL: ``TIOPS_BENCH_PG_DSN`` names a server (the database must exist and be
empty); otherwise a throw-away server is started from /usr/lib/postgresql/*/bin
when installed (as the postgres user when run as root).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tiops.apply import apply_plan
from tiops.plan import Plan, ids_to_read, make_plan
from tiops.stores import Store, TargetSettings
from tiops.stores import sql as shared
from tiops.stores.postgres import PostgresStore
from tiops.stores.sqlite import SqliteStore


def objects(count: int) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "type": "indicator", "spec_version": "2.1", "id": f"indicator--00000000-0000-4000-8000-{n:012d}",
                "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z",
                "name": f"C2 {n}", "pattern": f"[ipv4-addr:value = '10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}']",
                "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z", "confidence": 70,
                "indicator_types": ["malicious-activity"], "labels": ["c2"],
            }
            for n in range(count)
        ),
        key=lambda o: o["id"],
    )


def timed_plan(store: Store, compiled: list[dict[str, Any]], settings: TargetSettings) -> tuple[Plan, float]:
    start = time.perf_counter()
    manifest = store.manifest()
    wanted = ids_to_read(compiled, manifest, settings)
    stored = store.current_objects(wanted) if wanted else {}
    plan = make_plan(compiled, manifest, stored, settings, supports_delete=True, source_commit=None)
    return plan, time.perf_counter() - start


def sync_round(store: Store, compiled: list[dict[str, Any]], settings: TargetSettings) -> tuple[float, float, float]:
    """Seconds for plan, apply, and a second plan that must find nothing to do."""
    plan, plan_seconds = timed_plan(store, compiled, settings)
    start = time.perf_counter()
    apply_plan(plan, store, batch_size=settings.batch_size)
    apply_seconds = time.perf_counter() - start
    again, replan_seconds = timed_plan(store, compiled, settings)
    assert not again.has_changes
    return plan_seconds, apply_seconds, replan_seconds


def run(kind: str, store: Store, baseline: Any, compiled: list[dict[str, Any]]) -> None:
    settings = TargetSettings("bench", kind)
    plan_seconds, apply_seconds, replan_seconds = sync_round(store, compiled, settings)
    baseline_seconds = baseline(shared.version_rows(compiled))
    print(f"{kind:8} {len(compiled):>7}  plan {plan_seconds:6.2f}s  apply {apply_seconds:6.2f}s  "
          f"re-plan {replan_seconds:6.2f}s  baseline insert {baseline_seconds:6.2f}s  "
          f"apply/baseline {apply_seconds / baseline_seconds:5.1f}x", flush=True)


def sqlite_baseline(path: Path) -> Any:
    def insert(rows: list[tuple[Any, ...]]) -> float:
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE bare (id, version, version_sort, type, revoked, digest, written_by, object)")
        start = time.perf_counter()
        with db:
            db.executemany("INSERT INTO bare VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        seconds = time.perf_counter() - start
        db.close()
        return seconds
    return insert


def postgres_baseline(dsn: str) -> Any:
    import psycopg

    def insert(rows: list[tuple[Any, ...]]) -> float:
        with psycopg.connect(dsn) as db:
            db.execute("CREATE TABLE bare (id TEXT, version TEXT, version_sort TEXT, type TEXT, revoked BOOLEAN,"
                       " digest TEXT, written_by TEXT, object TEXT)")
            db.commit()
            start = time.perf_counter()
            with db.cursor() as cursor:
                cursor.executemany("INSERT INTO bare VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)
            db.commit()
            return time.perf_counter() - start
    return insert


@contextlib.contextmanager
def postgres_server() -> Iterator[str | None]:
    existing = os.environ.get("TIOPS_BENCH_PG_DSN")
    if existing:
        yield existing.rstrip("/")
        return
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        yield None
        return
    bin_dir = Path(binaries[-1]).parent
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    workdir = Path(tempfile.mkdtemp(prefix="tiops-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = workdir / "data"
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(workdir / "log"), "-w", "-o",
                    f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


def fresh_database(server: str, name: str) -> str:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name}")
        db.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, postgres_server() as server:
        for size in args.sizes:
            compiled = objects(size)
            if "sqlite" in args.stores:
                store = SqliteStore(Path(scratch) / f"store-{size}.sqlite", target="bench")
                run("sqlite", store, sqlite_baseline(Path(scratch) / f"baseline-{size}.sqlite"), compiled)
                store.close()
            if "postgres" in args.stores:
                if server is None:
                    print("postgres: skipped (no server: install postgresql or set TIOPS_BENCH_PG_DSN)")
                    continue
                pg_store = PostgresStore(fresh_database(server, f"bench_{size}"), target="bench")
                run("postgres", pg_store, postgres_baseline(fresh_database(server, f"baseline_{size}")), compiled)
                pg_store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
