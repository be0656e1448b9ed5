"""tiops.outputs: a file is replaced whole or not at all; a stream is written in place."""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from full_disk import fill_up_writing

from tiops import forkwork, outputs
from tiops.outputs import create_whole, names_stream, replace_whole, write_whole


def _beside(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_file_is_replaced_by_a_new_one_keeping_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    target.write_bytes(b"old\n")
    # 0666 exactly too: a mode os.open would otherwise pass through the umask (0644).
    for mode in (0o640, 0o666):
        os.chmod(target, mode)
        before = target.stat().st_ino
        previous = os.umask(0o022)
        try:
            replace_whole(target, b"new\n")
        finally:
            os.umask(previous)
        assert target.read_bytes() == b"new\n"
        assert target.stat().st_ino != before  # renamed into place, not written over
        assert stat.S_IMODE(target.stat().st_mode) == mode
    assert _beside(tmp_path) == []


def test_a_new_file_gets_the_mode_open_gives_it(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        replace_whole(tmp_path / "new.json", b"{}\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o640


def test_a_write_cut_short_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "plan.json"
    target.write_bytes(b"old\n")
    fill_up_writing(monkeypatch, "plan.json")
    with pytest.raises(OSError) as raised:
        write_whole(target, b"a new plan, too long for the disk\n")
    assert raised.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old\n" and _beside(tmp_path) == []


def test_ctrl_c_while_writing_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "build.json"
    target.write_bytes(b"old\n")
    real_write = os.write

    def interrupted(descriptor: int, data: bytes) -> int:
        real_write(descriptor, bytes(data[:3]))
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        replace_whole(target, b"the new record\n")
    monkeypatch.undo()
    assert target.read_bytes() == b"old\n" and _beside(tmp_path) == []


def test_a_link_is_written_through_and_stays(tmp_path: Path) -> None:
    real = tmp_path / "published" / "plan.json"
    real.parent.mkdir()
    real.write_bytes(b"old\n")
    link = tmp_path / "plan.json"
    link.symlink_to(real)
    write_whole(link, b"new\n")
    assert link.is_symlink() and real.read_bytes() == b"new\n"
    assert _beside(tmp_path) == [] and _beside(real.parent) == []


def test_a_link_where_the_file_beside_goes_is_neither_followed_nor_removed(tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    target.write_bytes(b"old\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"not tiops's\n")
    planted = tmp_path / f".plan.json.{os.getpid()}.writing"
    planted.symlink_to(elsewhere)
    with pytest.raises(OSError) as raised:
        replace_whole(target, b"new\n")
    assert raised.value.errno == errno.ELOOP
    assert target.read_bytes() == b"old\n" and elsewhere.read_bytes() == b"not tiops's\n" and planted.is_symlink()


def test_a_named_pipe_is_written_to_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "plan.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_whole(fifo, b"through the pipe\n")
    reader.join(timeout=30)
    assert received == [b"through the pipe\n"] and fifo.is_fifo() and _beside(tmp_path) == []


@pytest.mark.parametrize(("path", "stream"), [
    ("/dev/stdout", True), ("/dev/stderr", True), ("/dev/fd/1", True), ("/proc/self/fd/1", True),
    ("/proc/PID/fd/1", True), ("/dev/null", True),  # PID: this process's (the id stays the same in every run)
    ("/dev/shm/out.json", False),  # a tmpfs of regular files below /dev
])
def test_streams_are_told_from_files(path: str, stream: bool) -> None:
    assert names_stream(Path(path.replace("PID", str(os.getpid())))) is stream


def test_a_file_or_a_missing_one_is_no_stream(tmp_path: Path) -> None:
    (tmp_path / "there.json").write_bytes(b"{}")
    assert not names_stream(tmp_path / "there.json") and not names_stream(tmp_path / "missing.json")


def _creates_once(folder: Path) -> None:
    """create_whole makes a new file, refuses one that is there, and leaves nothing beside either time."""
    target = folder / "relationship.yaml"
    create_whole(target, b"type: relationship\n")
    assert target.read_bytes() == b"type: relationship\n" and _beside(folder) == []
    with pytest.raises(FileExistsError):
        create_whole(target, b"another\n")
    assert target.read_bytes() == b"type: relationship\n" and _beside(folder) == []


def test_create_whole_makes_a_new_file_and_refuses_one_that_is_there(tmp_path: Path) -> None:
    _creates_once(tmp_path)


def test_create_whole_cut_short_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill_up_writing(monkeypatch, "relationship.yaml")
    with pytest.raises(OSError) as raised:
        create_whole(tmp_path / "relationship.yaml", b"type: relationship\nsource_ref: x\n")
    assert raised.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


class _KilledAt:
    """``os`` for tiops.outputs, where one call ends the process at once, as kill -9 there would:
    no ``except``/``finally`` runs, the file beside stays."""

    def __init__(self, call: str) -> None:
        self._call = call

    def __getattr__(self, name: str) -> Any:
        if name == self._call:
            return lambda *_args, **_kwargs: os._exit(9)
        return getattr(os, name)


@pytest.mark.parametrize(("write", "killed_at"), [(replace_whole, "replace"), (create_whole, "replace"),
                                                   (create_whole, "link")])
def test_what_a_killed_write_left_beside_goes_with_the_next_write_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Callable[[Path, bytes], None], killed_at: str) -> None:
    pid = os.fork()
    if pid == 0:  # a report, an import's checkpoint or a -o output killed while writing
        try:
            monkeypatch.setattr(outputs, "_SWEPT", set(), raising=False)
            monkeypatch.setattr(outputs, "os", _KilledAt(killed_at))
            write(tmp_path / "index.html", b"killed\n")
        finally:
            os._exit(1)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 9
    assert len(_beside(tmp_path)) == 1 and not (tmp_path / "index.html").exists()
    # Before, it stayed for good: published with the site, or committed by `git add -A` in intel/.
    monkeypatch.setattr(outputs, "_SWEPT", set(), raising=False)  # a new process
    write(tmp_path / "index.html", b"whole\n")
    assert _beside(tmp_path) == [] and (tmp_path / "index.html").read_bytes() == b"whole\n"
    # A file beside of a writer still running is its own: left alone.
    running = tmp_path / f".data.js.{os.getpid()}.writing"
    running.write_bytes(b"being written")
    monkeypatch.setattr(outputs, "_SWEPT", set(), raising=False)
    replace_whole(tmp_path / "other.html", b"x")
    assert _beside(tmp_path) == [running.name]


@pytest.mark.parametrize("name", [".plan.json.99999999999999999999.writing", ".plan.json.2147483648.writing", ".plan.json.\u00b2.writing",
                                  ".plan.json.0.writing"])
def test_a_name_with_no_process_id_a_writer_can_have_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    name: str) -> None:
    # Anyone may create such a name in /tmp: it crashed every -o write there (int("²"), os.kill's OverflowError).
    (tmp_path / name).write_bytes(b"not ours")
    monkeypatch.setattr(outputs, "_SWEPT", set(), raising=False)
    replace_whole(tmp_path / "plan.json", b"plan\n")
    assert (tmp_path / "plan.json").read_bytes() == b"plan\n" and (tmp_path / name).read_bytes() == b"not ours"


def test_a_relative_folder_is_swept_again_after_a_chdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)  # a process id that is gone: its file beside was abandoned
    abandoned = second / f".plan.json.{pid}.writing"
    abandoned.write_bytes(b"cut")
    monkeypatch.setattr(outputs, "_SWEPT", set(), raising=False)
    monkeypatch.chdir(first)
    replace_whole(Path("plan.json"), b"1")
    monkeypatch.chdir(second)
    replace_whole(Path("plan.json"), b"2")  # tiops -C second, in the same process
    assert not abandoned.exists()


def test_create_whole_works_where_the_file_system_makes_no_hard_links(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # FAT, exFAT and some network shares: link(2) fails with EPERM, where open(path, "x") (relate before) worked.
    def no_hard_links(*_args: Any, **_kwargs: Any) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    _creates_once(tmp_path)


# --- rename_over: the file a rename replaces is let go of on a thread ---------------------------

class _RecordedThread:
    """Stands for threading.Thread in tiops.forkwork.close_aside: notes what the descriptor handed over held, then
    runs the work at once (so the test knows when it is done)."""

    seen: ClassVar[list[os.stat_result]] = []

    def __init__(self, *, target: Callable[..., Any], args: tuple[Any, ...], name: str, daemon: bool) -> None:
        self._target, self._args = target, args

    def start(self) -> None:
        _RecordedThread.seen.append(os.fstat(self._args[0]))
        self._target(*self._args)

    def is_alive(self) -> bool:
        return False  # its work was done in start()

    def join(self) -> None:
        pass


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def recorded_threads(monkeypatch: pytest.MonkeyPatch) -> list[os.stat_result]:
    _RecordedThread.seen = []
    monkeypatch.setattr(forkwork.threading, "Thread", _RecordedThread)
    return _RecordedThread.seen


def test_a_large_file_renamed_over_is_held_past_the_rename_then_closed(
        tmp_path: Path, recorded_threads: list[os.stat_result]) -> None:
    target, source = tmp_path / "bundle.json", tmp_path / ".bundle.json.partial"
    target.write_bytes(b"o" * (2 << 20))
    source.write_bytes(b"new\n")
    old_inode, new_inode = target.stat().st_ino, source.stat().st_ino
    before = _open_descriptors()
    outputs.rename_over(source, target)
    assert target.read_bytes() == b"new\n" and target.stat().st_ino == new_inode and not source.exists()
    # The thread was handed the old file, already without a name: its blocks go when it closes it.
    assert [(seen.st_ino, seen.st_nlink, seen.st_size) for seen in recorded_threads] == [(old_inode, 0, 2 << 20)]
    assert _open_descriptors() == before


def test_a_small_file_or_no_file_is_renamed_over_as_os_replace_does(
        tmp_path: Path, recorded_threads: list[os.stat_result]) -> None:
    before = _open_descriptors()
    for existing in (b"small\n", None):
        target, source = tmp_path / "record.json", tmp_path / ".record.json.partial"
        target.unlink(missing_ok=True)
        if existing is not None:
            target.write_bytes(existing)
        source.write_bytes(b"new\n")
        outputs.rename_over(source, target)
        assert target.read_bytes() == b"new\n" and not source.exists()
    assert recorded_threads == [] and _open_descriptors() == before


def test_a_rename_that_fails_leaves_the_target_and_no_descriptor_open(
        tmp_path: Path, recorded_threads: list[os.stat_result]) -> None:
    target = tmp_path / "bundle.json"
    target.write_bytes(b"o" * (2 << 20))
    before = _open_descriptors()
    with pytest.raises(FileNotFoundError):
        outputs.rename_over(tmp_path / "missing", target)
    assert target.stat().st_size == 2 << 20 and recorded_threads == [] and _open_descriptors() == before


def test_a_link_renamed_over_is_replaced_and_the_file_it_led_to_kept(
        tmp_path: Path, recorded_threads: list[os.stat_result]) -> None:
    kept, link, source = tmp_path / "kept.json", tmp_path / "bundle.json", tmp_path / ".bundle.json.partial"
    kept.write_bytes(b"o" * (2 << 20))
    link.symlink_to(kept)
    source.write_bytes(b"new\n")
    outputs.rename_over(source, link)
    assert not link.is_symlink() and link.read_bytes() == b"new\n" and kept.stat().st_size == 2 << 20
    assert recorded_threads == []


def test_a_fork_waits_for_the_replaced_file_to_be_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[int] = []

    def slow_close(descriptor: int) -> None:  # freeing a large file's blocks takes a while
        time.sleep(0.3)
        os.close(descriptor)
        closed.append(descriptor)

    monkeypatch.setattr(forkwork, "_close", slow_close)
    target, source = tmp_path / "bundle.json", tmp_path / ".bundle.json.partial"
    target.write_bytes(b"o" * (2 << 20))
    source.write_bytes(b"new\n")
    outputs.rename_over(source, target)
    assert closed == []  # the rename did not wait for it
    # A helper forked now would share the closing thread's state: the close is waited for first.
    assert forkwork.can_fork() == (hasattr(os, "fork") and forkwork._cpus() >= 2)
    assert len(closed) == 1 and threading.active_count() == 1


def test_a_named_pipe_renamed_over_is_not_opened(tmp_path: Path) -> None:
    fifo, kept, source = tmp_path / "bundle.json", tmp_path / "pipe", tmp_path / ".bundle.json.partial"
    os.mkfifo(fifo)
    os.link(fifo, kept)  # the pipe's other name, to let the writer go at the end
    opened: list[int] = []
    # A writer waiting for a reader: an open of the pipe for reading would let it go on.
    writer = threading.Thread(target=lambda: opened.append(os.open(kept, os.O_WRONLY)), daemon=True)
    writer.start()
    source.write_bytes(b"new\n")
    outputs.rename_over(source, fifo)
    writer.join(timeout=0.5)
    assert opened == [] and fifo.read_bytes() == b"new\n"
    reader = os.open(kept, os.O_RDONLY | os.O_NONBLOCK)
    writer.join(timeout=10)
    os.close(reader)
    os.close(opened[0])
