"""Ordered work split between this process and one forked helper, for the second core.

Loading a repository is mostly parsing files, one after the other, each independent of
the others (docs/performance.md, "Cold load on two cores"). :func:`run_in_order` lets a
forked child take work from the end of the list while this process takes it from the
front; they meet where their claims cross, so neither waits for a share fixed in
advance. The child's results come back as ``marshal`` data, which is several times
cheaper to read than to parse the YAML again and keeps interned strings interned (the
shared strings of tiops.memory stay shared). The child writes them to an unnamed
temporary file and only says through a pipe where each chunk lies: every chunk it does
is used after all of this process's own, so in memory they would all be held at once
(about 8 % more peak memory for a first build of a million objects, docs/performance.md).

The caller sees exactly what a plain loop would give: ``use(i, work(i))`` for every
index, in increasing order, each index's result worked out once and taken from one
process only. A result ``marshal`` cannot carry, a child that fails, hangs or is killed,
or a system without ``fork`` only means this process does that work itself: it never
waits for the child's unfinished work, and the child never outlives it.

:func:`run_ahead` has the child work from the front instead, ahead of this process's use of
each result, for work that costs less than its use (tiops.apply: a batch's rows are built
while the batch before is written).

:func:`run_beside` is the other shape: one piece of work a child does at the lowest
priority while this process goes on, its result taken when this process needs it
(tiops.enrich.beside: the enrichment lock read while a cold build loads).

:func:`start_in_new_process` starts a new Python process instead of forking one, for work on
data too large to share: a forked child shares this process's pages only until either process
writes to one, and a Python process writes to nearly every page it reads (each object's
reference count). The new process holds only what it is handed.
"""

from __future__ import annotations

import contextlib
import marshal
import mmap
import os
import signal
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tiops.memory import write_all

if TYPE_CHECKING:
    import subprocess

__all__ = ["Beside", "NewProcess", "boot_id", "can_fork", "close_aside", "process_alive", "process_start_ticks",
           "remove_abandoned", "room_for_a_copy", "run_ahead", "run_beside", "run_in_order", "second_cpu_idle", "start_in_new_process"]

# Two claim counters in memory shared with the child, each written by one side only:
# this process has claimed every chunk below the first, the child every chunk from the
# second on. The child claims a chunk only after it has written every chunk above it
# whole to the results file and said so through the pipe, so whatever lies above its
# counter is there to be read.
_COUNTER = struct.Struct("=q")
_OURS, _THEIRS = 0, 8
# What the child says through the pipe for each chunk it has written whole to the
# results file: the chunk's index, then the offset and length of its marshal data there.
_FRAME = struct.Struct("=qqq")
# Entries of a chunk whose result the child could not marshal: done again here.
_REDO = b"\x00redo"
# How many results run_ahead's child may hold ready beyond the one this process uses now: enough
# to stay ahead of uses that now and then run fast, few enough that its results file stays small.
_LEAD = 4
# fallocate(2): give back a range of a file's blocks, its size unchanged.
_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 0x01, 0x02
# proc(5): the load averages and the tasks runnable now (second_cpu_idle).
_LOADAVG = "/proc/loadavg"
# proc(5): the memory the kernel could give without swapping (MemAvailable, kB), and this
# process's resident pages (statm's second field), for room_for_a_copy.
_MEMINFO = "/proc/meminfo"
_STATM = "/proc/self/statm"
# prctl(2): have the kernel send the child a signal when this process dies.
_PR_SET_PDEATHSIG = 1


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether a helper process may be forked here: a second CPU to run on, ``fork``
    itself, and no other thread (a forked child of a threaded process may inherit a
    lock another thread held). Descriptors being closed aside (:func:`close_aside`) and reads
    ahead of the build cache (:func:`joined_before_fork`) are waited for first: both end on their own."""
    if not hasattr(os, "fork") or _cpus() < 2:
        return False  # refused before waiting for anything
    _wait_for_closes_aside()
    _wait_for_reads_ahead()
    return threading.active_count() == 1


# Threads reading files ahead of their use (tiops.buildcache.store.Prefetch), which end on their own.
_READING_AHEAD: list[threading.Thread] = []


def joined_before_fork(thread: threading.Thread) -> None:
    """Have :func:`can_fork` wait for ``thread``, a short one working for this process (a read ahead of
    the build cache), rather than refuse to fork while it runs."""
    _READING_AHEAD[:] = [running for running in _READING_AHEAD if running.is_alive()]
    _READING_AHEAD.append(thread)


def _wait_for_reads_ahead() -> None:
    while _READING_AHEAD:
        _READING_AHEAD.pop().join()


# The threads closing descriptors aside (close_aside) that may still run. Each does one close.
_CLOSING: list[threading.Thread] = []
# What such a thread runs (a test slows it down to see it waited for).
_close = os.close


def close_aside(descriptor: int) -> None:
    """Close ``descriptor`` on a thread, while this one goes on: the last descriptor of a large
    file that lost its name frees the file's blocks, which takes as long as writing a part of
    it (tiops.outputs.rename_over). :func:`can_fork` waits for these threads."""
    _CLOSING[:] = [thread for thread in _CLOSING if thread.is_alive()]
    thread = threading.Thread(target=_close, args=(descriptor,), name="tiops-close-aside", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # no thread to be had (the interpreter is shutting down): closed here
        os.close(descriptor)
        return
    _CLOSING.append(thread)


def _wait_for_closes_aside() -> None:
    while _CLOSING:
        _CLOSING.pop().join()


def second_cpu_idle() -> bool:
    """Whether a CPU this process may run on is idle now, besides the one it runs on.

    A helper only pays on a CPU nobody else wants: on a busy machine the two processes
    share what one would get, and the helper's extra work (marshal data, a second set of
    caches) makes loading slower and costlier (docs/performance.md). On Linux the count is
    of the tasks runnable at this instant; the one-minute load average (elsewhere) also
    counts whatever ran in the last minute, so a command run right after another tiops
    command would see that command's own load and not fork.
    """
    runnable = _runnable_now()
    if runnable is not None:
        # This process is one of the runnable tasks; its own helpers (run_beside) are not counted:
        # they do work this process would otherwise do itself, and end soon.
        return _cpus() - (runnable - _helpers_running()) >= 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        return False
    return _cpus() - busy >= 1.0


def room_for_a_copy() -> bool:
    """Whether the memory available now could hold a copy of this process's resident memory.

    A child forked from a large process shares its pages until either writes to one; a
    child that reads many of the parent's objects writes to their pages (each object's
    reference count) and so copies them (tiops.apply's row helper copied about half of a
    581 MB apply at 100k objects: docs/performance.md). True where the system does not say
    (no /proc).
    """
    try:
        with open(_MEMINFO, "rb") as meminfo:
            available = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith(b"MemAvailable:"))
    except (OSError, ValueError, IndexError, StopIteration):
        return True
    resident = resident_bytes()
    return resident is None or available > resident


def resident_bytes() -> int | None:
    """This process's resident memory now (/proc/self/statm, proc(5)); None where the system does not say."""
    try:
        with open(_STATM, "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


# The helpers run_beside forked that have not been closed yet.
_HELPERS: set[int] = set()


def _helpers_running() -> int:
    """How many of :data:`_HELPERS` are running now (state R in /proc/PID/stat, proc(5))."""
    running = 0
    for pid in _HELPERS:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                # "pid (comm) S ...": the state follows the last ")", since comm may hold one
                running += stat.read().rpartition(b")")[2].split()[0] == b"R"
        except (OSError, IndexError):
            pass
    return running


def _runnable_now() -> int | None:
    """The tasks runnable at this instant, this process included: the first number of the
    fourth field of /proc/loadavg (proc(5): "0.61 0.87 1.03 2/345 12345"); None where
    there is no such file."""
    try:
        with open(_LOADAVG, "rb") as loadavg:
            return int(loadavg.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return None


def run_in_order(count: int, work: Callable[[int], Any], use: Callable[[int, Any], None], *,
                 chunk: int = 64, on_chunk: Callable[[int], None] | None = None) -> None:
    """Call ``use(index, work(index))`` for every index below ``count``, in increasing order.

    ``work`` runs in this process for a prefix of the indexes and in a forked child for
    the rest; a chunk both happen to work on is used from here. ``use`` always runs
    here. ``work`` must not depend on anything ``use`` changes.
    ``on_chunk(done)`` is called after each chunk of ``chunk`` indexes is used.
    """
    chunks = (count + chunk - 1) // chunk
    with contextlib.ExitStack() as stack:
        try:
            # Unnamed where the system allows it (O_TMPFILE): nothing is left behind, however this ends.
            results = stack.enter_context(tempfile.TemporaryFile(prefix="tiops-work-"))
        except OSError:  # nowhere to put the child's results: all the work is done here
            for number in range(chunks):
                _run_chunk(number, chunk, count, work, use, on_chunk)
            return
        _run_split(chunks, chunk, count, work, use, on_chunk, results.fileno())


def run_ahead(count: int, work: Callable[[int], Any], use: Callable[[int, Any], None]) -> None:
    """Call ``use(index, work(index))`` for every index below ``count``, in increasing order,
    with a forked child working the results out ahead of their use.

    The other shape of :func:`run_in_order`, for work that costs less than its use and must
    be used in order: apply builds a batch's rows while the batch before is written. The
    child works from the front; this process takes each result the child has finished,
    whole, and works out any other itself, never waiting for the child, which then skips
    past it. The child holds at most a few results ready beyond the one in use, and each
    result's space in its results file is given back once read, so neither the disk nor a
    tmpfs holds more than those. ``work`` must not depend on anything ``use`` changes.
    Without a child (no second CPU, no fork, nowhere for its results) everything is done here.
    """
    if count < 2 or not can_fork():
        _run_here(count, work, use)
        return
    try:
        # Unnamed where the system allows it (O_TMPFILE): nothing is left behind, however this ends.
        results = tempfile.TemporaryFile(prefix="tiops-ahead-")  # noqa: SIM115 (closed below)
    except OSError:
        _run_here(count, work, use)
        return
    with results:
        _run_ahead(count, work, use, results.fileno())


def _run_here(count: int, work: Callable[[int], Any], use: Callable[[int, Any], None]) -> None:
    for index in range(count):
        use(index, work(index))


def _run_ahead(count: int, work: Callable[[int], Any], use: Callable[[int, Any], None], results: int) -> None:
    counters = mmap.mmap(-1, 16)
    # Every index below it is worked out here, the child skips them: the first one is, while the child starts.
    _COUNTER.pack_into(counters, _OURS, 1)
    try:
        pid, read_end = _forked(lambda parent, pipe: _child_ahead(parent, count, work, counters, pipe, results))
    except OSError:  # no child now: all the work is done here
        counters.close()
        _run_here(count, work, use)
        return
    frames = _Frames(results)
    try:
        for index in range(count):
            # The child skips what is worked out here and stays at most _LEAD results ahead of it.
            _COUNTER.pack_into(counters, _OURS, index + 1)
            _drain(read_end, frames)
            finished, result = _finished(frames, index)
            if not finished:
                result = work(index)
            use(index, result)
    finally:
        os.close(read_end)
        _stop(pid)
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)
        counters.close()


def _finished(frames: _Frames, index: int) -> tuple[bool, Any]:
    """(True, the result) of ``index`` when the child has written it whole, else (False, None)."""
    entries = frames.entries(index, release=True)
    if entries is None or len(entries) != 1 or entries[0] == _REDO:
        return False, None
    try:
        return True, marshal.loads(entries[0])
    except (ValueError, EOFError, TypeError):
        return False, None


def _child_ahead(parent: int, count: int, work: Callable[[int], Any], counters: mmap.mmap, descriptor: int,
                 results: int) -> None:
    status = 1
    try:
        # Ctrl-C goes to the parent, which stops the child; the child ends with it, never alone.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _die_with(parent)
        index = 0
        written = 0  # the length of the results file: the child is its only writer
        while (index := max(index, _COUNTER.unpack_from(counters, _OURS)[0])) < count:
            if index >= _COUNTER.unpack_from(counters, _OURS)[0] + _LEAD:
                # Far enough ahead: wait for this process to use some. Where no signal tells of its
                # death (_die_with), a parent gone is seen here: this loop writes nothing to the pipe.
                if os.getppid() != parent:
                    break
                time.sleep(0.002)
                continue
            try:
                entry = marshal.dumps(work(index))
            except ValueError:  # not marshallable: done again by the parent
                entry = _REDO
            if index < _COUNTER.unpack_from(counters, _OURS)[0]:
                continue  # this process took it meanwhile, worked out itself: nothing to keep
            payload = marshal.dumps([entry])  # the frame of a chunk of one (_Frames)
            # The data first, then where it lies: the parent reads only what is whole.
            write_all(results, payload, written)
            write_all(descriptor, _FRAME.pack(index, written, len(payload)))
            written += len(payload)
            index += 1
        status = 0
    except BaseException:  # whatever the child could not do, the parent does
        status = 1
    finally:
        os._exit(status)


class Beside:
    """One piece of work done by a forked child while this process goes on (:func:`run_beside`)."""

    def __init__(self, pid: int, done: int, results: Any) -> None:
        self._pid = pid
        self._done = done  # the pipe's read end: one byte when the results are whole, else nothing
        self._results = results  # the unnamed file the child writes its marshal data to
        self._outcome: Any = None
        self._settled = False

    def result(self) -> Any:
        """What the work returned, once the child has finished (this waits for it); None when the
        child failed, was killed or returned what ``marshal`` cannot carry. Asked again, the same."""
        if not self._settled:
            self._settled = True
            try:
                finished = os.read(self._done, 1) == b"1"
                self._outcome = marshal.loads(_read_all(self._results.fileno())) if finished else None
            except (OSError, ValueError, EOFError, TypeError):
                self._outcome = None
            finally:  # also when the wait is interrupted (Ctrl-C): the child is stopped, not left running
                self.close()
        return self._outcome

    def close(self) -> None:
        """Stop the child if it is still working, and let go of what it used; the result, if
        asked for before, stays."""
        if self._done < 0:
            return
        self._settled = True
        _stop(self._pid)
        with contextlib.suppress(OSError):
            os.waitpid(self._pid, 0)
        _HELPERS.discard(self._pid)
        os.close(self._done)
        self._done = -1
        self._results.close()


class NewProcess:
    """A process :func:`start_in_new_process` started: :meth:`result` and :meth:`close` as :class:`Beside`'s."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self._outcome: bool | None = None
        self._settled = False

    @property
    def pid(self) -> int:
        return self._process.pid

    def result(self) -> bool | None:
        """True once the process has ended with status 0 (this waits for it), else None. Asked again, the same."""
        if not self._settled:
            self._settled = True
            try:
                self._outcome = True if self._process.wait() == 0 else None
            finally:  # also when the wait is interrupted (Ctrl-C): the process is stopped, not left running
                self.close()
        return self._outcome

    def close(self) -> None:
        """Stop the process if it is still working; the result, if asked for before, stays."""
        self._settled = True
        if self._process.returncode is None:
            _stop(self._process.pid)
            with contextlib.suppress(OSError):
                self._process.wait()


def start_in_new_process(function: str, arguments: list[str], pass_fds: tuple[int, ...] = ()) -> NewProcess | None:
    """Run ``function`` ("tiops.module:name", taking ``arguments`` and returning an exit status) in a
    new Python process, and return at once; None when no process can be started (the caller does
    the work itself).

    The process runs this very tiops: its folder is put on the path when it is not there already,
    and the current folder is not (``-P``): the command runs in the intel repository, whose files
    must never be imported. It runs at this process's priority, with the descriptors
    ``pass_fds`` open and nothing else: standard input, output and error go to /dev/null, so
    nothing it does can reach the command's output. It ignores SIGINT, since Ctrl-C at a
    terminal reaches the whole process group and this process stops it (:meth:`NewProcess.close`)
    when interrupted itself, and it dies with this process, as a forked helper does
    (:func:`_die_with`), whatever ends this one.
    """
    import subprocess
    import sys

    if not sys.executable:  # an embedding program: no Python to start
        return None
    module, _, name = function.partition(":")
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            f"{package_parent!r} in sys.path or sys.path.insert(0, {package_parent!r}); "
            f"from tiops.forkwork import _die_with; _die_with({os.getpid()}); "
            f"from {module} import {name}; sys.exit({name}(sys.argv[1:]))")
    try:
        process = subprocess.Popen([sys.executable, "-P", "-c", code, *arguments], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=pass_fds)
    except (OSError, ValueError, TypeError, subprocess.SubprocessError):
        return None
    return NewProcess(process)


def run_beside(work: Callable[[], Any], *, nice: bool = True) -> Beside | None:
    """Start ``work()`` in a forked child and return at once; None when no child can be forked
    (:func:`can_fork`, or fork(2) failing now: a process limit, or no overcommit for a copy of a
    large process) or nowhere can take its results: the caller does the work itself.

    For work this process would otherwise do later on its one core, such as reading a file
    while it loads others. ``work`` sees this process as it is now and must return plain
    values ``marshal`` can carry; it changes nothing this process sees (it runs in a copy).
    Fork early, while this process is small: every page both processes hold is copied by
    whichever of the two writes to it first. The child runs at the lowest priority unless
    ``nice`` is false: for work this process will wait for whatever the machine's load.
    """
    if not can_fork():
        return None
    try:
        results = tempfile.TemporaryFile(prefix="tiops-beside-")  # noqa: SIM115 (closed by Beside.close)
    except OSError:
        return None
    read_end, write_end = os.pipe()
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        results.close()
        return None
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _child_beside(parent, work, write_end, results.fileno(), nice)
    os.close(write_end)
    _HELPERS.add(pid)
    return Beside(pid, read_end, results)


def _child_beside(parent: int, work: Callable[[], Any], done: int, results: int, nice: bool) -> None:
    status = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as _child: it ends with the parent, never alone
        _die_with(parent)
        # Work this process would do later on its one core: done on a core nobody else wants
        # now (a busy machine's, or the parent's own other helper's, go first; nice(2)).
        if nice:
            with contextlib.suppress(OSError):
                os.nice(19)
        write_all(results, marshal.dumps(work()), 0)
        write_all(done, b"1")
        status = 0
    except BaseException:  # the parent does the work itself
        status = 1
    finally:
        os._exit(status)


def _read_all(descriptor: int) -> bytes:
    size = os.fstat(descriptor).st_size
    return _read_at(descriptor, 0, size)


def _forked(child: Callable[[int, int], None]) -> tuple[int, int]:
    """Fork a child that runs ``child(parent pid, the pipe's write end)`` and never returns; here,
    the child's pid and the pipe's read end, which does not block.

    OSError when no child can be made now (fork(2) fails under a process limit, or where
    memory may not be overcommitted for a copy of a large process); nothing is left open."""
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError, AttributeError):
        _set_pipe_size(write_end)
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:  # the child
        os.close(read_end)
        child(parent, write_end)
    os.close(write_end)
    os.set_blocking(read_end, False)
    return pid, read_end


def _run_split(chunks: int, chunk: int, count: int, work: Callable[[int], Any], use: Callable[[int, Any], None],
               on_chunk: Callable[[int], None] | None, results: int) -> None:
    counters = mmap.mmap(-1, 16)
    _COUNTER.pack_into(counters, _OURS, 0)
    _COUNTER.pack_into(counters, _THEIRS, chunks)
    try:
        pid, read_end = _forked(lambda parent, pipe: _child(parent, chunks, chunk, count, work, counters, pipe,
                                                            results))
    except OSError:  # no child now: all the work is done here
        counters.close()
        for number in range(chunks):
            _run_chunk(number, chunk, count, work, use, on_chunk)
        return
    frames = _Frames(results)
    claimed = 0  # this process's next chunk
    finished = False
    try:
        while claimed < chunks:
            if claimed >= _COUNTER.unpack_from(counters, _THEIRS)[0]:
                # The child has claimed this chunk and everything after it. Taken from the
                # child if it has arrived, else worked out here (one chunk done twice at
                # most): waiting for it would wait for a child that may hang.
                _drain(read_end, frames)
                if not frames.has(claimed):
                    _COUNTER.pack_into(counters, _OURS, claimed + 1)
                    _run_chunk(claimed, chunk, count, work, use, on_chunk)
                    claimed += 1
                break
            _COUNTER.pack_into(counters, _OURS, claimed + 1)
            _run_chunk(claimed, chunk, count, work, use, on_chunk)
            claimed += 1
            _drain(read_end, frames)
        # What the child has still to send is nothing this process needs: every chunk from
        # here on is whole in the results file already (see _COUNTER). Stopped, then the
        # pipe read to the end for where each of those chunks lies.
        _stop(pid)
        os.set_blocking(read_end, True)
        while data := os.read(read_end, 1 << 20):
            frames.feed(data)
        finished = True
    finally:
        os.close(read_end)
        if not finished:
            _stop(pid)
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)
        counters.close()
    for number in range(claimed, chunks):
        entries = frames.entries(number)
        start = number * chunk
        indexes = range(start, min(count, start + chunk))
        if entries is not None and len(entries) != len(indexes):
            entries = None
        for offset, index in enumerate(indexes):
            if entries is None:
                use(index, work(index))
            else:
                entry = entries[offset]
                use(index, work(index) if entry == _REDO else marshal.loads(entry))
        if on_chunk is not None:
            on_chunk(min(count, (number + 1) * chunk))


def _run_chunk(number: int, chunk: int, count: int, work: Callable[[int], Any], use: Callable[[int, Any], None],
               on_chunk: Callable[[int], None] | None) -> None:
    for index in range(number * chunk, min(count, (number + 1) * chunk)):
        use(index, work(index))
    if on_chunk is not None:
        on_chunk(min(count, (number + 1) * chunk))


def _stop(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


class _Frames:
    """Where the child's chunks lie in the results file, as the pipe tells it; each chunk's
    marshal data is read from the file once, when it is used, so that no more than one
    chunk of it is in memory (a million objects' worth is some hundreds of megabytes)."""

    def __init__(self, results: int) -> None:
        self._results = results
        self._buffer = bytearray()
        self._places: dict[int, tuple[int, int]] = {}

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        whole = len(buffer) - len(buffer) % _FRAME.size  # a record may arrive in two reads
        for number, offset, length in _FRAME.iter_unpack(bytes(buffer[:whole])):
            self._places[number] = (offset, length)
        del buffer[:whole]

    def has(self, number: int) -> bool:
        return number in self._places

    def entries(self, number: int, *, release: bool = False) -> list[bytes] | None:
        """The entries of chunk ``number``, once; None when the child did not write it whole.
        ``release``: the file's blocks that held them are given back once read."""
        place = self._places.pop(number, None)
        if place is None:
            return None
        offset, length = place
        try:
            payload = _read_at(self._results, offset, length)
            if release:
                _release_range(self._results, offset, length)
            entries = marshal.loads(payload)
        except (OSError, ValueError, EOFError, TypeError):
            return None
        return entries if isinstance(entries, list) else None


# libc's fallocate once looked up (False: there is none).
_FALLOCATE: Any = None


def _release_range(descriptor: int, offset: int, length: int) -> None:
    """Give back the blocks of a range of a file, its size unchanged (Linux fallocate(2)
    FALLOC_FL_PUNCH_HOLE), so that results read once stop taking disk space, or memory where
    the temporary folder is a tmpfs. Nothing where the system or the file system cannot."""
    global _FALLOCATE
    if _FALLOCATE is None:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            # fallocate64 takes 64-bit offsets on every glibc; fallocate does on 64-bit systems and musl.
            function = getattr(libc, "fallocate64", None) or libc.fallocate
            function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            _FALLOCATE = function
        except (ImportError, OSError, AttributeError):  # no ctypes, no libc, no fallocate (macOS)
            _FALLOCATE = False
    if _FALLOCATE:
        _FALLOCATE(descriptor, _FALLOC_FL_KEEP_SIZE | _FALLOC_FL_PUNCH_HOLE, offset, length)


def _read_at(descriptor: int, offset: int, length: int) -> bytes:
    data = os.pread(descriptor, length, offset)
    if len(data) == length:
        return data
    parts = [data]
    done = len(data)
    while done < length:
        part = os.pread(descriptor, length - done, offset + done)
        if not part:
            raise EOFError("the results file ends early")
        parts.append(part)
        done += len(part)
    return b"".join(parts)


def _set_pipe_size(descriptor: int) -> None:
    """A larger pipe buffer (Linux), so the child never waits for a drain to say where a chunk lies."""
    import fcntl

    fcntl.fcntl(descriptor, fcntl.F_SETPIPE_SZ, 1 << 20)


def _drain(descriptor: int, frames: _Frames) -> None:
    while True:
        try:
            data = os.read(descriptor, 1 << 20)
        except BlockingIOError:
            return
        if not data:
            return
        frames.feed(data)


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when ``parent`` dies (Linux), so that no helper
    outlives the command that forked it, whatever ends that command."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # elsewhere: a child left alone stops at its next write to the closed pipe
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def _child(parent: int, chunks: int, chunk: int, count: int, work: Callable[[int], Any], counters: mmap.mmap,
           descriptor: int, results: int) -> None:
    status = 1
    try:
        # Ctrl-C goes to the parent, which stops the child; the child ends with it, never alone.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _die_with(parent)
        number = chunks - 1
        written = 0  # the length of the results file: the child is its only writer
        while number >= 0:
            if number < _COUNTER.unpack_from(counters, _OURS)[0]:
                break  # the parent claimed it
            _COUNTER.pack_into(counters, _THEIRS, number)
            entries = []
            for index in range(number * chunk, min(count, (number + 1) * chunk)):
                try:
                    entries.append(marshal.dumps(work(index)))
                except ValueError:  # not marshallable: done again by the parent
                    entries.append(_REDO)
            payload = marshal.dumps(entries)
            # The data first, then where it lies: the parent reads only what is whole.
            write_all(results, payload, written)
            write_all(descriptor, _FRAME.pack(number, written, len(payload)))
            written += len(payload)
            number -= 1
        status = 0
    except BaseException:  # whatever the child could not do, the parent does
        status = 1
    finally:
        os._exit(status)


def process_alive(pid: object) -> bool:
    """Whether a process still runs on this host: a lock holder (a dead one's lock is taken over), or
    the writer of a partial file (a dead one's file is removed)."""
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, it just is not ours
    # A process killed and not yet reaped by its parent (a zombie, state Z in proc(5)) still has its id,
    # and kill(2) reaches it: it runs no more.
    return _process_state(pid) not in ("Z", "X")


def _process_state(pid: int) -> str | None:
    """The state letter of process ``pid`` (field 3 of /proc/PID/stat); None where unknown."""
    fields = _stat_fields(pid)
    return fields[0].decode("ascii", "replace") if fields else None


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat from the state on (proc(5): field 3 first); None where unknown (no
    /proc, the process gone). They follow the last ")": the command name before it may hold one."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()
    except OSError:
        return None


# The largest number a process id (pid_t, a 32-bit signed integer) can be; Linux hands out at most 2^22.
_PID_MAX = 2**31 - 1


def remove_abandoned(folder: str | os.PathLike[str], prefix: str, suffix: str) -> None:
    """Remove the files a writer killed part way left in ``folder``: named ``PREFIX...PID SUFFIX`` (the
    writer's process id last before the suffix, after a dot) whose process is gone. A file of a
    writer still running is its own, being written."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix):
            pid = name[len(prefix):-len(suffix)].rpartition(".")[2]
            # Only a process id a writer can have: str.isdigit() also takes "²" (int() refuses it) and
            # os.kill() a number past a C long (OverflowError). Either name, in a -o folder such as
            # /tmp where anyone may create one, crashed every write there; it is nobody's file beside.
            if pid.isascii() and pid.isdigit() and 0 < int(pid) <= _PID_MAX \
                    and (not process_alive(int(pid)) or _written_before_start(os.path.join(folder, name), int(pid))):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))


# How much earlier than a process's start a file must have been written to be surely not its own: the
# boot time the start is counted from is whole seconds and NTP moves it, and a network file system
# stamps files by its server's clock; a minute is far more than either, and far less than the time
# between two CI jobs, or two builds, that take the same process id.
_START_MARGIN_NS = 60_000_000_000


def _written_before_start(path: str, pid: int) -> bool:
    """Whether the file at ``path`` was last written well before process ``pid`` started, so that
    process cannot be its writer: the id was handed out again after the writer was killed.

    Process ids are reused: a container runs tiops as the same small id every time (PID 1 in
    ``docker run``), and a CI cache restores ``.tiops/`` into it, so a file left by a killed
    build named a process that is alive again, this very one often, and stayed for good, one
    more with each build killed (a shard's objects part is megabytes). Linux only (``/proc``);
    elsewhere a live id keeps its file, as before.
    """
    started = _process_start_ns(pid)
    if started is None:
        return False
    try:
        written = os.lstat(path).st_mtime_ns
    except OSError:
        return False
    return written < started - _START_MARGIN_NS


def _process_start_ns(pid: int) -> int | None:
    """When process ``pid`` started, in wall-clock nanoseconds (proc(5): the boot time of
    /proc/stat's ``btime`` plus field 22 of /proc/PID/stat, in clock ticks); None where unknown."""
    ticks = process_start_ticks(pid)
    if ticks is None:
        return None
    boot = _boot_time_ns()
    try:
        per_second = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None
    if boot is None or per_second <= 0:
        return None
    return boot + ticks * 1_000_000_000 // per_second


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since the machine booted (field 22 of
    /proc/PID/stat, proc(5)); None where unknown (no /proc, the process gone).

    With the boot (:func:`boot_id`), it tells one process from a later one given the same id:
    unlike a wall-clock time it is an exact count the kernel keeps, which neither NTP nor a
    clock set by hand moves, so a lock holder's recorded value is compared for equality.
    """
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields is not None else None  # field 22, starttime
    except (ValueError, IndexError):
        return None


def boot_id() -> str | None:
    """This boot of the machine (Linux's random boot id); None where the system does not say."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as text:
            return text.read().strip() or None
    except (OSError, ValueError):
        return None


def _boot_time_ns() -> int | None:
    """The system's boot time in wall-clock nanoseconds (/proc/stat's ``btime``, whole seconds)."""
    try:
        with open("/proc/stat", "rb") as stat:
            for line in stat:
                if line.startswith(b"btime "):
                    return int(line.split()[1]) * 1_000_000_000
    except (OSError, ValueError, IndexError):
        return None
    return None
