"""Incremental build cache: what loading and per-object checks made of each file, kept in ``.tiops/build-cache/``.

A one-file change to a 100k-object repository should cost one file's parse and checks,
not the whole repository's (docs/performance.md, incremental builds). The cache keeps,
for every object file, the objects loading made of it (``_defaults.yaml`` and overlays
applied, ids derived, inline relationships expanded), its load findings, the
per-object findings of ``tiops.validate.objects.check_object`` (locations already
resolved) and each object's references (tiops.validate.reference_index), the index the
repository-wide reference check resolves against every id of the repository. Repository-wide checks (duplicate ids, references, relationship triples,
extensions, ingestion rules, partner intel) always run again over the whole repository,
cached objects included, so a change in one file still shows up wherever it matters.

Keys
----
* An entry is keyed by the file's **git blob id** (:func:`blob_id`: SHA-1 of
  ``b"blob <length>\\0" + content``, what ``git hash-object`` and ``git ls-tree`` print)
  and by an **entry key** (:func:`entry_key`): the file's path in the repository (objects
  and findings name their file) and the defaults key of its folder (:func:`defaults_key`:
  the effective ``_defaults.yaml`` properties, source and imported folder), since the
  same bytes mean other objects under other defaults.
* A file of partner intel also depends on the lines of its folder's ``_overlay.yaml``
  that name its objects (what ``tiops tag`` writes). Those lines are not in the key, so
  that tagging one object is a one-file change: an entry keeps their digest (its
  **overlay signature**, :func:`overlay_signature`; empty when no line names its
  objects), and a lookup takes the entry only if the folder's overlay of now gives the
  same. What an entry stands for in a bundle record (:func:`entry_name`) carries the
  signature, so a record never takes lines made under another overlay. Both parts of an
  entry (below) carry it: a save stopped between writing them must not pair an index
  with objects loaded under other overlay lines.
* The whole cache is bound to a **context key** (:func:`context_key`): the cache format,
  the tiops version, the Python version (the ``marshal`` format), the installed tiops
  package files (their names, sizes and modification times), the in-memory object model
  and the repository's ``tiops.yaml``. Another context makes every stored file foreign:
  it is ignored and rebuilt.

Lookup API (also for reading a git revision without a checkout)::

    cache = BuildCache.open(root, context_key(root))
    key = entry_key("intel/malware/x.yaml", defaults_key(defaults))
    entry = cache.lookup(blob_id(content), key, defaults.overlay)   # FileEntry | None
    unpacked = entry.unpack()   # objects, findings, references, malformed ids, overlay signature
    cache.store(blob, key, entry)      # FileEntry.build(...) makes one
    cache.save()                       # atomic; never raises for a read-only folder
    cache.save_unless_small()          # a check's save: nothing for a handful of changed files

Trust
-----
Files are ``marshal`` data of plain values (never pickle: nothing is executed when
reading), behind a magic string and a SHA-256 checksum of the payload. A file that is
truncated, corrupt, changed after writing, of another format or of another context is
ignored as if absent, and rewritten at the next save. Every file is written to a
temporary name and renamed into place (``os.replace`` is atomic on POSIX), so an
interrupted build leaves the previous file or the new one, never half of one; the
temporary file of a build killed part way (its name ends in the writer's process id)
is removed by the next save.
The checksum detects damage, not forgery: a cache restored in CI comes from the
same workflow's own earlier runs (docs/ci.md).

Layout
------
Entries are spread over 256 shards by the first byte of their blob id, and each entry
over two files of its shard (:class:`FileEntry`): ``entries-XX`` holds its index, which
every build reads, and ``objects-XX`` its objects and their references, read only when
a build needs an unchanged file's objects (tiops.validate.indexed). The two are
written together, objects first. An objects part that cannot be read back makes the
build parse its file again and keep a new entry (tiops.pipeline, ``StaleEntry``); an
index whose objects part is missing is dropped when its shard is next written, and an
objects part that no index lists is let go. ``index`` holds the files' ``lstat`` records (below), and
``bundle-record`` the last bundle's (tiops.bundlereuse).

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
file modified within a second before the index was written is hashed again ("racily
clean", as git calls it), since a second change in the same clock tick keeps its time.

Determinism: the cache never changes what a build produces; cached and uncached builds
give the same findings and bundle bytes (tests/test_buildcache.py proves it on random
edits). ``tiops compile --no-cache`` / ``TIOPS_NO_CACHE=1`` build without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import marshal
import operator
import os
import stat
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import IO, Any, NamedTuple

import tiops
from tiops.buildfolders import FolderEntry, folder_group, member_indexes, valid_group
from tiops.config import CONFIG_FILE, Config, load_config
from tiops.filesource import FileSource
from tiops.findings import Finding, Location, Severity
from tiops.forkwork import Beside, remove_abandoned, run_in_order
from tiops.inputs import InputProblem, WalkProblem, read_input, read_regular_file, read_regular_head
from tiops.installed import package_fingerprint
from tiops.limits import MAX_FILE_BYTES
from tiops.load import (
    Defaults,
    IntelObject,
    Repo,
    _load_object_file,
    _object_folders,
    fork_helper,
    load_repo,
)
from tiops.locate import resolve_locations
from tiops.memory import paused_gc
from tiops.outputs import kept_out_of_git
from tiops.progress import Progress, no_progress
from tiops.validate import Prechecked
from tiops.validate.indexed import FileIndex, index_file, index_objects
from tiops.validate.objects import check_object
from tiops.validate.reference_index import ListedReference, malformed_ids, object_references

CACHE_DIR = Path(".tiops") / "build-cache"
# Bumped whenever the layout of what is stored changes.
FORMAT = 11
_MAGIC = b"TIOPS-BUILD-CACHE\x00"
_DIGEST_SIZE = 32
_INDEX_FILE = "index"
_SHARDS = 256  # entries spread over files by the first byte of their blob id: one edit rewrites one or two
# Folder groups (tiops.buildfolders) spread over files by their folder's path: one edit rewrites one.
_FOLDER_SHARDS = 64
# A shard's new entries go to the spill file in chunks of about this size: 256 buffers of
# 64 KiB at most in memory, and a few thousand chunks' offsets for a million objects.
_SPILL_CHUNK = 64 * 1024
# What an index adds to its entry's size in a spill buffer, roughly: the objects part is most of an entry.
_INDEX_SIZE_GUESS = 256
# Codes of findings that say a file could not be read at all (tiops.inputs): they depend
# on the file system, not on the content, so such a file is never cached.
_UNREADABLE_CODES = frozenset({"TI106", "TI108", "TI109"})
# A file whose modification time is this close to the index's own is hashed again.
_RACY_NS = 1_000_000_000
_OBJECT_FIELDS = tuple(f.name for f in fields(IntelObject))
_OBJECT_VALUES = operator.attrgetter(*_OBJECT_FIELDS)  # every field of an object, as one tuple

# A file's index as an entry keeps it (:func:`_store_index`): a tuple of lists and strings, unmarshalled
# with the whole of its ``entries-XX`` file, in one call for the entries of a shard.
_StoredIndex = tuple[Any, ...]
# An entry stored in this run, as it waits to be saved: blob id, entry key, index part, objects part.
_StoredEntry = tuple[str, str, _StoredIndex, bytes]
# A stored finding: code, severity, message, file, line, column, path, hint, stix_id.
_StoredFinding = tuple[str, int, str, str, int, int, tuple[Any, ...], str, "str | None"]


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
    start = len(_MAGIC) + _DIGEST_SIZE
    # Not open(): a named pipe in the index's place would block the build (read_regular_file).
    head = read_regular_head(path, start + 4 + len(expected))
    if head is None:
        return False
    payload = head[start:]
    return (head[:len(_MAGIC)] == _MAGIC and len(payload) == 4 + len(expected)
            and payload[0] & ~_FLAG_REF == _SMALL_TUPLE and payload[1] == 3
            and payload[2] & ~_FLAG_REF in (_SHORT_ASCII, _SHORT_ASCII_INTERNED)
            and payload[3] == len(expected) and payload[4:] == expected)


def blob_id(content: bytes) -> str:
    """The git blob id of ``content`` (what ``git hash-object`` prints), without git."""
    digest = hashlib.sha1(b"blob %d\0" % len(content), usedforsecurity=False)
    digest.update(content)
    return digest.hexdigest()


def defaults_key(defaults: Defaults) -> str | None:
    """What the folder's defaults contribute to the meaning of a file; None if unkeyable.

    The folder's overlay is not part of it: an entry keeps the digest of the overlay lines
    that name its objects (:func:`overlay_signature`). It is only marshalled here, so that a
    folder whose overlay marshal cannot write is not cached, as before.
    """
    try:
        text = marshal.dumps((defaults.properties, defaults.source, defaults.files, defaults.imported_folder))
        if defaults.overlay:
            marshal.dumps(defaults.overlay)
    except ValueError:  # a value marshal cannot write: that folder is simply not cached
        return None
    return hashlib.sha256(text).hexdigest()


# The overlay line that applies to objects written without an id (tiops.load._apply_overlay looks
# each object up by str() of its own id, and an id derived at load time was None then).
_UNNAMED_OBJECT = "None"


def overlay_signature(overlay: dict[str, Any] | None, ids: Sequence[str]) -> str:
    """The digest of the lines of a partner folder's ``_overlay.yaml`` that can change the objects
    with ``ids`` (a file's, FileIndex.ids): "" when none does (and for any file outside partner
    intel, whose folder has no overlay).

    tiops.load._apply_overlay takes the line of an object by its id as written, and the
    inline relationships of an object inherit from it what the overlay changed, so a file's
    objects are what its entry holds whenever these lines are the same.
    """
    if not overlay:
        return ""
    lines = [(identifier, overlay[identifier]) for identifier in ids if identifier in overlay]
    if _UNNAMED_OBJECT in overlay:
        lines.append((_UNNAMED_OBJECT, overlay[_UNNAMED_OBJECT]))
    if not lines:
        return ""
    try:
        # Version 0: each value written as what it is. Later versions also write whether a string
        # is interned and whether an object is held twice, which differ from process to process.
        written = marshal.dumps(lines, 0)
    except ValueError:
        return "?"  # never a digest; such a folder is not cached anyway (defaults_key is None)
    return hashlib.sha256(written).hexdigest()


def entry_name(blob: str, key: str, signature: str) -> str:
    """What stands for an entry in a bundle record and wherever an entry is told from another
    (tiops.bundlereuse): its blob id, its key and its overlay signature when it has one, NUL-joined."""
    return f"{blob}\0{key}\0{signature}" if signature else f"{blob}\0{key}"


def _entry_parts(name: str) -> tuple[str, str]:
    """The blob id and key of the entry :func:`entry_name` named (a key is "path NUL defaults key")."""
    blob, relative, folder, *_ = name.split("\0")
    return blob, f"{relative}\0{folder}"


def _entry_signature(name: str | None) -> str:
    """The overlay signature of the entry :func:`entry_name` named ("" when it has none)."""
    parts = name.split("\0") if name is not None else ()
    return parts[3] if len(parts) > 3 else ""


def entry_key(relative: str, defaults: str) -> str:
    """The key of a file's entry besides its blob id: its repository path and its folder's defaults key."""
    return f"{relative}\0{defaults}"


def context_key(root: Path, source: FileSource | None = None) -> str:
    """Everything besides a file and its defaults that changes what loading and checking it gives.

    ``source``: where ``tiops.yaml`` is read from (default the working tree; a git revision).
    """
    parts: list[Any] = [FORMAT, tiops.__version__, sys.version, _OBJECT_FIELDS, package_fingerprint()]
    try:
        config_path = os.fspath(root / CONFIG_FILE)
        parts.append(read_input(config_path) if source is None else source.read(config_path))
    except InputProblem as problem:
        parts.append(problem.code)
    return hashlib.sha256(marshal.dumps(tuple(parts))).hexdigest()


class FileEntry(NamedTuple):
    """What one object file gave: its objects, load findings and per-object findings, as stored.

    Two parts, kept in files of their own (``entries-XX`` and ``objects-XX``), so that a
    build can read the small one alone: the file's index (tiops.validate.indexed.FileIndex:
    its findings, ids, types, relationship ends and reference targets), and the objects
    with their references, unmarshalled only when asked for (:meth:`unpack`,
    :meth:`objects`); :meth:`read_index` reads the first.
    """

    stored_index: _StoredIndex  # the index as stored (_store_index); marshal carries whatever the objects part does
    stored_objects: bytes  # marshal of (objects, references)

    @staticmethod
    def build(objects: list[IntelObject], load_findings: list[Finding], object_findings: list[Finding],
              references: list[list[ListedReference]], malformed: list[str] | None = None,
              overlay: dict[str, Any] | None = None) -> FileEntry:
        """Raises ValueError when something in the objects cannot be stored.

        ``malformed``: :func:`malformed_ids` of ``objects`` when the caller has it already.
        ``overlay``: the overlay of the file's folder (Defaults.overlay), applied to ``objects``.
        """
        return FileEntry.of(objects, references, index_file(objects, load_findings, object_findings, references,
                                                           malformed_ids(objects) if malformed is None else malformed),
                            overlay)

    @staticmethod
    def of(objects: list[IntelObject], references: list[list[ListedReference]], index: FileIndex,
           overlay: dict[str, Any] | None) -> FileEntry:
        """The entry of a file whose index (:func:`tiops.validate.indexed.index_file`) is made already,
        loaded under its folder's ``overlay`` (Defaults.overlay)."""
        stored_objects = [_OBJECT_VALUES(obj) for obj in objects]
        signature = overlay_signature(overlay, index.ids)
        # The objects part carries the overlay signature too: the two parts live in two files,
        # written one after the other, and an index must never be paired with objects loaded
        # under other overlay lines (an interrupted save, then the overlay edited back).
        return FileEntry(_store_index(index, signature), marshal.dumps((stored_objects, references, signature)))

    @property
    def signature(self) -> str:
        """The entry's overlay signature (:func:`overlay_signature`)."""
        signature = self.stored_index[_SIGNATURE_AT] if len(self.stored_index) > _SIGNATURE_AT else ""
        return signature if type(signature) is str else ""

    def read_index(self) -> FileIndex:
        """The file's index.

        Raises ValueError, TypeError, EOFError or IndexError on data that is not an entry.
        """
        return _load_index(self.stored_index)

    @staticmethod
    def objects(stored: bytes, count: int, signature: str) -> tuple[list[IntelObject], list[list[ListedReference]]]:
        """The objects and references of the second part of an entry whose index lists ``count`` objects
        and has overlay signature ``signature``.

        Raises ValueError, TypeError, EOFError or IndexError on data that is not an entry, or not
        this index's (made under other overlay lines).
        """
        stored_objects, references, made_under = marshal.loads(stored)
        if made_under != signature:
            raise ValueError("objects part made under other overlay lines than its index")
        objects = [IntelObject(*values) for values in stored_objects]
        for obj in objects:
            if type(obj.data) is not dict:
                raise ValueError("not a stored object")
        if type(references) is not list or len(references) != len(objects) or len(objects) != count:
            raise ValueError("not a stored entry")
        return objects, references

    def unpack(self) -> Unpacked:
        """Raises ValueError, TypeError, EOFError or IndexError on data that is not an entry."""
        index = self.read_index()
        objects, references = FileEntry.objects(self.stored_objects, len(index.ids), self.signature)
        return Unpacked(objects, index.load_findings, index.object_findings, references, index.malformed_ids,
                        self.signature)


def _store_index(index: FileIndex, signature: str) -> _StoredIndex:
    """The index as an entry keeps it, its overlay signature (:func:`overlay_signature`) last."""
    return (*(None if not findings else [_store_finding(f) for f in findings]
              for findings in (index.load_findings, index.object_findings)), *index[2:], signature)


# Where a stored index keeps its overlay signature, and its ids.
_SIGNATURE_AT = len(FileIndex._fields)
_IDS_AT = FileIndex._fields.index("ids")


def _load_index(stored: Any) -> FileIndex:
    if type(stored) is not tuple or len(stored) != _SIGNATURE_AT + 1:
        raise ValueError("not a stored index")
    (load_findings, object_findings, malformed, ids, types, relationships, sightings, language_contents, targets,
     needs_objects, partner, signature) = stored
    if not (type(signature) is str and type(malformed) is list and type(ids) is list and type(types) is list
            and type(relationships) is list
            and type(sightings) is list and type(language_contents) is list
            and (targets is None or type(targets) is str)
            and type(partner) is list and (not partner or all(type(p) is tuple and len(p) == 3 for p in partner))
            ) or len(ids) != len(types):
        raise ValueError("not a stored index")
    return FileIndex([_load_finding(f) for f in load_findings] if load_findings else [],
                     [_load_finding(f) for f in object_findings] if object_findings else [],
                     malformed, ids, types, relationships, sightings, language_contents, targets, needs_objects,
                     partner)


class Unpacked(NamedTuple):
    """One entry read back: what loading and checking the file gave."""

    objects: list[IntelObject]
    load_findings: list[Finding]
    object_findings: list[Finding]
    references: list[list[ListedReference]]  # object_references of each object
    malformed_ids: list[str]  # ids of these objects that are not TYPE--UUID
    overlay_signature: str  # of the overlay lines the objects were loaded under (overlay_signature)


def _store_finding(finding: Finding) -> _StoredFinding:
    location = finding.location
    return (finding.code, int(finding.severity), finding.message, location.file, location.line, location.column,
            location.path, finding.hint, finding.stix_id)


def _load_finding(values: Any) -> Finding:
    code, severity, message, file, line, column, path, hint, stix_id = values
    if not all(type(v) is str for v in (code, message, file, hint)) or type(path) is not tuple:
        raise ValueError("not a stored finding")
    return Finding(code, Severity(severity), message, Location(file, int(line), int(column), path), hint, stix_id)


# What the stat index keeps of a file's lstat to tell it unchanged: size, mtime, ctime, inode.
StatRecord = tuple[int, int, int, int]


def _stat_record(info: os.stat_result) -> StatRecord:
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino


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
        self._shards: dict[int, dict[str, dict[str, _StoredIndex]]] = {}  # entries' indexes (FileEntry.stored_index)
        # Entries' objects (FileEntry.stored_objects), by shard, read when first asked for (stored_objects).
        self._objects: dict[int, dict[str, dict[str, bytes]]] = {}
        self._settled = False
        self._dirty: set[int] = set()
        self._used: set[tuple[str, str]] = set()
        self._index: dict[str, tuple[int, int, int, int, str]] = {}
        self._index_trusted_before = 0  # modification times from here on are racy
        self._new_index: dict[str, tuple[int, int, int, int, str]] = {}
        self.rejected: list[str] = []  # files ignored as corrupt or foreign (for tests and --verbose)
        self.read_digests: dict[str, bytes] = {}  # the SHA-256 of each file's body read and trusted, by name
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
        self._remembered = 0  # stat records made in this run (the others in _new_index are _index's own)
        # Files a warm load took unchanged (_IndexedEntry: their entries and stat records as read),
        # added to _used and _new_index only when something needs those (_note_taken): a check
        # that writes nothing does not spend a set and a dict insertion per file on them.
        self._taken: list[Any] = []
        self._taken_names: list[str] = []  # their entry names, once noted
        # Folders taken whole (tiops.buildfolders): (relative prefix, folder key, names, blobs), noted
        # as their files would be; and those noted already.
        self._taken_folders: list[tuple[str, str, list[str], list[str]]] = []
        self._noted_folders: list[tuple[str, str, list[str], list[str]]] = []
        self._folder_shards: dict[int, dict[str, Any]] = {}  # folder groups by shard, read when asked for
        self._folders_dirty: set[int] = set()
        self._folders_walked: set[str] | None = None  # every folder of a whole walk: the others' groups go
        self._folders_spilled: dict[int, list[tuple[int, int, int]]] = {}  # groups kept in this run, by shard
        self._unread: set[int] = set()  # shards not read yet (open(lazy=True)), read when first needed

    @classmethod
    def open(cls, root: Path, context: str, *, lazy: bool = False) -> BuildCache:
        """The cache of the repository at ``root`` for ``context``.

        ``lazy``: read each shard of entries only when something needs it (a build taking
        folders whole, tiops.buildfolders, needs few); :meth:`settle` reads those whose entries
        may have gone unused, and stops reading more.
        """
        cache = cls(root / CACHE_DIR, context)
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
        from which records are racy; empty when there is none to trust."""
        index = self._read(_INDEX_FILE)
        if isinstance(index, dict):
            try:
                return index, os.stat(self.folder / _INDEX_FILE).st_mtime_ns - _RACY_NS
            except OSError:
                pass
        return {}, 0

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

    def _read(self, name: str) -> Any:
        """The body of one cache file, or None when it is absent, damaged or foreign.

        Only a regular file is read: a named pipe would block the build, a link to
        ``/dev/zero`` never end, and a link to another file of the cache is that file, not
        this one. A body is also bound to its file's name, so that one file copied, moved
        or restored over another (its checksum and context right) is foreign there too.
        """
        raw = read_regular_file(self.folder / name)
        if raw is None:
            if os.path.lexists(self.folder / name):
                self.rejected.append(name)
            return None
        head = len(_MAGIC)
        if raw[:head] != _MAGIC or len(raw) < head + _DIGEST_SIZE:
            self.rejected.append(name)
            return None
        # A view, not a copy: the index and entry files are most of what a warm build reads.
        payload = memoryview(raw)[head + _DIGEST_SIZE:]
        if hashlib.sha256(payload).digest() != raw[head:head + _DIGEST_SIZE]:
            self.rejected.append(name)
            return None
        try:
            context, stored_name, body = marshal.loads(payload)
        except (ValueError, TypeError, EOFError):
            self.rejected.append(name)
            return None
        if context != self.context or stored_name != name or not isinstance(body, dict):
            self.rejected.append(name)
            return None
        self.read_digests[name] = raw[head:head + _DIGEST_SIZE]
        return body

    def read_record(self, name: str) -> dict[str, Any] | None:
        """Another file of this cache (not an entry shard), checked as the shards are; None when absent or not trusted."""
        body = self._read(name)
        return body if isinstance(body, dict) else None

    def write_record(self, name: str, body: dict[str, Any]) -> None:
        """Keep ``body`` under ``name`` beside the entries. Never raises for I/O: the cache is optional."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._write(name, body)
        except (OSError, ValueError):
            return

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
            # One marshal per chunk, read back by one marshal.loads: no record parsed in Python.
            try:
                chunk = marshal.dumps(pending)
            except ValueError:
                chunk = marshal.dumps(_marshalable(pending))
            self._spill_chunk(number, chunk)
            self._pending.pop(number, None)  # gone already when the spill failed (_spill_chunk)
            self._pending_size.pop(number, None)
        else:
            self._pending_size[number] = size

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
            self._spill.write(chunk)
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
        if record[:4] != (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino):
            return None
        return record[4]

    def remember(self, relative: str, info: os.stat_result, blob: str) -> None:
        self.remember_record(relative, _stat_record(info), blob)

    def remember_record(self, relative: str, record: StatRecord, blob: str) -> None:
        """:meth:`remember` from the :func:`_stat_record` of the file (the forked helper sends that)."""
        self._new_index[relative] = (*record, blob)
        self._remembered += 1

    def take_unchanged(self, files: list[Any]) -> None:
        """Note files (tiops.buildcache._IndexedEntry) taken from their entries with their stat
        records unchanged: used, and kept in the stat index as they were."""
        self._taken.extend(files)

    def take_folder(self, relative_prefix: str, folder_key: str, names: list[str], blobs: list[str]) -> None:
        """Note the files of a folder taken whole (tiops.buildfolders) as :meth:`take_unchanged` notes files."""
        self._taken_folders.append((relative_prefix, folder_key, names, blobs))

    def folder_group(self, relative_prefix: str) -> Any:
        """The group kept for the folder at ``relative_prefix`` (tiops.buildfolders.FolderGroup, unchecked), or None."""
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
            body = self._read(_folders_name(number))
            shard = self._folder_shards[number] = body if isinstance(body, dict) else {}
            if body is None and os.path.lexists(self.folder / _folders_name(number)):
                self._folders_dirty.add(number)  # damaged or foreign: rewritten (or removed) at the next save
        return shard

    def _taken_count(self) -> int:
        """Files taken unchanged and not yet noted (:meth:`_note_taken`)."""
        return len(self._taken) + sum(len(names) for _, _, names, _ in self._taken_folders)

    def _note_taken(self) -> None:
        """Put the records of the files taken unchanged into the new stat index as they were read
        (a record made in this run wins), and their entry names among those used (settle)."""
        taken, folders = self._taken, self._taken_folders
        if not taken and not folders:
            return
        self._taken, self._taken_folders = [], []
        index, new_index = self._index, self._new_index
        for relative in map(_RELATIVE, taken):
            if relative not in new_index:
                new_index[relative] = index[relative]
        for relative_prefix, _, names, _ in folders:
            relatives = list(map(relative_prefix.__add__, names))
            if new_index.keys().isdisjoint(relatives):  # always, but for a file remembered in this run too
                new_index.update(zip(relatives, map(index.__getitem__, relatives), strict=True))  # in C
                continue
            for relative in relatives:
                if relative not in new_index:
                    new_index[relative] = index[relative]
        self._taken_names.extend(map(_ENTRY_NAME, taken))
        self._noted_folders.extend(folders)

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
            new_index = self._new_index
            for number in self._unread & (self._dirty | {
                    _shard_of(record[4]) for relative, record in self._index.items()
                    if (now := new_index.get(relative)) is None or now[4] != record[4]}):
                self._read_shard(number)
            self._unread.clear()
        names = self._taken_names
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
            used.update((blob, f"{relative_prefix}{name}\0{folder_key}")  # entry_key of each file, inlined
                        for relative_prefix, folder_key, folder_names, blobs in self._noted_folders
                        for name, blob in zip(folder_names, blobs, strict=True) if blob[:2] in prefixes)
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
            if self._new_index != self._index or self._dirty:
                self._write(_INDEX_FILE, self._new_index)
            # Folder groups last: one names files by the stat index's blob ids, so the index comes first.
            self._save_folders()
        except OSError:
            return  # a read-only checkout builds as well, only without keeping the cache
        finally:
            self._close_spill()
        self._dirty.clear()

    def release_saved(self) -> None:
        """Let go of what only :meth:`save` needed: the stat index read and the one made, the entries
        used. For a first build, whose compile then makes as many small objects again: at a million
        objects these are 300 MB that the bundle and its record reuse, rather than pages added on top.
        The cache still reads entries' objects and writes records afterwards; it saves nothing more."""
        self._index = {}
        self._new_index = {}
        self._used = set()
        self._taken = []
        self._taken_names = []
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
        # A file taken unchanged keeps the very record read (_load_indexed_folders, take_unchanged);
        # every other record was made by remember_record (a path remembered twice counts twice:
        # saved sooner).
        same = self._taken_count() + len(self._new_index) - self._remembered
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

    def _write(self, name: str, body: dict[str, Any]) -> None:
        import tempfile  # only a build that changed something writes

        payload = marshal.dumps((self.context, name, body))
        # The writer's process id ends the name (before .tmp): a file of a build killed while writing it
        # (kill -9, a CI job cancelled) is one nothing else removes, and a shard's objects part or the
        # bundle record is megabytes; the next save removes it (save, remove_abandoned).
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.", suffix=f".{os.getpid()}{_TEMPORARY}")
        try:
            with os.fdopen(handle, "wb") as out:
                # Three writes, not one joined copy: a million-object bundle record is over 100 MB.
                out.write(_MAGIC)
                out.write(hashlib.sha256(payload).digest())
                out.write(payload)
            os.replace(temporary, self.folder / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


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


@dataclass
class CachedLoad:
    """A repository loaded through the cache, with the per-object findings of every object in order."""

    repo: Repo
    object_findings: list[Finding]
    references: list[list[ListedReference] | None]  # None: a file parsed in this run (Prechecked)
    cache: BuildCache
    malformed_ids: set[str] = field(default_factory=set)
    reused_files: int = 0
    parsed_files: int = 0
    # (blob id, entry key) -> what the file gave, when asked for (record_files): a git
    # revision compared with this working tree takes these very objects (CachedFiles).
    files: dict[tuple[str, str], FileResult] | None = None
    # "blob NUL entry key" -> the objects of that file, when asked for (entry_objects): what a
    # bundle record (tiops.bundlereuse) notes of each entry, without keeping each file's result.
    entry_objects: dict[str, list[IntelObject]] | None = None

    def prechecked(self) -> Prechecked:
        return Prechecked(self.object_findings, self.references, self.malformed_ids)


class FileResult(NamedTuple):
    """What one file gave in a load through the cache."""

    objects: list[IntelObject]
    load_findings: list[Finding]
    object_findings: list[Finding]
    references: list[list[ListedReference]]
    malformed_ids: list[str] | set[str]
    overlay_signature: str = ""  # of the overlay lines the objects were loaded under (overlay_signature)


def _folder_files(folders: list[tuple[str, str, Defaults, str | None, list[str]]]
                  ) -> list[tuple[str, str, Defaults, str | None]]:
    """The object files of :func:`_keyed_object_folders`' folders (tiops.load), each with its path,
    repository path, defaults and :func:`entry_key` (None: not cacheable)."""
    return [(prefix + name, relative_prefix + name, defaults, None if known is None else f"{relative_prefix}{name}\0{known}")
            for prefix, relative_prefix, defaults, known, names in folders for name in names]


def _keyed_object_folders(intel: Path, root: Path, repo: Repo) -> list[tuple[str, str, Defaults, str | None, list[str]]]:
    """The folders of the object files (tiops.load._object_folders): each folder's path and repository path,
    both ending with "/", its defaults, its :func:`defaults_key` (None: not cacheable) and its object files' names.

    A file's path is the folder's followed by its name, as ``os.path.join`` makes it, and its
    entry key (:func:`entry_key`) its repository path and the defaults key joined by NUL; a
    folder's defaults key is worked out once for all the folders that share its defaults.
    """
    keys: dict[int, tuple[Defaults, str | None]] = {}
    folders: list[tuple[str, str, Defaults, str | None, list[str]]] = []
    for directory, relative_dir, defaults, names in _object_folders(intel, root, repo):
        known = keys.get(id(defaults))
        if known is None or known[0] is not defaults:
            known = keys[id(defaults)] = (defaults, defaults_key(defaults))
        prefix = directory if directory.endswith("/") else f"{directory}/"  # os.path.join's rule
        folders.append((prefix, f"{relative_dir}/", defaults, known[1], names))
    return folders


def load_repo_cached(root: Path, *, progress: Progress = no_progress,
                     fresh: Callable[[str], bool] | None = None, record_files: bool = False,
                     settle: bool = True, entry_objects: bool = False, make_groups: bool = False) -> CachedLoad:
    """Load ``root`` like :func:`tiops.load.load_repo`, reusing the cache for unchanged files.

    The objects and findings are those ``load_repo`` gives, in the same order, and
    ``object_findings`` is what ``check_object`` gives for each object, in object order.
    ``fresh(relative)`` names files that are always hashed again whatever their lstat
    (the files ``tiops validate FILE`` was given). Call ``result.cache.save()`` afterwards
    to keep what changed. ``record_files``: keep each file's result in ``result.files``;
    ``settle=False``: leave :meth:`BuildCache.settle` to the caller, which may look up
    more entries first (a git revision's files, :class:`CachedFiles`). ``entry_objects``:
    keep each cached file's objects in ``result.entry_objects``, by "blob NUL entry key".
    ``make_groups``: make each folder's group (tiops.buildfolders) for the next build, which
    may then take the folder whole (:func:`load_repo_indexed`).
    """
    config, config_findings = load_config(root)
    cache = BuildCache.open(root, context_key(root))
    repo = Repo(root=root, config=config, findings=list(config_findings))
    loaded = CachedLoad(repo, [], [], cache, files={} if record_files else None,
                        entry_objects={} if entry_objects else None)
    intel = config.intel_path
    if not intel.is_dir():
        return loaded
    root_text = os.fspath(root)
    reading = _HashedFirst(config.files)
    parsing = replace(config, source=reading)  # files parsed get the bytes just hashed
    with paused_gc():
        folders = _keyed_object_folders(intel, root, repo)
        files = _folder_files(folders)
        groups = _GroupMaker(cache, folders) if make_groups and fresh is None else None
        if fresh is None and not cache.holds_entries() and not cache._index and fork_helper(len(files)):
            # A first build: every file is parsed, checked and kept, a forked helper taking part.
            _load_files_forked(loaded, parsing, reading, root_text, files, progress, groups)
            files = []
        for done, (path, relative, defaults, key) in enumerate(files, 1):
            kept: list[tuple[str, tuple[Any, ...]] | None] | None = [] if groups is not None else None
            _load_file(loaded, parsing, reading, root_text, path, relative, defaults, key, fresh, kept)
            if groups is not None:
                groups.note(done - 1, kept[0] if kept else None)
            if done % 1000 == 0 or done == len(files):
                progress("load", done, len(files))
    if settle:
        cache.settle()
    return loaded


def load_intel(root: Path, *, cache: bool = True, progress: Progress = no_progress) -> Repo:
    """The repository's objects and load findings, as :func:`tiops.load.load_repo` gives them.

    ``cache``: through the build cache, which is brought up to date (the commands that read
    the intel to edit it or explain it, on a warm cache, parse only the files changed since
    the last build); ``False`` parses every file.
    """
    if not cache:
        return load_repo(root, progress=progress)
    loaded = load_repo_cached(root, progress=progress)
    loaded.cache.save()
    return loaded.repo


class _HashedFirst:
    """The working tree, except that the file just read to hash it is not read a second time to parse it.

    Reading every file twice was most of the extra cost of a build that writes the cache;
    parsing the very bytes that were hashed also ties the entry to what was parsed.
    """

    def __init__(self, files: FileSource) -> None:
        self._files = files
        self.root = files.root
        self.ahead: tuple[str, bytes] | None = None  # (path, content), taken by the next read of that path

    def read(self, path: str) -> bytes:
        ahead, self.ahead = self.ahead, None
        if ahead is not None and ahead[0] == path:
            return ahead[1]
        return self._files.read(path)

    def lexists(self, path: str) -> bool:
        return self._files.lexists(path)

    def is_dir(self, path: str) -> bool:
        return self._files.is_dir(path)

    def listdir(self, path: str) -> list[str]:
        return self._files.listdir(path)

    def walk(self, top: str, on_problem: WalkProblem) -> Iterator[tuple[str, list[str], list[str]]]:
        return self._files.walk(top, on_problem)

    def blob_id(self, path: str) -> str | None:
        return self._files.blob_id(path)


def _take_unpacked(loaded: CachedLoad, unpacked: Unpacked, blob: str, key: str,
                   references: Sequence[list[ListedReference] | None]) -> None:
    """Add a file's unpacked entry to ``loaded``, as its parse would have (``references``: its objects' lists)."""
    loaded.repo.objects.extend(unpacked.objects)
    loaded.repo.findings.extend(unpacked.load_findings)
    loaded.object_findings.extend(unpacked.object_findings)
    loaded.references.extend(references)
    loaded.malformed_ids.update(unpacked.malformed_ids)
    if loaded.files is not None:
        loaded.files[(blob, key)] = FileResult(*unpacked)
    if loaded.entry_objects is not None:
        loaded.entry_objects[entry_name(blob, key, unpacked.overlay_signature)] = unpacked.objects


def _load_file(loaded: CachedLoad, config: Config, reading: _HashedFirst, root_text: str, path: str, relative: str,
               defaults: Defaults, key: str | None, fresh: Callable[[str], bool] | None,
               kept: list[tuple[str, tuple[Any, ...]] | None] | None = None) -> None:
    """Load one file through the cache. ``kept``: as :func:`_load_indexed_file`'s."""
    cache, repo = loaded.cache, loaded.repo
    blob, info, entry = _find_entry(cache, reading, root_text, path, relative, key, fresh, defaults.overlay)
    if entry is not None and blob is not None and key is not None and info is not None:
        try:
            unpacked = entry.unpack()
        except (ValueError, TypeError, EOFError, IndexError):
            pass  # not an entry after all: load the file afresh below
        else:
            _take_unpacked(loaded, unpacked, blob, key, unpacked.references)
            cache.remember(relative, info, blob)
            loaded.reused_files += 1
            if kept is not None:
                kept.append((blob, entry.stored_index))
            return
    parsed, _, stored = _parse_file(cache, config, reading, repo.root, path, relative, defaults, blob, key, info)
    if kept is not None:
        kept.append(None if stored is None or blob is None else (blob, stored.stored_index))
    loaded.parsed_files += 1
    repo.objects.extend(parsed.objects)
    repo.findings.extend(parsed.load_findings)
    loaded.object_findings.extend(parsed.object_findings)
    # Not kept: the reference check walks these objects itself (check_listed_references),
    # and a first build of a million objects would hold their lists to the end.
    loaded.references.extend([None] * len(parsed.objects))
    loaded.malformed_ids.update(parsed.malformed_ids)
    if loaded.files is not None and blob is not None and key is not None:
        loaded.files[(blob, key)] = parsed
    if loaded.entry_objects is not None and blob is not None and key is not None:
        loaded.entry_objects[entry_name(blob, key, parsed.overlay_signature)] = parsed.objects


# What the helper makes of one file of a first build: blob id, stat record, the entry's two parts.
_HelperEntry = tuple[str, StatRecord, _StoredIndex, bytes]


def _load_files_forked(loaded: CachedLoad, config: Config, reading: _HashedFirst, root_text: str,
                       files: list[tuple[str, str, Defaults, str | None]], progress: Progress,
                       groups: _GroupMaker | None = None) -> None:
    """:func:`_load_file` of every file of a first build, in order, a forked helper making entries alongside.

    The helper reads, parses and checks files from the end of the list (tiops.forkwork)
    and sends each one's cache entry; this process takes an entry as a later build takes
    a kept one (:meth:`FileEntry.unpack`), keeps it, and loads the files of its own share
    as ever. A file the helper leaves (not cacheable, not a plain regular file, not
    readable) is loaded here. The objects, findings and entries are the same either way:
    an entry holds what :func:`_parse_file` makes of the bytes its blob id was taken from.
    """
    cache, repo = loaded.cache, loaded.repo
    work = _helper_work(config, reading, repo.root, root_text, files)

    def use(index: int, made: _HelperEntry | None) -> None:
        path, relative, defaults, key = files[index]
        kept: list[tuple[str, tuple[Any, ...]] | None] | None = [] if groups is not None else None
        entry = None if made is None or key is None else FileEntry(made[2], made[3])
        try:
            unpacked = None if entry is None else entry.unpack()
        except (ValueError, TypeError, EOFError, IndexError):
            unpacked = None
        if made is None or key is None or entry is None or unpacked is None:
            _load_file(loaded, config, reading, root_text, path, relative, defaults, key, None, kept)
        else:
            blob, record, stored_index, _ = made
            # As for a file parsed here: the reference check walks these objects itself.
            _take_unpacked(loaded, unpacked, blob, key, [None] * len(unpacked.objects))
            cache.store(blob, key, entry)
            cache.remember_record(relative, record, blob)
            loaded.parsed_files += 1
            if kept is not None:
                kept.append((blob, stored_index))
        if groups is not None:
            groups.note(index, kept[0] if kept else None)

    total = len(files)
    run_in_order(total, work, use, chunk=64,
                 on_chunk=lambda done: progress("load", done, total) if done % 1024 == 0 or done == total else None)


def _helper_work(config: Config, reading: _HashedFirst, root: Path, root_text: str,
                 files: list[tuple[str, str, Defaults, str | None]]) -> Callable[[int], _HelperEntry | None]:
    """The forked helper's work on ``files[index]`` (:func:`_helper_entry`); None in this process,
    where the use of each result loads the file the one-process way instead."""
    parent = os.getpid()

    def work(index: int) -> _HelperEntry | None:
        if os.getpid() == parent:
            return None
        path, relative, defaults, key = files[index]
        return _helper_entry(config, reading, root, root_text, path, relative, defaults, key)

    return work


def _helper_entry(config: Config, reading: _HashedFirst, root: Path, root_text: str, path: str, relative: str,
                  defaults: Defaults, key: str | None) -> _HelperEntry | None:
    """In the forked helper: the entry :func:`_parse_file` would keep for a file of a first build,
    or None for a file it would not keep (loaded by the parent the one-process way)."""
    if key is None:
        return None
    try:
        content, info = _read_regular(path, root_text)
    except InputProblem:
        return None
    if info is None:
        return None
    blob = blob_id(content)
    reading.ahead = (path, content)
    result, index = _fresh_result(config, reading, root, path, relative, defaults)
    if result.load_findings and any(f.code in _UNREADABLE_CODES for f in result.load_findings):
        return None
    entry = FileEntry.of(result.objects, result.references, index, defaults.overlay)  # ValueError: the parent loads it
    return blob, _stat_record(info), entry.stored_index, entry.stored_objects


def _find_entry(cache: BuildCache, reading: _HashedFirst, root_text: str, path: str, relative: str, key: str | None,
                fresh: Callable[[str], bool] | None, overlay: dict[str, Any] | None
                ) -> tuple[str | None, os.stat_result | None, FileEntry | None]:
    """The file's blob id (None when it is not cacheable), its lstat, and its entry if the cache has one
    made under the same lines of its folder's ``overlay`` as there are now.

    A file read to take its blob id is left in ``reading`` for the parse that may follow.
    """
    reading.ahead = None
    if key is None:
        return None, None, None
    if relative not in cache._index or (fresh is not None and fresh(relative)):
        # No blob id to take from the stat index (every file of a first build): the file is
        # read at once, and the fstat of the file read stands for its lstat, one system call
        # less per file (for a regular file, not a link, the two are the same).
        try:
            content, info = _read_regular(path, root_text)
        except InputProblem:
            return None, None, None  # reported by the ordinary load below
        reading.ahead = (path, content)
        if info is None:
            return None, None, None  # not a plain regular file: loaded, never cached
        blob = blob_id(content)
        # Nothing to find in an empty cache.
        return blob, info, cache.lookup(blob, key, overlay) if cache.holds_entries() else None
    try:
        lstat = os.lstat(path)
    except OSError:
        return None, None, None
    if not stat.S_ISREG(lstat.st_mode) or lstat.st_size > MAX_FILE_BYTES:
        return None, lstat, None
    known = cache.known_blob(relative, lstat)
    if known is None:
        try:
            content = read_input(path, root=root_text)
        except InputProblem:
            return None, lstat, None  # reported by the ordinary load below
        known = blob_id(content)
        reading.ahead = (path, content)
    return known, lstat, cache.lookup(known, key, overlay)


def _read_regular(path: str, root_text: str) -> tuple[bytes, os.stat_result | None]:
    """The bytes of the file at ``path`` as tiops.inputs.read_input gives them, with the fstat of the file read.

    The fstat is None for a file that is not simply a regular file read whole at once (a
    link, a file that grew or shrank while it was read): read_input reads it then, and
    raises InputProblem for what it refuses.
    """
    try:
        # read_input's own flags: a link is left to it (O_NOFOLLOW), a named pipe does not block.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return read_input(path, root=root_text), None
    try:
        info = os.fstat(descriptor)
        if stat.S_ISREG(info.st_mode) and info.st_size <= MAX_FILE_BYTES:
            content = os.read(descriptor, info.st_size + 1)  # one byte more than its size tells that it grew
            if len(content) == info.st_size:
                return content, info
    except OSError:
        pass
    finally:
        os.close(descriptor)
    return read_input(path, root=root_text), None


def _parse_file(cache: BuildCache, config: Config, reading: _HashedFirst, root: Path, path: str, relative: str,
                defaults: Defaults, blob: str | None, key: str | None,
                info: os.stat_result | None) -> tuple[FileResult, FileIndex, FileEntry | None]:
    """Load and check one file afresh, and keep its entry in the cache when it can be kept (the entry kept, or None)."""
    # Whether the bytes parsed are the very bytes the blob id was taken from (_find_entry).
    # Then the entry holds what its blob says whatever happens to the file meanwhile, and
    # the stat kept (the fstat of the open file) was taken before reading: a change since
    # gives the file another lstat, so the next build hashes it again. A blob id remembered from the last build's lstat
    # instead needs a second lstat after the parse to tell that the file stayed the same.
    hashed = reading.ahead is not None and reading.ahead[0] == path
    result, index = _fresh_result(config, reading, root, path, relative, defaults)
    load_findings, references = result.load_findings, result.references
    if blob is not None and key is not None and info is not None and not (
            load_findings and any(f.code in _UNREADABLE_CODES for f in load_findings)) and (
            hashed or _unchanged(path, info)):
        try:
            entry = FileEntry.of(result.objects, references, index, defaults.overlay)
        except ValueError:
            pass  # a value marshal cannot write: this file is loaded afresh every time
        else:
            cache.store(blob, key, entry)
            cache.remember(relative, info, blob)
            return result, index, entry
    return result, index, None


def _fresh_result(config: Config, reading: _HashedFirst, root: Path, path: str, relative: str,
                  defaults: Defaults) -> tuple[FileResult, FileIndex]:
    """Load and check one file afresh: what it gives and its index, nothing kept."""
    scratch = Repo(root=root, config=config)
    _load_object_file(path, relative, defaults, scratch)
    reading.ahead = None
    # Locations resolved now, while the file is the one the entry is kept for.
    # (Most files have no findings: resolving none would still cost a call per file.)
    load_findings = resolve_locations(scratch.findings, root) if scratch.findings else scratch.findings
    object_findings = [f for obj in scratch.objects for f in check_object(obj)]
    if object_findings:
        object_findings = resolve_locations(object_findings, root)
    references, index = index_objects(scratch.objects, load_findings, object_findings)
    return FileResult(scratch.objects, load_findings, object_findings, references, index.malformed_ids,
                      overlay_signature(defaults.overlay, index.ids)), index


class StaleEntry(Exception):
    """A cache entry whose index was read but whose objects cannot be: the build starts again without indexes."""


class _IndexedEntry:
    """One file of a repository loaded by :func:`load_repo_indexed` (tiops.validate.indexed.IndexedFile)."""

    __slots__ = ("_cache", "_loaded", "_stored", "entry", "index", "parsed", "relative")

    def __init__(self, relative: str, index: FileIndex, entry: str | None, cache: BuildCache | None = None,
                 stored: bytes | None = None,
                 loaded: tuple[list[IntelObject], Sequence[list[ListedReference] | None]] | None = None) -> None:
        self.relative = relative
        self.index = index
        self.entry = entry  # entry_name of its entry; None for a file the cache cannot keep
        self.parsed = loaded is not None  # read from the file in this run, not from the cache
        self._cache = cache  # where the entry's objects part is, when not ``stored`` already
        self._stored = stored
        self._loaded = loaded

    def objects(self) -> tuple[list[IntelObject], Sequence[list[ListedReference] | None]]:
        if self._loaded is None:
            stored = self._stored
            if stored is None and self._cache is not None and self.entry is not None:
                blob, key = _entry_parts(self.entry)
                stored = self._cache.stored_objects(blob, key)
            try:
                if stored is None:
                    raise ValueError("no objects part")
                self._loaded = FileEntry.objects(stored, len(self.index.ids), _entry_signature(self.entry))
            except (ValueError, TypeError, EOFError, IndexError):
                raise StaleEntry(self.relative) from None
            self._stored = self._cache = None
        return self._loaded


@dataclass
class IndexedLoad:
    """A repository loaded through the cache as file indexes (tiops.validate.indexed), objects read on demand.

    ``repo`` holds the configuration, the overlays and the findings made before any
    file was read (configuration, folder walk, ``_defaults.yaml``); its ``objects`` stay
    empty: each file's objects are in ``files``.
    """

    repo: Repo
    files: list[_IndexedEntry | FolderEntry]  # a folder taken whole is one FolderEntry
    cache: BuildCache
    reused_files: int = 0
    parsed_files: int = 0


def load_repo_indexed(root: Path, *, progress: Progress = no_progress,
                      fresh: Callable[[str], bool] | None = None, settle: bool = True) -> IndexedLoad:
    """Load ``root`` through the cache as in :func:`load_repo_cached`, but unchanged files as their index only.

    A file the cache holds costs its index; its objects are unmarshalled when a check
    asks for them. Files parsed afresh keep their objects. Call ``result.cache.save()``
    afterwards to keep what changed.

    A folder whose files are all unchanged is taken as one file (tiops.buildfolders.FolderEntry)
    when the cache keeps its group, with its path as its ``relative``; every other folder is
    loaded file by file, and its group made for the next build (:func:`_load_indexed_folders`).
    A folder holding a file ``fresh`` names is loaded file by file, that file parsed afresh.

    ``settle=False``: leave :meth:`BuildCache.settle` to the caller (a check that may write
    nothing, :meth:`BuildCache.save_unless_small`).
    """
    config, config_findings = load_config(root)
    context = context_key(root)
    repo = Repo(root=root, config=config, findings=list(config_findings))
    intel = config.intel_path
    if not intel.is_dir():
        return IndexedLoad(repo, [], BuildCache.open(root, context))
    with paused_gc():
        folders = _keyed_object_folders(intel, root, repo)
        total = sum(len(folder[4]) for folder in folders)
        loaded = IndexedLoad(repo, [], BuildCache.open(root, context, lazy=True))
        cache = loaded.cache
        if fresh is None and not cache.holds_entries() and not cache._index and fork_helper(total):
            # A first `tiops validate`: every file is parsed, checked and kept, a forked helper taking part.
            reading = _HashedFirst(config.files)
            _load_indexed_forked(loaded, replace(config, source=reading), reading, os.fspath(root),
                                 _folder_files(folders), progress)
        else:
            _load_indexed_folders(loaded, folders, total, fork_helper(total), progress, fresh)
    if settle:
        cache.settle()
    return loaded


def _load_indexed_folders(loaded: IndexedLoad, folders: list[tuple[str, str, Defaults, str | None, list[str]]],
                          total: int, helper: bool, progress: Progress,
                          fresh: Callable[[str], bool] | None = None) -> None:
    """:func:`load_repo_indexed` with whole folders (tiops.buildfolders): a folder whose group the cache
    keeps and whose files are all unchanged is one file; any other folder is loaded file by file,
    unchanged files from their entries, and its group made afresh.

    Which files are not what the stat index says is known first, from an lstat of each. With a
    ``helper`` (tiops.load.fork_helper), a forked helper takes the first share of the files
    (:data:`_HELPER_SHARE`) while this process reads the folder groups and takes the rest.
    ``fresh``: as :func:`load_repo_indexed`'s; a folder holding such a file is loaded file by file
    (the files ``tiops validate FILE`` names are each a file of their own).
    """
    cache, repo = loaded.cache, loaded.repo
    config, root = repo.config, repo.root
    root_text = os.fspath(root)
    reading = _HashedFirst(config.files)
    parsing = replace(config, source=reading)
    split = int(total * _HELPER_SHARE) if helper and cache._index else 0
    beside = _changed_beside_read(cache, folders, split) if split else None
    try:
        cache.walked_folders({folder[1] for folder in folders})
        changed = _changed_here(cache, folders, split if beside is not None else 0, total)
        if beside is not None:
            theirs = _changed_verdict(beside, cache)
            changed |= _changed_here(cache, folders, 0, split) if theirs is None else theirs
    finally:
        if beside is not None:
            beside.close()
    index_get = cache._index.get
    files = loaded.files
    position = done = 0
    for prefix, relative_prefix, defaults, folder_key, names in folders:
        start, position = position, position + len(names)
        done += len(names)
        cacheable = folder_key is not None and not defaults.overlay
        group = cache.folder_group(relative_prefix) if cacheable else None
        named = fresh is not None and any(fresh(relative_prefix + name) for name in names)
        if (group is not None and folder_key is not None and not named and valid_group(group)
                and group[0] == folder_key and group[1] == names):
            blobs = group[2]
            records = list(map(index_get, map(relative_prefix.__add__, names)))
            if (None not in records and list(map(_BLOB_OF_RECORD, records)) == blobs  # type: ignore[arg-type]
                    and (not changed or changed.isdisjoint(range(start, position)))):
                try:
                    index = _load_index(group[4])
                except (ValueError, TypeError, EOFError, IndexError):
                    pass  # loaded file by file below, and its group made again
                else:
                    if len(index.ids) == sum(group[3]):
                        files.append(FolderEntry(relative_prefix, folder_key, names, blobs, group[3], index, cache))
                        cache.take_folder(relative_prefix, folder_key, names, blobs)
                        loaded.reused_files += len(names)
                        progress("load", done, total)
                        continue
        # File by file: (blob, stored index) of each, for the folder's group. An unchanged file of a
        # folder with a group takes its index out of the group (no shard of entries read for it).
        before = _group_members(group) if folder_key is not None and group is not None and group[0] == folder_key else {}
        members: list[tuple[str, tuple[Any, ...]] | None] = []
        taken_files: list[_IndexedEntry] = []
        for offset, name in enumerate(names):
            relative = relative_prefix + name
            key = None if folder_key is None else f"{relative}\0{folder_key}"
            taken = None
            record = index_get(relative) if key is not None else None
            if record is not None and key is not None and start + offset not in changed and not (
                    named and fresh is not None and fresh(relative)):
                held = before.get(name)
                if held is not None and held[0] == record[4]:
                    taken = _taken_from(relative, key, held[0], held[1], cache)
                if taken is None:
                    taken = _taken_entry(cache, relative, key, record[4], defaults.overlay)
            if taken is not None:
                files.append(taken[0])
                taken_files.append(taken[0])
                members.append((record[4], taken[1]))  # type: ignore[index]
                loaded.reused_files += 1
                continue
            kept: list[tuple[str, tuple[Any, ...]] | None] = []
            files.append(_load_indexed_file(loaded, cache, parsing, reading, root, root_text, prefix + name, relative,
                                            defaults, key, fresh, kept if cacheable else None))
            members.append(kept[0] if kept else None)
        cache.take_unchanged(taken_files)
        cache.keep_folder(relative_prefix, _folder_group(folder_key, defaults, names, members))
        progress("load", done, total)


class _GroupMaker:
    """The folder groups (tiops.buildfolders) of a load file by file: each file's blob id and stored
    index noted in order (None: not kept), and each folder's group kept once its last file is."""

    def __init__(self, cache: BuildCache, folders: list[tuple[str, str, Defaults, str | None, list[str]]]) -> None:
        self._cache = cache
        self._folders = folders
        self._starts = list(itertools.accumulate((len(folder[4]) for folder in folders), initial=0))
        self._folder = 0  # the folder whose files are being noted
        self._members: list[tuple[str, tuple[Any, ...]] | None] = []
        cache.walked_folders({folder[1] for folder in folders})
        self._skip_empty()

    def note(self, position: int, member: tuple[str, tuple[Any, ...]] | None) -> None:
        if self._folder >= len(self._folders) or position != self._starts[self._folder] + len(self._members):
            self._folder = len(self._folders)  # not in order after all: no more groups in this run
            return
        self._members.append(member)
        if len(self._members) == len(self._folders[self._folder][4]):
            _, relative_prefix, defaults, folder_key, names = self._folders[self._folder]
            self._cache.keep_folder(relative_prefix, _folder_group(folder_key, defaults, names, self._members))
            self._members = []
            self._folder += 1
            self._skip_empty()

    def _skip_empty(self) -> None:
        while self._folder < len(self._folders) and not self._folders[self._folder][4]:
            self._cache.keep_folder(self._folders[self._folder][1], None)
            self._folder += 1


def _folder_group(folder_key: str | None, defaults: Defaults, names: list[str],
                  members: list[tuple[str, tuple[Any, ...]] | None]) -> tuple[Any, ...] | None:
    """The group (tiops.buildfolders.FolderGroup) of a folder whose files gave ``members`` (blob id and
    stored index of each, None where the cache keeps no entry), or None when it cannot have one."""
    if folder_key is None or defaults.overlay or not names or None in members:
        return None
    return folder_group(folder_key, names, members)  # type: ignore[arg-type]


def _changed_verdict(beside: Beside, cache: BuildCache) -> set[int] | None:
    """The positions of the files the helper found not to be what the stat index says, when its
    verdict was made for the stat index this process read; None to take each lstat here."""
    verdict = beside.result()
    if (type(verdict) is tuple and len(verdict) == 3 and verdict[0] == cache.read_digests.get(_INDEX_FILE)
            and verdict[1] == cache._index_trusted_before and type(verdict[2]) is list
            and all(type(position) is int for position in verdict[2])):
        return set(verdict[2])
    return None


# The share of a warm build's lstats a forked helper takes (_load_indexed_folders): this process
# reads the folder groups meanwhile, so it takes fewer.
_HELPER_SHARE = 0.6


def _changed_here(cache: BuildCache, folders: list[tuple[str, str, Defaults, str | None, list[str]]],
                  start: int, stop: int) -> set[int]:
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


def _changed_beside_read(cache: BuildCache, folders: list[tuple[str, str, Defaults, str | None, list[str]]],
                         stop: int) -> Beside | None:
    """A forked helper giving :func:`_changed_here` of the first ``stop`` files, against the stat index
    this process read: its verdict carries the index's digest and racy-time bound, so it is used
    only for that very index (:func:`_changed_verdict`)."""
    from tiops.forkwork import run_beside

    digest = cache.read_digests.get(_INDEX_FILE)
    if digest is None:
        return None

    def work() -> tuple[bytes, int, list[int]]:
        return digest, cache._index_trusted_before, sorted(_changed_here(cache, folders, 0, stop))

    return run_beside(work)


def _group_members(group: Any) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """File name -> (blob id, stored index) of each file of a folder group, or nothing when it is not one."""
    if not valid_group(group):
        return {}
    try:
        return dict(zip(group[1], zip(group[2], member_indexes(group), strict=True), strict=True))
    except (ValueError, TypeError, IndexError):
        return {}


def _taken_from(relative: str, key: str, blob: str, stored_index: tuple[Any, ...],
                cache: BuildCache) -> tuple[_IndexedEntry, tuple[Any, ...]] | None:
    """The unchanged file at ``relative`` from its stored index as its folder's group holds it (no overlay)."""
    try:
        index = _load_index(stored_index)
    except (ValueError, TypeError, EOFError, IndexError):
        return None
    return _IndexedEntry(relative, index, f"{blob}\0{key}", cache), stored_index


def _taken_entry(cache: BuildCache, relative: str, key: str, blob: Any,
                 overlay: dict[str, Any] | None) -> tuple[_IndexedEntry, tuple[Any, ...]] | None:
    """The file at ``relative``, unchanged since its stat record, from its entry (and the entry's stored
    index); None when the cache holds no such entry, or one made under other lines of the folder's overlay."""
    try:
        shard = cache._shard(int(blob[:2], 16))  # _shard_of, for the lowercase ids blob_id gives
    except (TypeError, ValueError):
        return None
    by_key = shard.get(blob) if shard is not None else None
    stored_index = by_key.get(key) if type(by_key) is dict else None
    if type(stored_index) is not tuple:
        return None
    try:
        index = _load_index(stored_index)
        signature = stored_index[-1]
        if signature != (overlay_signature(overlay, index.ids) if overlay else ""):
            return None
    except (ValueError, TypeError, EOFError, IndexError):
        return None
    return (_IndexedEntry(relative, index, f"{blob}\0{key}\0{signature}" if signature else f"{blob}\0{key}", cache),
            stored_index)


def _still_recorded(path: str, record: tuple[int, int, int, int, str], trusted_before: int) -> bool:
    """Whether the file at ``path`` is still the one its stat index record describes: a regular
    file of the same size, modification and change times and inode, modified before the racy
    bound (a file changed in the second the index was written may not show it in its times)."""
    try:
        now = os.lstat(path)
    except OSError:
        return False
    return (now.st_mtime_ns < trusted_before and stat.S_ISREG(now.st_mode) and record[0] == now.st_size
            and record[1] == now.st_mtime_ns and record[2] == now.st_ctime_ns and record[3] == now.st_ino)


def _load_indexed_file(loaded: IndexedLoad, cache: BuildCache, parsing: Config, reading: _HashedFirst, root: Path,
                       root_text: str, path: str, relative: str, defaults: Defaults, key: str | None,
                       fresh: Callable[[str], bool] | None,
                       kept: list[tuple[str, tuple[Any, ...]] | None] | None = None) -> _IndexedEntry:
    """One file of :func:`load_repo_indexed` that is not simply unchanged: its entry found by its content, or parsed.

    ``kept``: where to add the file's blob id and stored index when the cache keeps its entry (for
    its folder's group, tiops.buildfolders), or None when it does not.
    """
    blob, info, entry = _find_entry(cache, reading, root_text, path, relative, key, fresh, defaults.overlay)
    if entry is not None and blob is not None and key is not None and info is not None:
        try:
            index = entry.read_index()
        except (ValueError, TypeError, EOFError, IndexError):
            pass  # not an entry after all: load the file afresh below
        else:
            cache.remember(relative, info, blob)
            loaded.reused_files += 1
            if kept is not None:
                kept.append((blob, entry.stored_index))
            return _IndexedEntry(relative, index, entry_name(blob, key, entry.signature), stored=entry.stored_objects)
    parsed, index, stored = _parse_file(cache, parsing, reading, root, path, relative, defaults, blob, key, info)
    if kept is not None:
        kept.append(None if stored is None or blob is None else (blob, stored.stored_index))
    # The entry keeps the whole index. The copy kept in memory drops the reference targets:
    # this run holds the file's objects, so the checks read them (a file without
    # reference_targets is always read, tiops.validate.indexed), and a compile does not
    # hold every parsed file's targets as text beside its objects.
    index = index._replace(reference_targets=None)
    # The objects' reference lists are in the entry; not kept here, as load_repo_cached
    # does not keep them: the reference check walks these objects itself (None), which
    # spares a first compile of a million objects holding every list at once.
    loaded.parsed_files += 1
    return _IndexedEntry(relative, index,
                         None if blob is None or key is None else entry_name(blob, key, parsed.overlay_signature),
                         loaded=(parsed.objects, [None] * len(parsed.objects)))


def _load_indexed_forked(loaded: IndexedLoad, config: Config, reading: _HashedFirst, root_text: str,
                         files: list[tuple[str, str, Defaults, str | None]], progress: Progress) -> None:
    """:func:`load_repo_indexed` of every file when the cache holds nothing, a forked helper making
    entries alongside as in :func:`_load_files_forked`: each file is a file parsed in this run.

    (With an empty cache no lookup can find an entry, and every entry key holds its file's path,
    so none made in this run is found for another file either.)
    """
    cache, root = loaded.cache, loaded.repo.root
    work = _helper_work(config, reading, root, root_text, files)

    def use(index: int, made: _HelperEntry | None) -> None:
        path, relative, defaults, key = files[index]
        if made is not None and key is not None:
            blob, record, stored_index, stored_objects = made
            entry = FileEntry(stored_index, stored_objects)
            try:
                file_index = entry.read_index()
                objects = FileEntry.objects(stored_objects, len(file_index.ids), entry.signature)[0]
            except (ValueError, TypeError, EOFError, IndexError):
                pass  # loaded here below
            else:
                cache.store(blob, key, entry)
                cache.remember_record(relative, record, blob)
                loaded.files.append(_IndexedEntry(relative, file_index._replace(reference_targets=None),
                                                  entry_name(blob, key, entry.signature),
                                                  loaded=(objects, [None] * len(objects))))
                loaded.parsed_files += 1
                return
        loaded.files.append(_load_indexed_file(loaded, cache, config, reading, root, root_text, path, relative,
                                               defaults, key, None))

    total = len(files)
    run_in_order(total, work, use, chunk=64,
                 on_chunk=lambda done: progress("load", done, total) if done % 1024 == 0 or done == total else None)


class CachedFiles:
    """A git revision's files (tiops.filesource.ParsedFiles) taken from a working tree loaded through the cache.

    A file with the blob, path and defaults of a working-tree file takes the working
    tree's very objects (so `tiops diff` compares, checks and compiles them once); any
    other file found in the build cache comes from its entry. Either way it is not read,
    parsed or checked, and its per-object findings and references are kept in object
    order for :meth:`prechecked`, so the revision's repository-wide reference check
    does not walk its objects again. Files found in neither are parsed (documents shared
    through ``parses``) and checked here.
    """

    def __init__(self, head: CachedLoad, parses: Any) -> None:
        self.cache = head.cache
        self._head_files = head.files or {}
        self._parses = parses
        self._keys: dict[int, tuple[Defaults, str | None]] = {}
        self.object_findings: list[Finding] = []
        self.references: list[list[ListedReference] | None] = []
        self.malformed_ids: set[str] = set()
        self.objects = 0
        self.reused_files = 0

    def fits(self, root: Path, source: FileSource) -> bool:
        """Whether entries made in the working tree hold for the revision ``source`` (the same ``tiops.yaml``)."""
        return context_key(root, source) == self.cache.context

    def lookup(self, relative: str, blob: str) -> Any:
        return self._parses.lookup(relative, blob)

    def offer(self, relative: str, blob: str, document: Any) -> None:
        self._parses.offer(relative, blob, document)

    def loaded(self, relative: str, blob: str, context: Any) -> tuple[list[Any], list[Any]] | None:
        known = self._keys.get(id(context))
        if known is None or known[0] is not context:
            known = self._keys[id(context)] = (context, defaults_key(context))
        if known[1] is None:
            return None
        key = f"{relative}\0{known[1]}"  # entry_key, inlined
        found = self._head_files.get((blob, key))
        if found is not None and (context.overlay or found.overlay_signature) and found.overlay_signature != (
                overlay_signature(context.overlay, [obj.id for obj in found.objects])):
            found = None  # the working tree's file under other overlay lines than the revision's
        if found is None:
            entry = self.cache.lookup(blob, key, context.overlay)
            if entry is None:
                return None
            try:
                found = FileResult(*entry.unpack())
            except (ValueError, TypeError, EOFError, IndexError):
                return None
        self.object_findings.extend(found.object_findings)
        self.references.extend(found.references)
        self.malformed_ids.update(found.malformed_ids)
        self.objects += len(found.objects)
        self.reused_files += 1
        return found.objects, found.load_findings

    def offer_loaded(self, relative: str, blob: str, context: Any, objects: list[Any], findings: list[Any]) -> None:
        # Located later, against the revision's own files (validate_repo resolves what has no line).
        self.object_findings.extend(f for obj in objects for f in check_object(obj))
        self.references.extend(object_references(obj) for obj in objects)
        self.malformed_ids.update(malformed_ids(objects))
        self.objects += len(objects)

    def prechecked(self, repo: Repo) -> Prechecked | None:
        """What the revision's objects were checked to, or None if it does not match ``repo`` object for object."""
        if self.objects != len(repo.objects) or len(self.references) != len(repo.objects):
            return None
        return Prechecked(self.object_findings, self.references, self.malformed_ids)


def _unchanged(path: str, before: os.stat_result) -> bool:
    """Whether the file is still the one that was hashed (an editor may have saved it meanwhile)."""
    try:
        after = os.lstat(path)
    except OSError:
        return False
    return (after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ctime_ns, before.st_ino)
