"""Work split with a forked helper: the caller sees a plain loop's results, in order."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from tiops import forkwork
from tiops.forkwork import can_fork, run_in_order, second_cpu_idle

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs fork, two CPUs and no other thread")


def _collect(count: int, work: Any, chunk: int = 4) -> tuple[list[tuple[int, Any]], list[int]]:
    used: list[tuple[int, Any]] = []
    progress: list[int] = []
    run_in_order(count, work, lambda index, result: used.append((index, result)), chunk=chunk,
                 on_chunk=progress.append)
    return used, progress


@pytest.mark.parametrize("count", [0, 1, 3, 4, 5, 97])
def test_every_index_is_used_once_in_order_with_its_result(count: int) -> None:
    used, progress = _collect(count, lambda index: {"index": index, "text": f"value {index}", "items": [index, None, 1.5]})
    assert used == [(index, {"index": index, "text": f"value {index}", "items": [index, None, 1.5]})
                    for index in range(count)]
    assert progress == sorted(progress) and (progress[-1:] == [count] if count else progress == [])


def test_the_helper_takes_work_from_the_end() -> None:
    parent = os.getpid()

    def work(index: int) -> int:
        time.sleep(0.002)  # long enough that the helper is running before this process gets far
        return os.getpid()

    used, _ = _collect(400, work)
    workers = [pid for _index, pid in used]
    assert workers[0] == parent and workers[-1] != parent
    # One split point: this process's share first, the helper's after it.
    split = workers.index(workers[-1])
    assert set(workers[:split]) == {parent} and set(workers[split:]) == {workers[-1]}


def test_a_result_marshal_cannot_carry_is_worked_out_again_here() -> None:
    class Result:
        def __init__(self, index: int) -> None:
            self.index, self.pid = index, os.getpid()

    used, _ = _collect(200, Result)
    assert [result.index for _index, result in used] == list(range(200))
    assert {result.pid for _index, result in used} == {os.getpid()}


def test_a_helper_that_dies_leaves_its_work_to_this_process() -> None:
    parent = os.getpid()

    def work(index: int) -> tuple[int, int]:
        if os.getpid() != parent and index < 390:
            os._exit(7)  # the helper dies after its first chunk
        time.sleep(0.001)
        return index, index * index

    used, _ = _collect(400, work)
    assert used == [(index, (index, index * index)) for index in range(400)]


def test_an_error_here_stops_the_helper_and_is_raised() -> None:
    def use(index: int, result: Any) -> None:
        if index == 10:
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        run_in_order(1000, lambda index: index, use, chunk=4)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # the helper was waited for: no child left behind



def test_a_helper_that_hangs_does_not_hold_this_process_up() -> None:
    parent = os.getpid()

    def work(index: int) -> int:
        if os.getpid() != parent and index < 380:
            time.sleep(3600)  # the helper hangs on its second chunk
        time.sleep(0.001)
        return index * 3

    start = time.monotonic()
    used, progress = _collect(400, work, chunk=10)
    assert used == [(index, index * 3) for index in range(400)]
    assert progress[-1] == 400 and time.monotonic() - start < 60
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # the hung helper was stopped and waited for


def test_a_helper_killed_mid_way_loses_nothing() -> None:
    parent = os.getpid()

    def work(index: int) -> list[int]:
        if os.getpid() != parent and index == 350:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.001)
        return [index, -index]

    used, _ = _collect(400, work, chunk=10)
    assert used == [(index, [index, -index]) for index in range(400)]


def test_a_chunk_is_taken_from_one_process_only() -> None:
    """Work that gives another result in each process (a file saved between two reads):
    every index's result comes whole from one process, this one's below the split."""
    parent = os.getpid()

    def work(index: int) -> tuple[int, str]:
        time.sleep(0.0005)
        return index, "here" if os.getpid() == parent else "helper"

    used, _ = _collect(600, work, chunk=8)
    assert [index for index, _result in used] == list(range(600))
    sides = [result[1] for _index, result in used]
    assert all(result[0] == index for index, result in used)
    assert sides[0] == "here" and sides == sorted(sides, key=lambda side: side == "helper")


def test_the_helpers_results_wait_on_disk_not_in_memory() -> None:
    """Every chunk the helper does is used after all of this process's own, so held in
    memory they would all be there at once: they are read back one chunk at a time."""
    parent = os.getpid()
    size = 200_000

    def work(index: int) -> str:
        if os.getpid() == parent:
            time.sleep(0.02)  # slow here, so that the helper does most chunks
        return str(index % 10) * size

    lengths: list[int] = []
    tracemalloc.start()
    try:
        run_in_order(160, work, lambda index, result: lengths.append(len(result)), chunk=4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lengths == [size] * 160
    # The helper's share held at once would be well over 100 similar results (20 MB);
    # a chunk read back is four of them, plus the pipe's read buffer.
    assert peak < 40 * size


def test_no_results_file_is_left_behind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    used, _ = _collect(200, lambda index: [index] * 50)
    assert used == [(index, [index] * 50) for index in range(200)]
    assert list(tmp_path.iterdir()) == []


def test_without_a_place_for_results_the_work_is_done_here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    used, progress = _collect(100, lambda index: (index, os.getpid()))
    assert used == [(index, (index, os.getpid())) for index in range(100)]
    assert progress[-1] == 100


_ORPHAN_SCRIPT = """
import os, sys, time
from tiops.forkwork import run_in_order
parent = os.getpid()
def work(index):
    if os.getpid() != parent:
        with open(sys.argv[1], "w") as out:
            out.write(str(os.getpid()))
        time.sleep(3600)
    time.sleep(0.01)
    return index
print("ready", flush=True)
run_in_order(100000, work, lambda index, result: None, chunk=4)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # dead, waiting to be reaped
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc to tell whether a process lives")
def test_the_helper_dies_with_the_process_that_forked_it(tmp_path: Path) -> None:
    marker = tmp_path / "helper.pid"
    assert _helper_ends_with_its_parent(_ORPHAN_SCRIPT, marker)


def _helper_ends_with_its_parent(script: str, marker: Path, settle: float = 0.0) -> bool:
    """Run ``script`` (its helper writes its pid to ``marker``), kill it with SIGKILL once the helper
    runs (and ``settle`` seconds more), and tell whether the helper ended too."""
    command = subprocess.Popen([sys.executable, "-c", script, str(marker)], stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        helper = int(marker.read_text())
        time.sleep(settle)
        assert not _gone(helper)
    finally:
        command.kill()  # SIGKILL: nothing of the parent's runs, its helper must end anyway
        command.wait()
    deadline = time.monotonic() + 30
    while not _gone(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    orphaned = not _gone(helper)
    if orphaned:
        os.kill(helper, signal.SIGKILL)  # not left behind by a failing test
    return not orphaned


def test_a_helper_is_forked_only_while_a_cpu_is_idle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    loadavg = tmp_path / "loadavg"
    monkeypatch.setattr(forkwork, "_LOADAVG", str(loadavg))
    monkeypatch.setattr(forkwork.os, "sched_getaffinity", lambda pid: {0, 1})
    # The one-minute average says busy, but only this process is runnable now: the load
    # was a command that just ended (a tiops command run right after another).
    monkeypatch.setattr(forkwork.os, "getloadavg", lambda: (1.9, 0.0, 0.0))
    loadavg.write_text("1.90 1.20 0.80 1/345 12345\n")
    assert second_cpu_idle()
    loadavg.write_text("0.10 0.20 0.30 2/345 12345\n")
    assert not second_cpu_idle()  # another task runs on the other CPU now
    monkeypatch.setattr(forkwork.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert second_cpu_idle()
    loadavg.write_text("0.10 0.20 0.30 4/345 12345\n")
    assert not second_cpu_idle()


def test_without_a_count_of_runnable_tasks_the_load_average_decides(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    for text in (None, "not the kernel's format\n"):
        loadavg = tmp_path / "loadavg"
        if text is not None:
            loadavg.write_text(text)
        monkeypatch.setattr(forkwork, "_LOADAVG", str(loadavg))
        monkeypatch.setattr(forkwork.os, "sched_getaffinity", lambda pid: {0, 1})
        monkeypatch.setattr(forkwork.os, "getloadavg", lambda: (0.6, 0.0, 0.0))
        assert second_cpu_idle()
        monkeypatch.setattr(forkwork.os, "getloadavg", lambda: (1.4, 0.0, 0.0))
        assert not second_cpu_idle()  # other work takes more than one of the two CPUs


def test_work_beside_comes_back_with_its_result() -> None:
    parent = os.getpid()
    beside = forkwork.run_beside(lambda: {"pid": os.getpid(), "niceness": os.nice(0), "items": [1, b"two", None]})
    assert beside is not None
    result = beside.result()
    assert result["pid"] != parent and result["items"] == [1, b"two", None]
    assert result["niceness"] == 19  # the lowest priority: it runs on a core nobody else wants
    assert beside.result() is result  # asked again: the same, the child long gone
    with pytest.raises(ChildProcessError):
        os.waitpid(result["pid"], os.WNOHANG)  # reaped


def _raises() -> Any:
    raise RuntimeError("the work failed")


@pytest.mark.parametrize("work", [_raises, lambda: object(), lambda: os._exit(3)],
                         ids=["raises", "not-marshallable", "exits"])
def test_work_beside_that_gives_nothing_usable_is_none(work: Any) -> None:
    beside = forkwork.run_beside(work)
    assert beside is not None
    assert beside.result() is None


def test_work_beside_is_stopped_when_closed() -> None:
    beside = forkwork.run_beside(lambda: time.sleep(60))
    assert beside is not None
    started = time.monotonic()
    beside.close()
    assert time.monotonic() - started < 5
    assert beside.result() is None
    beside.close()  # twice: nothing more to do


def test_this_process_s_own_helper_does_not_make_the_second_cpu_busy() -> None:
    beside = forkwork.run_beside(lambda: [sum(range(10**5)) for _ in range(10**4)])
    assert beside is not None
    try:
        deadline = time.monotonic() + 10
        while forkwork._helpers_running() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert forkwork._helpers_running() == 1
    finally:
        beside.close()
    assert forkwork._helpers_running() == 0 and not forkwork._HELPERS


# run_ahead: the child works from the front, ahead of this process's use of each result.

def _ahead(count: int, work: Any, use: Any = None) -> list[tuple[int, Any]]:
    used: list[tuple[int, Any]] = []

    def record(index: int, result: Any) -> None:
        used.append((index, result))
        if use is not None:
            use(index, result)

    forkwork.run_ahead(count, work, record)
    return used


@pytest.mark.parametrize("count", [0, 1, 2, 5, 97])
def test_ahead_every_index_is_used_once_in_order_with_its_result(count: int) -> None:
    used = _ahead(count, lambda index: {"index": index, "rows": [(index, f"text {index}", None, True, 1.5)]})
    assert used == [(index, {"index": index, "rows": [(index, f"text {index}", None, True, 1.5)]})
                    for index in range(count)]


def test_ahead_the_helper_works_out_what_is_used_later_while_this_process_uses() -> None:
    parent = os.getpid()
    used = _ahead(60, lambda index: os.getpid(), use=lambda index, result: time.sleep(0.01))  # use slower than work
    workers = [pid for _index, pid in used]
    assert workers[-1] != parent  # the helper's
    assert workers.count(parent) < len(workers) // 2  # most taken from it, once it was ahead
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # the helper was waited for


def test_ahead_a_result_marshal_cannot_carry_is_worked_out_again_here() -> None:
    class Result:
        def __init__(self, index: int) -> None:
            self.index, self.pid = index, os.getpid()

    used = _ahead(50, Result, use=lambda index, result: time.sleep(0.002))
    assert [result.index for _index, result in used] == list(range(50))
    assert {result.pid for _index, result in used} == {os.getpid()}


def test_ahead_a_helper_that_dies_or_hangs_leaves_its_work_to_this_process() -> None:
    parent = os.getpid()

    def dies(index: int) -> tuple[int, int]:
        if os.getpid() != parent and index == 5:
            os._exit(7)
        return index, index * index

    def hangs(index: int) -> tuple[int, int]:
        if os.getpid() != parent and index == 5:
            time.sleep(3600)
        return index, index * index

    for work in (dies, hangs):
        started = time.monotonic()
        used = _ahead(40, work, use=lambda index, result: time.sleep(0.005))
        assert used == [(index, (index, index * index)) for index in range(40)]
        assert time.monotonic() - started < 60
        with pytest.raises(ChildProcessError):
            os.waitpid(-1, os.WNOHANG)  # stopped and waited for


def test_ahead_an_error_here_stops_the_helper_and_is_raised() -> None:
    def use(index: int, result: Any) -> None:
        if index == 10:
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        forkwork.run_ahead(1000, lambda index: index, use)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_ahead_without_a_place_for_results_the_work_is_done_here(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    used = _ahead(20, lambda index: (index, os.getpid()))
    assert used == [(index, (index, os.getpid())) for index in range(20)]


def test_room_for_a_copy_compares_the_memory_available_with_this_process_s(monkeypatch: pytest.MonkeyPatch,
                                                                           tmp_path: Path) -> None:
    meminfo, statm = tmp_path / "meminfo", tmp_path / "statm"
    monkeypatch.setattr(forkwork, "_MEMINFO", str(meminfo))
    monkeypatch.setattr(forkwork, "_STATM", str(statm))
    page = os.sysconf("SC_PAGE_SIZE")
    statm.write_text(f"900000 {(512 << 20) // page} 1000 10 0 5000 0\n")  # 512 MiB resident
    meminfo.write_text("MemTotal:        8000000 kB\nMemFree:          100000 kB\nMemAvailable:    600000 kB\n")
    assert forkwork.room_for_a_copy()  # 586 MiB available
    meminfo.write_text("MemTotal:        8000000 kB\nMemFree:          100000 kB\nMemAvailable:    400000 kB\n")
    assert not forkwork.room_for_a_copy()  # 391 MiB: a child that copied half of this process could not fit
    meminfo.write_text("MemTotal:        8000000 kB\n")  # a kernel without MemAvailable: not known, as elsewhere
    assert forkwork.room_for_a_copy()
    monkeypatch.setattr(forkwork, "_STATM", str(tmp_path / "missing"))
    assert forkwork.room_for_a_copy()


def test_ahead_the_helper_stays_a_few_results_ahead(tmp_path: Path) -> None:
    """Its results wait in a file until used: it must not fill the disk (or a tmpfs) with all of them."""
    started = tmp_path / "started"
    parent = os.getpid()
    seen: list[int] = []

    def work(index: int) -> int:
        if os.getpid() != parent:
            with started.open("a") as out:
                out.write(f"{index}\n")
        return index

    def use(index: int, result: int) -> None:
        time.sleep(0.01)  # slower than the work
        marks = started.read_text().split() if started.exists() else []
        seen.append(max((int(mark) for mark in marks), default=-1) - index)

    forkwork.run_ahead(80, work, use)
    assert max(seen) <= forkwork._LEAD  # never more than _LEAD results beyond the one in use
    assert max(seen) >= 2  # and ahead it was


def test_released_ranges_give_their_blocks_back(tmp_path: Path) -> None:
    with (tmp_path / "results").open("w+b") as results:
        results.write(os.urandom(8 << 20))
        results.flush()
        os.fsync(results.fileno())
        before = os.fstat(results.fileno()).st_blocks
        forkwork._release_range(results.fileno(), 0, 6 << 20)
        after = os.fstat(results.fileno())
        if after.st_blocks == before:
            pytest.skip("this file system keeps a file's blocks (no FALLOC_FL_PUNCH_HOLE)")
        assert after.st_size == 8 << 20 and after.st_blocks * 512 <= 3 << 20
        results.seek(0)
        assert results.read(4) == b"\0\0\0\0"  # a released range reads as zeros


_AHEAD_ORPHAN_SCRIPT = """
import os, sys, time
from tiops import forkwork
forkwork._die_with = lambda parent: None  # as where no signal tells a child of its parent's death (macOS)
parent = os.getpid()
def work(index):
    if os.getpid() != parent:
        with open(sys.argv[1], "w") as out:
            out.write(str(os.getpid()))
    return index
forkwork.run_ahead(1000, work, lambda index, result: time.sleep(3600))  # the child waits, far enough ahead
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc to tell whether a process lives")
def test_ahead_a_helper_waiting_far_ahead_ends_when_its_parent_is_gone(tmp_path: Path) -> None:
    """Without prctl's death signal, the waiting child notices a parent gone by itself."""
    marker = tmp_path / "helper.pid"
    assert _helper_ends_with_its_parent(_AHEAD_ORPHAN_SCRIPT, marker, settle=0.2)  # by then it waits, far ahead


@pytest.mark.parametrize("shape", ["ahead", "in order", "beside"])
def test_when_no_child_can_be_forked_the_work_is_done_here(monkeypatch: pytest.MonkeyPatch, shape: str) -> None:
    """fork(2) fails under a process limit, or where a large process's copy may not be overcommitted."""
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(forkwork.os, "fork", no_fork)
    descriptors = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    used: list[tuple[int, Any]] = []
    if shape == "ahead":
        forkwork.run_ahead(30, lambda index: (index, os.getpid()), lambda index, result: used.append((index, result)))
    elif shape == "beside":
        if not forkwork.can_fork():
            pytest.skip("run_beside asks can_fork() before it forks")
        assert forkwork.run_beside(lambda: 1) is None  # the caller does its work itself
        used = [(index, (index, os.getpid())) for index in range(30)]
    else:
        run_in_order(30, lambda index: (index, os.getpid()), lambda index, result: used.append((index, result)), chunk=4)
    assert used == [(index, (index, os.getpid())) for index in range(30)]
    if descriptors is not None:
        assert len(os.listdir("/proc/self/fd")) == descriptors  # the pipe and the results file closed


def test_a_new_process_runs_the_function_and_its_exit_status_is_the_result(capfd: pytest.CaptureFixture[str]) -> None:
    """The function takes the arguments and returns the exit status; nothing it prints reaches this
    process's output (standard output and error go to /dev/null)."""
    done = forkwork.start_in_new_process("operator:not_", ["an", "argument"])  # not_(list) is False: status 0
    assert done is not None and done.pid != os.getpid()
    assert done.result() is True and done.result() is True
    failed = forkwork.start_in_new_process("operator:truth", ["an argument"])  # True: status 1
    assert failed is not None and failed.result() is None
    printed = forkwork.start_in_new_process("builtins:print", ["printed"])  # None: status 0
    assert printed is not None and printed.result() is True
    missing = forkwork.start_in_new_process("tiops.no_such_module:main", [])
    assert missing is not None and missing.result() is None
    out, err = capfd.readouterr()
    assert "printed" not in out and not err


def test_a_new_process_is_stopped_when_closed() -> None:
    started = forkwork.start_in_new_process("operator:not_", [])
    assert started is not None
    os.kill(started.pid, signal.SIGSTOP)  # still at work, whatever the machine's speed
    started.close()
    assert not forkwork.process_alive(started.pid)
    assert started.result() is None  # stopped: no outcome


def test_a_new_process_that_cannot_start_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_: Any, **__: Any) -> Any:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(subprocess, "Popen", refused)
    assert forkwork.start_in_new_process("operator:not_", []) is None


def _ignores_sigint(pid: int) -> bool:
    """Whether SIGINT is among the signals process ``pid`` ignores (SigIgn in /proc/PID/status, proc(5))."""
    with open(f"/proc/{pid}/status") as status:
        ignored = next(int(line.split()[1], 16) for line in status if line.startswith("SigIgn:"))
    return bool(ignored & (1 << (signal.SIGINT - 1)))


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc for the signals a process ignores")
def test_a_new_process_ignores_ctrl_c_which_this_process_answers() -> None:
    """Ctrl-C at a terminal reaches the whole process group: the new process goes on, and this one,
    interrupted, stops it (close)."""
    started = forkwork.start_in_new_process("subprocess:call", ["sleep", "20"])  # call(["sleep", "20"])
    assert started is not None
    try:
        deadline = time.monotonic() + 30
        while not _ignores_sigint(started.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(started.pid, signal.SIGINT)
        time.sleep(0.2)
        assert started._process.poll() is None
    finally:
        started.close()
    assert not forkwork.process_alive(started.pid)


_NEW_PROCESS_ORPHAN_SCRIPT = """
import sys, time
from tiops.forkwork import start_in_new_process
started = start_in_new_process("subprocess:call", ["sleep", "120"])
with open(sys.argv[1], "w") as out:
    out.write(str(started.pid))
time.sleep(3600)
"""


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as children:
            found.extend(map(int, children.read().split()))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc to tell whether a process lives")
def test_a_new_process_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """Whatever ends the command (SIGKILL here: nothing of it runs), its new process ends too, long
    before its own work (a two-minute sleep it waits for) would end it."""
    marker = tmp_path / "helper.pid"
    command = subprocess.Popen([sys.executable, "-c", _NEW_PROCESS_ORPHAN_SCRIPT, str(marker)])
    sleeping: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        helper = int(marker.read_text())
        while not sleeping and time.monotonic() < deadline:  # at its work: the sleep started
            sleeping = _children(helper)
            time.sleep(0.05)
        assert sleeping and not _gone(helper)
        command.kill()
        command.wait()
        deadline = time.monotonic() + 30
        while not _gone(helper) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(helper)
    finally:
        command.kill()
        command.wait()
        for pid in sleeping:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_a_new_process_does_not_import_from_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command runs in the intel repository: a module file there is never imported (python -P)."""
    (tmp_path / "pprint.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    started = forkwork.start_in_new_process("pprint:pprint", ["x"])  # the standard library's: prints, None
    assert started is not None and started.result() is True
    assert not (tmp_path / "imported").exists()


def test_without_a_python_to_start_no_new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", None)
    assert forkwork.start_in_new_process("operator:not_", []) is None
    monkeypatch.setattr(sys, "executable", "")
    assert forkwork.start_in_new_process("operator:not_", []) is None


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads a process's start from /proc")
def test_a_process_start_tells_it_from_a_later_process_and_agrees_with_the_wall_clock_start() -> None:
    """A lock holder is told from a later process given its id by its start (tiops.stores.holder_running)."""
    mine = forkwork.process_start_ticks(os.getpid())
    later = subprocess.Popen(["sleep", "30"])
    try:
        theirs = forkwork.process_start_ticks(later.pid)
        assert mine is not None and theirs is not None and theirs >= mine
        assert forkwork.process_start_ticks(later.pid) == theirs  # the same count every time it is read
        started_ns = forkwork._process_start_ns(later.pid)
        assert started_ns is not None and abs(started_ns - time.time_ns()) < 120_000_000_000
    finally:
        later.kill()
        later.wait()
    assert forkwork.process_start_ticks(later.pid) is None  # gone (and reaped)
    boot = forkwork.boot_id()
    assert boot is not None and boot == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
