"""A disk that fills up while one file is written: for tests of what a write cut short leaves.

Whichever way the file is written, ``os.write`` on a descriptor (tiops.outputs) or a file
object from ``io.open`` (``Path.write_text`` and ``write_bytes`` open through it), the first
write to a file whose name holds ``name`` (the file beside it too: ``.plan.json.PID.writing``)
lands half its bytes and then fails with ENOSPC, as a full disk does. Other files are written
as usual. So a test says the same of a writer that replaces a file and of one that truncates
it in place, and fails for the second: the old content is gone, half of the new one is there.
"""

from __future__ import annotations

import errno
import io
import os
from typing import Any

import pytest


def fill_up_writing(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real_write = os.write
    real_open = io.open

    def write(descriptor: int, data: Any) -> int:
        if name in _name_of(descriptor):
            real_write(descriptor, bytes(memoryview(data)[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written: int = real_write(descriptor, data)
        return written

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        if any(c in mode for c in "wax+") and isinstance(file, (str, os.PathLike)) \
                and name in os.path.basename(os.fspath(file)):
            return _Filling(handle)
        return handle

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(io, "open", open_)


def _name_of(descriptor: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/self/fd/{descriptor}"))
    except OSError:
        return ""


class _Filling:
    """A file object whose first write lands half and fails as on a full disk."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def write(self, data: Any) -> int:
        self._handle.write(data[: len(data) // 2])
        self._handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self) -> _Filling:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._handle, attribute)
