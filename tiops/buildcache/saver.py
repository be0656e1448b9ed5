"""The new process that saves a first build's cache beside its compile (BuildCache.save_beside).

Started by tiops.forkwork.start_in_new_process with the build's open spill file, it reads
the cache's state where :meth:`BuildCache._hand_over` put it in that file and writes what
:meth:`BuildCache.save` writes. It prints nothing: its exit status is all the command sees
(0 saved, 1 failed part way, 2 handed nothing it could read). When it is not 0, the command
saves from the same state itself (tiops.buildcache.store.HandedSave).
"""

from __future__ import annotations

import os
from pathlib import Path

from tiops.buildcache.store import BuildCache


def main(arguments: list[str]) -> int:
    """``FOLDER SPILL_FD OFFSET LENGTH CRC``: save the cache at FOLDER handed over in the spill file."""
    try:
        folder, spill_fd, offset, length, crc = arguments
        spill = os.fdopen(int(spill_fd), "r+b")
        place = (int(offset), int(length), int(crc))
    except (ValueError, OSError):
        return 2
    with spill:
        cache = BuildCache.resumed(Path(folder), spill, place)
        if cache is None:
            return 2
        try:
            cache.save()
        except Exception:  # nothing reaches the command's output: the next build parses what is missing
            return 1
    return 0
