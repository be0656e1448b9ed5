"""Reading input files safely: regular files only, within the size limit, inside the repository.

Every stage that reads what a user (or a checkout) put on disk goes through here, so
that a FIFO named ``*.yaml`` cannot hang tiops, a symlink to ``/dev/zero`` cannot fill
memory, and an unreadable folder is reported instead of skipped (docs/limits.md).
Problems come back as :class:`InputProblem` with the finding code that names them.
"""

from __future__ import annotations

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


def read_input(path: str, *, root: str | None = None, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    With ``root``, a symlink must resolve to a file under ``root`` (the repository).
    Raises :class:`InputProblem` (TI106 unreadable, TI108 not a regular file or a
    symlink leaving the repository, TI109 too large).
    """
    if root is not None and os.path.islink(path):
        target = os.path.realpath(path)
        real_root = os.path.realpath(root)
        if os.path.commonpath([target, real_root]) != real_root:
            raise InputProblem("TI108", f"a symlink to {display_name(target)}, outside the repository")
    try:
        info = os.stat(path)
    except OSError as error:
        raise InputProblem("TI106", f"cannot read the file: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputProblem("TI108", f"not a regular file ({_kind(info.st_mode)})")
    if info.st_size > limit:
        raise InputProblem("TI109", f"{info.st_size} bytes, more than the limit of {limit} bytes")
    try:
        # O_NONBLOCK: should the file have been swapped for a pipe since the stat,
        # opening it still returns at once, and fstat below refuses it.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise InputProblem("TI106", f"cannot read the file: {error.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise InputProblem("TI108", "not a regular file")
        chunks = []
        size = 0
        while chunk := os.read(descriptor, _READ_SIZE):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise InputProblem("TI109", f"more than the limit of {limit} bytes")
    except OSError as error:
        raise InputProblem("TI106", f"cannot read the file: {error.strerror}") from None
    finally:
        os.close(descriptor)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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
            else:
                kept.append(name)
        subdirs[:] = kept
        yield directory, subdirs, sorted(filenames)
