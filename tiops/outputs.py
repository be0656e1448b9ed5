"""Writing output files whole or not at all.

A file written in place is cut short by Ctrl-C, a full disk or a crash part way, and some
outputs are read back later: a cut ``build.json`` is "not a tiops build record", so the next
compile refuses to write beside it; a cut ``_taxii.json`` loses where every collection's pull
ended. So a file is written beside its target under a dot name (which loading skips) and
renamed over it (``os.replace`` is atomic on POSIX): a reader sees the previous file or the
complete new one, never a part, and a failed write removes what it had written. A write killed
with no chance to (kill -9) leaves its dot name, removed by the next write into that folder.

A stream is not a file to replace: a named pipe or a device (``-o /dev/stdout`` on a terminal
or a pipe) and any path in a folder of streams (``/dev/stdout`` redirected to a file,
``/proc/self/fd/1``) are written to as named, in place, as a plain ``open()`` would; renaming
over them would swap the file behind the shell's descriptor, or fail on ``/dev``.

This module is the library's: it raises the file system's own ``OSError`` and prints nothing.
Callers say which file it was and what it held (a :class:`tiops.errors.TiopsError`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from tiops.forkwork import close_aside, remove_abandoned
from tiops.memory import write_all

__all__ = ["create_whole", "kept_out_of_git", "names_stream", "rename_over", "replace_whole", "sweep_abandoned",
           "write_whole"]

# Where a path names a stream, not a file: /dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N.
# /dev/stdout redirected to a file is a regular file, but its folder is /dev. A folder below
# /dev (/dev/shm, a tmpfs) holds regular files like any other.
_STREAM_FOLDERS = frozenset({Path("/dev"), Path("/dev/fd"), Path("/proc/self/fd"), Path("/proc/thread-self/fd")})


def names_stream(path: Path) -> bool:
    """Whether ``path`` names a stream to write to in place rather than a file to replace:
    something there that is not a regular file (a named pipe, a device; a folder is left to fail
    as ``open()`` fails on it), or any name in a folder of streams (also ``/proc/<pid>/fd``)."""
    folder = path.absolute().parent
    return (path.exists() and not path.is_file()) or folder in _STREAM_FOLDERS \
        or (folder.name == "fd" and folder.parent.parent == Path("/proc"))


# The size from which the file a rename replaces is let go of on a thread (:func:`rename_over`).
_FREED_ASIDE_FROM = 1 << 20


def rename_over(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """``os.replace(source, target)``, with the blocks of a large file it replaces freed on a thread.

    Renaming over a file drops its last name, and ext4 then frees its blocks in the rename
    itself: 40-100 ms for a 77 MB bundle on a 2-core VM, once 330 ms (docs/performance.md,
    "Letting go of the file a rename replaces"), where a one-file recompile at 100k objects takes
    1.1-1.6 s and replaces three such files. Held open across the rename, the old file loses its name at once
    and its blocks go when the descriptor is closed, which a thread does while this one goes on
    (tiops.forkwork.close_aside). Nothing is left behind if the process dies meanwhile: its
    descriptors close with it.
    """
    held = _held_open(target)
    try:
        os.replace(source, target)
    except BaseException:
        if held is not None:
            os.close(held)
        raise
    if held is not None:
        close_aside(held)


def _held_open(path: str | os.PathLike[str]) -> int | None:
    """A descriptor of the regular file at ``path`` when it is large enough to be worth freeing
    aside (:func:`rename_over`); None otherwise, or when it cannot be opened (no such file).

    Looked at with ``lstat`` before it is opened: opening is for regular files only, as opening a
    named pipe would let a writer waiting on it go on (and meet a closed pipe), and opening a
    device may act on it. The ``fstat`` of what was opened confirms it is still that file."""
    try:
        seen = os.lstat(path)
        if not stat.S_ISREG(seen.st_mode) or seen.st_size < _FREED_ASIDE_FROM:
            return None
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(descriptor)
    except OSError:
        info = None
    if info is None or (info.st_dev, info.st_ino) != (seen.st_dev, seen.st_ino):
        os.close(descriptor)
        return None
    return descriptor


def write_whole(path: Path, data: bytes) -> None:
    """``data`` into ``path``: whole or not at all for a file (:func:`replace_whole`), written in
    place for a stream (:func:`names_stream`), where there is no file to keep."""
    if names_stream(path):
        with open(path, "wb") as stream:
            stream.write(data)
        return
    replace_whole(path, data)


def replace_whole(path: Path, data: bytes, *, tag: str = "writing") -> None:
    """``data`` into the file ``path``, whole or not at all.

    Written to ``.NAME.PID.TAG`` beside it and renamed over it. A file that was there keeps its
    mode (a new one gets 0666 less the umask, as ``open()`` makes it). A ``path`` that is a
    symbolic link has the file it leads to replaced and the link stays, as ``open()`` writes
    through it; the file beside is never opened through a link (``O_NOFOLLOW``). On any error,
    Ctrl-C included, the file beside is removed and ``path`` is as it was; the ``OSError``
    is raised as the file system gave it, naming ``path`` where the call that failed named no file.
    """
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    sweep_abandoned(target.parent, tag)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{tag}")
    try:
        mode: int | None = target.stat().st_mode & 0o7777
    except OSError:
        mode = None
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
    # Only a file this call opened is removed on failure: a link in its place (O_NOFOLLOW) is not ours.
    try:
        try:
            if mode is not None:
                os.fchmod(descriptor, mode)  # the file's own mode: os.open's mode passes through the umask
            write_all(descriptor, data)
        finally:
            os.close(descriptor)
        rename_over(temporary, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError) and error.filename is None:
            error.filename = os.fspath(path)  # os.write names no file: a full disk says which one it was
        raise


def create_whole(path: Path, data: bytes) -> None:
    """A new file ``path`` holding ``data``, whole or not at all; ``FileExistsError`` when something
    is there already (as ``open(path, "x")``), which is then left as it was.

    Written beside it, then linked to its name: ``os.link`` fails on a name that exists, where
    ``os.replace`` would replace it, so two writers racing for one name cannot both win.
    """
    sweep_abandoned(path.parent, "creating")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.creating")
    replace_whole(temporary, data)
    try:
        try:
            os.link(temporary, path, follow_symlinks=False)
        except OSError as error:
            if error.errno not in _NO_HARD_LINKS:
                raise
            # A file system without hard links (FAT, exFAT, some network shares), where open(path, "x")
            # worked: the name is taken by an empty file made with O_EXCL, which then has the whole one
            # renamed over it. Two writers still cannot both win; a reader may see it empty for a moment.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666))
            try:
                os.replace(temporary, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


# What os.link raises where the file system makes no hard links (link(2): EPERM "does not support the
# creation of hard links", EOPNOTSUPP/ENOTSUP, ENOSYS on some FUSE file systems).
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})


# The folders (and tags) this process has swept of abandoned files (sweep_abandoned): one listing each,
# not one per file written (a report writes its data shards into one folder, an edit many files).
_SWEPT: set[tuple[str, str]] = set()


def sweep_abandoned(folder: Path, tag: str = "writing") -> None:
    """Remove the files beside (``.NAME.PID.TAG``) that a process killed while writing them left in
    ``folder`` (kill -9 runs no ``except``), once per folder and tag in this process.

    Nothing else would: the next write has another process id, so another name, and the file stayed
    for good, in a report's site (published with it), in intel/ (committed by ``git add -A``) or
    beside a ``-o`` output. A file of a writer still running is its own (tiops.forkwork.remove_abandoned).
    :func:`replace_whole` calls it; a writer that leaves an unchanged file alone calls it as well.
    """
    # By absolute path: a relative folder ("." for "-o plan.json") names another one after a chdir
    # (tiops -C DIR in a caller's process), which would go unswept.
    key = (os.path.abspath(folder), tag)
    if key not in _SWEPT:
        _SWEPT.add(key)
        remove_abandoned(folder, ".", f".{tag}")


def kept_out_of_git(folder: Path) -> None:
    """Make ``folder`` (``.tiops/`` or a folder under it) with a ``.gitignore`` of its own (``*``).

    What tiops keeps for itself (the SQLite store, caches, locks, the last build's record) is
    never intel to commit, also in a repository `tiops init` did not make (whose .gitignore
    would list ``.tiops/``): ``git add -A`` after an apply would otherwise commit the store.
    Raises OSError.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
