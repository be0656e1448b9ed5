"""Apply locks whose holder is gone: a SQLite store's ``tiops_lock`` row, a remote target's lock file.

A holder is told apart from a later process given its id by the boot and the start (clock ticks
since boot, /proc/PID/stat) it recorded. The tests write what a killed apply would have left and
read the start of processes from /proc themselves, so that they run on a tiops that predates
these rules too (and fail there).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tiops.cli import main
from tiops.stores import LockHeld, StoreError
from tiops.stores.remote import LocalLock
from tiops.stores.sqlite import SqliteStore

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists() or not Path("/proc/sys/kernel/random/boot_id").exists(),
                                reason="a holder's start and boot are read from /proc (Linux)")

HOST = socket.gethostname()


def start_ticks(pid: int) -> int:
    """Field 22 of /proc/PID/stat: the process's start, in clock ticks since boot."""
    return int(Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[19])


def this_boot() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()


def dead_pid() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


@pytest.fixture
def other_process() -> Iterator[int]:
    """A live process that is no apply: the id a killed holder had, handed out again."""
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        yield sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()


# --- SQLite: tiops_lock ---------------------------------------------------------------------------

def made_store(tmp_path: Path) -> Path:
    path = tmp_path / "store.sqlite"
    SqliteStore(path, target="t").close()
    return path


def left_lock(path: Path, pid: int, *, boot: str | None = None, started: int | None = None,
              recorded: bool = True, holder: str = "killed@ci", host: str = HOST) -> None:
    """The ``tiops_lock`` row an apply killed while holding the lock left; ``recorded=False`` is a row of
    a tiops that recorded no boot and start (its table has only the four columns)."""
    with sqlite3.connect(path) as db:
        if recorded:
            columns = {row[1] for row in db.execute("PRAGMA table_info(tiops_lock)")}
            for name, kind in (("boot", "TEXT"), ("started", "INTEGER")):
                if name not in columns:  # as a store a tiops recording them has taken a lock of
                    db.execute(f"ALTER TABLE tiops_lock ADD COLUMN {name} {kind}")
            db.execute("INSERT INTO tiops_lock (target, holder, host, pid, boot, started) VALUES ('t', ?, ?, ?, ?, ?)",
                       (holder, host, pid, boot, started))
        else:
            db.execute("INSERT INTO tiops_lock (target, holder, host, pid) VALUES ('t', ?, ?, ?)", (holder, host, pid))
    db.close()


def lock_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT holder, host, pid FROM tiops_lock").fetchall()
    db.close()
    return rows


def takes_the_lock(path: Path, holder: str = "next@ci") -> None:
    store = SqliteStore(path, target="t")
    try:
        store.acquire_lock(holder)
        assert lock_rows(path) == [(holder, HOST, os.getpid())]
        store.release_lock()
        assert lock_rows(path) == []
    finally:
        store.close()


def test_a_sqlite_lock_naming_this_very_process_from_an_earlier_run_is_taken_over(tmp_path: Path) -> None:
    """In a container apply is PID 1 on every run: the lock a killed run left names the next run's own id."""
    path = made_store(tmp_path)
    left_lock(path, os.getpid(), boot=this_boot(), started=start_ticks(os.getpid()) - 100)
    takes_the_lock(path)


def test_a_sqlite_lock_of_an_older_tiops_naming_this_very_process_is_taken_over(tmp_path: Path) -> None:
    """A row with no start recorded keeps the rule of a live id, but for this process's own id: this process
    records its start, so the row is a killed apply's that had the same id."""
    path = made_store(tmp_path)
    left_lock(path, os.getpid(), recorded=False)
    takes_the_lock(path)


def test_a_sqlite_lock_whose_id_a_later_process_has_is_taken_over(tmp_path: Path, other_process: int) -> None:
    path = made_store(tmp_path)
    left_lock(path, other_process, boot=this_boot(), started=start_ticks(other_process) - 100)
    takes_the_lock(path)


def test_a_sqlite_lock_of_another_boot_is_taken_over(tmp_path: Path, other_process: int) -> None:
    path = made_store(tmp_path)
    left_lock(path, other_process, boot="0b5e55ed-0000-4000-8000-000000000000", started=start_ticks(other_process))
    takes_the_lock(path)


def test_force_unlock_breaks_a_sqlite_lock_whose_id_a_later_process_has(tmp_path: Path, other_process: int) -> None:
    """It refused before, naming the unrelated process to kill (PID 1, init, in a container)."""
    path = made_store(tmp_path)
    left_lock(path, other_process, boot=this_boot(), started=start_ticks(other_process) - 100)
    store = SqliteStore(path, target="t")
    try:
        assert store.force_unlock() == f"killed@ci (pid {other_process} on {HOST})"
    finally:
        store.close()
    assert lock_rows(path) == []


def test_force_unlock_through_the_cli_breaks_a_lock_naming_its_own_process_id(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "tiops.yaml").write_text("default_target: t\ntargets:\n  t:\n    type: sqlite\n    path: store.sqlite\n")
    path = root / "store.sqlite"
    SqliteStore(path, target="t").close()
    left_lock(path, os.getpid(), boot=this_boot(), started=start_ticks(os.getpid()) - 100)
    result = CliRunner().invoke(main, ["-C", str(root), "force-unlock", "--yes"])
    assert result.exit_code == 0, result.output
    assert "released the lock held by killed@ci" in result.output and lock_rows(path) == []


def test_a_sqlite_lock_of_a_running_holder_is_held_and_force_unlock_refuses(tmp_path: Path) -> None:
    """The other side: a holder that runs (another process, its start as recorded) keeps its lock."""
    path = made_store(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from tiops.stores.sqlite import SqliteStore;"
         "s = SqliteStore(Path(sys.argv[1]), target='t'); s.acquire_lock('alice@ci'); print('held', flush=True);"
         "sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        store = SqliteStore(path, target="t")
        try:
            with pytest.raises(LockHeld, match=f"locked by alice@ci \\(pid {holder.pid} on"):
                store.acquire_lock("bob@ci")
            with pytest.raises(StoreError, match="is still running"):
                store.force_unlock()
        finally:
            store.close()
    finally:
        holder.kill()
        holder.wait()
    takes_the_lock(path)  # killed: its lock is a dead process's


def test_an_older_sqlite_lock_row_of_a_live_process_is_still_held(tmp_path: Path, other_process: int) -> None:
    """Without a start recorded, a live id other than this process's cannot be told from the holder."""
    path = made_store(tmp_path)
    left_lock(path, other_process, recorded=False)
    store = SqliteStore(path, target="t")
    try:
        with pytest.raises(LockHeld, match="locked by killed@ci"):
            store.acquire_lock("bob@ci")
    finally:
        store.close()
    assert lock_rows(path) == [("killed@ci", HOST, other_process)]


def test_a_sqlite_store_of_an_older_tiops_gets_the_lock_columns_and_its_dead_holder_is_taken_over(tmp_path: Path) -> None:
    path = made_store(tmp_path)
    left_lock(path, dead_pid(), recorded=False)
    store = SqliteStore(path, target="t")
    try:
        store.acquire_lock("next@ci")
        with sqlite3.connect(path) as db:
            row = db.execute("SELECT holder, pid, boot, started FROM tiops_lock").fetchone()
        db.close()
        assert row == ("next@ci", os.getpid(), this_boot(), start_ticks(os.getpid()))
        store.release_lock()
    finally:
        store.close()
    assert lock_rows(path) == []


def test_a_sqlite_release_leaves_a_lock_taken_over_from_this_process(tmp_path: Path) -> None:
    """A release removes this process's own row only: one another apply wrote since is its lock."""
    path = made_store(tmp_path)
    store = SqliteStore(path, target="t")
    try:
        store.acquire_lock("first@ci")
        with sqlite3.connect(path) as db:  # the next run of a container, with this process's id, took it over
            db.execute("UPDATE tiops_lock SET holder = 'next@ci', started = started + 1")
        db.close()
        store.release_lock()
    finally:
        store.close()
    assert lock_rows(path) == [("next@ci", HOST, os.getpid())]


def _unshare_works() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        return subprocess.run([unshare, "-p", "-f", "--mount-proc", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_AS_PID_1 = """
import os, sys
from pathlib import Path
from tiops.stores.sqlite import SqliteStore
assert os.getpid() == 1
store = SqliteStore(Path(sys.argv[1]), target="t")
if sys.argv[2] == "die-holding":
    store.acquire_lock("container run")
    os._exit(0)  # gone without releasing it, as a killed apply (PID 1 ignores its own SIGKILL)
if sys.argv[2] == "apply":
    store.acquire_lock("next container run")
    store.release_lock()
    print("took the lock")
else:
    print(store.force_unlock())
store.close()
"""


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare(1) and the right to make a PID namespace")
def test_an_apply_run_as_pid_1_takes_over_the_lock_an_earlier_pid_1_left(tmp_path: Path) -> None:
    path = made_store(tmp_path)

    def as_pid_1(action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["unshare", "-p", "-f", "--mount-proc", sys.executable, "-c", _AS_PID_1, str(path), action],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})

    assert as_pid_1("die-holding").returncode == 0
    assert lock_rows(path) == [("container run", HOST, 1)]
    ran = as_pid_1("apply")
    assert ran.returncode == 0 and ran.stdout == "took the lock\n", ran.stderr
    assert as_pid_1("die-holding").returncode == 0
    broken = as_pid_1("force-unlock")
    assert broken.returncode == 0 and broken.stdout == f"container run (pid 1 on {HOST})\n", broken.stderr
    assert lock_rows(path) == []


def test_a_lock_holder_is_told_from_a_later_process_with_its_id(other_process: int) -> None:
    from tiops.stores import Holder, holder_running

    me, boot = os.getpid(), this_boot()
    assert holder_running(Holder("a", HOST, me, boot, start_ticks(me)), records_start=True)
    assert not holder_running(Holder("a", HOST, me, boot, start_ticks(me) - 1), records_start=True)
    assert not holder_running(Holder("a", HOST, me), records_start=True)  # a tiops before: never this process
    assert holder_running(Holder("a", HOST, me), records_start=False)  # PostgreSQL: the plain rule
    assert holder_running(Holder("a", HOST, other_process, boot, start_ticks(other_process)), records_start=True)
    assert holder_running(Holder("a", HOST, other_process), records_start=True)  # no start: a live id holds
    assert not holder_running(Holder("a", HOST, other_process, boot, start_ticks(other_process) + 1), records_start=True)
    assert not holder_running(Holder("a", HOST, other_process, "another boot", start_ticks(other_process)),
                              records_start=True)
    assert not holder_running(Holder("a", HOST, dead_pid(), boot, None), records_start=True)
    assert not holder_running(Holder("a", "elsewhere", me, boot, start_ticks(me)), records_start=True)


# --- remote targets: LocalLock --------------------------------------------------------------------

def lock_file(root: Path, target: str = "feed") -> Path:
    path = root / ".tiops" / "locks" / f"{target}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_a_local_lock_naming_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    lock_file(tmp_path).write_text(json.dumps({"holder": "killed", "host": HOST, "pid": dead_pid()}))
    lock = LocalLock(tmp_path, "feed")
    lock.acquire("me")
    written = json.loads(lock_file(tmp_path).read_text())
    assert (written["holder"], written["pid"]) == ("me", os.getpid())
    lock.release()
    assert not lock_file(tmp_path).exists()
    assert os.listdir(lock_file(tmp_path).parent) == []  # nothing left beside it


def test_a_local_lock_of_an_older_tiops_naming_this_very_process_is_taken_over(tmp_path: Path) -> None:
    lock_file(tmp_path).write_text(json.dumps({"holder": "killed", "host": HOST, "pid": os.getpid()}))
    lock = LocalLock(tmp_path, "feed")
    lock.acquire("me")
    lock.release()


def test_a_local_lock_whose_id_a_later_process_has_is_taken_over_and_force_unlock_breaks_it(
        tmp_path: Path, other_process: int) -> None:
    left = {"holder": "killed", "host": HOST, "pid": other_process, "boot": this_boot(),
            "started": start_ticks(other_process) - 100}
    lock_file(tmp_path).write_text(json.dumps(left))
    assert LocalLock(tmp_path, "feed").force() == "killed"
    assert not lock_file(tmp_path).exists()
    lock_file(tmp_path).write_text(json.dumps(left))
    lock = LocalLock(tmp_path, "feed")
    lock.acquire("me")
    lock.release()


def test_a_local_lock_of_a_live_process_stays_held(tmp_path: Path, other_process: int) -> None:
    """An older tiops's lock (no start recorded, no flock taken) of a process still running keeps it."""
    lock_file(tmp_path).write_text(json.dumps({"holder": "running", "host": HOST, "pid": other_process}))
    with pytest.raises(LockHeld, match=f"locked by running \\(pid {other_process} on"):
        LocalLock(tmp_path, "feed").acquire("me")


def test_an_empty_local_lock_file_is_taken_over_once_it_is_not_being_written(tmp_path: Path) -> None:
    """An apply killed between making the file and writing it left it empty: "locked by unknown" for good."""
    path = lock_file(tmp_path)
    path.write_bytes(b"")
    with pytest.raises(LockHeld, match="locked by unknown"):  # just made: maybe being written
        LocalLock(tmp_path, "feed").acquire("me")
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    lock = LocalLock(tmp_path, "feed")
    lock.acquire("me")
    assert json.loads(path.read_text())["holder"] == "me"
    lock.release()
    path.write_text('{"holder": "torn", "ho')  # torn JSON the same
    os.utime(path, (an_hour_ago, an_hour_ago))
    lock.acquire("me")
    lock.release()


def test_a_local_lock_is_put_in_place_whole_and_a_killed_writers_leftover_goes(tmp_path: Path) -> None:
    leftover = lock_file(tmp_path).with_name(f".feed.lock.0123456789ab.{dead_pid()}.tmp")
    leftover.write_text('{"holder": "killed while writ')
    seen: list[bytes] = []
    real_link = os.link

    def link(source: Any, destination: Any, *args: Any, **kwargs: Any) -> None:
        seen.append(Path(source).read_bytes())  # what appears at the path, in one step
        real_link(source, destination, *args, **kwargs)

    lock = LocalLock(tmp_path, "feed")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "link", link)
        lock.acquire("me")
    assert len(seen) == 1 and json.loads(seen[0])["holder"] == "me"
    assert os.listdir(lock_file(tmp_path).parent) == ["feed.lock"]
    lock.release()


def test_two_applies_finding_one_stale_local_lock_do_not_both_take_it(tmp_path: Path) -> None:
    """The slower one read the stale file, then removed what was at the path: the faster one's new lock."""
    lock_file(tmp_path).write_text(json.dumps({"holder": "killed", "host": HOST, "pid": dead_pid()}))
    slower, faster = LocalLock(tmp_path, "feed"), LocalLock(tmp_path, "feed")
    outcome: dict[str, bool] = {}
    real_read = LocalLock._read

    def read_then_let_the_other_in(self: LocalLock) -> dict[str, Any] | None:
        found = real_read(self)
        if self is slower and "faster" not in outcome:  # descheduled between its read and its next step
            try:
                faster.acquire("faster")
                outcome["faster"] = True
            except LockHeld:
                outcome["faster"] = False
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LocalLock, "_read", read_then_let_the_other_in)
        try:
            slower.acquire("slower")
            outcome["slower"] = True
        except LockHeld:
            outcome["slower"] = False
    assert sorted(outcome.values()) == [False, True], outcome  # exactly one holder
    holder = "slower" if outcome["slower"] else "faster"
    assert json.loads(lock_file(tmp_path).read_text())["holder"] == holder
    (slower if outcome["slower"] else faster).release()
    assert not lock_file(tmp_path).exists()


def _hold_for_a_while(root: str, start: float, holding: Any, taken: Any) -> None:
    import random

    real_read = LocalLock._read

    def slow_read(self: LocalLock) -> dict[str, Any] | None:
        found = real_read(self)
        time.sleep(random.uniform(0, 0.05))  # a loaded machine deschedules a taker at the worst time
        return found

    LocalLock._read = slow_read  # type: ignore[method-assign]
    lock = LocalLock(Path(root), "feed")
    while time.time() < start:
        pass
    try:
        lock.acquire(f"w{os.getpid()}")
    except LockHeld:
        return
    with holding.get_lock():
        holding.value += 1
        overlapping = holding.value > 1
    with taken.get_lock():
        taken.value += 1
    time.sleep(0.3)
    with holding.get_lock():
        holding.value -= 1
    lock.release()
    if overlapping:
        os._exit(3)


def test_many_applies_racing_for_one_stale_local_lock_hold_it_one_at_a_time(tmp_path: Path) -> None:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for _ in range(3):
        lock_file(tmp_path).write_text(json.dumps({"holder": "killed", "host": HOST, "pid": dead_pid()}))
        holding, taken = context.Value("i", 0), context.Value("i", 0)
        start = time.time() + 0.3
        workers = [context.Process(target=_hold_for_a_while, args=(str(tmp_path), start, holding, taken))
                   for _ in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert [worker.exitcode for worker in workers] == [0] * 6  # 3: held while another held it too
        assert taken.value >= 1  # the stale lock was taken over, not refused by every one


def test_a_local_lock_release_leaves_another_applys_lock(tmp_path: Path) -> None:
    first = LocalLock(tmp_path, "feed")
    first.acquire("first")
    lock_file(tmp_path).unlink()  # broken (by hand, or a force-unlock), and taken by the next apply
    second = LocalLock(tmp_path, "feed")
    second.acquire("second")
    first.release()
    assert json.loads(lock_file(tmp_path).read_text())["holder"] == "second"
    with pytest.raises(LockHeld, match="locked by second"):
        LocalLock(tmp_path, "feed").acquire("third")
    second.release()
    assert not lock_file(tmp_path).exists()


def test_force_unlock_of_a_local_lock_refuses_while_its_holder_runs(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from tiops.stores.remote import LocalLock;"
         "LocalLock(Path(sys.argv[1]), 'feed').acquire('alice'); print('held', flush=True); sys.stdin.read()",
         str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(StoreError, match="is still running"):
            LocalLock(tmp_path, "feed").force()
        assert lock_file(tmp_path).exists()
        with pytest.raises(LockHeld, match="locked by alice"):
            LocalLock(tmp_path, "feed").acquire("bob")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = LocalLock(tmp_path, "feed")  # killed: taken over at once (its flock went with it)
    lock.acquire("bob")
    lock.release()


@pytest.mark.parametrize("what", ["dangling link", "link to a file", "named pipe"])
def test_something_else_than_a_lock_file_at_the_lock_path_is_an_error_and_force_unlock_removes_it(
        tmp_path: Path, what: str) -> None:
    path = lock_file(tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if what == "dangling link":
        path.symlink_to(tmp_path / "nowhere")
    elif what == "link to a file":
        (tmp_path / "other").write_text(json.dumps({"holder": "x", "host": HOST, "pid": dead_pid()}))
        path.symlink_to(tmp_path / "other")
    else:
        os.mkfifo(path)
    outcome: list[BaseException] = []

    def take() -> None:
        try:
            LocalLock(tmp_path, "feed").acquire("me")
        except BaseException as error:
            outcome.append(error)

    taker = threading.Thread(target=take, daemon=True)
    taker.start()
    taker.join(10)
    assert not taker.is_alive(), "the take-over looked again for ever"
    assert len(outcome) == 1 and isinstance(outcome[0], StoreError) and "not an apply lock" in str(outcome[0])
    assert LocalLock(tmp_path, "feed").force() == "unknown"
    assert not os.path.lexists(path)
    if what == "link to a file":
        assert (tmp_path / "other").exists()  # the link went, not what it led to
    lock = LocalLock(tmp_path, "feed")
    lock.acquire("me")
    lock.release()


def test_a_local_lock_is_made_in_place_on_a_file_system_without_hard_links(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*_arguments: Any, **_keywords: Any) -> None:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "link", no_links)  # exFAT, SMB without unix extensions
    first = LocalLock(tmp_path, "feed")
    first.acquire("first")
    assert json.loads(lock_file(tmp_path).read_text())["holder"] == "first"
    with pytest.raises(LockHeld, match="locked by first"):
        LocalLock(tmp_path, "feed").acquire("second")
    first.release()
    assert not lock_file(tmp_path).exists()
    lock_file(tmp_path).write_text(json.dumps({"holder": "killed", "host": HOST, "pid": dead_pid()}))
    taker = LocalLock(tmp_path, "feed")
    taker.acquire("taker")  # a dead holder's lock is taken over there too
    assert json.loads(lock_file(tmp_path).read_text())["holder"] == "taker"
    taker.release()
    assert [p.name for p in lock_file(tmp_path).parent.iterdir()] == []


# --- What another tool, or a harness, leaves behind ----------------------------------------------

@pytest.mark.parametrize(("pid", "started"), [("'abc'", "NULL"), ("'12x'", "NULL"), ("'-'", "'zz'")])
def test_a_sqlite_lock_row_whose_pid_is_no_number_is_nobodys(tmp_path: Path, pid: str, started: str) -> None:
    path = made_store(tmp_path)
    left_lock(path, 1)  # the columns, as a store a lock was taken in has them
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM tiops_lock")
        db.execute(f"INSERT INTO tiops_lock (target, holder, host, pid, started) VALUES ('t', 'x', ?, {pid}, {started})",
                   (HOST,))
    db.close()
    takes_the_lock(path)  # was: ValueError, an internal error of every apply and force-unlock


def test_a_killed_holder_its_parent_has_not_reaped_is_gone(tmp_path: Path) -> None:
    """A harness that starts apply and has not waited for it yet keeps a zombie, whose id kill(2) still reaches."""
    from tiops.forkwork import process_alive

    child = subprocess.Popen(["sleep", "120"])
    try:
        os.kill(child.pid, signal.SIGKILL)
        for _ in range(200):
            if start_state(child.pid) == "Z":
                break
            time.sleep(0.01)
        assert start_state(child.pid) == "Z"
        assert not process_alive(child.pid)
        path = made_store(tmp_path)
        left_lock(path, child.pid, boot=this_boot(), started=start_ticks(child.pid))
        takes_the_lock(path)
    finally:
        child.wait()


def start_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return stat.read().rpartition(b")")[2].split()[0].decode()


def test_a_local_lock_file_nested_too_deep_to_parse_is_nobodys(tmp_path: Path) -> None:
    path = lock_file(tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[" * 100_000 + "]" * 100_000)
    os.utime(path, (time.time() - 60, time.time() - 60))  # not a lock being written
    lock = LocalLock(tmp_path, "feed")
    lock.acquire("me")  # was: RecursionError
    lock.release()
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert LocalLock(tmp_path, "feed").force() == "unknown"
    assert not path.exists()


def test_force_unlock_of_a_local_lock_held_by_flock_refuses_whatever_the_file_says(tmp_path: Path) -> None:
    path = lock_file(tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")  # a lock made in place and not yet written, its maker running
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, os; fd = os.open(sys.argv[1], os.O_RDWR);"
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()", str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(StoreError, match="still running"):
            LocalLock(tmp_path, "feed").force()
        assert path.exists()
    finally:
        holder.kill()
        holder.wait()
