"""Time `plan` and `apply` against the SQLite and PostgreSQL stores, as ratios against baselines of the same run.

    python benchmarks/bench_plan_apply.py [--repo DIR | --size 100000] [--stores sqlite postgres] [--repeat 2]

The intel is a generated repository (``--repo``, made by ``generate_repo.py``; without
it one of ``--size`` objects is generated into a temporary folder, not timed). Each
round, on a fresh empty store:

* full compile: ``load_repo`` + ``validate_repo`` + ``compile_bundle``, with the
  cyclic collector paused as ``tiops compile`` runs it;
* plan (all creates), apply, and a re-plan that must find nothing to do. Plan times
  start from the compiled objects (what ``tiops plan`` does after compiling): the
  bundle and object digests, the store's manifest, the comparison. Apply times
  ``apply_plan`` on the plan made (the bundle is ready) to the store's close, where a
  new SQLite store is put on the disk (tiops.stores.sqlite.CreationMark);
* baseline: a plain ``executemany`` of the same objects into a bare table with the
  columns of ``stix_versions`` but no key, in one transaction, timed from the
  objects in memory (each one serialised with ``orjson``, its version and type
  picked out) to the commit and the connection's close.

The commands, as a user runs them (SQLite, skipped with ``--no-commands``): the
repository is copied (``git clone`` when it is a git repository) and ``tiops apply
--auto-approve`` fills its default store, the build cache and the last build's record
(tiops.lastbuild; not timed); each round then times ``tiops compile --no-cache`` and
``tiops plan --detailed-exitcode`` (nothing changed: the plan compares the record with
the store's digests and builds nothing) as fresh processes, by CPU time (user + system,
``os.wait4``).

Printed: re-plan / full compile (the target is 0.3 or less) and apply / baseline (the
target is 2 or less) for each store in the same run, each the best of ``--repeat``
rounds, and the commands' ratio. For SQLite apply / baseline is also printed by CPU
time of this process (SQLite works in it), which the machine's other work does not
move; a PostgreSQL server works in its own processes, so there only wall time is compared. For SQLite also the schema
floor: the same rows as apply writes, built beforehand, written by plain ``executemany``
into a fresh store's own tables (versions, current view, the Sentinel tables, with
their keys and indexes) in one transaction; it says how much of apply / baseline is
the schema's SQL and how much is tiops' own work.

PostgreSQL: ``TIOPS_BENCH_PG_DSN`` names a server (databases ``bench_*`` are made on
it); otherwise a throw-away server is started from /usr/lib/postgresql/*/bin when
installed (as the postgres user when run as root).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tiops.apply import apply_plan
from tiops.compile import compile_bundle, compiled_objects
from tiops.load import load_repo
from tiops.memory import paused_gc
from tiops.plan import BundleDigests, Plan, ids_to_read, make_plan
from tiops.stores import Store, TargetSettings, version_key
from tiops.stores import sentinel_tables as tables
from tiops.stores import sql as shared
from tiops.stores.postgres import PostgresStore
from tiops.stores.sqlite import SqliteStore
from tiops.validate import validate_repo

CHECKOUT = Path(__file__).resolve().parents[1]
AS_OF = "2025-06-01"

BARE_TABLE = ("CREATE TABLE bare (id TEXT, version TEXT, version_sort TEXT, type TEXT, revoked BOOLEAN,"
              " digest TEXT, written_by TEXT, object TEXT)")


@dataclass
class Figures:
    """Best seconds per step over the rounds."""

    compile: float = float("inf")
    plan: float = float("inf")
    apply: float = float("inf")
    replan: float = float("inf")
    baseline: float = float("inf")
    floor: float = float("inf")
    #: CPU seconds of this process (SQLite works in it; a PostgreSQL server's work is not counted).
    apply_cpu: float = float("inf")
    baseline_cpu: float = float("inf")

    def keep_best(self, **seconds: float) -> None:
        for name, value in seconds.items():
            setattr(self, name, min(getattr(self, name), value))


def full_compile(root: Path) -> tuple[float, list[dict[str, Any]]]:
    start = time.perf_counter()
    with paused_gc():  # as tiops compile runs it
        repo = load_repo(root)
        validate_repo(repo)
        compile_bundle(repo)
    seconds = time.perf_counter() - start
    return seconds, compiled_objects(repo)


def timed_plan(store: Store, compiled: list[dict[str, Any]], settings: TargetSettings) -> tuple[Plan, float]:
    start = time.perf_counter()
    with paused_gc():  # as tiops plan reads the target and plans (tiops.apply.Session.plan)
        digests = BundleDigests.of(compiled)
        manifest = store.manifest()
        wanted = ids_to_read(compiled, manifest, settings, digests)
        stored = store.current_objects(wanted) if wanted else {}
        plan = make_plan(compiled, manifest, stored, settings, supports_delete=True, source_commit=None,
                         digests=digests)
    return plan, time.perf_counter() - start


def sync_round(open_target: Callable[[], Store], compiled: list[dict[str, Any]],
               settings: TargetSettings) -> tuple[float, float, float, float]:
    """Seconds for plan, apply, and a second plan that must find nothing to do, and the apply's CPU seconds.

    The apply's figures run to the store's close, as `tiops apply`'s do: a new SQLite store is
    put on the disk then (tiops.stores.sqlite.CreationMark). The second plan opens the store again.
    """
    store = open_target()
    try:
        plan, plan_seconds = timed_plan(store, compiled, settings)
        assert plan.counts["create"] == len(compiled), plan.counts
        start, start_cpu = time.perf_counter(), time.process_time()
        apply_plan(plan, store, batch_size=settings.batch_size)
    finally:
        store.close()
    apply_seconds, apply_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    store = open_target()
    try:
        again, replan_seconds = timed_plan(store, compiled, settings)
    finally:
        store.close()
    assert not again.has_changes and again.unchanged == len(compiled), again.counts
    return plan_seconds, apply_seconds, replan_seconds, apply_cpu


def plain_rows(objects: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What any program storing the objects must do: serialise each and pick its id, version and type."""
    return [
        (obj["id"], version_key(obj), version_key(obj), obj["type"], bool(obj.get("revoked", False)), None, "tiops",
         orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode())
        for obj in objects
    ]


def sqlite_baseline(path: Path) -> Callable[[list[dict[str, Any]]], tuple[float, float]]:
    def insert(objects: list[dict[str, Any]]) -> tuple[float, float]:
        path.unlink(missing_ok=True)
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode=WAL")  # as the store runs it
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(BARE_TABLE)
        db.commit()
        start, start_cpu = time.perf_counter(), time.process_time()
        with db:
            db.executemany("INSERT INTO bare VALUES (?, ?, ?, ?, ?, ?, ?, ?)", plain_rows(objects))
        db.close()  # counted, as the apply's close is
        return time.perf_counter() - start, time.process_time() - start_cpu
    return insert


def sqlite_schema_floor(path: Path) -> Callable[[list[dict[str, Any]]], float]:
    """The SQL alone of an apply: the store's own rows, built beforehand (not timed), written into
    the store's tables (versions, current view, Sentinel tables, with their keys and indexes) by
    plain executemany, in one transaction. What is left of apply / executemany above this is tiops' own work."""
    def insert(objects: list[dict[str, Any]]) -> float:
        path.unlink(missing_ok=True)
        store = SqliteStore(path, target="floor")
        rows = shared.version_rows(objects)
        sentinel = tables.sentinel_rows(objects, None, tables.SQLITE)
        statements = [(shared.INSERT_VERSION, rows), (shared.UPSERT_CURRENT.format(true="1"), rows),
                      *sentinel.statements(tables.SQLITE, set())]
        db = store._db
        start = time.perf_counter()
        db.execute("BEGIN")
        for statement, params in statements:
            if params:
                db.executemany(statement, params)
        db.execute("COMMIT")
        store.close()  # counted, as the apply's close is
        return time.perf_counter() - start
    return insert


def postgres_baseline(dsn: str) -> Callable[[list[dict[str, Any]]], tuple[float, float]]:
    import psycopg

    def insert(objects: list[dict[str, Any]]) -> tuple[float, float]:
        with psycopg.connect(dsn) as db:
            db.execute("DROP TABLE IF EXISTS bare")
            db.execute(BARE_TABLE)
            db.commit()
            start, start_cpu = time.perf_counter(), time.process_time()
            with db.cursor() as cursor:
                cursor.executemany("INSERT INTO bare VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", plain_rows(objects))
            db.commit()
            return time.perf_counter() - start, time.process_time() - start_cpu
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


def generated_repo(size: int, scratch: Path) -> Path:
    root = scratch / "repo"
    subprocess.run([sys.executable, str(Path(__file__).with_name("generate_repo.py")), str(size), str(root)],
                   check=True, capture_output=True)
    return root


@dataclass
class CommandFigures:
    """Best CPU seconds of the two commands over the rounds."""

    compile: float = float("inf")
    replan: float = float("inf")


def command_cpu(command: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> float:
    """CPU seconds (user + system) of ``command`` run to its end, children included."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")]))}
    env.pop("TIOPS_NO_CACHE", None)
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    error = process.stderr.read()  # read while waiting: a full pipe would stall the command
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = code = os.waitstatus_to_exitcode(status)
    if code not in ok:
        raise SystemExit(f"{' '.join(command)} exited {code}: {error.decode(errors='replace')[-2000:]}")
    return usage.ru_utime + usage.ru_stime


def command_copy(source: Path, scratch: Path) -> Path:
    """A working copy of the repository for the commands: they write .tiops/ and dist/ in it."""
    copy = scratch / "commands"
    if (source / ".git").exists():
        subprocess.run(["git", "clone", "-q", str(source), str(copy)], check=True)
    else:
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns(".tiops", "dist"))
    return copy


def command_round(copy: Path, scratch: Path) -> tuple[float, float]:
    """CPU seconds of ``tiops compile --no-cache`` and of a no-change ``tiops plan`` (cache warm)."""
    tiops = [sys.executable, "-m", "tiops", "-C", str(copy)]
    compile_cpu = command_cpu([*tiops, "compile", "--no-cache", "--as-of", AS_OF, "-o", str(scratch / "bundle.json")],
                              scratch)
    # Exit status 2 would be changes found right after apply: a fault, not a figure.
    replan_cpu = command_cpu([*tiops, "plan", "--detailed-exitcode"], scratch)
    return compile_cpu, replan_cpu


def report(kind: str, count: int, figures: Figures) -> str:
    return (
        f"{kind:8} {count:>7} objects  full compile {figures.compile:6.2f}s  plan {figures.plan:6.2f}s  "
        f"apply {figures.apply:6.2f}s  re-plan {figures.replan:6.2f}s  executemany {figures.baseline:6.2f}s\n"
        f"{kind:8} re-plan / full compile = {figures.replan / figures.compile:.2f}  (target <= 0.3)\n"
        f"{kind:8} apply / executemany    = {figures.apply / figures.baseline:.2f}  (target <= 2)"
        + (f"\n{kind:8} apply / executemany, CPU = {figures.apply_cpu / figures.baseline_cpu:.2f}"
           f"  ({figures.apply_cpu:.2f}s / {figures.baseline_cpu:.2f}s; the machine's other work left out)"
           if kind == "sqlite" else "")
        + (f"\n{kind:8} schema floor / executemany = {figures.floor / figures.baseline:.2f}"
           f"  (the same rows into the store's tables; apply / schema floor = {figures.apply / figures.floor:.2f})"
           if kind == "sqlite" else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repo", type=Path, help="a repository made by generate_repo.py (default: generate one)")
    parser.add_argument("--size", type=int, default=100_000, help="objects to generate when --repo is not given")
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-commands", action="store_true", help="skip timing the tiops commands themselves")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tiops-bench-plan-") as scratch_name, postgres_server() as server:
        scratch = Path(scratch_name)
        root = args.repo or generated_repo(args.size, scratch)
        results = {kind: Figures() for kind in args.stores}
        commands = CommandFigures()
        copy = None
        if not args.no_commands and "sqlite" in args.stores:
            copy = command_copy(root, scratch)
            # Fills the default store and the build cache, as the apply before a re-plan would.
            command_cpu([sys.executable, "-m", "tiops", "-C", str(copy), "apply", "--auto-approve"], scratch)
        compiled: list[dict[str, Any]] = []
        for round_number in range(args.repeat):
            if copy is not None:
                compile_cpu, replan_cpu = command_round(copy, scratch)
                print(f"round {round_number + 1} commands: tiops compile --no-cache {compile_cpu:.2f}s CPU  "
                      f"tiops plan (no change) {replan_cpu:.2f}s CPU", file=sys.stderr, flush=True)
                commands.compile, commands.replan = min(commands.compile, compile_cpu), min(commands.replan, replan_cpu)
            for kind in args.stores:
                if kind == "postgres" and server is None:
                    continue
                compile_seconds, compiled = full_compile(root)  # next to each store's figures, in the same round
                settings = TargetSettings.from_config("bench", {"type": kind})  # the batch size tiops apply uses
                open_target: Callable[[], Store]
                if kind == "sqlite":
                    store_path = scratch / f"store-{round_number}.sqlite"
                    open_target = functools.partial(SqliteStore, store_path, target="bench")
                    baseline = sqlite_baseline(scratch / "baseline.sqlite")
                else:
                    assert server is not None
                    dsn = fresh_database(server, f"bench_store_{round_number}")
                    open_target = functools.partial(PostgresStore, dsn, target="bench")
                    baseline = postgres_baseline(fresh_database(server, "bench_baseline"))
                plan_seconds, apply_seconds, replan_seconds, apply_cpu = sync_round(open_target, compiled, settings)
                baseline_seconds, baseline_cpu = baseline(compiled)
                floor_seconds = sqlite_schema_floor(scratch / "floor.sqlite")(compiled) if kind == "sqlite" else 0.0
                print(f"round {round_number + 1} {kind}: full compile {compile_seconds:.2f}s  plan {plan_seconds:.2f}s  "
                      f"apply {apply_seconds:.2f}s ({apply_cpu:.2f}s CPU)  re-plan {replan_seconds:.2f}s  "
                      f"executemany {baseline_seconds:.2f}s ({baseline_cpu:.2f}s CPU)"
                      + (f"  schema floor {floor_seconds:.2f}s" if floor_seconds else ""),
                      file=sys.stderr, flush=True)
                results[kind].keep_best(compile=compile_seconds, plan=plan_seconds, apply=apply_seconds,
                                        replan=replan_seconds, baseline=baseline_seconds, floor=floor_seconds,
                                        apply_cpu=apply_cpu, baseline_cpu=baseline_cpu)
        for kind, figures in results.items():
            if kind == "postgres" and server is None:
                print("postgres: skipped (no server: install postgresql or set TIOPS_BENCH_PG_DSN)")
                continue
            print(report(kind, len(compiled), figures), flush=True)
        if copy is not None:
            print(f"commands `tiops compile --no-cache` {commands.compile:6.2f}s CPU  `tiops plan` (no change, record current)"
                  f" {commands.replan:6.2f}s CPU\n"
                  f"commands re-plan / full compile = {commands.replan / commands.compile:.2f}  (target <= 0.3)",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
