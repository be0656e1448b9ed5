"""Whole folders of unchanged files taken from the build cache as one indexed file each.

A warm build through file indexes (tiops.buildcache.load_repo_indexed) spent most of a
one-file recompile on work per file: taking 48k indexes out of their shards, then the
repository-wide maps, the reference verdicts and the bundle record going over each
one (docs/performance.md, "Folders taken whole"). Most folders of a repository do not
change between two builds, and what the checks need of a folder is the same whether its
files come one by one or as one: their ids, types, findings, relationship ends and
reference targets, in order.

So the cache keeps, for each folder whose files can all be cached (a folder key, no
overlay, no object that uses or defines an extension and no language-content: the
objects the indexed checks read by object), the merged index of its files
(:func:`merged_index`) with their names and blob ids, in ``folders-XX`` files beside
the entry shards. A build takes a folder whole (:class:`FolderEntry`) when its
names are the same, the stat index gives each file the same blob id, and each file's
lstat is still the one recorded; any other folder is loaded file by file as before,
and its group made again for the next build. Reading a folder's objects reads each
file's entry, as reading the files one by one would.

The findings and the bundle are the same either way: a folder read whole is a superset
of the files the checks would read of it (tests/buildcache/test_buildcache_folders.py, and the random-edit
tests of tests/buildcache/test_buildcache_reuse.py, which build through folders taken whole).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

from tiops.buildcache.entries import FileEntry, StaleEntry
from tiops.load import IntelObject
from tiops.validate.indexed import FileIndex
from tiops.validate.reference_index import ListedReference

# Files not taken with their folder whole, past which BundleFiles.kept_by_count is not tried: each
# costs two bisections of the record's names, where kept_places makes one dict look-up per file.
_MOST_SINGLE = 4096

# What a folder group keeps: folder key, file names, blob ids, objects per file, merged stored index, and
# what the merged index does not tell apart for each file: how many load findings, object findings,
# malformed ids and partner objects are its own, and its reference targets (equal texts one string).
FolderGroup = tuple[str, list[str], list[str], list[int], tuple[Any, ...],
                    tuple[list[int], list[int], list[int], list[str], list[int]]]

# Where the fields of a stored index are (tiops.buildcache.entries._store_index keeps FileIndex's order, the
# overlay signature last).
_LOAD, _OBJECT, _MALFORMED, _IDS, _TYPES, _RELATIONSHIPS, _SIGHTINGS, _LANGUAGE, _TARGETS, _NEEDS, _PARTNER = map(
    FileIndex._fields.index, ("load_findings", "object_findings", "malformed_ids", "ids", "types", "relationships",
                              "sightings", "language_contents", "reference_targets", "needs_objects", "partner"))
_SIGNATURE = len(FileIndex._fields)


def merged_index(stored: Sequence[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    """One stored index for the files of a folder, in order, as if they were one file: None when
    a file holds what the checks read by object (an extension, a language-content), has reference
    targets an index cannot keep, or was loaded under overlay lines.

    Partner objects are merged too: the edit check (tiops.validate.partner) reads the objects of a
    file whose digests the import lock does not hold, here the whole folder's, and checking more of
    them than differ is what a build without the cache does."""
    load_findings: list[Any] = []
    object_findings: list[Any] = []
    malformed: list[Any] = []
    ids: list[Any] = []
    types: list[Any] = []
    relationships: list[Any] = []
    sightings: list[Any] = []
    partner: list[Any] = []
    targets: set[str] = set()
    for index in stored:
        if (len(index) != _SIGNATURE + 1 or index[_SIGNATURE] != "" or index[_NEEDS] or index[_LANGUAGE]
                or type(index[_TARGETS]) is not str):
            return None
        offset = len(ids)
        if index[_LOAD]:
            load_findings.extend(index[_LOAD])
        if index[_OBJECT]:
            object_findings.extend(index[_OBJECT])
        malformed.extend(index[_MALFORMED])
        ids.extend(index[_IDS])
        types.extend(index[_TYPES])
        if offset:
            relationships.extend((position + offset, *rest) for position, *rest in index[_RELATIONSHIPS])
            sightings.extend((position + offset, *rest) for position, *rest in index[_SIGHTINGS])
        else:
            relationships.extend(index[_RELATIONSHIPS])
            sightings.extend(index[_SIGHTINGS])
        if index[_TARGETS]:
            targets.update(index[_TARGETS].split("\n"))
        partner.extend(index[_PARTNER])
    # The targets as index_file writes one file's: distinct, sorted, joined by line breaks.
    return (load_findings or None, object_findings or None, malformed, ids, types, relationships, sightings, [],
            "\n".join(sorted(targets)), False, partner, "")


def folder_group(folder_key: str, names: list[str], members: Sequence[tuple[str, tuple[Any, ...]]]) -> FolderGroup | None:
    """The group of a folder whose files (``names``) gave ``members``, each one's blob id and stored
    index, in order; None when the folder cannot be taken whole (:func:`merged_index`)."""
    stored = [index for _, index in members]
    merged = merged_index(stored)
    if merged is None:
        return None
    shared: dict[str, str] = {}
    parts = ([len(index[_LOAD] or ()) for index in stored], [len(index[_OBJECT] or ()) for index in stored],
             [len(index[_MALFORMED]) for index in stored],
             [shared.setdefault(index[_TARGETS], index[_TARGETS]) for index in stored],
             [len(index[_PARTNER]) for index in stored])
    return folder_key, names, [blob for blob, _ in members], [len(index[_IDS]) for index in stored], merged, parts


def valid_group(group: Any) -> bool:
    """Whether a folder group read from the cache has the shape :data:`FolderGroup` says."""
    if type(group) is not tuple or len(group) != 6:
        return False
    folder_key, names, blobs, counts, index, parts = group
    return (type(folder_key) is str and type(names) is list and type(blobs) is list and type(counts) is list
            and len(names) == len(blobs) == len(counts) and type(index) is tuple
            and _all_of(str, blobs) and _counts(counts)
            and type(parts) is tuple and len(parts) == 5
            and all(type(part) is list and len(part) == len(names) for part in parts)
            and all(_counts(part) for part in (*parts[:3], parts[4])) and _all_of(str, parts[3]))


# A folder's lists are checked in C (the types of its items as a set, their least value): item by item in
# Python, the 64 groups of a warm build at 100k objects took 0.01 s of a one-file recompile's 0.6 s.
def _all_of(kind: type, values: list[Any]) -> bool:
    """Whether every item of ``values`` is of type ``kind`` itself (not a subclass: a bool is no count)."""
    return not values or set(map(type, values)) == {kind}


def _counts(values: list[Any]) -> bool:
    return _all_of(int, values) and (not values or min(values) >= 0)


def member_indexes(group: FolderGroup) -> list[tuple[Any, ...]]:
    """Each file's stored index, out of a folder's group (the group is made of them: :func:`folder_group`).

    Raises ValueError, TypeError or IndexError when the group does not hold what it says."""
    _, _, _, counts, merged, (load_counts, object_counts, malformed_counts, targets, partner_counts) = group
    if (sum(counts) != len(merged[_IDS]) or sum(load_counts) != len(merged[_LOAD] or ())
            or sum(object_counts) != len(merged[_OBJECT] or ()) or sum(malformed_counts) != len(merged[_MALFORMED])
            or sum(partner_counts) != len(merged[_PARTNER])):
        raise ValueError("a folder group whose parts do not add up")
    relationships, sightings = merged[_RELATIONSHIPS], merged[_SIGHTINGS]
    relationship_at = [item[0] for item in relationships]
    sighting_at = [item[0] for item in sightings]
    made: list[tuple[Any, ...]] = []
    start = load_start = object_start = malformed_start = partner_start = 0
    for count, load_count, object_count, malformed_count, text, partner_count in zip(
            counts, load_counts, object_counts, malformed_counts, targets, partner_counts, strict=True):
        stop = start + count
        own_relationships = relationships[bisect.bisect_left(relationship_at, start):
                                          bisect.bisect_left(relationship_at, stop)]
        own_sightings = sightings[bisect.bisect_left(sighting_at, start):bisect.bisect_left(sighting_at, stop)]
        made.append((
            merged[_LOAD][load_start:load_start + load_count] or None if load_count else None,
            merged[_OBJECT][object_start:object_start + object_count] or None if object_count else None,
            merged[_MALFORMED][malformed_start:malformed_start + malformed_count],
            merged[_IDS][start:stop], merged[_TYPES][start:stop],
            [(position - start, *rest) for position, *rest in own_relationships] if start else own_relationships,
            [(position - start, *rest) for position, *rest in own_sightings] if start else own_sightings,
            [], text, False, merged[_PARTNER][partner_start:partner_start + partner_count], ""))
        start, load_start, object_start = stop, load_start + load_count, object_start + object_count
        malformed_start += malformed_count
        partner_start += partner_count
    return made


class FolderEntry:
    """A folder of unchanged files as one file of a load through file indexes (tiops.validate.indexed.IndexedFile):
    its index merged, its objects each file's, read when asked for."""

    __slots__ = ("_blobs", "_cache", "_counts", "_folder_key", "_loaded", "_names", "index", "relative")

    parsed = False  # taken from the cache whole: no file of it was read in this run

    def __init__(self, relative_prefix: str, folder_key: str, names: list[str], blobs: list[str], counts: list[int],
                 index: FileIndex, cache: Any) -> None:
        self.relative = relative_prefix
        self.index = index
        self._cache = cache
        self._folder_key = folder_key
        self._names = names
        self._blobs = blobs
        self._counts = counts  # objects of each file
        self._loaded: tuple[list[IntelObject], list[list[ListedReference] | None]] | None = None

    def _members(self) -> list[tuple[str, str, int]]:
        """(blob id, entry key, objects) of each file (tiops.buildcache.entries.entry_key)."""
        relative_prefix, folder_key = self.relative, self._folder_key
        return [(blob, f"{relative_prefix}{name}\0{folder_key}", count)
                for name, blob, count in zip(self._names, self._blobs, self._counts, strict=True)]

    def objects(self) -> tuple[list[IntelObject], Sequence[list[ListedReference] | None]]:
        if self._loaded is None:
            objects, references = self._read(self._members())
            if len(objects) != len(self.index.ids):
                raise StaleEntry(self.relative)
            self._loaded = (objects, references)
            self._cache = None
        return self._loaded

    def objects_holding(self, ids: Container[str]) -> tuple[list[IntelObject], Sequence[list[ListedReference] | None]]:
        """The objects and references of the folder's files that hold any of ``ids``, each file whole, in
        order: what a load file by file reads of this folder for a check of named files
        (tiops.validate.indexed.IndexedFile), rather than all of it. Once the folder was read whole,
        all of it (a superset, which the checks take as well)."""
        if self._loaded is not None:
            return self._loaded
        folder_ids = self.index.ids
        starts = list(itertools.accumulate(self._counts, initial=0))[:-1]  # where each file's ids begin
        return self._read([(blob, key, count) for (blob, key, count), start in zip(self._members(), starts, strict=True)
                           if any(identifier in ids for identifier in folder_ids[start:start + count])])

    def _read(self, members: list[tuple[str, str, int]]) -> tuple[list[IntelObject], list[list[ListedReference] | None]]:
        """The objects and references of ``members`` (:meth:`_members`), in order."""
        objects: list[IntelObject] = []
        references: list[list[ListedReference] | None] = []
        for blob, key, count in members:
            file_objects, file_references = self._member_objects(blob, key, count)
            objects.extend(file_objects)
            references.extend(file_references)
        return objects, references

    def _member_objects(self, blob: str, key: str, count: int) -> tuple[list[IntelObject], list[list[ListedReference]]]:
        """One file's objects and references, from its entry."""
        stored = self._cache.stored_objects(blob, key)
        try:
            if stored is None:
                raise ValueError("no objects part")
            return FileEntry.objects(stored, count, "")
        except (ValueError, TypeError, EOFError, IndexError):
            raise StaleEntry(self.relative) from None

    def files(self) -> list[FolderFile]:
        """Each file of the folder on its own, as a bundle record knows it (tiops.bundlereuse.BundleFile)."""
        starts = list(itertools.accumulate(self._counts, initial=0))[:-1]  # where each file's objects begin
        return [FolderFile(self, entry, start, count)
                for entry, start, count in zip(self.entry_names(), starts, self._counts, strict=True)]

    def entry_names(self) -> list[str]:
        """The entry name of each file (tiops.buildcache.entries.entry_name: none has an overlay signature)."""
        relative_prefix, folder_key = self.relative, self._folder_key
        return [f"{blob}\0{relative_prefix}{name}\0{folder_key}" for name, blob in zip(self._names, self._blobs, strict=True)]

    @property
    def file_count(self) -> int:
        return len(self._names)


class FolderFile:
    """One file of a folder taken whole (:meth:`FolderEntry.files`): its entry name, the part of the
    folder's index that is its own, and its objects out of the folder's."""

    __slots__ = ("_count", "_folder", "_index", "_start", "entry")

    parsed = False  # taken from the cache: its lines are those of the previous bundle

    def __init__(self, folder: FolderEntry, entry: str, start: int, count: int) -> None:
        self._folder = folder
        self.entry: str | None = entry
        self._start = start
        self._count = count
        self._index: FileIndex | None = None

    @property
    def index(self) -> FileIndex:
        if self._index is None:
            whole = self._folder.index
            start, stop = self._start, self._start + self._count
            # Only what a bundle's splice reads of a file's index: its ids and types, its relationship
            # and sighting ends (tiops.bundlereuse._cascaded), and the folder's reference targets,
            # which hold this file's (tiops.pipeline._dropped_references_indexed reads a file when they
            # may name a dropped object).
            self._index = FileIndex(
                [], [], [], whole.ids[start:stop], whole.types[start:stop],
                [(position - start, *rest) for position, *rest in whole.relationships if start <= position < stop],
                [(position - start, *rest) for position, *rest in whole.sightings if start <= position < stop],
                [], whole.reference_targets, False, [])
        return self._index

    def objects(self) -> tuple[list[IntelObject], Sequence[list[ListedReference] | None]]:
        objects, references = self._folder.objects()
        stop = self._start + self._count
        return objects[self._start:stop], references[self._start:stop]


def bundle_files(files: Sequence[Any]) -> BundleFiles:
    """``files`` of a load through file indexes with each folder taken whole as its files
    (:meth:`FolderEntry.files`): the files a bundle record lists entries for."""
    return BundleFiles(files)


class BundleFiles(Sequence[Any]):
    """The files of a load through file indexes, a folder taken whole standing for each of its files
    (:meth:`FolderEntry.files`), made only when asked for.

    A one-file recompile at 100k objects asks for few of them: :meth:`kept_places` tells the
    files whose lines the previous bundle holds folder by folder, in C, where making an object for
    each of 48k files and looking each up took 0.04 s.
    """

    def __init__(self, files: Sequence[Any]) -> None:
        self._parts = list(files)
        # Where each part's files start among all of them, and their count last.
        self._starts = list(itertools.accumulate(
            (part.file_count if type(part) is FolderEntry else 1 for part in self._parts), initial=0))
        self._folder_files: dict[int, list[FolderFile]] = {}  # by part, once asked for

    def __len__(self) -> int:
        return self._starts[-1]

    @overload
    def __getitem__(self, place: int) -> Any: ...

    @overload
    def __getitem__(self, place: slice) -> list[Any]: ...

    def __getitem__(self, place: int | slice) -> Any:
        if isinstance(place, slice):
            return [self[index] for index in range(*place.indices(len(self)))]
        if place < 0:
            place += len(self)
        if not 0 <= place < len(self):
            raise IndexError("no such file")
        part = bisect.bisect_right(self._starts, place) - 1
        if type(self._parts[part]) is not FolderEntry:
            return self._parts[part]
        return self._files_of(part)[place - self._starts[part]]

    def __iter__(self) -> Iterator[Any]:
        for number, part in enumerate(self._parts):
            if type(part) is FolderEntry:
                yield from self._files_of(number)
            else:
                yield part

    def _files_of(self, number: int) -> list[FolderFile]:
        made = self._folder_files.get(number)
        if made is None:
            made = self._folder_files[number] = self._parts[number].files()
        return made

    def kept_by_count(self, names: Sequence[str], index: Mapping[str, tuple[Any, ...]], gone: Iterable[str],
                      folder_keys: Mapping[str, str | None], most_single: int = _MOST_SINGLE
                      ) -> tuple[int, list[int], set[int]] | None:
        """:meth:`kept_places` without an entry name for each file, for a record written by the very build
        that saved the stat index ``index`` (with ``gone``, its paths this load did not take or remember)
        and whose folders had the keys ``folder_keys`` they have now: how many files the record lists
        unchanged, the places of the other files, and the record places of the entries no file keeps.

        Each file taken unchanged then has the blob id that build had for it, under the same folder key:
        a folder taken whole is kept whole, uncounted name by name. Any other file is looked for in
        ``names`` (the record's entry names, sorted) by bisection, as is the entry its path had under the
        blob the index holds for it (a file changed, or gone since). None, for :meth:`kept_places`, with
        more than ``most_single`` such files, or when the count does not come to every entry listed.
        """
        kept = 0
        others: list[int] = []
        dropped: set[int] = set()
        singles = 0
        for number, part in enumerate(self._parts):
            if type(part) is FolderEntry:
                kept += part.file_count
                continue
            singles += 1
            if singles > most_single:
                return None
            entry = part.entry
            if entry is not None and not part.parsed and _listed(names, entry):
                kept += 1
                continue
            others.append(self._starts[number])
            relative = part.relative
            record = index.get(relative)
            if record is not None:
                place = _listed_by_path(names, record[4], relative, folder_keys)
                if place is not None:  # read afresh, its entry named again or not: the listed one goes
                    dropped.add(place)
        for relative in gone:
            record = index.get(relative)
            place = _listed_by_path(names, record[4], relative, folder_keys) if record is not None else None
            if place is not None:
                dropped.add(place)
        return (kept, others, dropped) if kept + len(dropped) == len(names) else None

    def kept_places(self, position: Mapping[str, int]) -> tuple[dict[int, int], list[int]]:
        """Which files a bundle record lists unchanged: the record place of each such file's entry
        (``position``: entry name -> place) mapped to the file's place here, and the places of the
        other files (read afresh, or not listed), in order."""
        kept_at: dict[int, int] = {}
        others: list[int] = []
        for number, part in enumerate(self._parts):
            start = self._starts[number]
            if type(part) is FolderEntry:
                ats = list(map(position.get, part.entry_names()))
                if None not in ats:
                    kept_at.update(zip(ats, range(start, start + len(ats)), strict=True))  # type: ignore[arg-type]
                    continue
                for offset, at in enumerate(ats):
                    if at is None:
                        others.append(start + offset)
                    else:
                        kept_at[at] = start + offset
                continue
            entry = part.entry
            at = position.get(entry) if entry is not None and not part.parsed else None
            if at is None:
                others.append(start)
            else:
                kept_at[at] = start
        return kept_at, others


def _listed(names: Sequence[str], entry: str) -> bool:
    """Whether ``entry`` is one of ``names`` (sorted)."""
    place = bisect.bisect_left(names, entry)
    return place < len(names) and names[place] == entry


def _listed_by_path(names: Sequence[str], blob: str, relative: str, folder_keys: Mapping[str, str | None]) -> int | None:
    """The place among ``names`` (sorted entry names) of the entry of the file at ``relative`` with
    ``blob`` under its folder's key (tiops.buildcache.entry_name: blob id, path and key, then the
    overlay lines' signature if any), or None when none is listed."""
    key = folder_keys.get(relative[:relative.rfind("/") + 1])
    if key is None:
        return None
    start = f"{blob}\0{relative}\0{key}"
    place = bisect.bisect_left(names, start)
    if place < len(names) and names[place].startswith(start) and names[place][len(start):len(start) + 1] in ("", "\0"):
        return place
    return None
