"""A repository loaded through the build cache as file indexes, objects read on demand (:func:`load_repo_indexed`).

The warm route of every build and check: an lstat of each file against the stat index
(a forked helper takes a share), folders whose files are all unchanged taken whole
(tiops.buildcache.folders), other unchanged files as their index alone, and only changed files
parsed. The checks read an unchanged file's objects only when they may report on them
(tiops.validate.indexed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tiops.buildcache.entries import (
    FileEntry,
    StaleEntry,
    _entry_parts,
    _entry_signature,
    _load_index,
    context_key,
    entry_name,
    overlay_signature,
)
from tiops.buildcache.folders import FolderEntry, member_indexes, valid_group
from tiops.buildcache.stats import changed_files
from tiops.buildcache.store import _BLOB_OF_RECORD, BuildCache
from tiops.buildcache.whole import (
    _find_entry,
    _folder_files,
    _folder_group,
    _HashedFirst,
    _helper_work,
    _HelperEntry,
    _keyed_object_folders,
    _parse_file,
    folder_overlays,
)
from tiops.config import Config, load_config
from tiops.forkwork import run_in_order
from tiops.load import Defaults, IntelObject, Repo, fork_helper, missing_intel_folder
from tiops.memory import paused_gc
from tiops.progress import Progress, no_progress
from tiops.validate.indexed import FileIndex
from tiops.validate.reference_index import ListedReference


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
    # The key of each folder walked (its path and a slash -> tiops.buildcache.whole's folder key; None
    # where the cache keeps no entry): what a file's entry name holds besides its blob id and path.
    folder_keys: dict[str, str | None] = field(default_factory=dict)
    folder_overlays: dict[str, str] = field(default_factory=dict)  # each partner folder's overlay_digest


def load_repo_indexed(root: Path, *, progress: Progress = no_progress,
                      fresh: Callable[[str], bool] | None = None, settle: bool = True,
                      read_ahead: Sequence[str] = (),
                      after_stats: Callable[[IndexedLoad], None] | None = None) -> IndexedLoad:
    """Load ``root`` through the cache as in :func:`load_repo_cached`, but unchanged files as their index only.

    A file the cache holds costs its index; its objects are unmarshalled when a check
    asks for them. Files parsed afresh keep their objects. Call ``result.cache.save()``
    afterwards to keep what changed.

    A folder whose files are all unchanged is taken as one file (tiops.buildcache.folders.FolderEntry)
    when the cache keeps its group, with its path as its ``relative``; every other folder is
    loaded file by file, and its group made for the next build (:func:`_load_indexed_folders`).
    A folder holding a file ``fresh`` names is loaded file by file, that file parsed afresh.

    ``settle=False``: leave :meth:`BuildCache.settle` to the caller (a check that may write
    nothing, :meth:`BuildCache.save_unless_small`).
    ``read_ahead``: other files of the cache the caller will read (:meth:`BuildCache.read_record`),
    read on a thread after the index and the groups while the budget allows, else once the
    lstats are taken (BuildCache.read_ahead).
    ``after_stats``: called with the load so far (configuration, cache) once the lstats are taken,
    for the caller to start what it will need after the load (tiops.pipeline: the previous
    bundle's read and digest) beside the rest of the load, which takes this CPU.
    """
    # Before anything else: the walk below takes one CPU, and reading and digesting the index and
    # the folder groups (and the files read_ahead names) the other (BuildCache.prefetch).
    prefetched = BuildCache.prefetch(root, read_ahead)
    config, config_findings = load_config(root)
    context = context_key(root)
    repo = Repo(root=root, config=config, findings=list(config_findings))
    intel = config.intel_path
    if not intel.is_dir():
        repo.findings.extend(missing_intel_folder(config))
        return IndexedLoad(repo, [], BuildCache.open(root, context, prefetched=prefetched))
    with paused_gc():
        folders = _keyed_object_folders(intel, root, repo)
        total = sum(len(folder[4]) for folder in folders)
        loaded = IndexedLoad(repo, [], BuildCache.open(root, context, lazy=True, prefetched=prefetched),
                             folder_keys={relative_prefix: key for _, relative_prefix, _, key, _ in folders},
                             folder_overlays=folder_overlays(folders))
        cache = loaded.cache
        if fresh is None and not cache.holds_entries() and not cache._index and fork_helper(total):
            # A first `tiops validate`: every file is parsed, checked and kept, a forked helper taking part.
            reading = _HashedFirst(config.files)
            _load_indexed_forked(loaded, replace(config, source=reading), reading, os.fspath(root),
                                 _folder_files(folders), progress)
        else:
            _load_indexed_folders(loaded, folders, total, fork_helper(total), progress, fresh, read_ahead,
                                  after_stats)
    if settle:
        cache.settle()
    return loaded


def _load_indexed_folders(loaded: IndexedLoad, folders: list[tuple[str, str, Defaults, str | None, list[str]]],
                          total: int, helper: bool, progress: Progress,
                          fresh: Callable[[str], bool] | None = None, read_ahead: Sequence[str] = (),
                          after_stats: Callable[[IndexedLoad], None] | None = None) -> None:
    """:func:`load_repo_indexed` with whole folders (tiops.buildcache.folders): a folder whose group the cache
    keeps and whose files are all unchanged is one file; any other folder is loaded file by file,
    unchanged files from their entries, and its group made afresh.

    Which files are not what the stat index says is known first, from an lstat of each
    (tiops.buildcache.stats.changed_files: with a ``helper``, a forked helper takes the first
    share of the files while this process reads the folder groups and takes the rest).
    ``fresh``: as :func:`load_repo_indexed`'s; a folder holding such a file is loaded file by file
    (the files ``tiops validate FILE`` names are each a file of their own). ``read_ahead``, ``after_stats``: as its.
    """
    cache, repo = loaded.cache, loaded.repo
    config, root = repo.config, repo.root
    root_text = os.fspath(root)
    reading = _HashedFirst(config.files)
    parsing = replace(config, source=reading)
    # The groups of every folder (read ahead, BuildCache.prefetch) are taken, and checked against the stat
    # index, while the helper takes the first files' lstats: neither needs an lstat.
    recorded: dict[str, Any] = {}

    def meanwhile() -> None:
        cache.walked_folders({folder[1] for folder in folders})
        recorded.update(_groups_as_recorded(cache, folders))

    changed = changed_files(cache, folders, total, helper, meanwhile=meanwhile, share=_HELPER_SHARE)
    # Its lstat helper forked and done with: the rest of the load takes one CPU, reading the other what
    # the read ahead before the walk left (its budget spent on a large index).
    cache.read_ahead(read_ahead)
    if after_stats is not None:
        after_stats(loaded)
    index_get = cache.stat_index().get
    files = loaded.files
    position = done = 0
    for prefix, relative_prefix, defaults, folder_key, names in folders:
        start, position = position, position + len(names)
        done += len(names)
        cacheable = folder_key is not None and not defaults.overlay
        group = cache.folder_group(relative_prefix) if cacheable else None
        named = fresh is not None and any(fresh(relative_prefix + name) for name in names)
        # A group checked against the stat index for this very folder, its key and names (_groups_as_recorded).
        if recorded.get(relative_prefix) is group and group is not None and folder_key is not None and not named:
            blobs = group[2]
            if not changed or changed.isdisjoint(range(start, position)):
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
            named_here = named and fresh is not None and fresh(relative)
            held = None if named_here else before.get(name)  # a file `fresh` names is read and looked up as it is
            if record is not None and key is not None and start + offset not in changed and not named_here:
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
                                            defaults, key, fresh, kept if cacheable else None,
                                            held=held if record is not None else None))
            members.append(kept[0] if kept else None)
        cache.take_unchanged(taken_files)
        cache.keep_folder(relative_prefix, _folder_group(folder_key, defaults, names, members))
        progress("load", done, total)



# The share of the lstats the forked helper takes in :func:`_load_indexed_folders`: this process reads the
# folder groups and checks them against the stat index meanwhile (_groups_as_recorded). Measured on a
# 2-core VM, one-file recompile at 100k objects (88k files): 0.55 left this process the last to finish
# by some 30 ms, 0.75 the helper by some 25 ms; 0.7 about even.
_HELPER_SHARE = 0.7


def _groups_as_recorded(cache: BuildCache, folders: list[tuple[str, str, Defaults, str | None, list[str]]]) -> dict[str, Any]:
    """The group the cache keeps for each folder of ``folders`` that may be taken whole, by its repository
    path: a valid group (tiops.buildcache.folders.valid_group) of the folder's key and names, whose blob
    ids are those the stat index records for its files, every one of them recorded.

    Its files' lstats are still to be checked (tiops.buildcache.stats.changed_files). This needs none, and
    takes a few hundredths of a second at 100k files (a lookup of every file's record, a check of every
    group): made while the forked helper takes its lstats, rather than after them.
    """
    index_get = cache.stat_index().get
    recorded: dict[str, Any] = {}
    for _, relative_prefix, defaults, folder_key, names in folders:
        if folder_key is None or defaults.overlay:
            continue
        group = cache.folder_group(relative_prefix)
        if not (group is not None and valid_group(group) and group[0] == folder_key and group[1] == names):
            continue
        records = list(map(index_get, map(relative_prefix.__add__, names)))
        if None not in records and list(map(_BLOB_OF_RECORD, records)) == group[2]:  # type: ignore[arg-type]
            recorded[relative_prefix] = group
    return recorded


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


def _load_indexed_file(loaded: IndexedLoad, cache: BuildCache, parsing: Config, reading: _HashedFirst, root: Path,
                       root_text: str, path: str, relative: str, defaults: Defaults, key: str | None,
                       fresh: Callable[[str], bool] | None,
                       kept: list[tuple[str, tuple[Any, ...]] | None] | None = None,
                       held: tuple[str, tuple[Any, ...]] | None = None) -> _IndexedEntry:
    """One file of :func:`load_repo_indexed` that is not simply unchanged: its entry found by its content, or parsed.

    ``kept``: where to add the file's blob id and stored index when the cache keeps its entry (for
    its folder's group, tiops.buildcache.folders), or None when it does not.
    ``held``: (blob id, stored index) of the file in its folder's group. A file whose stat record
    could not be trusted (racily recent: written in the second before the last build began, as a
    checkout just made is) but whose content is still that blob is taken from the group, with a
    fresh stat record, rather than looked up in a shard of entries: after a build that began right
    after a clone, a one-file edit otherwise read nearly every shard once.
    """
    blob, info, entry = _find_entry(cache, reading, root_text, path, relative, key, fresh, defaults.overlay,
                                    None if held is None else held[0])
    if held is not None and blob == held[0] and info is not None and key is not None:
        taken = _taken_from(relative, key, blob, held[1], cache)
        if taken is not None:
            cache.remember(relative, info, blob)
            cache.take_unchanged([taken[0]])
            loaded.reused_files += 1
            if kept is not None:
                kept.append((blob, held[1]))
            return taken[0]
        entry = cache.lookup(blob, key, defaults.overlay)  # a group member that does not load: its entry, if any
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

