"""The locks of partner folders (``_imported.json``, tiops.validate.partner), kept parsed in the build cache.

The edit check compares the digest of every partner object with its folder's lock, which ``tiops
import`` rewrites only when it imports. Parsing the locks took 0.069 s of a one-file recompile of
ATT&CK, CAPEC and the ICS and mobile matrices (31k objects, 19 MB of JSON, most of it the
per-property digests the check reads only for an edited object). Each lock's object digests are
kept here, marshalled, under the lstat of the file they were read from, and used while that
lstat holds (size, modification and change times, inode). A lock modified within a second of
being read (or whose change time is that recent) is not kept, as git treats its racily clean
files, so an edit in the same tick is never missed.
"""

from __future__ import annotations

import os
import stat
import time
from typing import Any

from tiops.buildcache.store import _RACY_NS  # the cache's own window for racily clean files
from tiops.filesource import FileSource, WorkingTree
from tiops.findings import Finding
from tiops.inputs import file_identity
from tiops.validate.partner import LOCK_FILE, read_lock

#: The name of the kept locks among the build cache's files (BuildCache.read_record).
RECORD = "partner-locks"
_KEPT_KEYS = ("source", "objects")

LockState = tuple[int, int, int, int]


class PartnerLocks:
    """A lock reader (tiops.validate.partner.LockReader) that takes the locks the cache keeps; :meth:`save`
    keeps those it parsed."""

    def __init__(self, cache: Any) -> None:
        self._cache = cache
        body = cache.read_record(RECORD)
        kept = body.get("locks") if body is not None else None
        self._kept: dict[str, tuple[LockState, dict[str, Any]]] = kept if isinstance(kept, dict) else {}
        self._trusted_before = time.time_ns() - _RACY_NS
        self._changed = False
        self._asked: set[str] = set()

    def __call__(self, files: FileSource, folder: str) -> tuple[dict[str, Any], Finding | None]:
        if not isinstance(files, WorkingTree):  # a revision read from git: nothing to lstat
            return read_lock(files, folder)
        try:
            info = os.lstat(os.path.join(os.fspath(files.root), folder, LOCK_FILE))
        except OSError:
            return read_lock(files, folder)  # which says what is wrong
        state = (info.st_size, info.st_mtime_ns, info.st_ctime_ns, file_identity(info))
        self._asked.add(folder)
        kept = self._kept.get(folder)
        if (type(kept) is tuple and len(kept) == 2 and kept[0] == state and type(kept[1]) is dict
                and type(kept[1].get("objects")) is dict):
            return kept[1], None
        lock, finding = read_lock(files, folder)
        # The change time too: a copy that keeps the modification time (cp -p, rsync -a, tar x) is new.
        if finding is None and stat.S_ISREG(info.st_mode) and max(info.st_mtime_ns, info.st_ctime_ns) < self._trusted_before:
            self._kept[folder] = (state, {key: lock[key] for key in _KEPT_KEYS if key in lock})
            self._changed = True
        return lock, finding

    def save(self) -> None:
        """Keep the locks parsed in this run, when any was. Never raises for I/O: the cache is optional."""
        gone = set(self._kept) - self._asked  # folders renamed or removed since: every run asks for every one
        if gone and self._asked:
            for folder in gone:
                del self._kept[folder]
            self._changed = True
        if self._changed:
            self._cache.write_record(RECORD, {"locks": self._kept})
            self._changed = False
