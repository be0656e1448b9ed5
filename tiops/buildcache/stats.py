"""Which files changed since the stat index was written: an lstat of each against its record.

Both loads through the cache (tiops.buildcache.indexed, tiops.buildcache.whole) start here: a
file whose lstat is still the one its record holds (size, modification and change times,
inode), and was modified before the racy bound, is the file whose blob id the record names,
and is taken from its entry without being read. With many files, a forked helper takes the
lstats of the first share while this process takes the rest (tiops.forkwork.run_beside); its
verdict is used only for the very stat index this process read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from tiops.buildcache.store import BuildCache
from tiops.forkwork import Beside, run_beside
from tiops.load import Defaults

# A folder of the walk (tiops.buildcache.whole._keyed_object_folders): its path and repository
# path (both ending with "/"), its defaults, their key and its object files' names.
Folders = list[tuple[str, str, Defaults, str | None, list[str]]]


def changed_files(cache: BuildCache, folders: Folders, total: int, helper: bool,
                  meanwhile: Callable[[], None] | None = None, share: float | None = None) -> set[int]:
    """The positions, in walk order, of the ``total`` files of ``folders`` that are not the file their
    stat index record describes (:func:`_changed_here`). With a ``helper`` (tiops.load.fork_helper),
    a forked helper takes the first ``share`` of them (:data:`_HELPER_SHARE` unless given); ``meanwhile``
    runs here before this process takes its own share (work that needs no lstat, while the helper takes its)."""
    split = int(total * (_HELPER_SHARE if share is None else share)) if helper and cache._index else 0
    beside = _changed_beside_read(cache, folders, split) if split else None
    try:
        if meanwhile is not None:
            meanwhile()
        changed = _changed_here(cache, folders, split if beside is not None else 0, total)
        if beside is not None:
            theirs = _changed_verdict(beside, cache)
            changed |= _changed_here(cache, folders, 0, split) if theirs is None else theirs
    finally:
        if beside is not None:
            beside.close()
    return changed


def _changed_verdict(beside: Beside, cache: BuildCache) -> set[int] | None:
    """The positions of the files the helper found not to be what the stat index says, when its
    verdict was made for the stat index this process read; None to take each lstat here."""
    verdict = beside.result()
    if (type(verdict) is tuple and len(verdict) == 3 and verdict[0] == cache.index_identities()
            and verdict[1] == cache._index_trusted_before and type(verdict[2]) is list
            and all(type(position) is int for position in verdict[2])):
        return set(verdict[2])
    return None


# The share of the lstats a forked helper takes unless the caller gives one (a warm build gives its
# own, tiops.buildcache.indexed: it has other work meanwhile, the folder groups).
_HELPER_SHARE = 0.55


def _changed_here(cache: BuildCache, folders: Folders, start: int, stop: int) -> set[int]:
    """The positions from ``start`` to ``stop`` of the files of ``folders`` that are not the file their
    stat index record describes (no record, gone, not a regular file, changed, racily recent)."""
    index_get, trusted_before = cache._index.get, cache._index_trusted_before
    changed: set[int] = set()
    position = 0
    for prefix, relative_prefix, _, _, names in folders:
        if position + len(names) <= start:
            position += len(names)
            continue
        for name in names:
            if position >= stop:
                return changed
            if position >= start:
                record = index_get(relative_prefix + name)
                if record is None or not _still_recorded(prefix + name, record, trusted_before):
                    changed.add(position)
            position += 1
    return changed


def _changed_beside_read(cache: BuildCache, folders: Folders, stop: int) -> Beside | None:
    """A forked helper giving :func:`_changed_here` of the first ``stop`` files, against the stat index
    this process read: its verdict carries the index's identity and racy-time bound, so it is used
    only for that very index (:func:`_changed_verdict`)."""
    identity = cache.index_identities()
    if identity[0] is None:
        return None

    def work() -> tuple[tuple[bytes | None, bytes | None], int, list[int]]:
        return identity, cache._index_trusted_before, sorted(_changed_here(cache, folders, 0, stop))

    return run_beside(work)


def _still_recorded(path: str, record: tuple[int, int, int, int, str], trusted_before: int) -> bool:
    """Whether the file at ``path`` is still the one its stat index record describes: a regular
    file of the same size, modification and change times and inode, modified before the racy
    bound (a file changed in the second the index was written may not show it in its times)."""
    try:
        now = os.lstat(path)
    except OSError:
        return False
    return (now.st_mtime_ns < trusted_before and stat.S_ISREG(now.st_mode) and record[0] == now.st_size
            and record[1] == now.st_mtime_ns and record[2] == now.st_ctime_ns
            and record[3] == now.st_dev << 64 | now.st_ino)  # tiops.inputs.file_identity, inline: once per file
