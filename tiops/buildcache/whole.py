"""A repository loaded through the build cache with every object in memory (:func:`load_repo_cached`).

A first build, a command that reads every object (``tiops tag``, ``explain``, ``enrich``) and
the working tree a ``tiops diff`` compares take this route: each unchanged file's objects
come from its entry, every other file is read, parsed, checked and kept. The pieces that
read one file through the cache (:func:`_find_entry`, :func:`_parse_file`) serve the indexed
load too (tiops.buildcache.indexed).
"""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from tiops.buildcache.entries import (
    FileEntry,
    StatRecord,
    Unpacked,
    _stat_record,
    _StoredIndex,
    blob_id,
    context_key,
    defaults_key,
    entry_name,
    overlay_digest,
    overlay_signature,
)
from tiops.buildcache.folders import folder_group
from tiops.buildcache.stats import changed_files
from tiops.buildcache.store import BuildCache
from tiops.config import Config, load_config
from tiops.filesource import FileSource
from tiops.findings import Finding
from tiops.forkwork import run_in_order
from tiops.inputs import InputProblem, WalkProblem, file_identity, read_input
from tiops.limits import MAX_FILE_BYTES
from tiops.load import (
    Defaults,
    IntelObject,
    Repo,
    _load_object_file,
    _object_folders,
    fork_helper,
    load_repo,
    missing_intel_folder,
)
from tiops.locate import resolve_locations
from tiops.memory import paused_gc
from tiops.progress import Progress, no_progress
from tiops.validate import Prechecked
from tiops.validate.indexed import FileIndex, index_objects
from tiops.validate.objects import check_object
from tiops.validate.reference_index import ListedReference, malformed_ids, object_references

# Codes of findings that say a file could not be read at all (tiops.inputs): they depend
# on the file system, not on the content, so such a file is never cached.
_UNREADABLE_CODES = frozenset({"TI106", "TI108", "TI109"})


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
    # Each folder's key, as tiops.buildcache.indexed.IndexedLoad.folder_keys (a bundle record notes them).
    folder_keys: dict[str, str | None] = field(default_factory=dict)
    folder_overlays: dict[str, str] = field(default_factory=dict)  # as IndexedLoad.folder_overlays

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


def folder_overlays(folders: list[tuple[str, str, Defaults, str | None, list[str]]]) -> dict[str, str]:
    """The :func:`overlay_digest` of each of :func:`_keyed_object_folders`' folders that has an overlay, by its repository path."""
    return {relative_prefix: overlay_digest(defaults.overlay)
            for _, relative_prefix, defaults, _, _ in folders if defaults.overlay}


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
    ``make_groups``: make each folder's group (tiops.buildcache.folders) for the next build, which
    may then take the folder whole (:func:`load_repo_indexed`).
    """
    config, config_findings = load_config(root)
    cache = BuildCache.open(root, context_key(root))
    repo = Repo(root=root, config=config, findings=list(config_findings))
    loaded = CachedLoad(repo, [], [], cache, files={} if record_files else None,
                        entry_objects={} if entry_objects else None)
    intel = config.intel_path
    if not intel.is_dir():
        repo.findings.extend(missing_intel_folder(config))
        return loaded
    root_text = os.fspath(root)
    reading = _HashedFirst(config.files)
    parsing = replace(config, source=reading)  # files parsed get the bytes just hashed
    with paused_gc():
        folders = _keyed_object_folders(intel, root, repo)
        loaded.folder_keys = {relative_prefix: key for _, relative_prefix, _, key, _ in folders}
        loaded.folder_overlays = folder_overlays(folders)
        files = _folder_files(folders)
        groups = _GroupMaker(cache, folders) if make_groups and fresh is None else None
        if fresh is None and not cache.holds_entries() and not cache._index and fork_helper(len(files)):
            # A first build: every file is parsed, checked and kept, a forked helper taking part.
            _load_files_forked(loaded, parsing, reading, root_text, files, progress, groups)
            files = []
        # A warm cache: which files changed since the stat index, from an lstat of each, a forked helper
        # taking a share (tiops.buildcache.stats); the others are the files their records describe.
        changed = (changed_files(cache, folders, len(files), fork_helper(len(files)))
                   if fresh is None and files and cache._index else None)
        index_get = cache._index.get
        for done, (path, relative, defaults, key) in enumerate(files, 1):
            kept: list[tuple[str, tuple[Any, ...]] | None] | None = [] if groups is not None else None
            recorded = None if changed is None or done - 1 in changed else index_get(relative)
            _load_file(loaded, parsing, reading, root_text, path, relative, defaults, key, fresh, kept, recorded)
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
               kept: list[tuple[str, tuple[Any, ...]] | None] | None = None,
               recorded: tuple[int, int, int, int, str] | None = None) -> None:
    """Load one file through the cache. ``kept``: as :func:`_load_indexed_file`'s. ``recorded``: the
    stat index record of a file known to be still the one it describes (tiops.buildcache.stats),
    whose entry is then found by the blob id it names, without an lstat or a read here."""
    cache, repo = loaded.cache, loaded.repo
    if recorded is not None and key is not None:
        known = recorded[4]
        if _taken(loaded, cache.lookup(known, key, defaults.overlay), known, key, relative, recorded[:4], kept):
            return
    blob, info, entry = _find_entry(cache, reading, root_text, path, relative, key, fresh, defaults.overlay)
    if (blob is not None and key is not None and info is not None
            and _taken(loaded, entry, blob, key, relative, _stat_record(info), kept)):
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


def _taken(loaded: CachedLoad, entry: FileEntry | None, blob: str, key: str, relative: str, record: StatRecord,
           kept: list[tuple[str, tuple[Any, ...]] | None] | None) -> bool:
    """Whether the file at ``relative`` was taken from its ``entry`` (False: none, or one that does not
    read back, and the file is loaded afresh), its stat ``record`` kept for the next build."""
    if entry is None:
        return False
    try:
        unpacked = entry.unpack()
    except (ValueError, TypeError, EOFError, IndexError):
        return False  # not an entry after all
    _take_unpacked(loaded, unpacked, blob, key, unpacked.references)
    loaded.cache.remember_record(relative, record, blob)
    loaded.reused_files += 1
    if kept is not None:
        kept.append((blob, entry.stored_index))
    return True


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
                fresh: Callable[[str], bool] | None, overlay: dict[str, Any] | None, group_blob: str | None = None,
                ) -> tuple[str | None, os.stat_result | None, FileEntry | None]:
    """The file's blob id (None when it is not cacheable), its lstat, and its entry if the cache has one
    made under the same lines of its folder's ``overlay`` as there are now.

    A file read to take its blob id is left in ``reading`` for the parse that may follow.
    ``group_blob``: the blob id its folder's group holds for the file (tiops.buildcache.folders); a
    file with that content is not looked up (no shard of entries read): the caller takes it from the group.
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
    if known == group_blob:
        return known, lstat, None
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


class _GroupMaker:
    """The folder groups (tiops.buildcache.folders) of a load file by file: each file's blob id and stored
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
    """The group (tiops.buildcache.folders.FolderGroup) of a folder whose files gave ``members`` (blob id and
    stored index of each, None where the cache keeps no entry), or None when it cannot have one."""
    if folder_key is None or defaults.overlay or not names or None in members:
        return None
    return folder_group(folder_key, names, members)  # type: ignore[arg-type]


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
    return (after.st_size, after.st_mtime_ns, after.st_ctime_ns, file_identity(after)) == (
        before.st_size, before.st_mtime_ns, before.st_ctime_ns, file_identity(before))
