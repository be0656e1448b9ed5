"""Reading input files safely: regular files only, within the size limit, inside the repository.

Every stage that reads what a user (or a checkout) put on disk goes through here, so
that a FIFO named ``*.yaml`` cannot hang tiops, a symlink to ``/dev/zero`` cannot fill
memory, and an unreadable folder is reported instead of skipped (docs/limits.md).
Problems come back as :class:`InputProblem` with the finding code that names them.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator

from tiops.limits import MAX_FILE_BYTES


class InputProblem(Exception):
    """Why a file or folder could not be read, with its finding code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def display_name(name: str) -> str:
    """A path as text that every output can encode: undecodable bytes shown as \\xNN."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return name


def is_utf8_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def file_identity(info: os.stat_result) -> int:
    """One int for the file an lstat describes: its inode number on its device.

    POSIX (<sys/stat.h>): "The st_ino and st_dev fields taken together uniquely identify the
    file within the system"; the inode number alone does not. Each tmpfs numbers its files
    from 2 again, so a folder of intel that is a mount point, swapped for another file system,
    can hold a file with the inode number, size and times recorded for another content. The
    build cache's stat index, the last build's record and the partner-locks memo keep this
    value where they keep the file's identity.
    """
    return info.st_dev << 64 | info.st_ino


def read_input(path: str, *, root: str | None = None, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    With ``root``, a symlink must resolve to a file under ``root`` (the repository).
    Raises :class:`InputProblem` (TI106 unreadable, TI108 not a regular file or a
    symlink leaving the repository, TI109 too large).
    """
    try:
        # O_NOFOLLOW: a symlink is checked first (below); O_NONBLOCK: opening a named
        # pipe returns at once instead of waiting for a writer, and fstat refuses it.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | (os.O_NOFOLLOW if root is not None else 0))
    except OSError as error:
        if error.errno == errno.ELOOP and root is not None:
            return _read_link(path, root, limit)
        if error.errno == errno.ELOOP:
            raise InputProblem("TI108", "a loop of symbolic links, which leads to no file") from None
        if error.errno == errno.ENXIO:  # a socket
            raise InputProblem("TI108", "not a regular file (a socket)") from None
        raise InputProblem("TI106", f"cannot read the file: {error.strerror}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise InputProblem("TI108", f"not a regular file ({_kind(info.st_mode)})")
        if info.st_size > limit:
            raise InputProblem("TI109", f"{info.st_size} bytes, more than the limit of {limit} bytes")
        # One read for the whole file: a regular file returns all it has (one byte more
        # than its size tells that it grew meanwhile).
        data = os.read(descriptor, info.st_size + 1)
        if len(data) > info.st_size:
            chunks = [data]
            size = len(data)
            while chunk := os.read(descriptor, _READ_SIZE):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise InputProblem("TI109", f"more than the limit of {limit} bytes")
            data = b"".join(chunks)
    except OSError as error:
        raise InputProblem("TI106", f"cannot read the file: {error.strerror}") from None
    finally:
        os.close(descriptor)
    return data


def read_regular_file(path: str | os.PathLike[str], *, follow_links: bool = False, size: int | None = None) -> bytes | None:
    """The bytes of the regular file at ``path``; None when it cannot be read, is not a regular
    file (a folder, a named pipe, a device, a link unless ``follow_links``), is not ``size``
    bytes long when a size is given, or changes size while it is read.

    Opened without blocking (a named pipe with no writer would wait for ever) and checked
    by ``fstat`` of the very file opened before anything is read.
    """
    return _read_regular(path, follow_links, size, None)


def read_regular_head(path: str | os.PathLike[str], count: int) -> bytes | None:
    """The first ``count`` bytes (fewer if the file is shorter) of the regular file at ``path``, not
    through a link; None as :func:`read_regular_file` gives it."""
    return _read_regular(path, False, None, count)


def read_regular_file_dated(path: str | os.PathLike[str]) -> tuple[bytes, int] | None:
    """:func:`read_regular_file` (not through a link), with the modification time in nanoseconds of
    the very file read, from the ``fstat`` of its descriptor: a time taken by path, before or
    after, may be another file's when the path is renamed over meanwhile."""
    read = _read_regular_stat(path, False, None, None)
    return None if read is None else (read[0], read[1].st_mtime_ns)


def _read_regular(path: str | os.PathLike[str], follow_links: bool, size: int | None, head: int | None) -> bytes | None:
    read = _read_regular_stat(path, follow_links, size, head)
    return None if read is None else read[0]


def _read_regular_stat(path: str | os.PathLike[str], follow_links: bool, size: int | None,
                       head: int | None) -> tuple[bytes, os.stat_result] | None:
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_links else os.O_NOFOLLOW)
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return None
    try:
        info = os.fstat(descriptor)
        length = info.st_size
        if not stat.S_ISREG(info.st_mode) or (size is not None and length != size):
            return None
        with open(descriptor, "rb", buffering=0, closefd=False) as file:
            if head is not None:
                return file.read(head), info
            content = file.readall()
    except OSError:
        return None
    finally:
        os.close(descriptor)
    return (content, info) if len(content) == length else None


def _read_link(path: str, root: str, limit: int) -> bytes:
    target = os.path.realpath(path)
    real_root = os.path.realpath(root)
    if os.path.commonpath([target, real_root]) != real_root:
        raise InputProblem("TI108", f"a symlink to {display_name(target)}, outside the repository")
    if not os.path.lexists(target):
        written = os.readlink(path) if os.path.islink(path) else display_name(target)
        raise InputProblem("TI108", f"a symlink to {written}, which does not exist")
    # realpath resolved every link; what is left is a loop, which open() reports (ELOOP).
    return read_input(target, root=None, limit=limit)


_READ_SIZE = 1 << 20


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "a special file"


# (path, code, message) of a folder or file the walk could not use.
WalkProblem = Callable[[str, str, str], None]


def walk(top: str, on_problem: WalkProblem) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` in a stable order that reports what it cannot enter instead of skipping it.

    Unreadable folders (TI107), symlinked folders (TI108: they are not followed, so
    their objects would be missing) and folders with names that are not UTF-8 (TI114)
    are passed to ``on_problem``; the walk goes on with the rest.
    """

    def unreadable(error: OSError) -> None:
        where = error.filename if isinstance(error.filename, str) else top
        on_problem(where, "TI107", f"cannot list the folder: {error.strerror}")

    for directory, subdirs, filenames in os.walk(top, onerror=unreadable):
        kept = []
        for name in sorted(subdirs):
            full = os.path.join(directory, name)
            if not is_utf8_name(name):
                on_problem(full, "TI114", "the folder name is not UTF-8; its files were not read")
            elif os.path.islink(full):
                on_problem(full, "TI108", "a symlink to a folder; tiops does not follow folder symlinks, "
                                          "so its files were not read")
            elif os.path.lexists(os.path.join(full, ".git")):
                continue  # a git submodule (or nested repository): no file of a commit, so not read here either
            else:
                kept.append(name)
        subdirs[:] = kept
        yield directory, subdirs, sorted(filenames)
