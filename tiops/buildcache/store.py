"""The cache folder, ``.tiops/build-cache/``: its files, read whole and saved by changed file.

Trust
-----
Files are ``marshal`` data of plain values (never pickle: nothing is executed when
reading), behind a magic string and a CRC-32 checksum of the payload. A file that is
truncated, corrupt, changed after writing, of another format or of another context is
ignored as if absent, and rewritten at the next save. Every file is written to a
temporary name and renamed into place (``os.replace`` is atomic on POSIX), so an
interrupted build leaves the previous file or the new one, never half of one; the
temporary file of a build killed part way (its name ends in the writer's process id)
is removed by the next save.
The checksum detects damage, not forgery: a cache restored in CI comes from the
same workflow's own earlier runs (docs/ci.md). A SHA-256 of the payload would not detect forgery
either (anyone who can write the file can write its digest), and took a one-file recompile at 100k
objects 0.016 s on the 22 MB bundle record alone, written on the critical path, against 0.004 s.

Layout
------
Entries are spread over 256 shards by the first byte of their blob id, and each entry
over two files of its shard (tiops.buildcache.entries.FileEntry): ``entries-XX`` holds its index, which
every build reads, and ``objects-XX`` its objects and their references, read only when
a build needs an unchanged file's objects (tiops.validate.indexed). The two are
written together, objects first. An objects part that cannot be read back makes the
build parse its file again and keep a new entry (tiops.pipeline, ``StaleEntry``); an
index whose objects part is missing is dropped when its shard is next written, and an
objects part that no index lists is let go. ``index`` holds the files' ``lstat`` records (below),
``folders-XX`` the groups of folders taken whole (tiops.buildcache.folders),
``bundle-record`` the last bundle's (tiops.bundlereuse), and ``partner-locks`` the partner
folders' import locks, parsed (tiops.buildcache.partnerlocks).

Entries made during a build are not held in memory until :meth:`BuildCache.save`: a
million objects' entries are most of a gigabyte. :meth:`BuildCache.store` appends each
to its shard's buffer, and a full buffer goes as one chunk (one ``marshal`` of its
entries' blob ids, keys and two parts) to a spill file: an anonymous
temporary file in the cache folder (unlinked from the start, so an interrupted build
leaves nothing of it behind), with each chunk's offset, length and CRC-32 kept in
memory. :meth:`BuildCache.save` reads back one shard's chunks at a time, merges them
with the shard's kept entries and writes the shard as above. A chunk that does not read
back whole and unchanged is dropped, and its files are parsed again at the next build.

To avoid reading every file to hash it, an index remembers each file's ``lstat``
(size, modification and change times, inode) with its blob id, as git's index does. A
file modified within a second before the run that wrote the index began is hashed again
("racily clean", as git calls it), since a second change in the same clock tick keeps its
time: the index is dated when its run began (BuildCache._write), not when it ended.
A run that changed few records writes them to ``index-delta`` instead, bound to the
identity of the index it read (checksum, size and time) and dated the same way, and the next run applies them
(BuildCache._index_delta; as git's split index keeps a shared index and a small one).
"""

from __future__ import annotations

import contextlib
import itertools
import marshal
import operator
import os
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from tiops.buildcache.entries import (
    _IDS_AT,
    _SIGNATURE_AT,
    FileEntry,
    StatRecord,
    _entry_parts,
    _stat_record,
    _StoredIndex,
    context_key,
    overlay_signature,
)
from tiops.forkwork import (
    Beside,
    NewProcess,
    joined_before_fork,
    remove_abandoned,
    run_beside,
    start_in_new_process,
)
from tiops.inputs import file_identity, read_regular_file_dated, read_regular_head
from tiops.memory import write_in_pieces
from tiops.outputs import kept_out_of_git, rename_over
from tiops.validate.indexed import FileIndex

CACHE_DIR = Path(".tiops") / "build-cache"
# \x01: a CRC-32 checksum. The files of \x00 (a SHA-256) are another format: ignored, and rewritten.
_MAGIC = b"TIOPS-BUILD-CACHE\x01"
_CHECKSUM_SIZE = 4
_INDEX_FILE = "index"
# The stat records a build changed, beside an index it did not write again (BuildCache._index_delta).
_INDEX_DELTA_FILE = "index-delta"
# A delta is kept while it holds at most this many records, or one in _DELTA_SHARE of the index's,
# whichever is more: the index is written again, whole, when the delta would hold more.
_DELTA_MIN = 64
_DELTA_SHARE = 32
_SHARDS = 256  # entries spread over files by the first byte of their blob id: one edit rewrites one or two
# Folder groups (tiops.buildcache.folders) spread over files by their folder's path: one edit rewrites one.
_FOLDER_SHARDS = 64
# A shard's new entries go to the spill file in chunks of about this size: 256 buffers of
# 64 KiB at most in memory, and a few thousand chunks' offsets for a million objects.
_SPILL_CHUNK = 64 * 1024
# What an index adds to its entry's size in a spill buffer, roughly: the objects part is most of an entry.
_INDEX_SIZE_GUESS = 256
# At most this many bytes of the stat index and the folder groups are read ahead (Prefetch), all
# held until the load takes them: at 100k objects 24 MB, all of them; at a million, the index and
# a few groups, the others read one at a time as before.
_READ_AHEAD_BUDGET = 96 << 20
# A file whose modification time is this close to the index's own is hashed again.
_RACY_NS = 1_000_000_000

# An entry stored in this run, as it waits to be saved: blob id, entry key, index part, objects part.
_StoredEntry = tuple[str, str, _StoredIndex, bytes]


def has_entries(root: Path) -> bool:
    """Whether the repository at ``root`` has a build cache with an index for this context
    (:func:`context_key`), worth loading by file indexes.

    A first build (no cache yet) parses every file whatever the route. File indexes
    (:func:`load_repo_indexed`) pay for reading little of a warm cache, but a cold build
    holds an index per file beside every object, and at a million objects that is what
    takes the first compile over 3 GB (docs/performance.md, "Memory at a million
    objects"); such a build takes :func:`load_repo_cached` instead. A cache another
    tiops, Python or configuration wrote (an upgrade, or one CI restored from an older
    run) is such a first build too: none of its entries can be used.

    Only a hint for choosing the route: whatever it says, nothing of the cache is used
    that its checksum and context do not confirm.
    """
    return _written_for(root / CACHE_DIR / _INDEX_FILE, context_key(root))


# How marshal (format 4) begins the (context, name, body) tuple of a cache file: a small tuple of
# three, whose first item, the context, is a short ASCII string. The flag bit marks a reference.
_SMALL_TUPLE, _SHORT_ASCII, _SHORT_ASCII_INTERNED, _FLAG_REF = ord(")"), ord("z"), ord("Z"), 0x80


def _written_for(path: Path, context: str) -> bool:
    """Whether the cache file at ``path`` says it was written for ``context``, by its first bytes
    alone (a million objects' index is hundreds of megabytes; its checksum is checked when read)."""
    expected = context.encode("ascii")
    start = len(_MAGIC) + _CHECKSUM_SIZE
    # Not open(): a named pipe in the index's place would block the build (read_regular_file).
    head = read_regular_head(path, start + 4 + len(expected))
    if head is None:
        return False
    payload = head[start:]
    return (head[:len(_MAGIC)] == _MAGIC and len(payload) == 4 + len(expected)
            and payload[0] & ~_FLAG_REF == _SMALL_TUPLE and payload[1] == 3
            and payload[2] & ~_FLAG_REF in (_SHORT_ASCII, _SHORT_ASCII_INTERNED)
            and payload[3] == len(expected) and payload[4:] == expected)



_RELATIVE = operator.attrgetter("relative")
_BLOB_OF_RECORD = operator.itemgetter(4)  # a stat index record's blob id
_ENTRY_NAME = operator.attrgetter("entry")
_FIRST_TWO = operator.itemgetter(slice(0, 2))

# What BuildCache.save_unless_small leaves unwritten: parsing this much again costs a
# few milliseconds, rewriting the stat index and shards tens of them (100k objects).
_SMALL_FILES = 32
_SMALL_BYTES = 1 << 20
_SMALL_RECORDS = 64


class BuildCache:
    """The entries of one repository's cache directory, loaded whole, saved by changed file."""

    def __init__(self, folder: Path, context: str) -> None:
        self.folder = folder
        self.context = context
        # Before any lstat this run remembers (open() reads the index next): the time the stat index it
        # saves is dated with, so that the next run takes a file modified within _RACY_NS before this
        # run began as racily clean (save, _write).
        self._began_ns = time.time_ns()
        self._shards: dict[int, dict[str, dict[str, _StoredIndex]]] = {}  # entries' indexes (FileEntry.stored_index)
        # Entries' objects (FileEntry.stored_objects), by shard, read when first asked for (stored_objects).
        self._objects: dict[int, dict[str, dict[str, bytes]]] = {}
        self._settled = False
        self._dirty: set[int] = set()
        self._used: set[tuple[str, str]] = set()
        self._index: dict[str, tuple[int, int, int, int, str]] = {}
        self._index_trusted_before = 0  # modification times from here on are racy
        # The stat index delta read and applied to _index (_read_index): its records, by relative path
        # (None: no longer indexed), which the next delta holds too; None when none was applied.
        self._delta_records: dict[str, Any] | None = None
        self._delta_stale = False  # an index delta not applied is there: removed at the next save
        # The stat records made in this run (remember_record). The new stat index is these over the
        # records of the files taken unchanged (_note_taken), which stay the index's own: never copied
        # one by one, it is made whole only to be written whole (_whole_new_index).
        self._new_index: dict[str, tuple[int, int, int, int, str]] = {}
        self.rejected: list[str] = []  # files ignored as corrupt or foreign (for tests and --verbose)
        self.read_identities: dict[str, bytes] = {}  # each file read and trusted, by name: _identity
        self._written_identities: dict[str, bytes] = {}  # each file written whole, by name: _identity
        # What index_identities() gives the next run, as the last save left the stat index and its delta
        # (saved_index_identities); None before a save, or after one that failed part way.
        self._saved_index: tuple[bytes | None, bytes | None] | None = None
        # Entries stored in this run, by shard: not yet spilled (with their size), and (offset, length,
        # CRC-32) of spilled chunks.
        self._pending: dict[int, list[_StoredEntry]] = {}
        self._pending_size: dict[int, int] = {}
        self._spilled: dict[int, list[tuple[int, int, int]]] = {}
        self._spill: IO[bytes] | None = None
        self._spill_size = 0
        self._spill_failed = False  # no spill file could be written: entries stored from then on are dropped
        self._stored_files = 0  # entries stored in this run, and the size of their objects parts
        self._stored_size = 0
        self._remembered = 0  # stat records made in this run (a path remembered twice counts twice)
        # Files a warm load took unchanged (_IndexedEntry: their entries and stat records as read),
        # added to _used only when something needs those (_note_taken): a check that writes nothing
        # does not spend a set insertion per file on them.
        self._taken: list[Any] = []
        self._noted_files: list[Any] = []  # those noted (_note_taken)
        self._taken_total = 0  # files taken unchanged and noted, folders' included: the index's own records
        self._gone_paths: set[str] | None = None  # _gone's answer, until a file is taken or remembered
        # Folders taken whole (tiops.buildcache.folders): (relative prefix, folder key, names, blobs), noted
        # as their files would be; and those noted already.
        self._taken_folders: list[tuple[str, str, list[str], list[str]]] = []
        self._noted_folders: list[tuple[str, str, list[str], list[str]]] = []
        self._folder_shards: dict[int, dict[str, Any]] = {}  # folder groups by shard, read when asked for
        self._folders_dirty: set[int] = set()
        self._folders_walked: set[str] | None = None  # every folder of a whole walk: the others' groups go
        self._folders_spilled: dict[int, list[tuple[int, int, int]]] = {}  # groups kept in this run, by shard
        self._unread: set[int] = set()  # shards not read yet (open(lazy=True)), read when first needed
        # The stat index file's payload, made by the process that handed its save over (resumed).
        self._index_payload: bytes | None = None
        self._prefetched: Prefetch | None = None  # files read ahead on a thread (prefetch)

    @classmethod
    def open(cls, root: Path, context: str, *, lazy: bool = False, prefetched: Prefetch | None = None) -> BuildCache:
        """The cache of the repository at ``root`` for ``context``.

        ``lazy``: read each shard of entries only when something needs it (a build taking
        folders whole, tiops.buildcache.folders, needs few); :meth:`settle` reads those whose entries
        may have gone unused, and stops reading more.
        ``prefetched``: files of this cache already being read (:meth:`prefetch`), taken from there.
        """
        cache = cls(root / CACHE_DIR, context)
        cache._prefetched = prefetched
        cache._index, cache._index_trusted_before = cache._read_index()
        if lazy:
            try:
                present = set(os.listdir(cache.folder))
            except OSError:
                present = set()
            cache._unread = {number for number in range(_SHARDS)
                             if _shard_name(number) in present or _objects_name(number) in present}
            return cache
        for number in range(_SHARDS):
            cache._read_shard(number)
        return cache

    def _read_shard(self, number: int) -> dict[str, dict[str, _StoredIndex]] | None:
        """Read shard ``number`` of entries into memory (damaged or foreign: marked to be rewritten)."""
        self._unread.discard(number)
        shard = self._read(_shard_name(number))
        if isinstance(shard, dict):
            self._shards[number] = shard
            return shard
        if (shard is not None or (self.folder / _shard_name(number)).exists()
                or (self.folder / _objects_name(number)).exists()):
            self._dirty.add(number)  # rewritten (or removed) at the next save
        return None

    def _shard(self, number: int) -> dict[str, dict[str, _StoredIndex]] | None:
        """Shard ``number`` of entries, read now if it was not yet (open(lazy=True))."""
        shard = self._shards.get(number)
        if shard is None and number in self._unread:
            shard = self._read_shard(number)
        return shard

    def holds_entries(self) -> bool:
        """Whether the cache holds any shard of entries (read or not yet)."""
        return bool(self._shards or self._unread)

    def _read_index(self) -> tuple[dict[str, tuple[int, int, int, int, str]], int]:
        """The stat index (relative path -> lstat record and blob id) and the modification time
        from which records are racy; empty when there is none to trust. With the delta a later
        build wrote beside it (:meth:`_index_delta`), its records applied and its time the bound."""
        # The index's modification time is that of the very file read (the fstat of its descriptor): an
        # index another build renames over it meanwhile is judged by its own bound, never by the other's.
        # Taken by path, the time could be another index's: each is dated when its build began (_write),
        # so an older index saved last would have its records trusted up to a newer build's bound.
        taken = self._prefetched.take(_INDEX_FILE) if self._prefetched is not None else None
        if taken is None:
            taken = _read_checked(self.folder / _INDEX_FILE)
        written = taken[0]
        index = self._read(_INDEX_FILE, taken)
        if not (isinstance(index, dict) and written is not None):
            return {}, 0
        delta = self._read_delta()
        if delta is None:
            return index, written - _RACY_NS
        records, delta_written = delta
        for relative, record in records.items():
            if record is None:
                index.pop(relative, None)
            else:
                index[relative] = record
        self._delta_records = records
        # Every record of the index with its delta applied was found unchanged, or taken again, by the
        # build that wrote the delta, and that build began before the delta's time: the bound of
        # the index it wrote whole, had it done so (_write).
        return index, delta_written - _RACY_NS

    def _read_delta(self) -> tuple[dict[str, Any], int] | None:
        """The records of the stat index delta and its modification time, when it is a delta of the
        very index read (by that index's identity, _identity); None otherwise: the index alone is then used,
        its own records checked against each file as ever."""
        taken = self._prefetched.take(_INDEX_DELTA_FILE) if self._prefetched is not None else None
        if taken is None:
            if not os.path.lexists(self.folder / _INDEX_DELTA_FILE):
                return None
            taken = _read_checked(self.folder / _INDEX_DELTA_FILE)
        written = taken[0]
        body = self._read(_INDEX_DELTA_FILE, taken)
        records = body.get("records") if body is not None else None
        if (written is None or body is None or body.get("base") != self.read_identities.get(_INDEX_FILE)
                or type(records) is not dict or not all(
                    record is None or (type(record) is tuple and len(record) == 5) for record in records.values())):
            # Damaged, or of an index written whole since: of no use, and removed at the next save.
            self._delta_stale = os.path.lexists(self.folder / _INDEX_DELTA_FILE)
            return None
        return records, written

    def index_identities(self) -> tuple[bytes | None, bytes | None]:
        """The identities (:func:`_identity`) of the stat index and of its delta as read (None: not read, or no delta applied):
        what a verdict on the index's records was made for (tiops.buildcache.stats)."""
        delta = self.read_identities.get(_INDEX_DELTA_FILE) if self._delta_records is not None else None
        return self.read_identities.get(_INDEX_FILE), delta

    def _objects_of(self, number: int) -> dict[str, dict[str, bytes]]:
        """The objects parts of shard ``number``'s entries, read from their file the first time."""
        objects = self._objects.get(number)
        if objects is None:
            body = self._read(_objects_name(number))
            objects = self._objects[number] = body if isinstance(body, dict) else {}
        return objects

    def stored_objects(self, blob: str, key: str) -> bytes | None:
        """The objects part (FileEntry.stored_objects) of an entry, or None when the cache does not hold it.

        After :meth:`settle`, a shard that will not be rewritten lets go of each part as it is
        taken: a build that reads every object does not hold their stored bytes besides.
        """
        number = _shard_of(blob)
        by_key = self._objects_of(number).get(blob)
        if type(by_key) is not dict:
            return None
        stored = by_key.pop(key, None) if self._settled and number not in self._dirty else by_key.get(key)
        return stored if type(stored) is bytes else None

    def _read(self, name: str, taken: _Prefetched | None = None) -> Any:
        """The body of one cache file, or None when it is absent, damaged or foreign.

        Only a regular file is read: a named pipe would block the build, a link to
        ``/dev/zero`` never end, and a link to another file of the cache is that file, not
        this one. A body is also bound to its file's name, so that one file copied, moved
        or restored over another (its checksum and context right) is foreign there too.
        ``taken``: the file as :class:`Prefetch` read and checked it.
        """
        written, raw, holds = taken if taken is not None else _read_checked(self.folder / name)
        if raw is None:
            if os.path.lexists(self.folder / name):
                self.rejected.append(name)
            return None
        if not holds:
            self.rejected.append(name)
            return None
        head = len(_MAGIC)
        # A view, not a copy: the index and entry files are most of what a warm build reads.
        payload = memoryview(raw)[head + _CHECKSUM_SIZE:]
        try:
            context, stored_name, body = marshal.loads(payload)
        except (ValueError, TypeError, EOFError):
            self.rejected.append(name)
            return None
        if context != self.context or stored_name != name or not isinstance(body, dict):
            self.rejected.append(name)
            return None
        self.read_identities[name] = _identity(raw, written)
        return body

    def read_record(self, name: str) -> dict[str, Any] | None:
        """Another file of this cache (not an entry shard), checked as the shards are; None when absent or not trusted."""
        body = self._read_taking(name)
        return body if isinstance(body, dict) else None

    def _read_taking(self, name: str) -> Any:
        """:meth:`_read`, of what was read ahead when it was (:meth:`prefetch`)."""
        return self._read(name, self._prefetched.take(name) if self._prefetched is not None else None)

    @staticmethod
    def prefetch(root: Path, also: Sequence[str] = ()) -> Prefetch:
        """Start reading, on a thread and in this order, the stat index and the folder groups of the
        cache of the repository at ``root``, for :meth:`open` (``prefetched``): a warm load reads the
        index first, then every folder group (:meth:`walked_folders`); then the files ``also``
        (the bundle record a compile reads once the files are loaded), within the same budget."""
        return Prefetch(root / CACHE_DIR, [_INDEX_FILE, _INDEX_DELTA_FILE, *map(_folders_name, range(_FOLDER_SHARDS)),
                                           *also], _READ_AHEAD_BUDGET)

    def read_ahead(self, names: Sequence[str]) -> None:
        """Start reading the files ``names`` of this cache on a thread (the bundle record a compile reads)."""
        if not names:
            return
        if self._prefetched is None:
            self._prefetched = Prefetch(self.folder, names)
        else:
            self._prefetched.more(names)

    def read_already(self, name: str) -> bool:
        """Whether the file ``name`` was read ahead and is there to be taken without waiting."""
        return self._prefetched is not None and self._prefetched.ready(name)

    def forget_prefetched(self) -> None:
        """Let go of what was read ahead and not taken (a compile that will not read its record after all)."""
        if self._prefetched is not None:
            self._prefetched.close()
            self._prefetched = None

    def write_record(self, name: str, body: dict[str, Any]) -> None:
        """Keep ``body`` under ``name`` beside the entries. Never raises for I/O: the cache is optional."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._write(name, body)
        except (OSError, ValueError):
            return

    def pending_record(self, name: str, body: dict[str, Any], last: str, width: int) -> PendingRecord | None:
        """Start writing ``body`` under ``name`` as :meth:`write_record` would, but for the value of its
        key ``last``: its last key, an ASCII text of ``width`` characters known only later
        (:meth:`PendingRecord.finish`). None when it cannot be started: the cache is optional.

        The bundle record names the bundle's SHA-256, which is worked out last, after every
        line. Serialising, digesting and writing the 22 MB record of 100k objects took 0.07 s
        after it. Started here, that work overlaps the bundle's digest instead.
        """
        placeholder = "\0" * width
        if list(body)[-1:] != [last] or body[last] != placeholder:
            raise ValueError(f"the record's last key must be {last!r}, holding {width} NUL characters")
        try:
            payload = marshal.dumps((self.context, name, body))
        except ValueError:
            return None
        # marshal writes a dict's items in order and ends it (and the tuple) with one TYPE_NULL byte:
        # the value's characters end the payload but that byte. Checked, not assumed.
        value_at = len(payload) - 1 - width
        if payload[value_at:-1] != placeholder.encode("ascii") or payload[-1:] != b"0":
            return None
        import tempfile  # only a build that changed something writes

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.",
                                                 suffix=f".{os.getpid()}{_TEMPORARY}")
        except OSError:
            return None
        pending = PendingRecord(self.folder / name, temporary, os.fdopen(handle, "wb"), payload, value_at)
        try:
            pending.start()
        except OSError:
            pending.abandon()
            return None
        except BaseException:  # Ctrl-C part way: nothing left beside the cache
            pending.abandon()
            raise
        return pending

    def lookup(self, blob: str, key: str, overlay: dict[str, Any] | None) -> FileEntry | None:
        """The entry of the file with git blob id ``blob`` under entry key ``key``, if cached and made
        under the same lines of its folder's ``overlay`` (Defaults.overlay) as there are now."""
        try:
            shard = self._shard(int(blob[:2], 16))  # _shard_of, inlined: called once per file
        except ValueError:
            return None
        by_key = shard.get(blob) if shard is not None else None
        index = by_key.get(key) if isinstance(by_key, dict) else None
        if type(index) is not tuple or len(index) != _SIGNATURE_AT + 1 or type(index[_IDS_AT]) is not list:
            return None
        if overlay_signature(overlay, index[_IDS_AT]) != index[_SIGNATURE_AT]:
            return None  # made under other overlay lines: the file is parsed again, and its entry replaced
        stored_objects = self.stored_objects(blob, key)
        if stored_objects is None:
            return None
        self._used.add((blob, key))
        return FileEntry(index, stored_objects)

    def store(self, blob: str, key: str, entry: FileEntry) -> None:
        """Keep ``entry`` for the next :meth:`save`: buffered, and spilled to disk as buffers fill."""
        number = _shard_of(blob)
        self._dirty.add(number)
        self._stored_files += 1
        self._stored_size += len(entry.stored_objects)
        if self._spill_failed:
            return  # the file is parsed again next time
        # The entry's own bytes are held, not copied, until its shard's chunk is written.
        stored_index, stored_objects = entry
        pending = self._pending.get(number)
        if pending is None:
            pending = self._pending[number] = []
            size = 0
        else:
            size = self._pending_size[number]
        pending.append((blob, key, stored_index, stored_objects))
        size += len(stored_objects) + _INDEX_SIZE_GUESS
        if size >= _SPILL_CHUNK:
            self._spill_pending(number)
        else:
            self._pending_size[number] = size

    def _spill_pending(self, number: int) -> None:
        """Append shard ``number``'s buffered entries to the spill file as one chunk: one marshal,
        read back by one marshal.loads (no record parsed in Python)."""
        pending = self._pending.pop(number, None)
        self._pending_size.pop(number, None)
        if not pending:
            return  # none, or dropped with every other buffer when a spill failed (_spill_chunk)
        try:
            chunk = marshal.dumps(pending)
        except ValueError:
            chunk = marshal.dumps(_marshalable(pending))
        self._spill_chunk(number, chunk)

    def _spill_chunk(self, number: int, chunk: bytes) -> None:
        """Append one shard's buffered entries to the spill file; on failure, drop them and stop spilling."""
        place = self._spill_bytes(chunk)
        if place is None:
            self._pending.clear()
            self._pending_size.clear()
            return
        self._spilled.setdefault(number, []).append(place)

    def _spill_bytes(self, chunk: bytes) -> tuple[int, int, int] | None:
        """Append ``chunk`` to the spill file: its (offset, length, CRC-32), or None when it cannot be (from then on)."""
        if self._spill_failed:
            return None
        try:
            if self._spill is None:
                import tempfile  # only a build that stores entries spills

                self.folder.mkdir(parents=True, exist_ok=True)
                # Unlinked at once (O_TMPFILE where there is one): nothing is left if the build stops.
                self._spill = tempfile.TemporaryFile(dir=self.folder, prefix=".spill.")  # noqa: SIM115 (closed by save)
            self._spill.seek(self._spill_size)
            write_in_pieces(self._spill.write, chunk)
        except OSError:
            self._spill_failed = True
            return None
        place = (self._spill_size, len(chunk), zlib.crc32(chunk))
        self._spill_size += len(chunk)
        return place

    def _spilled_back(self, place: tuple[int, int, int]) -> bytes | None:
        """A chunk :meth:`_spill_bytes` wrote, if it reads back whole and unchanged."""
        offset, length, crc = place
        if self._spill is None:
            return None
        try:
            self._spill.seek(offset)
            chunk = self._spill.read(length)
        except OSError:
            return None
        return chunk if len(chunk) == length and zlib.crc32(chunk) == crc else None

    def _stored_entries(self, number: int) -> Iterator[_StoredEntry]:
        """(blob, key, index, objects) of the entries of shard ``number`` stored in this run, in order.

        A spilled chunk that does not read back whole and unchanged (a torn or damaged
        spill file) is skipped: its files are simply not cached.
        """
        chunks = self._spilled.pop(number, [])
        spill = self._spill
        for offset, length, crc in chunks:
            if spill is None:
                break
            try:
                spill.seek(offset)
                chunk = spill.read(length)
            except OSError:
                continue
            if len(chunk) == length and zlib.crc32(chunk) == crc:
                yield from _chunk_entries(chunk)
        self._pending_size.pop(number, None)
        pending = self._pending.pop(number, None)
        if pending is not None:
            yield from pending

    def known_blob(self, relative: str, info: os.stat_result) -> str | None:
        """The blob id remembered for a file whose lstat has not changed since, else None (hash it)."""
        record = self._index.get(relative)
        if record is None or info.st_mtime_ns >= self._index_trusted_before:
            return None
        if record[:4] != (info.st_size, info.st_mtime_ns, info.st_ctime_ns, file_identity(info)):
            return None
        return record[4]

    def remember(self, relative: str, info: os.stat_result, blob: str) -> None:
        self.remember_record(relative, _stat_record(info), blob)

    def remember_record(self, relative: str, record: StatRecord, blob: str) -> None:
        """:meth:`remember` from the :func:`_stat_record` of the file (the forked helper sends that)."""
        self._new_index[relative] = (*record, blob)
        self._remembered += 1
        self._gone_paths = None

    def take_unchanged(self, files: list[Any]) -> None:
        """Note files (tiops.buildcache.indexed._IndexedEntry) taken from their entries with their stat
        records unchanged: used, and kept in the stat index as they were."""
        self._taken.extend(files)
        self._gone_paths = None

    def take_folder(self, relative_prefix: str, folder_key: str, names: list[str], blobs: list[str]) -> None:
        """Note the files of a folder taken whole (tiops.buildcache.folders) as :meth:`take_unchanged` notes files."""
        self._taken_folders.append((relative_prefix, folder_key, names, blobs))
        self._gone_paths = None

    def folder_group(self, relative_prefix: str) -> Any:
        """The group kept for the folder at ``relative_prefix`` (tiops.buildcache.folders.FolderGroup, unchecked), or None."""
        return self._folder_shard(_folder_shard_of(relative_prefix)).get(relative_prefix)

    def keep_folder(self, relative_prefix: str, group: tuple[Any, ...] | None) -> None:
        """Keep ``group`` for the folder at ``relative_prefix`` at the next :meth:`save` (None: keep none).

        A group is spilled at once, as stored entries are (:meth:`store`): a first build makes every
        folder's, which at a million objects held 130 MB more to the end of the compile.
        """
        number = _folder_shard_of(relative_prefix)
        shard = self._folder_shard(number)
        if group is not None and shard.get(relative_prefix) == group:
            return
        if shard.pop(relative_prefix, None) is not None:
            self._folders_dirty.add(number)
        if group is not None:
            try:
                place = self._spill_bytes(marshal.dumps((relative_prefix, group)))
            except ValueError:
                place = None  # not a value marshal writes: the folder is loaded file by file
            if place is not None:
                self._folders_spilled.setdefault(number, []).append(place)
                self._folders_dirty.add(number)

    def walked_folders(self, relative_prefixes: set[str]) -> None:
        """Every folder of the repository, walked whole: the groups of other folders go at the next :meth:`save`."""
        for number in range(_FOLDER_SHARDS):
            self._folder_shard(number)
        self._folders_walked = relative_prefixes

    def _folder_shard(self, number: int) -> dict[str, Any]:
        shard = self._folder_shards.get(number)
        if shard is None:
            body = self._read_taking(_folders_name(number))
            shard = self._folder_shards[number] = body if isinstance(body, dict) else {}
            if body is None and os.path.lexists(self.folder / _folders_name(number)):
                self._folders_dirty.add(number)  # damaged or foreign: rewritten (or removed) at the next save
        return shard

    def _taken_count(self) -> int:
        """Files taken unchanged and not yet noted (:meth:`_note_taken`)."""
        return len(self._taken) + sum(len(names) for _, _, names, _ in self._taken_folders)

    def _note_taken(self) -> None:
        """Count the files taken unchanged among those the new stat index keeps as they were read (a
        record made in this run wins: _whole_new_index), and note them and the folders taken whole as
        used (settle).

        Their records are not copied into a new index: a one-file recompile at 100k objects spent
        0.02 s making 48k paths and inserting them, to find the same records in it later."""
        taken, folders = self._taken, self._taken_folders
        if not taken and not folders:
            return
        self._taken, self._taken_folders = [], []
        self._taken_total += len(taken) + sum(len(names) for _, _, names, _ in folders)
        self._noted_files.extend(taken)
        self._noted_folders.extend(folders)

    def _gone(self) -> set[str]:
        """The paths the stat index read holds that this run neither took unchanged nor remembered: files
        gone (or not walked). Told by counting first: only when the counts say some are gone is every
        path compared.

        The count holds because a file is taken at most once in a run, and only with the record the index
        holds for it (tiops.buildcache.indexed: a file when its record is there, a folder when all of its
        files' are), so every taken path is one of the index's; a path both taken and remembered (a racily
        clean file read again and found unchanged) is counted once (:meth:`_taken_and_made`)."""
        self._note_taken()
        if self._gone_paths is None:
            index, made = self._index, self._new_index
            made_indexed = [relative for relative in made if relative in index]
            if self._taken_total + len(made_indexed) - len(self._taken_and_made(made_indexed)) == len(index):
                self._gone_paths = set()
            else:
                kept = set(made).union(map(_RELATIVE, self._noted_files))
                for relative_prefix, _, names, _ in self._noted_folders:
                    kept.update(map(relative_prefix.__add__, names))
                self._gone_paths = set(index.keys() - kept)
        return self._gone_paths

    def _taken_and_made(self, relatives: list[str]) -> set[str]:
        """Those of ``relatives`` (paths remembered in this run) that were also taken unchanged (noted).
        A folder taken whole holds the files ``relative_prefix + name`` (tiops.buildcache.whole: its path
        and a slash), so a path is looked for only among the names of the folder it is in."""
        if not relatives:
            return set()
        both = set(relatives).intersection(map(_RELATIVE, self._noted_files))
        by_folder: dict[str, list[str]] = {}
        for relative in relatives:
            by_folder.setdefault(relative[:relative.rfind("/") + 1], []).append(relative)
        for relative_prefix, _, names, _ in self._noted_folders:
            here = by_folder.get(relative_prefix)
            if here:
                names_here = set(names)
                both.update(relative for relative in here if relative[len(relative_prefix):] in names_here)
        return both

    def stat_index(self) -> Mapping[str, tuple[int, int, int, int, str]]:
        """The stat index as read, its delta applied (relative path -> lstat record and blob id); not to change."""
        return self._index

    def gone_paths(self) -> set[str]:
        """The paths of the stat index read that this run neither took unchanged nor remembered (files gone)."""
        return self._gone()

    def _index_changed(self) -> bool:
        """Whether the new stat index differs from the index read: a record made in this run that is
        not the one read, or a path gone."""
        index = self._index
        return any(index.get(relative) != record for relative, record in self._new_index.items()) or bool(self._gone())

    def _whole_new_index(self) -> dict[str, tuple[int, int, int, int, str]]:
        """The new stat index, every record: the index read but the paths gone, with the records made in this run."""
        if not self._index:
            return self._new_index  # no index read (a first build): every record is one made in this run
        gone = self._gone()
        whole = dict(self._index) if not gone else {r: record for r, record in self._index.items() if r not in gone}
        whole.update(self._new_index)
        return whole

    def settle(self) -> None:
        """Drop the entries no file used in this run, and let go of the files that need no rewrite.

        Called once every file was looked up: what stays in memory is only what
        :meth:`save` will write, not a copy of the whole cache for the rest of the build.
        """
        self._note_taken()
        if self._unread:
            # Read now the shards an entry may have gone unused in: those stored to in this run (an entry
            # under another key beside a new one), and those of the blobs the stat index held for a file
            # that is now another, or gone. The others are let go of unread.
            made, index = self._new_index, self._index
            # A file taken unchanged keeps the very record it had (_note_taken): only the paths gone and
            # those remembered in this run are compared by blob.
            others = [(relative, index[relative]) for relative in self._gone()]
            others += [(relative, index[relative]) for relative, record in made.items()
                       if relative in index and record is not index[relative]]
            for number in self._unread & (self._dirty | {
                    _shard_of(record[4]) for relative, record in others
                    if (now := made.get(relative)) is None or now[4] != record[4]}):
                self._read_shard(number)
            self._unread.clear()
        names = list(map(_ENTRY_NAME, self._noted_files))
        # Entries used per shard (every pair in _used and every name taken was found in its shard,
        # numbered by its blob's first byte as _shard_of does): a shard whose entries were all
        # used needs no look at each of them. Counted in C over the names (entry_name: the blob first).
        used_in: Counter[int] = Counter()
        for prefix, count in Counter(blob[:2] for blob, _ in self._used).items():
            used_in[int(prefix, 16)] += count  # two hex digits: only such blobs are found (lookup)
        for prefix, count in Counter(map(_FIRST_TWO, names)).items():
            used_in[int(prefix, 16)] += count
        in_folders: Counter[str] = Counter()
        for _, _, _, blobs in self._noted_folders:
            in_folders.update(map(_FIRST_TWO, blobs))
        for prefix, count in in_folders.items():
            used_in[int(prefix, 16)] += count
        partly_used = {number for number, shard in self._shards.items()
                       if used_in[number] != sum(map(len, shard.values()))}
        used = self._used
        if partly_used:
            # A shard an edit left an entry unused in (its file's content before): each of its
            # entries is looked at, against the pairs used in it.
            prefixes = {f"{number:02x}" for number in partly_used}
            used = used | {_entry_parts(name) for name in names if name[:2] in prefixes}
            for relative_prefix, folder_key, folder_names, blobs in self._noted_folders:
                # The files of those shards picked out in C: one in 256 of a folder's, after one edit.
                picked = itertools.compress(zip(folder_names, blobs, strict=True),
                                            map(prefixes.__contains__, map(_FIRST_TWO, blobs)))
                used.update((blob, f"{relative_prefix}{name}\0{folder_key}") for name, blob in picked)  # entry_key
        for number in list(self._shards):
            shard = self._shards[number]
            if number not in partly_used:
                unused = []
            else:
                unused = [(blob, key) for blob, by_key in shard.items() for key in by_key
                          if (blob, key) not in used]
            for blob, key in unused:
                del shard[blob][key]
                if not shard[blob]:
                    del shard[blob]
            if unused:
                self._dirty.add(number)
            elif number not in self._dirty:
                del self._shards[number]
        for number in [number for number in self._objects if number not in self._dirty]:
            del self._objects[number]
        self._settled = True

    def save(self) -> None:
        """Write what changed (after :meth:`settle`). Never raises for I/O: the cache is optional.

        Shard by shard: the entries stored in this run are read back from the spill file
        and merged with the shard's kept ones, and each written shard is let go of
        (a later :meth:`lookup` misses it, which only costs a parse).
        """
        self._note_taken()
        self._saved_index = None
        try:
            kept_out_of_git(self.folder)
            remove_abandoned(self.folder, ".", _TEMPORARY)  # what a save killed part way left (_write)
            for number in sorted(self._dirty):
                self._shard(number)  # its kept entries, when not read yet (a save without settle)
                shard = self._shards.pop(number, None) or {}
                held = self._objects.pop(number, None)
                if held is None:
                    held = self._objects_of(number)
                    del self._objects[number]
                kept = bool(shard or held)  # entries of earlier builds (none in a first build)
                for blob, key, index, stored_objects in self._stored_entries(number):
                    shard.setdefault(blob, {})[key] = index
                    held.setdefault(blob, {})[key] = stored_objects
                # Entries stored in this run come in whole pairs (_chunk_entries): only kept ones need pairing.
                shard, objects = _paired(shard, held) if kept else (shard, held)
                if shard:
                    # Objects first: an entry whose objects part is missing is only parsed again.
                    self._write(_objects_name(number), objects)
                    try:
                        self._write(_shard_name(number), _sharing_targets(shard))
                    except ValueError:  # an entry not yet spilled whose index marshal cannot write
                        self._write(_shard_name(number), _carried_only(shard))
                else:
                    (self.folder / _shard_name(number)).unlink(missing_ok=True)
                    (self.folder / _objects_name(number)).unlink(missing_ok=True)
            saved_index = self.index_identities()
            if self._index_payload is not None:  # handed over made (_hand_over)
                self._write_payload(_INDEX_FILE, self._index_payload, dated=self._began_ns)
                (self.folder / _INDEX_DELTA_FILE).unlink(missing_ok=True)
                saved_index = (self._written_identities.get(_INDEX_FILE), None)
            elif self._dirty or self._index_changed():
                delta = self._index_delta()
                if delta is not None:
                    self._write(_INDEX_DELTA_FILE, delta, dated=self._began_ns)
                    saved_index = (saved_index[0], self._written_identities.get(_INDEX_DELTA_FILE))
                else:
                    self._write(_INDEX_FILE, self._whole_new_index(), dated=self._began_ns)
                    (self.folder / _INDEX_DELTA_FILE).unlink(missing_ok=True)
                    saved_index = (self._written_identities.get(_INDEX_FILE), None)
            elif self._delta_stale:
                (self.folder / _INDEX_DELTA_FILE).unlink(missing_ok=True)
            # Folder groups last: one names files by the stat index's blob ids, so the index comes first.
            self._save_folders()
        except OSError:
            return  # a read-only checkout builds as well, only without keeping the cache
        finally:
            self._close_spill()
        self._dirty.clear()
        self._saved_index = saved_index

    def saved_index_identities(self) -> tuple[bytes | None, bytes | None] | None:
        """What :meth:`index_identities` will give the next run, as the last :meth:`save` left the stat
        index and its delta; None before a save, or after one that did not finish.

        A bundle record notes it (tiops.bundlereuse): the next compile that reads the very index this
        one saved knows that each file it takes unchanged is one this compile listed."""
        return self._saved_index

    def _index_delta(self) -> dict[str, Any] | None:
        """The new stat index as a delta of the index read, when it is a small one: the records this build
        made or changed and those it dropped (None), with the last delta's, and the index's identity.

        The index is rewritten whole otherwise. Written whole, a one-file recompile's index at 100k
        objects (8 MB) took 0.02 s to serialise and write, and the next build reads it all the same.
        """
        base = self.read_identities.get(_INDEX_FILE)
        index, made = self._index, self._new_index
        # The new index's size: the index read but the paths gone, and the paths new in this run.
        size = len(index) - len(self._gone()) + sum(1 for relative in made if relative not in index)
        limit = max(_DELTA_MIN, size // _DELTA_SHARE)
        if base is None or self._remembered > limit:
            return None  # every record made afresh (a whole load, tiops.buildcache.whole): not compared one by one
        # A record taken unchanged is the index's very tuple, never in ``made``; one made again is another tuple.
        changed = {relative: record for relative, record in made.items() if record is not index.get(relative)}
        records = dict(self._delta_records or {})
        records.update(changed)
        records.update(dict.fromkeys(self._gone()))  # files no longer indexed
        if len(records) > limit:
            return None
        return {"base": base, "records": records}

    def save_beside(self, *, helper: bool = True, new_process: bool = False) -> Beside | HandedSave | None:
        """:meth:`save` done by a helper while this process goes on: the helper, whose ``result()``
        waits for it and ``close()`` stops it. None when the save was done here: without
        ``helper`` (tiops.load.fork_helper), or when no helper can be started.

        For a first build (tiops.pipeline, which decides when memory allows it), whose save
        writes every entry while its compile leaves the second core idle: 1.1 s of a 9.3 s first
        build at 100k objects. The helper writes what :meth:`save` writes here, file by file as atomically. A helper that
        fails or is killed part way leaves the files it finished (the stat index after every
        shard): the next build hashes every file and parses those whose entries are missing.
        It runs at the command's own priority, since the command waits for it. This process
        is left as a save leaves it, with nothing more to write.

        The helper is a forked child, or with ``new_process`` a new process
        (tiops.buildcache.saver) handed what the save needs through the spill file
        (:meth:`_hand_over`): a forked child shares this process's pages only until the compile
        writes to them, and at a million objects the two held 1.5 GB more than this process alone.
        """
        def saved() -> tuple[bytes | None, bytes | None] | bool:
            self.save()
            # What the next run will read of the stat index (saved_index_identities), for the bundle record
            # this process writes (tiops.bundlereuse.since_state); True when it is not known.
            return self.saved_index_identities() or True

        saving: Beside | HandedSave | None = None
        if helper and new_process:
            saving = self._hand_over()
        elif helper and self._flushed_spill():
            saving = run_beside(saved, nice=False)
        if saving is None:
            self.save()
            return None
        self._close_spill()
        self._dirty.clear()
        self._shards.clear()
        self._objects.clear()
        self._folders_dirty.clear()
        self._folder_shards.clear()
        self._folders_walked = None
        return saving

    def _flushed_spill(self) -> bool:
        """Whether the spill file holds every byte spilled (none is left in this process's buffer).

        A helper reads the spill file through the open file it shares with this process: a byte left
        in this process's buffer would be written by its close, at the shared position the helper is
        moving, while the helper reads. False when it cannot be flushed: the save is then done here,
        where what does not read back whole is dropped.
        """
        if self._spill is None:
            return True
        try:
            self._spill.flush()
        except OSError:
            return False
        return True

    def _hand_over(self) -> HandedSave | None:
        """Start a new process saving this cache (tiops.buildcache.saver), or None to save here.

        What :meth:`save` reads besides the spill file's chunks goes to the end of the spill file as
        one marshal (:meth:`_save_state`), and the process is given the open spill file and where
        that lies. The entries still buffered are spilled first, so that all of them are in the file.
        This process keeps its own descriptor of the spill file, to save from the same state should
        the new one not (:class:`HandedSave`).
        """
        for number in list(self._pending):
            self._spill_pending(number)
        if self._spill_failed:
            return None
        self._note_taken()
        try:
            state = marshal.dumps(self._save_state())
        except ValueError:
            return None
        place = self._spill_bytes(state)
        if place is None or self._spill is None or not self._flushed_spill():
            return None
        try:
            kept = os.fdopen(os.dup(self._spill.fileno()), "r+b")
        except OSError:
            return None
        process = start_in_new_process("tiops.buildcache.saver:main",
                                       [os.fspath(self.folder), str(self._spill.fileno()), *map(str, place)],
                                       pass_fds=(self._spill.fileno(),))
        if process is None:
            kept.close()
            return None
        return HandedSave(process, self.folder, kept, place)

    def _save_state(self) -> dict[str, Any]:
        """What :meth:`save` reads of this cache, but for the spill file and its chunks' entries (:meth:`resumed`)."""
        return {
            "context": self.context,
            "began_ns": self._began_ns,
            "dirty": sorted(self._dirty),
            "unread": sorted(self._unread),
            "shards": self._shards,
            "objects": self._objects,
            "spilled": self._spilled,
            # The stat index as the file's payload: the new process writes it and never holds it as
            # a dict (at a million objects 200 MB in objects, against 60 MB of marshal).
            "index_payload": (marshal.dumps((self.context, _INDEX_FILE, self._whole_new_index()))
                              if self._dirty or self._index_changed() else None),
            "folder_shards": self._folder_shards,
            "folders_dirty": sorted(self._folders_dirty),
            "folders_walked": None if self._folders_walked is None else sorted(self._folders_walked),
            "folders_spilled": self._folders_spilled,
        }

    @classmethod
    def resumed(cls, folder: Path, spill: IO[bytes], place: tuple[int, int, int]) -> BuildCache | None:
        """The cache :meth:`_hand_over` handed over, ready to :meth:`save`: read from the spill file, where
        ``place`` (offset, length, CRC-32) is its state's; None when that does not read back whole."""
        offset, length, crc = place
        try:
            spill.seek(offset)
            chunk = spill.read(length)
        except OSError:
            return None
        if len(chunk) != length or zlib.crc32(chunk) != crc:
            return None
        try:
            state = marshal.loads(chunk)
        except (ValueError, TypeError, EOFError):
            return None
        if type(state) is not dict or type(state.get("context")) is not str:
            return None
        cache = cls(folder, state["context"])
        try:
            cache._began_ns = state["began_ns"]
            cache._dirty = set(state["dirty"])
            cache._unread = set(state["unread"])
            cache._shards = state["shards"]
            cache._objects = state["objects"]
            cache._spilled = state["spilled"]
            cache._index_payload = state["index_payload"]
            cache._folder_shards = state["folder_shards"]
            cache._folders_dirty = set(state["folders_dirty"])
            walked = state["folders_walked"]
            cache._folders_walked = None if walked is None else set(walked)
            cache._folders_spilled = state["folders_spilled"]
        except (KeyError, TypeError):  # not a state _save_state made (its CRC-32 matched all the same)
            return None
        cache._spill = spill
        cache._spill_size = offset
        cache._settled = True
        return cache

    def release_saved(self) -> None:
        """Let go of what only :meth:`save` needed: the stat index read and the one made, the entries
        used. For a first build, whose compile then makes as many small objects again: at a million
        objects these are 300 MB that the bundle and its record reuse, rather than pages added on top.
        The cache still reads entries' objects and writes records afterwards; it saves nothing more."""
        self._index = {}
        self._new_index = {}
        # Nothing of the index read is left to write a delta of (a save after this writes it whole).
        self._delta_records = None
        self.read_identities.pop(_INDEX_FILE, None)
        self._used = set()
        self._taken = []
        self._noted_files = []
        self._taken_total = 0
        self._gone_paths = None
        self._taken_folders = []
        self._noted_folders = []

    def save_unless_small(self) -> None:
        """:meth:`settle` (when the load left it to the caller) and :meth:`save`, unless this run
        changed only a handful of files (:meth:`small_change`): then nothing is written or settled.

        For a command that only checks (``tiops validate FILE``, the pre-commit hook). The cache
        it leaves is still right: entries are found by content, and a file whose lstat differs
        from its record is read again. The next run parses those few files again, which costs
        less than rewriting the stat index (8 MB at 100k objects) and their shards does now.
        """
        if self.small_change():
            self._close_spill()
            self._dirty.clear()
            return
        if not self._settled:
            self.settle()
        self.save()

    def small_change(self) -> bool:
        """Whether what this run would write is only a handful of files' entries and stat records:
        nothing damaged or foreign to rewrite, at most :data:`_SMALL_FILES` entries stored (their
        objects parts :data:`_SMALL_BYTES` in all), and at most :data:`_SMALL_RECORDS` stat records
        added, changed or gone (a branch switched or a clone restored would have each of its
        files hashed again on every run: those are written). A cache with no stat index to
        build on (a first run, or one of another context) is never small."""
        if not self._index or self.rejected or self._stored_files > _SMALL_FILES or self._stored_size > _SMALL_BYTES:
            return False
        # A file taken unchanged keeps the very record read (_load_indexed_folders, take_unchanged), but
        # for one remembered too (its record made in this run wins); every other record was made by
        # remember_record (a path remembered twice counts twice: saved sooner).
        made = self._new_index
        taken_and_made = self._taken_and_made([relative for relative in made if relative in self._index])
        same = self._taken_total + self._taken_count() + len(made) - len(taken_and_made) - self._remembered
        return (len(self._index) - same) + self._remembered <= _SMALL_RECORDS

    def _save_folders(self) -> None:
        walked = self._folders_walked
        if walked is not None:
            for number, shard in self._folder_shards.items():
                gone = [relative_prefix for relative_prefix in shard if relative_prefix not in walked]
                for relative_prefix in gone:
                    del shard[relative_prefix]
                if gone:
                    self._folders_dirty.add(number)
        for number in sorted(self._folders_dirty):
            groups = self._folder_shard(number)
            for place in self._folders_spilled.pop(number, []):
                chunk = self._spilled_back(place)
                try:
                    kept: Any = marshal.loads(chunk) if chunk is not None else None
                except (ValueError, TypeError, EOFError):
                    kept = None
                if type(kept) is not tuple or len(kept) != 2 or type(kept[0]) is not str:
                    continue  # a torn or damaged spill: the folder is loaded file by file next time
                if walked is None or kept[0] in walked:
                    groups[kept[0]] = kept[1]
            if groups:
                self._write(_folders_name(number), groups)
            else:
                (self.folder / _folders_name(number)).unlink(missing_ok=True)
            # Each shard let go of once written, not all of them at the end: a million objects' groups
            # are 200 MB, and the save's own peak was their whole (a save in a new process, 650 MB).
            self._folder_shards.pop(number, None)
        self._folders_dirty.clear()
        # Let go of them, as of the shards of entries written: the rest of a build does not read them,
        # and at a million objects a first build's groups are 200 MB beside every object it compiles.
        self._folder_shards.clear()
        self._folders_walked = None

    def _close_spill(self) -> None:
        """Let go of the spill file and of what was stored: written by now, or not to be written."""
        self._pending.clear()
        self._pending_size.clear()
        self._spilled.clear()
        self._folders_spilled.clear()
        self._spill_size = 0
        if self._spill is not None:
            with contextlib.suppress(OSError):
                self._spill.close()
            self._spill = None

    def _write(self, name: str, body: dict[str, Any], *, dated: int | None = None) -> None:
        """Write cache file ``name`` whole (temporary name, renamed over it). ``dated``: a modification
        time to give it when that is earlier than the one writing gives (the stat index's).

        The stat index's modification time bounds which of its records are trusted (_read_index):
        a file modified less than _RACY_NS before it is hashed again. Its records were taken
        during the run, and a file rewritten in the same clock tick as it was modified last, after
        the run read it, keeps its size and times: dated when it was written, at the end of a run
        slower than _RACY_NS (a large repository, a loaded machine), that record was trusted with
        the content read before the edit, and every later build used the stale content (on a file
        system keeping whole seconds an edit a second apart does it). Dated when the run began,
        before any of its lstats, such a file is racy; the earlier of the two also keeps the old bound
        where the file system's clock lags this one's (a network file system).
        """
        self._write_payload(name, marshal.dumps((self.context, name, body)), dated=dated)

    def _write_payload(self, name: str, payload: bytes, *, dated: int | None = None) -> None:
        """:meth:`_write` with the marshal of ``(context, name, body)`` made already."""
        import tempfile  # only a build that changed something writes

        # The writer's process id ends the name (before .tmp): a file of a build killed while writing it
        # (kill -9, a CI job cancelled) is one nothing else removes, and a shard's objects part or the
        # bundle record is megabytes; the next save removes it (save, remove_abandoned).
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.", suffix=f".{os.getpid()}{_TEMPORARY}")
        checksum = _checksum(payload)
        try:
            with os.fdopen(handle, "wb") as out:
                # Three writes, not one joined copy: a million-object bundle record is over 100 MB.
                out.write(_MAGIC)
                out.write(checksum)
                write_in_pieces(out.write, payload)
            written = os.stat(temporary).st_mtime_ns
            if dated is not None and dated < written:
                os.utime(temporary, ns=(dated, dated))
                written = os.stat(temporary).st_mtime_ns  # as the file system keeps it: whole seconds on some
            rename_over(temporary, self.folder / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._written_identities[name] = _identity_of(checksum, len(_MAGIC) + _CHECKSUM_SIZE + len(payload), written)


def _checksum(payload: bytes | memoryview, crc: int = 0) -> bytes:
    """A cache file's checksum of its ``payload`` (continuing ``crc``, zlib's running value): a CRC-32."""
    return zlib.crc32(payload, crc).to_bytes(_CHECKSUM_SIZE, "big")


def _checksum_holds(raw: bytes) -> bool:
    """Whether ``raw``, a cache file's bytes, starts as one does and its payload has its checksum."""
    head = len(_MAGIC)
    if raw[:head] != _MAGIC or len(raw) < head + _CHECKSUM_SIZE:
        return False
    return _checksum(memoryview(raw)[head + _CHECKSUM_SIZE:]) == raw[head:head + _CHECKSUM_SIZE]


def _identity(raw: bytes, written: int | None) -> bytes:
    """What a delta and a verdict are bound to, of a cache file read as ``raw`` with modification
    time ``written``: its checksum, its size and that time. A checksum of 32 bits alone could be
    another index's; one with the same size and the same time to the nanosecond is not."""
    head = len(_MAGIC)
    return _identity_of(raw[head:head + _CHECKSUM_SIZE], len(raw), written)


def _identity_of(checksum: bytes, size: int, written: int | None) -> bytes:
    """:func:`_identity` of a file of ``size`` bytes with ``checksum``, modified at ``written``."""
    return checksum + size.to_bytes(8, "big") + (written or 0).to_bytes(8, "big", signed=True)


# A cache file read: the modification time of the file read (None: none read), its bytes (None: absent,
# or not a regular file) and whether its checksum holds.
_Prefetched = tuple[int | None, bytes | None, bool]


def _read_checked(path: Path) -> _Prefetched:
    """The cache file at ``path`` read, its time and whether its checksum holds (:data:`_Prefetched`)."""
    read = read_regular_file_dated(path)
    if read is None:
        return None, None, False
    raw, written = read
    return written, raw, _checksum_holds(raw)


class Prefetch:
    """Files of a cache read, and their checksums checked, on threads (BuildCache.prefetch, BuildCache.read_ahead).

    A warm build reads the stat index (8 MB at 100k files), the folder groups (16 MB) and the
    bundle record (22 MB) and checks them (with SHA-256 then, 0.05 s of a one-file recompile), while the
    other CPU sat idle through the walk of the repository that comes first, and again once the
    lstats are taken. Reading and digesting let go of the GIL: the index and the groups are now
    read during the walk, the record after the lstats. What is read is used as
    :meth:`BuildCache._read` would read it then: the same checks, and the index's time taken
    before its read. A fork waits for these threads (tiops.forkwork.joined_before_fork): a
    child of a process with another thread running may inherit a lock that thread held.
    """

    def __init__(self, folder: Path, names: Sequence[str], budget: int | None = None) -> None:
        self._folder = folder
        self._read: dict[str, _Prefetched] = {}
        self._ready: dict[str, threading.Event] = {}  # each file is taken as soon as it is read
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.more(names, budget)

    def more(self, names: Sequence[str], budget: int | None = None) -> None:
        """Start reading ``names`` too, on a thread of their own; once ``budget`` bytes are read,
        the rest are left to be read as ever (what is read ahead is held until taken)."""
        fresh = [name for name in dict.fromkeys(names) if name not in self._ready]
        if not fresh or self._closed:
            return
        for name in fresh:
            self._ready[name] = threading.Event()
        thread = threading.Thread(target=self._run, args=(fresh, budget), name="tiops-cache-read", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: each is read as ever
            for name in fresh:
                self._ready[name].set()
            return
        joined_before_fork(thread)
        self._threads.append(thread)

    def _run(self, names: list[str], budget: int | None) -> None:
        held = 0
        done = 0
        try:
            for name in names:
                if self._closed or (budget is not None and held >= budget):
                    break
                read = _read_checked(self._folder / name)
                held += len(read[1] or b"")
                if not self._closed:
                    self._read[name] = read
                self._ready[name].set()
                done += 1
        except Exception:  # on a thread, where it would only print: the rest are read as ever
            pass
        finally:
            for name in names[done:]:
                # Not read: left to a later more() (its own budget) or to a plain read. The event is set
                # first, for a take() already waiting on it, which then finds nothing and reads as ever.
                self._ready[name].set()
                del self._ready[name]

    def ready(self, name: str) -> bool:
        """Whether ``name`` was read and not yet taken (:meth:`take` would not wait)."""
        return not self._closed and name in self._read

    def take(self, name: str) -> _Prefetched | None:
        """The file as read ahead, once; None when it was not (then it is read as ever)."""
        ready = self._ready.get(name)
        if ready is None or self._closed:
            return None
        ready.wait()
        return self._read.pop(name, None)

    def close(self) -> None:
        """Let go of what was not taken. Not waited for: a thread still reading drops what it reads,
        and a fork waits for it (at a million objects a record is 200 MB to read and digest)."""
        self._closed = True
        self._read.clear()


class PendingRecord:
    """A cache file written but for one value at the end of its payload (BuildCache.pending_record).

    :meth:`start` writes the head with a blank checksum, and the payload up to the value, and
    checksums that much; :meth:`finish` adds the value, writes the checksum over the blank and renames
    the file into place. The file then reads back as BuildCache._write's of the same body with that
    value does (the bytes may differ in a flag marshal sets on an object referenced twice). Never
    raises for I/O: the cache is optional.
    """

    def __init__(self, target: Path, temporary: str, out: IO[bytes], payload: bytes, value_at: int) -> None:
        self._target, self._temporary, self._out = target, temporary, out
        self._payload: bytes | None = payload
        self._value_at = value_at
        self._tail_length = len(payload) - value_at  # the value and the payload's last byte
        self._last = payload[-1:]
        self._crc = 0  # the running CRC-32 of what is written (_checksum)
        self._done = False

    def start(self) -> None:
        assert self._payload is not None  # started once, by pending_record
        head = memoryview(self._payload)[:self._value_at]
        self._crc = zlib.crc32(head)
        self._out.write(_MAGIC)
        self._out.write(bytes(_CHECKSUM_SIZE))  # the checksum goes over this blank (finish)
        write_in_pieces(self._out.write, head)
        del head
        self._payload = None  # written: a million objects' record is 200 MB

    def finish(self, value: str) -> None:
        """Write ``value`` (as many ASCII characters as the blank held) and put the file in place."""
        if self._done:
            return
        try:
            tail = value.encode("ascii") + self._last
            if len(tail) != self._tail_length:
                raise ValueError("the value does not fill the blank it was kept for")
            with self._out:
                self._out.write(tail)
                self._out.seek(len(_MAGIC))
                self._out.write(_checksum(tail, self._crc))
            rename_over(self._temporary, self._target)
        except OSError:
            self._unlink()
        except BaseException:
            self._unlink()
            raise
        finally:
            self._done = True

    def abandon(self) -> None:
        """Remove what was written: the value never came (the bundle was not written)."""
        if not self._done:
            self._done = True
            self._payload = None
            self._unlink()

    def _unlink(self) -> None:
        with contextlib.suppress(OSError):
            self._out.close()
        with contextlib.suppress(OSError):
            os.unlink(self._temporary)


class HandedSave:
    """A save handed to a new process (BuildCache._hand_over): :meth:`result` waits for it, and
    :meth:`close` stops it, as tiops.forkwork.Beside's do.

    A process that does not save (Python or tiops not importable there, its state not read back,
    a failure part way, killed from outside) would leave a first build with no cache, and every
    later build a first build again: :meth:`result` then saves here, from the very state handed
    over. Files the process finished are written again with the same bodies; those it left part
    written are removed as a killed save's are (BuildCache.save, remove_abandoned).
    """

    def __init__(self, process: NewProcess, folder: Path, spill: IO[bytes], place: tuple[int, int, int]) -> None:
        self.process = process
        self._folder = folder
        self._spill: IO[bytes] | None = spill
        self._place = place
        self._outcome: bool | None = None

    def result(self) -> bool | None:
        """True once the cache is saved, by the process or here; None when it could not be (or was stopped)."""
        if self._spill is None:
            return self._outcome
        try:
            self._outcome = self.process.result()
            if self._outcome is None:
                cache = BuildCache.resumed(self._folder, self._spill, self._place)
                if cache is not None:
                    cache.save()  # closes the spill file
                    self._outcome = True
        finally:
            self._let_go()
        return self._outcome

    def close(self) -> None:
        """Stop the process (Ctrl-C): nothing more is saved, here either."""
        self.process.close()
        self._let_go()

    def _let_go(self) -> None:
        if self._spill is not None:
            with contextlib.suppress(OSError):
                self._spill.close()
            self._spill = None


# How the name of a file being written ends (after the writer's process id): BuildCache._write.
_TEMPORARY = ".tmp"


# Where FileIndex.reference_targets sits in a stored index (_store_index keeps the index's order).
_TARGETS_AT = FileIndex._fields.index("reference_targets")


def _sharing_targets(shard: dict[str, dict[str, _StoredIndex]]) -> dict[str, dict[str, _StoredIndex]]:
    """``shard`` with equal reference-target texts as one string. Files of one folder mostly
    list the very same references (48k files, 2k distinct texts, at 100k generated objects);
    marshal writes a string held twice once, so the shard is smaller and every build reads
    each text once, and the index check judges each (tiops.validate.indexed.unclean_files)
    with its hash already taken."""
    texts: dict[str, str] = {}
    for by_key in shard.values():
        for key, stored in by_key.items():
            text = stored[_TARGETS_AT] if len(stored) > _TARGETS_AT else None
            if type(text) is str:
                shared = texts.setdefault(text, text)
                if shared is not text:
                    by_key[key] = (*stored[:_TARGETS_AT], shared, *stored[_TARGETS_AT + 1:])
    return shard


def _paired(shard: dict[str, dict[str, _StoredIndex]], held: dict[str, dict[str, bytes]]
            ) -> tuple[dict[str, dict[str, _StoredIndex]], dict[str, dict[str, bytes]]]:
    """A shard's indexes and objects parts, each kept only with the other (an index whose objects
    part is gone is dropped, so its file is parsed again; an objects part no index lists is let go)."""
    indexes: dict[str, dict[str, _StoredIndex]] = {}
    objects: dict[str, dict[str, bytes]] = {}
    for blob, by_key in shard.items():
        parts = held.get(blob)
        if type(parts) is not dict:
            continue
        for key, index in by_key.items():
            stored = parts.get(key)
            if type(stored) is bytes:
                indexes.setdefault(blob, {})[key] = index
                objects.setdefault(blob, {})[key] = stored
    return indexes, objects


def _chunk_entries(chunk: bytes) -> list[_StoredEntry]:
    """The (blob, key, index, objects) entries of one spilled chunk (written by BuildCache.store), or none
    when it is not such a list (cannot happen for a chunk whose CRC matched)."""
    try:
        entries = marshal.loads(chunk)
    except (ValueError, TypeError, EOFError):
        return []
    if type(entries) is not list or not all(
            type(entry) is tuple and len(entry) == 4 and type(entry[0]) is str and type(entry[1]) is str
            and type(entry[2]) is tuple and type(entry[3]) is bytes for entry in entries):
        return []
    return entries


def _marshalable(entries: list[_StoredEntry]) -> list[_StoredEntry]:
    """``entries`` without any whose index marshal cannot carry. The objects part of each was marshalled
    already, and its index holds values of those objects and findings' strings, so this is a guard, asked
    only when marshal refused a spill chunk: such an entry is left out (its file is parsed again next
    time) rather than failing its whole shard."""
    return [entry for entry in entries if _carried(entry[2])]


def _carried_only(shard: dict[str, dict[str, _StoredIndex]]) -> dict[str, dict[str, _StoredIndex]]:
    """``shard`` without the entries whose index marshal cannot carry (:func:`_marshalable`, for the
    entries written at the save without having been spilled)."""
    kept: dict[str, dict[str, _StoredIndex]] = {}
    for blob, by_key in shard.items():
        for key, stored in by_key.items():
            if _carried(stored):
                kept.setdefault(blob, {})[key] = stored
    return kept


def _carried(stored: _StoredIndex) -> bool:
    try:
        marshal.dumps(stored)
    except ValueError:
        return False
    return True


def _shard_of(blob: str) -> int:
    try:
        return int(blob[:2], 16) % _SHARDS
    except (TypeError, ValueError):  # not a blob id (a damaged stat index record)
        return 0


def _shard_name(number: int) -> str:
    return f"entries-{number:02x}"


def _objects_name(number: int) -> str:
    return f"objects-{number:02x}"


def _folder_shard_of(relative_prefix: str) -> int:
    return zlib.crc32(relative_prefix.encode("utf-8", "surrogateescape")) % _FOLDER_SHARDS


def _folders_name(number: int) -> str:
    return f"folders-{number:02x}"

