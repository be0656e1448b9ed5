"""plan -> apply against real stores (a SQLite file, a PostgreSQL server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tiops.apply import ApplyIncomplete, Session, StalePlan, apply_plan, open_session
from tiops.cli import main
from tiops.plan import CompiledLines, Plan
from tiops.stores import (
    LockHeld,
    ObjectError,
    PreparedRows,
    Store,
    StoreError,
    TargetSettings,
    TransientStoreError,
    open_store,
)

IDENTITY = "identity--11111111-1111-4111-8111-111111111111"
TargetFactory = Callable[[], dict[str, str]]


def indicator(number: int, description: str = "C2 address", modified: str = "2025-01-01T00:00:00.000Z") -> dict[str, Any]:
    return {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--00000000-0000-4000-8000-{number:012d}",
        "created": "2025-01-01T00:00:00.000Z", "modified": modified, "name": f"C2 {number}",
        "description": description, "pattern": f"[ipv4-addr:value = '10.0.{number // 250}.{number % 250}']",
        "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z", "created_by_ref": IDENTITY,
        "confidence": 70, "labels": ["c2"],
    }


def write_repo(root: Path, target: dict[str, str], objects: Sequence[dict[str, Any]], **settings: Any) -> Path:
    """A repository with one identity and ``objects`` in one list file; the target is named `t`."""
    (root / "intel").mkdir(parents=True, exist_ok=True)
    identity = {"type": "identity", "spec_version": "2.1", "id": IDENTITY, "name": "Contoso TI",
                "identity_class": "organization", "created": "2025-01-01T00:00:00.000Z",
                "modified": "2025-01-01T00:00:00.000Z"}
    (root / "intel" / "objects.yaml").write_text(json.dumps([identity, *objects]), encoding="utf-8")
    config = {"default_target": "t", "targets": {"t": {**target, **settings}}}
    (root / "tiops.yaml").write_text(json.dumps(config), encoding="utf-8")
    return root


def make_plan(root: Path) -> Plan:
    session = open_session(root)
    try:
        return session.plan()
    finally:
        session.close()


def plans_with_and_without_cache(root: Path) -> tuple[Plan, Plan, Session, Session]:
    """The plan through the build cache, the plan without it, and the two (closed) sessions."""
    plans: list[Plan] = []
    sessions = [open_session(root), open_session(root, cache=False)]
    for session in sessions:
        try:
            plans.append(session.plan())
        finally:
            session.close()
    return plans[0], plans[1], sessions[0], sessions[1]


def apply(root: Path, plan: Plan | None = None, **options: Any) -> Plan:
    session = open_session(root)
    try:
        plan = plan or session.plan()
        apply_plan(plan, session.store, bundle_digest=session.bundle_digest, **options)
        return plan
    finally:
        session.close()


def versions(root: Path, target: dict[str, str]) -> list[tuple[str, str, bool]]:
    store = open_store("t", target, root, create=False)  # read as a plan reads: a store not made yet is not made
    try:
        if getattr(store, "_empty", False):  # a PostgreSQL database without the tables, read as a plan reads it
            return []
        database = getattr(store, "_db", None) or store._data()  # type: ignore[attr-defined]
        rows = database.execute("SELECT id, version, revoked FROM stix_versions ORDER BY id, version").fetchall()
        return [(row[0], row[1], bool(row[2])) for row in rows]
    finally:
        store.close()


def test_plan_apply_plan_has_no_changes(tmp_path: Path, store_target: TargetFactory) -> None:
    root = write_repo(tmp_path / "repo", store_target(), [indicator(n) for n in range(5)])
    first = make_plan(root)
    assert first.counts["create"] == 6 and first.counts["unchanged"] == 0
    apply(root)
    second = make_plan(root)
    assert not second.has_changes and second.counts["unchanged"] == 6
    assert len(versions(root, store_target())) == 6


_STORE_TABLES = ("stix_versions", "stix_current", "tiops_threat_intel_indicators", "tiops_threat_intel_objects",
                 "tiops_indicator_legacy")


def _store_rows(root: Path, target: dict[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the store's own tables, in one order."""
    store = open_store("t", target, root, create=False)
    try:
        if getattr(store, "_empty", False):  # a PostgreSQL database without the tables, read as a plan reads it
            return []
        database = getattr(store, "_db", None) or store._data()  # type: ignore[attr-defined]
        return {table: sorted((tuple(row) for row in database.execute(f"SELECT * FROM {table}").fetchall()), key=repr)
                for table in _STORE_TABLES}
    finally:
        store.close()


def test_rows_a_helper_builds_ahead_are_the_rows_one_process_writes(tmp_path: Path, store_target: TargetFactory,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tiops import forkwork

    if not forkwork.can_fork():
        pytest.skip("needs fork, two CPUs and no other thread")
    target = store_target()
    objects = [indicator(n) for n in range(95)] + [
        {"type": "threat-actor", "spec_version": "2.1", "id": f"threat-actor--00000000-0000-4000-8000-{n:012d}",
         "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "name": f"Actor {n}",
         "labels": ["apt"], "created_by_ref": IDENTITY} for n in range(12)]
    root = write_repo(tmp_path / "repo", target, objects)
    real_run_ahead = forkwork.run_ahead
    rows: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for helper in ("1", "0"):  # TIOPS_LOAD_FORK: a helper always, never
        monkeypatch.setenv("TIOPS_LOAD_FORK", helper)
        runs: list[int] = []

        def counted(count: int, *rest: Any, runs: list[int] = runs) -> None:
            runs.append(count)
            real_run_ahead(count, *rest)

        monkeypatch.setattr(forkwork, "run_ahead", counted)
        assert apply(root, batch_size=10).counts["create"] == 108
        assert runs == ([11] if helper == "1" else [])  # 108 versions in batches of 10
        rows[helper] = _store_rows(root, target)
        store = open_store("t", target, root)
        try:  # emptied for the next apply, which then writes every object again
            store.delete_objects([stix_id for stix_id, _version, _revoked in versions(root, target)])
        finally:
            store.close()
    assert rows["1"] == rows["0"]
    assert len(rows["1"]["stix_current"]) == 108 and len(rows["1"]["tiops_threat_intel_indicators"]) == 95


def test_a_changed_object_becomes_a_new_version(tmp_path: Path, store_target: TargetFactory) -> None:
    target = store_target()
    root = write_repo(tmp_path / "repo", target, [indicator(1)])
    apply(root)
    # Content changed without moving `modified` (as an ingestion rule does): stored + 1 ms.
    write_repo(root, target, [indicator(1, description="Now a sinkhole")])
    plan = make_plan(root)
    [change] = plan.changes
    assert change.action == "update"
    assert change.compiled_modified == "2025-01-01T00:00:00.000Z"
    assert change.effective_modified == "2025-01-01T00:00:00.001Z"
    assert [(f.op, f.path, f.new) for f in change.fields] == [
        ("~", "description", "Now a sinkhole"), ("~", "modified", "2025-01-01T00:00:00.001Z")]
    apply(root, plan)
    assert not make_plan(root).has_changes
    ids = [row for row in versions(root, target) if row[0] == change.id]
    assert [row[1] for row in ids] == ["2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00.001Z"]
    # The author moves `modified` forward: that exact timestamp is used.
    write_repo(root, target, [indicator(1, description="Again", modified="2025-02-01T00:00:00.000Z")])
    [change] = make_plan(root).changes
    assert change.effective_modified == "2025-02-01T00:00:00.000Z"


def test_a_removed_object_is_revoked_behind_the_safety_gate(tmp_path: Path, store_target: TargetFactory) -> None:
    target = store_target()
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(3)])
    apply(root)
    write_repo(root, target, [indicator(0), indicator(1)])
    plan = make_plan(root)
    [change] = plan.changes
    assert (change.action, change.effective_modified) == ("revoke", "2025-01-01T00:00:00.001Z")
    assert change.object is not None and change.object["revoked"] is True
    with pytest.raises(Exception, match="more than the 20% allowed"):
        apply(root, plan)  # 1 of 4 managed objects is 25%
    apply(root, plan, force=True)
    assert (change.id, "2025-01-01T00:00:00.001Z", True) in versions(root, target)
    assert not make_plan(root).has_changes


def test_on_remove_delete_deletes(tmp_path: Path, store_target: TargetFactory) -> None:
    target = store_target()
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(3)], on_remove="delete")
    apply(root)
    write_repo(root, target, [indicator(0), indicator(1)], on_remove="delete")
    [change] = make_plan(root).changes
    assert change.action == "delete"
    apply(root, force=True)
    assert change.id not in {row[0] for row in versions(root, target)}


def test_a_stale_saved_plan_is_refused(tmp_path: Path, store_target: TargetFactory) -> None:
    target = store_target()
    root = write_repo(tmp_path / "repo", target, [indicator(1)])
    saved = make_plan(root)
    write_repo(root, target, [indicator(1), indicator(2)])
    apply(root)  # someone else changes the target after the plan was saved
    write_repo(root, target, [indicator(1)])
    with pytest.raises(StalePlan, match="changed since the plan was made"):
        apply(root, saved)
    plan = Plan.from_json(make_plan(root).to_json())
    write_repo(root, target, [indicator(1, description="edited after planning")])
    with pytest.raises(StalePlan, match="other content"):
        apply(root, plan)


class AfterBatches:
    """A store that does ``then()`` before each batch once ``batches`` batches have been written
    (through write_versions, or write_prepared for the SQL stores: tiops.stores.PreparesRows)."""

    def __init__(self, store: Store, batches: int, then: Callable[[], None]) -> None:
        self._store, self._left, self._then = store, batches, then
        self.supports_delete = store.supports_delete

    def write_versions(self, objects: Sequence[dict[str, Any]], digests: Sequence[str] | None = None) -> list[ObjectError]:
        self._batch()
        return self._store.write_versions(objects, digests)

    def write_prepared(self, objects: Sequence[dict[str, Any]], prepared: PreparedRows) -> list[ObjectError]:
        self._batch()
        return self._store.write_prepared(objects, prepared)  # type: ignore[attr-defined,no-any-return]

    def _batch(self) -> None:
        if self._left == 0:
            self._then()
        self._left -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def failing_after(store: Store, batches: int, error: Exception) -> AfterBatches:
    """A store that fails (like a dropped connection) after ``batches`` successful batches."""
    def fail() -> None:
        raise error

    return AfterBatches(store, batches, fail)


def test_an_interrupted_apply_converges_when_rerun(tmp_path: Path, store_target: TargetFactory) -> None:
    target = store_target()
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(30)])
    plan = Plan.from_json(make_plan(root).to_json())
    session = open_session(root)
    sleeps: list[float] = []
    failing = failing_after(session.store, 2, TransientStoreError("connection dropped", retry_after=7))
    with pytest.raises(Exception, match="gave up after 2 retries"):
        apply_plan(plan, failing, batch_size=10, max_retries=2, sleep=sleeps.append)  # type: ignore[arg-type]
    session.close()
    assert sleeps == [7, 7]  # Retry-After wins over the backoff
    assert len(versions(root, target)) == 20
    apply(root, plan, batch_size=10)  # the same saved plan is still current: its own changes do not make it stale
    rows = versions(root, target)
    assert len(rows) == len(set(rows)) == 31
    assert not make_plan(root).has_changes


def test_two_applies_do_not_interleave(tmp_path: Path, store_target: TargetFactory) -> None:
    target = store_target()
    root = write_repo(tmp_path / "repo", target, [indicator(1)])
    first = open_store("t", target, root)
    first.acquire_lock("alice@ci")
    try:
        with pytest.raises(LockHeld, match="locked by alice@ci"):
            apply(root)
    finally:
        first.release_lock()
        first.close()
    apply(root)
    assert not make_plan(root).has_changes


def test_drift_is_reported_and_overwritten(tmp_path: Path, store_target: TargetFactory) -> None:
    target = store_target()
    root = write_repo(tmp_path / "repo", target, [indicator(1), indicator(2)])
    apply(root)
    store = open_store("t", target, root)
    database = getattr(store, "_db", None) or store._data()  # type: ignore[attr-defined]
    tampered = {**indicator(1, description="edited by hand"), "modified": "2025-03-01T00:00:00.000Z"}
    # Another tool writes a version and marks it current, without a digest.
    database.execute(
        "UPDATE stix_current SET version = '2025-03-01T00:00:00.000Z', version_sort = '2025-03-01T00:00:00.000000000',"
        " digest = NULL, written_by = 'external', object = " + ("?" if target["type"] == "sqlite" else "%s")
        + " WHERE id = " + ("?" if target["type"] == "sqlite" else "%s"),
        (json.dumps(tampered), tampered["id"]),
    )
    store.close()
    result = CliRunner().invoke(main, ["-C", str(root), "plan", "--refresh-only", "--detailed-exitcode"])
    assert result.exit_code == 2, result.output
    assert "drift: changed outside git" in result.output and "1 object(s) drifted" in result.output
    saved = root / "drift.json"
    assert CliRunner().invoke(main, ["-C", str(root), "plan", "--refresh-only", "-o", str(saved)]).exit_code == 0
    refused = CliRunner().invoke(main, ["-C", str(root), "apply", str(saved)])
    assert refused.exit_code == 2 and "made by 'tiops plan --refresh-only'" in refused.output, refused.output
    [change] = make_plan(root).changes
    assert change.drift and change.effective_modified == "2025-03-01T00:00:00.001Z"
    apply(root)
    assert not make_plan(root).has_changes


def test_cli_plan_saves_and_apply_applies_exactly_that(tmp_path: Path, store_target: TargetFactory) -> None:
    root = write_repo(tmp_path / "repo", store_target(), [indicator(1)])
    runner = CliRunner()
    result = runner.invoke(main, ["-C", str(root), "plan", "-o", str(tmp_path / "plan.json"), "--detailed-exitcode"])
    assert result.exit_code == 2, result.output
    assert "2 to create" in result.output
    text = (tmp_path / "plan.json").read_text()
    assert "TIOPS_TEST_STORE_DSN" not in text and "postgresql://" not in text
    result = runner.invoke(main, ["-C", str(root), "apply", str(tmp_path / "plan.json")])
    assert result.exit_code == 0, result.output
    assert "2 version(s) written" in result.output
    result = runner.invoke(main, ["-C", str(root), "apply", str(tmp_path / "plan.json")])
    assert result.exit_code == 0 and "already present" in result.output
    result = runner.invoke(main, ["-C", str(root), "plan", "--detailed-exitcode"])
    assert result.exit_code == 0 and "no changes" in result.output


@pytest.mark.parametrize("helper", ["0", "1"], ids=["alone", "rows-built-ahead"])
def test_a_killed_apply_converges_when_rerun(tmp_path: Path, store_target: TargetFactory, helper: str) -> None:
    target = store_target()
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(200)], batch_size=20)
    # TIOPS_LOAD_FORK=1: a helper builds the batches' rows ahead (tiops.apply._write_in_batches) and dies with the apply.
    kill_apply_midway(root, lambda: len(versions(root, target)), env={"TIOPS_LOAD_FORK": helper})
    written = len(versions(root, target))
    assert 20 <= written < 201
    # A SQLite store made by the killed apply is still marked as being made (tiops.stores.sqlite.CreationMark):
    # the rerun finds its maker gone on this boot and keeps what it committed.
    mark = Path(target["path"] + ".creating") if target["type"] == "sqlite" else None
    assert mark is None or mark.exists()
    rerun = rerun_apply(root)
    assert rerun.returncode == 0, rerun.stderr
    assert mark is None or not mark.exists()
    assert f"{201 - written} to create" in rerun.stdout and f"{written} unchanged" in rerun.stdout, rerun.stdout
    rows = versions(root, target)
    assert len(rows) == len(set(rows)) == 201
    assert {row[0] for row in rows} == {o["id"] for o in make_plan_objects(root)}
    assert not make_plan(root).has_changes


def kill_apply_midway(root: Path, written: Callable[[], int], *, at_least: int = 20,
                      env: dict[str, str] | None = None) -> None:
    """Run `tiops apply` as a process, paused between batches, and kill -9 it once
    ``written()`` reports at least ``at_least`` versions in the store."""
    env = {**os.environ, "TIOPS_APPLY_BATCH_PAUSE": "0.3", **(env or {})}
    process = subprocess.Popen(_apply_command(root), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while process.poll() is None and written() < at_least:
            time.sleep(0.05)
        assert process.poll() is None, "the apply finished before it could be interrupted"
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def rerun_apply(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_apply_command(root), capture_output=True, text=True)


def _apply_command(root: Path) -> list[str]:
    return [sys.executable, "-m", "tiops", "-C", str(root), "apply", "--auto-approve"]


def make_plan_objects(root: Path) -> list[dict[str, Any]]:
    session = open_session(root)
    session.close()
    return session.compiled


def test_the_plan_records_the_source_commit(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", {"type": "sqlite", "path": "store.sqlite"}, [indicator(1)])
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z"}
    assert make_plan(root).source_commit is None
    for command in (["init", "-q"], ["add", "intel", "tiops.yaml"], ["commit", "-q", "-m", "intel"]):
        subprocess.run(["git", "-C", str(root), *command], env=env, check=True)
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    assert make_plan(root).source_commit == head.stdout.strip()


def test_a_plan_through_a_warm_build_cache_equals_one_without(tmp_path: Path, store_target: TargetFactory) -> None:
    target = store_target()
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(6)])
    (root / "intel" / "more.yaml").write_text(json.dumps([indicator(n) for n in range(6, 12)]), encoding="utf-8")
    cache_folder = root / ".tiops" / "build-cache"
    uncached = open_session(root, cache=False)
    uncached.close()
    assert not cache_folder.exists()  # --no-cache neither reads nor writes the cache
    apply(root)  # through the cache (the default): it is warm from here on
    assert cache_folder.is_dir()
    # Changes in both files: an update, a create, and an object left out (a revoke).
    write_repo(root, target, [indicator(0, description="sinkholed", modified="2025-02-01T00:00:00.000Z"),
                              *(indicator(n) for n in range(1, 5)), indicator(40)])
    warm_plan, cold_plan, warm, cold = plans_with_and_without_cache(root)
    # Through the cache a plan reads its own bundle's lines (tiops.plan.CompiledLines), each the object.
    assert isinstance(warm.compiled, CompiledLines) and not isinstance(cold.compiled, CompiledLines)
    assert list(warm.compiled) == cold.compiled
    assert warm_plan.to_json() == cold_plan.to_json()
    assert (warm_plan.counts["update"], warm_plan.counts["create"], warm_plan.counts["revoke"]) == (1, 1, 1)
    runner = CliRunner()
    with_cache = runner.invoke(main, ["-C", str(root), "plan", "--format", "json"])
    without = runner.invoke(main, ["-C", str(root), "plan", "--format", "json", "--no-cache"])
    assert with_cache.exit_code == without.exit_code == 0, with_cache.output + without.output
    assert with_cache.output == without.output == warm_plan.to_json().decode()
    text_with, text_without = (runner.invoke(main, ["-C", str(root), "plan", *more]) for more in ([], ["--no-cache"]))
    assert text_with.exit_code == text_without.exit_code == 0, text_with.output + text_without.output
    assert text_with.output == text_without.output and "1 to update" in text_with.output


def test_sqlite_targets_write_larger_batches_unless_told_otherwise() -> None:
    assert TargetSettings.from_config("t", {"type": "sqlite"}).batch_size == 5000
    assert TargetSettings.from_config("t", {"type": "sqlite", "batch_size": 20}).batch_size == 20
    # Remote stores keep requests small (a TAXII server's or Sentinel's size limits).
    for kind in ("postgres", "taxii", "sentinel"):
        assert TargetSettings.from_config("t", {"type": kind}).batch_size == 500


@pytest.mark.parametrize("where", ["a-folder", "a-file.txt", "a-file.txt/store.sqlite", "/dev/null"])
def test_a_sqlite_path_that_cannot_be_a_store_is_a_clear_error(tmp_path: Path, where: str) -> None:
    # SQLite's own errors (a folder, another kind of file, a device) were internal errors.
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file.txt").write_text("not a database\n", encoding="utf-8")
    path = where if where.startswith("/") else str(tmp_path / where)
    root = write_repo(tmp_path / "repo", {"type": "sqlite", "path": path}, [indicator(1)])
    result = CliRunner().invoke(main, ["-C", str(root), "apply", "--auto-approve"])
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output and "target 't': the SQLite store" in result.output
    assert "names a SQLite file tiops can create and write" in result.output
    assert (tmp_path / "a-file.txt").read_text(encoding="utf-8") == "not a database\n"


def _expiring_repo(tmp_path: Path, objects: Sequence[dict[str, Any]]) -> tuple[Path, Callable[[], list[tuple[int]]]]:
    """A git repository of ``objects`` committed on 2025-05-01, with the default SQLite store, and
    a reading of its indicators' IsActive in id order."""
    import sqlite3

    from pr_repo import git

    root = write_repo(tmp_path / "repo", {"type": "sqlite", "path": ".tiops/store.sqlite"}, objects)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "intel", date="2025-05-01T00:00:00+00:00")

    def is_active() -> list[tuple[int]]:
        with sqlite3.connect(root / ".tiops" / "store.sqlite") as db:
            return db.execute("SELECT IsActive FROM ThreatIntelIndicators ORDER BY Id").fetchall()

    return root, is_active


def test_an_apply_with_no_changes_still_brings_is_active_to_the_new_as_of_time(tmp_path: Path) -> None:
    from pr_repo import git

    root, is_active = _expiring_repo(tmp_path, [{**indicator(1), "valid_until": "2025-06-01T00:00:00Z"}])
    assert CliRunner().invoke(main, ["-C", str(root), "apply", "--auto-approve"]).exit_code == 0
    assert is_active() == [(1,)]
    git(root, "commit", "-q", "--allow-empty", "-m", "later", date="2025-07-01T00:00:00+00:00")
    again = CliRunner().invoke(main, ["-C", str(root), "apply", "--auto-approve"])
    assert again.exit_code == 0 and "no changes" in again.output, again.output
    assert is_active() == [(0,)]  # expired at the new HEAD's time, though no object changed


def test_a_full_disk_stops_the_apply_at_once_naming_the_target(tmp_path: Path) -> None:
    """SQLITE_FULL is not a busy database: tried again it stays full (it was retried for 36 s, then
    named only the path). The store is left as it was, and a rerun with room converges."""
    target = {"type": "sqlite", "path": str(tmp_path / "store.sqlite")}
    root = write_repo(tmp_path / "repo", target, [indicator(n, description="x" * 3000) for n in range(300)])
    session = open_session(root)
    try:
        plan = session.plan()
        store = session.store
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]  # type: ignore[attr-defined]
        store._db.execute(f"PRAGMA max_page_count = {pages + 40}")  # type: ignore[attr-defined]  # the disk, nearly full
        sleeps: list[float] = []
        with pytest.raises(StoreError) as failed:
            apply_plan(plan, store, bundle_digest=session.bundle_digest, batch_size=100, sleep=sleeps.append)
        assert not isinstance(failed.value, TransientStoreError) and sleeps == []
        assert "target 't': the SQLite store" in failed.value.message and "full" in failed.value.message
        assert failed.value.hint and "disk with room" in failed.value.hint
    finally:
        session.close()
    apply(root)  # room again: the rerun converges
    assert not make_plan(root).has_changes


def test_a_refused_saved_plan_leaves_the_store_as_it_was_is_active_too(tmp_path: Path) -> None:
    from pr_repo import git

    root, is_active = _expiring_repo(tmp_path, [{**indicator(1), "valid_until": "2025-06-01T00:00:00Z"}, indicator(2)])
    assert CliRunner().invoke(main, ["-C", str(root), "apply", "--auto-approve"]).exit_code == 0
    assert is_active() == [(1,), (1,)]
    objects = json.loads((root / "intel" / "objects.yaml").read_text(encoding="utf-8"))
    objects[2]["confidence"] = 80
    (root / "intel" / "objects.yaml").write_text(json.dumps(objects), encoding="utf-8")
    git(root, "commit", "-q", "-am", "later", date="2025-07-01T00:00:00+00:00")  # indicator 1 expired by now
    assert CliRunner().invoke(main, ["-C", str(root), "plan", "-o", str(tmp_path / "plan.json")]).exit_code == 0
    saved = tmp_path / "plan.json"
    saved.write_text(saved.read_text(encoding="utf-8").replace('"confidence": 80', '"confidence": 81'), encoding="utf-8")
    refused = CliRunner().invoke(main, ["-C", str(root), "apply", str(saved)])
    assert refused.exit_code != 0 and "changed after it was made" in refused.output, refused.output
    assert is_active() == [(1,), (1,)]  # a refused plan writes nothing, not even the as-of refresh
    assert CliRunner().invoke(main, ["-C", str(root), "apply", "--auto-approve"]).exit_code == 0
    assert is_active() == [(0,), (1,)]


def test_a_postgres_apply_that_lost_its_lock_stops_before_the_next_batch(tmp_path: Path, postgres_dsn: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    from tiops.stores.postgres import LockLost

    monkeypatch.setenv("TIOPS_TEST_STORE_DSN", postgres_dsn)
    target = {"type": "postgres", "dsn_env": "TIOPS_TEST_STORE_DSN"}
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(30)])
    plan = make_plan(root)
    session = open_session(root)

    def end_the_lock_session() -> None:  # what force-unlock does on PostgreSQL
        with psycopg.connect(postgres_dsn, autocommit=True) as other:
            # Waiting for the session to end, as force-unlock does: without the timeout the signal is
            # only sent, and on a loaded machine the next batch's check could still find the lock held.
            other.execute("SELECT pg_terminate_backend(pid, 10000) FROM pg_locks WHERE locktype = 'advisory' "
                          "AND objsubid = 2")

    try:
        with pytest.raises(LockLost, match="lost its lock"):
            apply_plan(plan, AfterBatches(session.store, 2, end_the_lock_session),  # type: ignore[arg-type]
                       bundle_digest=session.bundle_digest, batch_size=10, sleep=lambda s: None)
    finally:
        session.close()  # its lock session is gone: letting go of the lock is no error either
    assert len(versions(root, target)) == 20  # the two batches before; nothing after the lock was lost
    apply(root, batch_size=10)
    assert not make_plan(root).has_changes


def test_a_nul_character_is_refused_by_name_on_postgres_and_the_rest_written(tmp_path: Path, postgres_dsn: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    monkeypatch.setenv("TIOPS_TEST_STORE_DSN", postgres_dsn)
    target = {"type": "postgres", "dsn_env": "TIOPS_TEST_STORE_DSN"}
    holding = indicator(2, description="before\x00after")
    literal = indicator(3, description="the escape \\u0000 written out")  # text, not the character
    root = write_repo(tmp_path / "repo", target, [indicator(1), holding, literal])
    # PostgreSQL text and JSONB cannot store U+0000: the batch ended as an internal error.
    with pytest.raises(ApplyIncomplete, match="holds the NUL character") as caught:
        apply(root)
    assert [error.stix_id for error in caught.value.errors] == [holding["id"]]
    assert {stix_id for stix_id, _, _ in versions(root, target)} >= {indicator(1)["id"], literal["id"]}
    with psycopg.connect(postgres_dsn) as connection:  # the views' Data column still reads
        assert connection.execute("SELECT count(Data) FROM ThreatIntelIndicators").fetchone()[0] >= 2


def test_two_postgres_targets_naming_one_database_share_its_lock(tmp_path: Path, postgres_dsn: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIOPS_TEST_STORE_DSN", postgres_dsn)
    first = open_store("fast", {"type": "postgres", "dsn_env": "TIOPS_TEST_STORE_DSN"}, tmp_path)
    second = open_store("slow", {"type": "postgres", "dsn_env": "TIOPS_TEST_STORE_DSN"}, tmp_path)
    try:
        first.acquire_lock("alice@ci")
        with pytest.raises(LockHeld, match="alice@ci"):
            second.acquire_lock("bob@ci")
        # Held by a live process of this host (this one): force-unlock refuses to break it.
        with pytest.raises(StoreError, match="is still running"):
            second.force_unlock()
        first.release_lock()
        second.acquire_lock("bob@ci")
        second.release_lock()
    finally:
        first.close()
        second.close()


def test_a_postgres_force_unlock_returns_once_the_lock_is_free(tmp_path: Path, postgres_dsn: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    monkeypatch.setenv("TIOPS_TEST_STORE_DSN", postgres_dsn)
    target = {"type": "postgres", "dsn_env": "TIOPS_TEST_STORE_DSN"}
    for attempt in range(5):
        holder, other = open_store("t", target, tmp_path), open_store("t", target, tmp_path)
        try:
            holder.acquire_lock("alice@ci")
            with psycopg.connect(postgres_dsn, autocommit=True) as admin:  # as if held from a CI runner
                admin.execute("UPDATE tiops_lock SET host = 'runner-7'")
            assert other.force_unlock() is not None
            other.acquire_lock(f"bob@ci {attempt}")  # at once: the session holding it has ended
            other.release_lock()
        finally:
            holder.close()
            other.close()


def test_a_dsn_libpq_cannot_use_is_a_clear_error_without_the_password(tmp_path: Path, postgres_dsn: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIOPS_TEST_STORE_DSN", f"{postgres_dsn}?connect_timeout=abc&password=Pw-s3cret-x")
    root = write_repo(tmp_path / "repo", {"type": "postgres", "dsn_env": "TIOPS_TEST_STORE_DSN"}, [indicator(1)])
    result = CliRunner().invoke(main, ["-C", str(root), "plan"])
    assert result.exit_code == 1 and "internal error" not in result.output, result.output
    assert "cannot use the connection string" in result.output and "Pw-s3cret-x" not in result.output


def test_force_unlock_refuses_to_break_the_lock_of_a_running_apply_on_this_host(tmp_path: Path) -> None:
    target = {"type": "sqlite", "path": str(tmp_path / "store.sqlite")}
    holder = open_store("t", target, tmp_path)
    other = open_store("t", target, tmp_path)
    try:
        holder.acquire_lock("alice@ci")
        with pytest.raises(StoreError, match="still running") as refused:
            other.force_unlock()
        assert refused.value.hint and f"kill {os.getpid()}" in refused.value.hint
        with pytest.raises(LockHeld):
            other.acquire_lock("bob@ci")  # still held
    finally:
        holder.release_lock()
        holder.close()
        other.close()


@pytest.mark.parametrize("state", ["missing", "empty file"])
def test_a_plan_makes_no_sqlite_store_where_none_is(tmp_path: Path, state: str) -> None:
    """'Plan is read-only: it never writes to the target' (docs/plan-apply.md): a mistyped path left a
    new store behind; now the plan is against an empty store, and only apply makes the file."""
    path = tmp_path / "stores" / "store.sqlite"
    if state == "empty file":
        path.parent.mkdir()
        path.touch()
    root = write_repo(tmp_path / "repo", {"type": "sqlite", "path": str(path)}, [indicator(1)])
    planned = CliRunner().invoke(main, ["-C", str(root), "plan"])
    assert planned.exit_code == 0 and "2 to create" in planned.output, planned.output
    assert (not path.parent.exists()) if state == "missing" else path.stat().st_size == 0
    assert CliRunner().invoke(main, ["-C", str(root), "apply", "--auto-approve"]).exit_code == 0
    assert path.stat().st_size > 0 and not make_plan(root).has_changes


def test_what_tiops_keeps_in_dot_tiops_stays_out_of_git_without_a_gitignore(example_repo: Path) -> None:
    """A repository `tiops init` did not make has no .gitignore listing .tiops/: the store, the
    caches and the last build's record must still never show to `git add -A`."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(example_repo), *args], check=True, capture_output=True,
                              text=True).stdout

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "intel")
    assert not (example_repo / ".gitignore").exists()
    runner = CliRunner()
    for args in (["compile", "-o", "dist/bundle.json"], ["apply", "--auto-approve"], ["query", "type = indicator"]):
        result = runner.invoke(main, ["-C", str(example_repo), *args])
        assert result.exit_code == 0, result.output
    assert (example_repo / ".tiops" / "store.sqlite").is_file()
    shown = git("status", "--porcelain", "--untracked-files=all", "--ignored=no").splitlines()
    assert [line for line in shown if ".tiops" in line] == []


@pytest.mark.parametrize("how", ["delete", "delete all", "truncate", "delete from another schema"])
def test_an_object_another_tool_deleted_is_written_again(tmp_path: Path, store_target: TargetFactory, how: str) -> None:
    """Deleting an object's current row, as another tool may, left its Sentinel rows behind: the apply
    that wrote the object again met them (a key of their own), and failed the same way every time."""
    target = store_target()
    if target["type"] == "sqlite" and how in ("truncate", "delete from another schema"):
        pytest.skip("PostgreSQL only: SQLite has no TRUNCATE and no schemas")
    root = write_repo(tmp_path / "repo", target, [indicator(1), indicator(2)])
    apply(root)
    store = open_store("t", target, root)
    database = getattr(store, "_db", None) or store._data()  # type: ignore[attr-defined]
    mark = "?" if target["type"] == "sqlite" else "%s"
    if how == "delete from another schema":  # the trigger works in the store's schema, not the session's
        schema = database.execute("SELECT current_schema()").fetchone()[0]
        database.execute("SET search_path = pg_catalog")
        database.execute(f'DELETE FROM "{schema}".stix_current WHERE id IN (%s, %s)', (IDENTITY, indicator(1)["id"]))
        database.execute(f'SET search_path = "{schema}"')
    elif how == "truncate":
        database.execute("TRUNCATE stix_current, stix_versions")
    for table in ("stix_current", "stix_versions") if how in ("delete", "delete all") else ():
        if how == "delete":
            database.execute(f"DELETE FROM {table} WHERE id IN ({mark}, {mark})", (IDENTITY, indicator(1)["id"]))
        else:
            database.execute(f"DELETE FROM {table}")
    if target["type"] != "sqlite":
        database.commit()
    store.close()
    assert make_plan(root).counts["create"] == (2 if how in ("delete", "delete from another schema") else 3)
    apply(root)
    assert not make_plan(root).has_changes
    store = open_store("t", target, root)
    database = getattr(store, "_db", None) or store._data()  # type: ignore[attr-defined]
    try:
        for view in ("ThreatIntelIndicators", "ThreatIntelObjects", "ThreatIntelligenceIndicator"):
            id_column = "IndicatorId" if view == "ThreatIntelligenceIndicator" else "Id"
            rows = database.execute(f"SELECT {id_column}, COUNT(*) FROM {view} GROUP BY {id_column}").fetchall()
            assert all(count == 1 for _, count in rows), (view, rows)
        assert len(database.execute("SELECT Id FROM ThreatIntelIndicators").fetchall()) == 2
    finally:
        store.close()


def test_a_store_made_before_the_trigger_loses_its_orphan_sentinel_rows_when_opened(
        tmp_path: Path, store_target: TargetFactory) -> None:
    target = store_target()
    root = write_repo(tmp_path / "repo", target, [indicator(1), indicator(2)])
    apply(root)
    store = open_store("t", target, root)
    database = getattr(store, "_db", None) or store._data()  # type: ignore[attr-defined]
    mark = "?" if target["type"] == "sqlite" else "%s"
    if target["type"] == "sqlite":
        database.execute("DROP TRIGGER stix_current_sentinel_rows")
    else:
        database.execute("DROP TRIGGER stix_current_sentinel_rows ON stix_current")
        database.execute("DROP TRIGGER stix_current_sentinel_truncate ON stix_current")
    database.execute(f"DELETE FROM stix_current WHERE id = {mark}", (indicator(1)["id"],))
    orphans = f"SELECT COUNT(*) FROM tiops_threat_intel_indicators WHERE Id = {mark}"
    assert database.execute(orphans, (indicator(1)["id"],)).fetchone()[0] == 1  # left behind, as before the trigger
    if target["type"] != "sqlite":
        database.commit()
    store.close()
    store = open_store("t", target, root)
    database = getattr(store, "_db", None) or store._data()  # type: ignore[attr-defined]
    try:
        assert database.execute(orphans, (indicator(1)["id"],)).fetchone()[0] == 0
        assert database.execute(orphans, (indicator(2)["id"],)).fetchone()[0] == 1
    finally:
        store.close()
    apply(root)
    assert not make_plan(root).has_changes
