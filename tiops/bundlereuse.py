"""The previous bundle's lines reused for the objects of unchanged files.

A bundle line is the canonical JSON of one object (tiops.compile). When no ingestion
rule is enabled, an object's line depends on nothing but the object and the enrichment
lock (its results for the values the object names), and the object on nothing but its
file, its folder's defaults and the context the build cache is bound to
(tiops.buildcache.context_key); the record's key holds the lock's digest. So a compile
through the cache writes, beside the bundle, a record (``bundle-record`` in the cache
folder): where the bundle went, its SHA-256 and size, the key (type NUL id) of each
line in order, the digest of each group of lines the bundle id is made from
(tiops.compile.bundle_id_of), and for each cache entry it was built from whether its objects carry a
source system or the enrichment extension and which built-in markings they reference.

The next compile to the same file, under the same context, takes the line of each
object of an entry the record lists from that bundle, after checking that the file is
still the one recorded; the objects of files read afresh are serialised as ever, and
the built-in objects the bundle adds are worked out as tiops.compile.bundle_objects
does. Anything unexpected (a line not found, two objects with one key, a type holding
NUL, the bundle changed or gone) means the whole bundle is written the usual way. The
bytes are those of an uncached compile (tests/buildcache/test_buildcache.py compares them over
random edits).
"""

from __future__ import annotations

import array
import bisect
import functools
import hashlib
import itertools
import operator
import os
import threading
from collections import Counter
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from tiops.compile import (
    BUNDLE_TAIL,
    GROUP_DIGEST_SIZE,
    LineGroups,
    LineRun,
    WrittenBundle,
    builtin_extras,
    bundle_head_size,
    entry_forms,
    line_group,
    object_line,
    run_lines_digest,
    survey_objects,
)
from tiops.enrich.attach import LockedEnrichment
from tiops.inputs import read_regular_file
from tiops.load import IntelObject

RECORD = "bundle-record"
RECORD_DIGEST = "sha256"  # the record's key for the bundle file's SHA-256 (hex), its last
RECORD_DIGEST_WIDTH = 64
_UNREAD: Any = object()
_ID_LISTS = (list, tuple)  # how a mark's dropped and gone ids are kept: a list, or the empty tuple
_READ_CHUNK = 1 << 20


class BundleFile(Protocol):
    """One object file of a build (tiops.buildcache.load_repo_indexed's files)."""

    entry: str | None
    parsed: bool

    @property
    def index(self) -> Any: ...

    def objects(self) -> tuple[list[IntelObject], Any]: ...


class EntryMark(NamedTuple):
    """What an entry's objects give the bundle: their keys, and what they add besides their lines."""

    keys: list[str]  # type NUL id of each of its objects the bundle holds
    sourced: bool
    enriched: bool
    markings: list[str]  # built-in marking definitions they reference
    ruled: int = 0  # how many of them ingestion rules changed (build.json's changed_by_rules)
    # The ids of its objects the bundle does not hold, in object order: those an ingestion rule
    # dropped, and those dropped because they point at a dropped object (tiops.rules.engine.POINTERS).
    # Nearly always none: the empty tuple then, one object for every entry, not two lists each
    # (at a million objects about 50 MB).
    dropped: tuple[str, ...] | list[str] = ()
    gone: tuple[str, ...] | list[str] = ()


def record_key(context: str, rules_digest: str, as_of: str | None) -> str:
    """What besides the objects decides their lines: the cache context, the rule set and the as-of time."""
    return hashlib.sha256("\0".join((context, rules_digest, as_of or "")).encode()).hexdigest()


def mark_of(objects: list[IntelObject], dropped: Collection[str] = (), gone: Collection[str] = ()) -> EntryMark:
    """The mark of an entry's objects as loaded (what ingestion rules changed is counted apart: ``ruled``).

    ``dropped`` and ``gone``: the ids of those a rule dropped, and of those dropped for pointing at
    a dropped object, in object order; the rest are the ones the bundle holds.
    """
    if dropped or gone:
        out = {*dropped, *gone}
        objects = [obj for obj in objects if obj.id not in out]
    keyed, sourced, enriched, markings = survey_objects(objects)
    return EntryMark([f"{stix_type}\0{stix_id}" for stix_type, stix_id in keyed], sourced, enriched, sorted(markings),
                     0, list(dropped) if dropped else (), list(gone) if gone else ())


def outcome_marks(entry_objects: dict[str, list[IntelObject]], dropped: Container[str],
                  cascaded: Container[str]) -> dict[str, EntryMark]:
    """The mark of each entry's objects after the rules of a whole build (tiops.rules.RulesOutcome's
    ``dropped`` ids, of which ``cascaded`` point at a dropped object), as :func:`spliced` makes them."""
    marks: dict[str, EntryMark] = {}
    for entry, objects in entry_objects.items():
        out = [obj.id for obj in objects if obj.id in dropped]
        marks[entry] = mark_of(objects, [i for i in out if i not in cascaded], [i for i in out if i in cascaded])
    return marks


def with_rule_counts(marks: dict[str, EntryMark], changed: set[str]) -> dict[str, EntryMark]:
    """``marks`` counting, each, its objects in ``changed`` ("type NUL id" of the objects rules changed)."""
    if not changed:
        return marks
    return {entry: mark._replace(ruled=sum(1 for line_key in mark.keys if line_key in changed))
            for entry, mark in marks.items()}


def recorded_keys(objects: Iterable[dict[str, Any]], keys: list[str],
                  marks: dict[str, EntryMark] | None = None, extras: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """``objects`` as they are written, noting each one's key in ``keys``.

    With ``marks``, a key its entries' marks hold already is noted as that very string:
    the record then holds (and marshal writes) each key once, not twice, which at a
    million objects is about 100 MB less at the end of a compile. With ``extras``, the
    keys no mark holds (the built-in objects the bundle adds) are noted there too, in
    bundle order, as :func:`record` would otherwise find them with a set of every key.
    """
    known: dict[str, str] = {line_key: line_key for mark in (marks or {}).values() for line_key in mark.keys}
    note_extra = extras.append if extras is not None else None
    for obj in objects:
        line_key = f"{obj['type']}\0{obj['id']}"
        owned = known.get(line_key)
        if owned is None:
            owned = line_key
            if note_extra is not None:
                note_extra(line_key)
        keys.append(owned)
        yield obj


def record(key: str, output: Path, written: WrittenBundle, keys: list[str], marks: dict[str, EntryMark],
           groups: LineGroups, offsets: Sequence[int] | None = None,
           extras: list[str] | None = None, since: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The record of a bundle just written (None when its lines are not in plain key order: not kept).

    ``groups``: its line groups (tiops.compile.line_groups), whose digests ``written`` holds.
    ``offsets``: where each line starts in the file, when the caller knows (the writer's
    ``line_starts``, tiops.compile.write_bundle); else the file is read for them.
    ``extras``: the keys no mark holds, in bundle order, when the caller noted them
    (:func:`recorded_keys`); else they are found here.
    ``since``: the state of the build cache the record's entries are those of (:func:`since_state`), if known.
    """
    if any(earlier >= later for earlier, later in pairwise(keys)):
        return None
    if len(written.group_digests) != GROUP_DIGEST_SIZE * len(groups.names):
        return None
    if not os.path.isfile(output):
        return None  # a named pipe or a device (-o /dev/stdout): nothing to read lines back from, next time either
    if offsets is None:
        offsets = _file_line_offsets(output)
    if offsets is None or len(offsets) != len(keys):
        return None
    entries = RecordedEntries.of(marks)
    if entries is None:
        return None
    if extras is None:
        owned = {line_key for mark in marks.values() for line_key in mark[0]}
        extras = [line_key for line_key in keys if line_key not in owned]
    return _record(key, output, written.sha256, written.size, keys, offsets, extras, entries,
                   groups.names, written.group_digests, since)


def spliced_record(key: str, output: Path, written: WrittenBundle, spliced: Spliced,
                   since: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of a bundle written from ``spliced`` (:func:`spliced`), as :func:`record` makes it.

    What :func:`record` works out is known here: the lines are in key order (the previous
    record's were, and each new line went in at its place among them, no key twice:
    :func:`_splice`), their offsets are in ``spliced``, and the lines no entry owns are
    the built-in objects the bundle adds (a key of theirs that an entry held would have
    been two objects with one key, which :func:`_splice` refuses).
    """
    return _record(key, output, written.sha256, written.size, spliced.keys, spliced.offsets, spliced.extras,
                   spliced.entries, spliced.group_names, spliced.group_digests, since)


def unsealed_spliced_record(key: str, output: Path, size: int, spliced: Spliced,
                            since: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`spliced_record` before the bundle's digest is known: its :data:`RECORD_DIGEST`, the
    last key, holds :data:`RECORD_DIGEST_WIDTH` NUL characters (tiops.buildcache.BuildCache.pending_record)."""
    return _record(key, output, "\0" * RECORD_DIGEST_WIDTH, size, spliced.keys, spliced.offsets, spliced.extras,
                   spliced.entries, spliced.group_names, spliced.group_digests, since)


def _record(key: str, output: Path, sha256: str, size: int, keys: list[str], offsets: Sequence[int],
            extras: list[str], entries: RecordedEntries, group_names: list[str], group_digests: bytes,
            since: dict[str, Any] | None = None) -> dict[str, Any]:
    # The bundle's digest last: it is known last (unsealed_spliced_record).
    return {"format": RECORD_FORMAT, "key": key, "output": os.fspath(output.resolve()), "size": size,
            "lines": _stored_texts(keys), "offsets": _stored_offsets(offsets), "extras": extras,
            "groups": _stored_texts(group_names), "group_digests": group_digests,
            "entries": entries.stored(), "since": since, RECORD_DIGEST: sha256}


def since_state(index_identities: tuple[bytes | None, bytes | None] | None, folder_keys: dict[str, str | None],
                folder_overlays: dict[str, str]) -> dict[str, Any] | None:
    """What a record notes of the build cache its entries were listed against: the identities of the stat
    index and delta as the listing build saved them (BuildCache.saved_index_identities), the key of
    every folder walked and the digest of each partner folder's overlay (tiops.buildcache.indexed.IndexedLoad).
    None when the save is not known to have finished. A later build that reads that very index and has
    those keys and overlays takes each unchanged file with the entry the record lists for it
    (BundleFiles.kept_by_count).

    The overlays are noted apart from the keys because an entry's name holds the digest of the overlay
    lines naming its objects, which a folder's key leaves out: a save that stored an entry under other
    lines and stopped before the stat index (a full disk) leaves the index as it was."""
    if index_identities is None or index_identities[0] is None:
        return None
    return {"index": index_identities, "folder_keys": folder_keys, "overlays": folder_overlays}


class SinceLoad(NamedTuple):
    """What a build's load says for :func:`spliced` to tell kept files by count (BundleFiles.kept_by_count)."""

    index_identities: tuple[bytes | None, bytes | None]  # the stat index and delta read (BuildCache.index_identities)
    stat_index: Mapping[str, tuple[Any, ...]]  # their records (BuildCache._index)
    gone: Callable[[], Iterable[str]]  # the paths of the index this load neither took nor remembered
    folder_keys: dict[str, str | None]  # each folder's key (IndexedLoad.folder_keys)
    folder_overlays: dict[str, str]  # and each partner folder's overlay digest (IndexedLoad.folder_overlays)


# The layout of a record's lines and entries (:class:`RecordedEntries`); a record of another
# format is not read (the bundle is then written the full way once, and a record of this one kept).
RECORD_FORMAT = 3
_TEXT_SEPARATOR = "\n"


def _stored_texts(texts: list[str]) -> str | list[str]:
    """``texts`` as one string, each followed by a line break: marshal writes and reads one string
    in microseconds, and a hundred thousand small ones in tens of milliseconds. A list as it is
    when a text holds a line break itself (an id the checks warn of), which one string could not keep apart."""
    if not texts:
        return ""
    # The last separator joined in, not added after: a million keys' text is made once, not twice.
    joined = _TEXT_SEPARATOR.join(itertools.chain(texts, ("",)))
    return joined if joined.count(_TEXT_SEPARATOR) == len(texts) else list(texts)


def _loaded_texts(stored: Any) -> list[str] | None:
    if type(stored) is list:
        return stored if all(type(text) is str for text in stored) else None
    if type(stored) is not str or (stored and not stored.endswith(_TEXT_SEPARATOR)):
        return None
    return stored.split(_TEXT_SEPARATOR)[:-1]


def _loaded_groups(stored_names: Any, digests: Any) -> tuple[list[str], bytes] | None:
    """A record's line groups and their digests, if they are a record's: as many digests as
    groups, the groups ascending (as a bundle's lines in key order give them)."""
    names = _loaded_texts(stored_names)
    if (names is None or type(digests) is not bytes or len(digests) != GROUP_DIGEST_SIZE * len(names)
            or any(earlier >= later for earlier, later in pairwise(names))):
        return None
    return names, digests


def _groups_fit(names: list[str], keys: list[str]) -> bool:
    """Whether ``names`` can be the line groups of lines whose keys are ``keys`` (ascending): no more
    groups than lines, the first line's group first and the last line's last. What a record's
    checksum does not catch, a record of other lines, would give a wrong bundle id rather than
    wrong lines: checked at both ends, in microseconds, rather than for every line."""
    return (len(names) <= len(keys) and bool(names) == bool(keys)
            and (not keys or (names[0] == line_group(keys[0]) and names[-1] == line_group(keys[-1]))))


def _stored_offsets(offsets: Sequence[int]) -> bytes:
    if isinstance(offsets, array.array) and offsets.typecode == "q":
        return offsets.tobytes()
    return array.array("q", offsets).tobytes()


def _loaded_offsets(stored: Any) -> list[int] | None:
    if type(stored) is not bytes or len(stored) % 8:
        return None
    loaded = array.array("q")
    loaded.frombytes(stored)
    return loaded.tolist()


class RecordedEntries:
    """The cache entries a bundle record lists (each one's :class:`EntryMark`), kept as columns.

    One tuple per entry cost a one-file recompile at 100k objects (48k entries) about 0.2 s in
    marshal alone, to read and write again. Here the entries are in name order, and each
    column is one object marshal moves at C speed: the names; the keys of every entry's
    objects as one text (:func:`_stored_texts`) with each entry's share of it in characters;
    the source and enrichment flags as one byte each; an index into the distinct lists of
    built-in markings; and, apart, the few entries with objects rules changed or dropped.
    A splice (:meth:`without_and_with`) copies the kept entries' runs of each column whole.
    """

    __slots__ = ("_position", "_starts", "extras", "flags", "keys_text", "lengths", "marking_at", "marking_sets",
                 "names")

    _SOURCED = 1
    _ENRICHED = 2

    def __init__(self, names: list[str], lengths: array.array[int], keys_text: str, flags: bytes,
                 marking_at: array.array[int], marking_sets: list[list[str]],
                 extras: dict[str, tuple[int, Any, Any]]) -> None:
        self.names = names  # entry names, sorted, each once
        self.lengths = lengths  # characters of keys_text each entry's keys take ("key\n" each)
        self.keys_text = keys_text
        self.flags = flags  # _SOURCED | _ENRICHED of each entry
        self.marking_at = marking_at  # each entry's index into marking_sets
        self.marking_sets = marking_sets  # the distinct (sorted) lists of built-in markings, by first use
        self.extras = extras  # entry name -> (ruled, dropped, gone), only where one is not 0 or empty
        self._starts: list[int] | None = None
        self._position: dict[str, int] | None = None

    @classmethod
    def of(cls, marks: dict[str, EntryMark] | Iterable[tuple[str, EntryMark]]) -> RecordedEntries | None:
        """The columns of ``marks`` (entry name -> mark); None when a key holds a line break."""
        items = sorted(marks.items() if isinstance(marks, dict) else marks, key=_first)
        # What _joined makes of these inserted into no entries, in bulk and column by column, the
        # columns taken apart in C (zip): a first build lists every entry, 480k at a million objects.
        if not items:
            return cls([], array.array("q"), "", b"", array.array("q"), [], {})
        names, fields = zip(*items, strict=True)
        keys, sourced, enriched, markings, ruled, dropped, gone = zip(*fields, strict=True)
        # Every key followed by a separator, in one join: a text per entry first held the keys
        # twice over (about 80 MB more at a million objects, at the peak of a first build).
        key_count = sum(map(len, keys))
        keys_text = _TEXT_SEPARATOR.join(itertools.chain(itertools.chain.from_iterable(keys), ("",))) if key_count else ""
        if keys_text.count(_TEXT_SEPARATOR) != key_count:
            return None  # a key holding a line break
        # Each entry's share of keys_text: its keys' characters and a separator each.
        lengths = array.array("q", map(int.__add__, map(sum, map(functools.partial(map, len), keys)), map(len, keys)))
        marking_keys = list(map(tuple, markings))
        sets = {marking: place for place, marking in enumerate(dict.fromkeys(marking_keys))}  # by first use
        flags = bytes(map(int.__add__, map(int, map(bool, sourced)),
                          map((cls._ENRICHED).__mul__, map(int, map(bool, enriched)))))
        noted = itertools.compress(range(len(names)), map(max, map(bool, ruled), map(bool, dropped), map(bool, gone)))
        return cls(list(names), lengths, keys_text, flags,
                   array.array("q", map(sets.__getitem__, marking_keys)), [list(marking) for marking in sets],
                   {names[place]: (ruled[place], dropped[place], gone[place]) for place in noted})

    def stored(self) -> tuple[Any, ...]:
        return (_stored_texts(self.names), self.lengths.tobytes(), self.keys_text, self.flags,
                self.marking_at.tobytes(), self.marking_sets, self.extras)

    @classmethod
    def load(cls, stored: Any) -> RecordedEntries | None:
        """The columns a record holds, or None when they are not what :meth:`stored` writes."""
        if type(stored) is not tuple or len(stored) != 7:
            return None
        names_stored, lengths_stored, keys_text, flags, marking_stored, marking_sets, extras = stored
        names = _loaded_texts(names_stored)
        if (names is None or type(lengths_stored) is not bytes or type(keys_text) is not str
                or type(flags) is not bytes or type(marking_stored) is not bytes or type(marking_sets) is not list
                or type(extras) is not dict or len(lengths_stored) % 8 or len(marking_stored) % 8):
            return None
        lengths, marking_at = array.array("q"), array.array("q")
        lengths.frombytes(lengths_stored)
        marking_at.frombytes(marking_stored)
        count = len(names)
        if not (len(lengths) == len(flags) == len(marking_at) == count) or sum(lengths) != len(keys_text):
            return None
        if count and (min(lengths) < 0 or min(marking_at) < 0 or max(marking_at) >= len(marking_sets)):
            return None
        if not all(type(markings) is list and all(type(m) is str for m in markings) for markings in marking_sets):
            return None
        if not all(map(operator.lt, names, itertools.islice(names, 1, None))):  # sorted, each once (in C)
            return None
        if flags and max(flags) > cls._SOURCED | cls._ENRICHED:
            return None  # a flag no entry has: summary_without counts the two by value
        for name, extra in extras.items():
            if not (type(name) is str and type(extra) is tuple and len(extra) == 3 and type(extra[0]) is int
                    and type(extra[1]) in _ID_LISTS and type(extra[2]) in _ID_LISTS):
                return None
        entries = cls(names, lengths, keys_text, flags, marking_at, marking_sets, extras)
        if extras and not extras.keys() <= entries.position.keys():
            return None
        return entries

    @property
    def position(self) -> dict[str, int]:
        """Entry name -> its place in the columns."""
        if self._position is None:
            self._position = dict(zip(self.names, range(len(self.names)), strict=True))
        return self._position

    @property
    def starts(self) -> list[int]:
        """Where each entry's keys start in keys_text, and the text's end last."""
        if self._starts is None:
            self._starts = list(itertools.accumulate(self.lengths, initial=0))
        return self._starts

    def __len__(self) -> int:
        return len(self.names)

    def keys_at(self, place: int) -> list[str]:
        """The keys of the objects of the entry at ``place`` the bundle holds."""
        starts = self.starts
        return self.keys_text[starts[place]:starts[place + 1]].split(_TEXT_SEPARATOR)[:-1]

    def mark_at(self, place: int) -> EntryMark:
        ruled, dropped, gone = self.extras.get(self.names[place], (0, (), ()))
        flags = self.flags[place]
        return EntryMark(self.keys_at(place), bool(flags & self._SOURCED), bool(flags & self._ENRICHED),
                         self.marking_sets[self.marking_at[place]], ruled, dropped, gone)

    def marks(self) -> dict[str, EntryMark]:
        """Every entry's mark (for tests and tools: a build reads the columns)."""
        return {name: self.mark_at(place) for place, name in enumerate(self.names)}

    def summary(self, places: Iterable[int]) -> tuple[bool, bool, set[str]]:
        """Whether any entry at ``places`` has a source system, whether any is enriched, and their built-in markings."""
        flags, marking_at = self.flags, self.marking_at
        found = 0
        sets: set[int] = set()
        for place in places:
            found |= flags[place]
            sets.add(marking_at[place])
        markings: set[str] = set()
        for index in sets:
            markings.update(self.marking_sets[index])
        return bool(found & self._SOURCED), bool(found & self._ENRICHED), markings

    def summary_without(self, dropped: Collection[int]) -> tuple[bool, bool, set[str]]:
        """:meth:`summary` of every entry but those at the ``dropped`` places: counted over the columns
        in C, and the few dropped taken off, rather than one look per kept entry."""
        flags, marking_at = self.flags, self.marking_at
        both = flags.count(self._SOURCED | self._ENRICHED)
        sourced = flags.count(self._SOURCED) + both
        enriched = flags.count(self._ENRICHED) + both
        # A count per list in C while there are few (they are by first use, a handful in a repository).
        uses = ([marking_at.count(index) for index in range(len(self.marking_sets))] if len(self.marking_sets) <= 16
                else list(map(Counter(marking_at).__getitem__, range(len(self.marking_sets)))))
        for place in dropped:
            sourced -= bool(flags[place] & self._SOURCED)
            enriched -= bool(flags[place] & self._ENRICHED)
            uses[marking_at[place]] -= 1
        markings: set[str] = set()
        for index, used in enumerate(uses):
            if used:
                markings.update(self.marking_sets[index])
        return sourced > 0, enriched > 0, markings

    def without_and_with(self, dropped: Collection[int], fresh: dict[str, EntryMark]) -> RecordedEntries | None:
        """These entries but those at the ``dropped`` places, and the ``fresh`` ones (name -> mark)
        added: what :meth:`of` makes of the same marks, kept runs copied whole. None when a fresh
        name is one of the kept entries', or a key holds a line break."""
        names = self.names
        gone = sorted(dropped)
        fresh_items = sorted(fresh.items(), key=_first)
        # (place among these entries, insert before it / drop it, fresh items to insert there)
        cuts: list[tuple[int, int, list[tuple[str, EntryMark]]]] = [(place, 1, []) for place in gone]
        dropped_set = set(gone)
        for name, mark in fresh_items:
            place = bisect.bisect_left(names, name)
            if place < len(names) and names[place] == name and place not in dropped_set:
                return None
            cuts.append((place, 0, [(name, mark)]))
        cuts.sort(key=_cut_order)
        return self._joined(cuts)

    def _joined(self, cuts: list[tuple[int, int, list[tuple[str, EntryMark]]]]) -> RecordedEntries | None:
        """The columns with, at each cut (place, 1 drop it / 0 insert before it, items), that change made."""
        names: list[str] = []
        lengths = array.array("q")
        texts: list[str] = []
        flags: list[bytes] = []
        marking_at = array.array(self.marking_at.typecode)
        marking_sets = list(self.marking_sets)
        set_index = {tuple(markings): index for index, markings in enumerate(marking_sets)}
        extras = dict(self.extras)
        for place, kind, _ in cuts:
            if kind:  # first: a fresh entry of the same name, inserted at its place, notes its own
                extras.pop(self.names[place], None)
        starts = self.starts if self.names else [0]
        cursor = 0

        def keep(stop: int) -> None:
            if cursor < stop:
                names.extend(self.names[cursor:stop])
                lengths.extend(self.lengths[cursor:stop])
                texts.append(self.keys_text[starts[cursor]:starts[stop]])
                flags.append(self.flags[cursor:stop])
                marking_at.extend(self.marking_at[cursor:stop])

        for place, kind, items in cuts:
            keep(place)
            cursor = max(cursor, place)
            if kind:
                cursor = place + 1
                continue
            for name, mark in items:
                text = "".join(key + _TEXT_SEPARATOR for key in mark[0])
                if text.count(_TEXT_SEPARATOR) != len(mark[0]):
                    return None
                names.append(name)
                lengths.append(len(text))
                texts.append(text)
                flags.append(bytes(((self._SOURCED if mark[1] else 0) | (self._ENRICHED if mark[2] else 0),)))
                markings = tuple(mark[3])
                index = set_index.get(markings)
                if index is None:
                    index = set_index[markings] = len(marking_sets)
                    marking_sets.append(list(markings))
                marking_at.append(index)
                if mark[4] or mark[5] or mark[6]:
                    extras[name] = (mark[4], mark[5], mark[6])
                else:
                    extras.pop(name, None)
        keep(len(self.names))
        # The marking lists in order of first use, unused ones left out: the same columns as :meth:`of` makes.
        used = list(dict.fromkeys(marking_at))
        if used != list(range(len(marking_sets))):
            renumbered = {old: new for new, old in enumerate(used)}
            marking_sets = [marking_sets[old] for old in used]
            marking_at = array.array(marking_at.typecode, [renumbered[old] for old in marking_at])
        return RecordedEntries(names, lengths, "".join(texts), b"".join(flags), marking_at, marking_sets, extras)


def _cut_order(cut: tuple[int, int, list[tuple[str, EntryMark]]]) -> tuple[int, int, str]:
    return cut[0], cut[1], cut[2][0][0] if cut[2] else ""


class Spliced(NamedTuple):
    """A bundle made of the previous one's lines and new ones, ready for tiops.compile.write_line_runs."""

    pieces: list[bytes | LineRun]  # a new line, or kept lines of the previous bundle still joined by ",\n"
    keys: list[str]  # of every line, in order
    offsets: list[int]  # where each line will start in the file
    entries: RecordedEntries  # the entries the next record lists
    extras: list[str]  # keys of the built-in objects the bundle adds (no entry's), in order
    group_names: list[str]  # its line groups, in order
    group_digests: bytes  # and their digests, which make its id (tiops.compile.bundle_id_of)
    changed_by_rules: int = 0  # objects ingestion rules changed, every file's (build.json)
    dropped_by_rules: int = 0  # objects ingestion rules dropped (build.json)
    dropped_by_cascade: int = 0  # and those pointing at them (build.json)
    dropped_ids: frozenset[str] = frozenset()  # the ids of the first, every file's (tiops.rules.dropped)
    gone_ids: frozenset[str] = frozenset()  # and of the second


class PreviousBundle:
    """The bundle a record names, read and checked against the record on a thread.

    Reading the previous bundle and its SHA-256 are about 0.1 s of a one-file recompile at
    100k objects (77 MB), and both release the GIL. Started once the files are loaded, they
    overlap the repository-wide checks, which run on one CPU. :func:`spliced` takes the
    result as :func:`_previous_content` would give it then; nothing is trusted that the
    record's size and digest do not confirm.
    """

    def __init__(self, record: dict[str, Any], output: Path) -> None:
        self.output = os.fspath(output.resolve())
        self._content: bytes | None = None
        self._thread: threading.Thread | None = None
        sha256, size = record.get(RECORD_DIGEST), record.get("size")
        self._checked_against = (sha256, size)
        if record.get("output") == self.output and type(sha256) is str and type(size) is int:
            self._thread = threading.Thread(target=self._read, args=(output, sha256, size),
                                            name="tiops-previous-bundle", daemon=True)
            self._thread.start()

    def _read(self, output: Path, sha256: str, size: int) -> None:
        try:
            self._content = _previous_content(output, sha256, size)
        except Exception:  # on a thread, where it would print a traceback: the bundle is then written in full
            self._content = None

    def content(self, output: str, sha256: Any, size: Any) -> bytes | None:
        """The bundle, if it is the one at ``output`` with that digest and size (else None)."""
        self.finish()
        content, self._content = self._content, None  # handed over: the splice holds it from here
        if output != self.output or type(sha256) is not str or (sha256, size) != self._checked_against:
            return None  # checked against another record's digest: not this one's
        return content

    def finish(self) -> None:
        """Wait for the thread (a caller that will not splice calls it before going on)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def spliced(previous: dict[str, Any] | None, key: str, output: Path, files: Sequence[BundleFile],
            present: Container[str], enrichment: Callable[[], LockedEnrichment | None] | None = None,
            ruled: Callable[[list[IntelObject]], list[IntelObject | None]] | None = None,
            prefetched: PreviousBundle | None = None, since: SinceLoad | None = None) -> Spliced | None:
    """The bundle with the previous bundle's lines for unchanged entries; None to write it the full way.

    ``present``: the ids of every object (tiops.validate.indexed.repository_maps' id -> type map).
    ``enrichment``: gives the locked enrichment the objects of files read afresh take (the
    lock's digest is part of ``key``), asked only when there are such objects.
    ``ruled``: the ingestion rules (the rule set and as-of time are part of ``key``), applied to
    the objects of files read afresh; one object in, the same object, a changed copy or None
    (dropped) out, in order (tiops.rules.engine.rule_results; tiops.rules.per_object_rules: no
    rule changes what the bundle adds). What points at a dropped object goes too: worked out
    from every file's index, and a kept entry that gains or loses such an object is read again.
    ``since``: the load's stat index and folder keys. When the record was written by the build that
    saved that very index, with the same keys, and no rule runs, the files it keeps are told by count
    (BundleFiles.kept_by_count); otherwise each file's entry is looked up (a one-file recompile at
    100k objects spent 0.04 s making and looking up 48k entry names).
    """
    if (previous is None or previous.get("format") != RECORD_FORMAT or previous.get("key") != key
            or previous.get("output") != os.fspath(output.resolve())):
        return None
    entries = RecordedEntries.load(previous.get("entries"))
    old_keys = _loaded_texts(previous.get("lines"))
    old_offsets = _loaded_offsets(previous.get("offsets"))
    old_extras = previous.get("extras")
    old_groups = _loaded_groups(previous.get("groups"), previous.get("group_digests"))
    if not (entries is not None and old_keys and isinstance(old_extras, list) and old_offsets is not None
            and len(old_offsets) == len(old_keys) and old_groups is not None and _groups_fit(old_groups[0], old_keys)):
        return None
    if prefetched is not None:
        content = prefetched.content(os.fspath(output.resolve()), previous.get(RECORD_DIGEST), previous.get("size"))
    else:
        content = _previous_content(output, previous.get(RECORD_DIGEST), previous.get("size"))
    if content is None:
        return None
    added: list[tuple[str, dict[str, Any]]] = []
    fresh: dict[str, EntryMark] = {}
    # Each file whose objects are read: its place, its objects, and what the rules made of each (None: dropped).
    read: list[_Read] = []
    try:
        by_count = _kept_by_count(previous, entries, files, since) if ruled is None else None
        if by_count is None:
            # The file place of each reused entry, by the entry's place in the record; the files read afresh.
            kept_at, others = _kept_places(files, entries.position)
        else:
            kept_at, (_, others, counted_dropped) = {}, by_count
        for place in others:
            file = files[place]
            read.append((place, file, file.objects()[0], []))
        read = _ruled_all(read, ruled)
        # What the rules made of kept entries' objects: the few entries the record notes apart.
        position = entries.position if entries.extras else {}
        noted = {at: extra for at, extra in ((position[name], extra) for name, extra in entries.extras.items())
                 if at in kept_at}
        # What the rules dropped, and what goes with it: worked out for every file (tiops.rules.engine._cascade).
        rule_dropped: dict[int, set[str]] = {kept_at[at]: set(extra[1]) for at, extra in noted.items() if extra[1]}
        for place, _, objects, results in read:
            dropped_here = {obj.id for obj, result in zip(objects, results, strict=True) if result is None}
            if dropped_here:
                rule_dropped[place] = dropped_here
        cascade = _cascaded(files, rule_dropped) if rule_dropped else {}
        # A kept entry whose objects now go with a dropped object, or no longer do, is read again.
        if cascade or any(extra[2] for extra in noted.values()):
            at_place = {place: at for at, place in kept_at.items()}
            again = {at_place[place] for place in cascade if place in at_place}
            again.update(at for at, extra in noted.items() if extra[2])
            again = {at for at in again if cascade.get(kept_at[at], []) != list(noted.get(at, (0, (), ()))[2])}
            if again:
                places = [kept_at.pop(at) for at in again]
                read.extend(_ruled_all([(place, files[place], files[place].objects()[0], []) for place in places],
                                       ruled))
                read.sort(key=_first_int)
                noted = {at: extra for at, extra in noted.items() if at in kept_at}
        sourced = enriched = False
        markings: set[str] = set()
        locked: Any = _UNREAD
        unmarked = [0, 0, 0]  # what rules did to the objects of files no mark keeps: changed, dropped, gone
        for place, file, objects, results in read:
            gone = cascade.get(place, [])
            gone_here = set(gone)
            survivors = [result for result in results if result is not None and result.id not in gone_here]
            changed = sum(1 for obj, result in zip(objects, results, strict=True)
                          if result is not None and result is not obj and result.id not in gone_here)
            dropped = [obj.id for obj, result in zip(objects, results, strict=True) if result is None]
            mark = mark_of(survivors, (), gone)._replace(ruled=changed, dropped=dropped or ())
            if locked is _UNREAD and enrichment is not None and survivors:
                locked = enrichment()  # once: each call reads the lock's state again
            forms, lock_enriched = entry_forms(survivors, locked if survivors and locked is not _UNREAD else None)
            if lock_enriched:
                mark = mark._replace(enriched=True)
            added.extend(zip(mark.keys, forms, strict=True))
            sourced = sourced or mark.sourced
            enriched = enriched or mark.enriched
            markings.update(mark.markings)
            if file.entry is not None:
                fresh[file.entry] = mark
            else:  # no mark keeps its counts: counted here
                unmarked = [unmarked[0] + changed, unmarked[1] + len(dropped), unmarked[2] + len(gone)]
        kept_sourced, kept_enriched, kept_markings = (entries.summary(kept_at) if by_count is None
                                                       else entries.summary_without(counted_dropped))
        sourced = sourced or kept_sourced
        enriched = enriched or kept_enriched
        markings.update(kept_markings)
        removed = set(old_extras)  # worked out again below
        dropped_entries = set(range(len(entries))).difference(kept_at) if by_count is None else counted_dropped
        for at in dropped_entries:
            removed.update(entries.keys_at(at))  # the objects of files changed, moved or deleted since
        next_entries = entries.without_and_with(dropped_entries, fresh)
        if next_entries is None:
            return None
    except (TypeError, ValueError, IndexError):
        return None
    gone_ids = {identifier for place in cascade for identifier in cascade[place]}
    gone_ids.update(*rule_dropped.values())
    if gone_ids:  # the built-in objects a dropped object of the repository would have stood for
        present = _Without(present, gone_ids)
    # The built-in objects the bundle adds, from the same function as a full compile.
    extra = builtin_extras(present, sourced=sourced, enriched=enriched, markings=markings)
    extra_keys = [f"{o['type']}\0{o['id']}" for o in extra.values()]
    added.extend(zip(extra_keys, extra.values(), strict=True))
    added.sort(key=_first)
    made = _splice(content, old_keys, old_offsets, removed, added, next_entries, sorted(extra_keys), old_groups)
    if made is None:
        return None
    counted = next_entries.extras.values()
    return made._replace(changed_by_rules=sum(extra[0] for extra in counted) + unmarked[0],
                         dropped_by_rules=sum(len(extra[1]) for extra in counted) + unmarked[1],
                         dropped_by_cascade=sum(len(extra[2]) for extra in counted) + unmarked[2],
                         dropped_ids=frozenset().union(*rule_dropped.values()),
                         gone_ids=frozenset(identifier for place in cascade for identifier in cascade[place]))


_Read = tuple[int, BundleFile, list[IntelObject], list[IntelObject | None]]


def _kept_by_count(previous: dict[str, Any], entries: RecordedEntries, files: Sequence[BundleFile],
                   since: SinceLoad | None) -> tuple[int, list[int], set[int]] | None:
    """BundleFiles.kept_by_count, when the record was listed against the build cache this load read
    (:func:`since_state`) and notes nothing of rules; None for the look-up by name (:func:`_kept_places`)."""
    if since is None or entries.extras or previous.get("since") != since_state(
            since.index_identities, since.folder_keys, since.folder_overlays):
        return None
    from tiops.buildcache.folders import BundleFiles  # only a cached build splices

    bundle = files if isinstance(files, BundleFiles) else BundleFiles(files)
    return bundle.kept_by_count(entries.names, since.stat_index, since.gone(), since.folder_keys)


def _kept_places(files: Sequence[BundleFile], position: dict[str, int]) -> tuple[dict[int, int], list[int]]:
    """The record place of each file's entry the record lists, mapped to the file's place, and the
    places of the other files (parsed afresh, with no entry, or not listed), in order
    (tiops.buildcache.folders.BundleFiles.kept_places: a folder taken whole is told at once)."""
    from tiops.buildcache.folders import BundleFiles  # only a cached build splices

    return (files if isinstance(files, BundleFiles) else BundleFiles(files)).kept_places(position)


def _ruled_all(read: list[_Read], ruled: Callable[[list[IntelObject]], list[IntelObject | None]] | None) -> list[_Read]:
    """``read`` with what the rules made of each file's objects, the rules run once over all of them
    (compiling a rule set costs about 0.15 ms: once per file, a folder's overlay changed, was seconds)."""
    if ruled is None:
        return [(place, file, objects, list(objects)) for place, file, objects, _ in read]
    results = ruled([obj for _, _, objects, _ in read for obj in objects])
    if len(results) != sum(len(objects) for _, _, objects, _ in read):
        raise ValueError("a rule result is needed for each object")
    done: list[_Read] = []
    start = 0
    for place, file, objects, _ in read:
        done.append((place, file, objects, results[start:start + len(objects)]))
        start += len(objects)
    return done


class _Without:
    """``present`` but ``gone``: the ids a bundle holds, of a repository some of whose objects rules dropped."""

    def __init__(self, present: Container[str], gone: set[str]) -> None:
        self._present, self._gone = present, gone

    def __contains__(self, identifier: object) -> bool:
        return identifier not in self._gone and identifier in self._present


def _cascaded(files: Sequence[BundleFile], rule_dropped: dict[int, set[str]]) -> dict[int, list[str]]:
    """The ids dropped because they point at a dropped object, by file place, in object order, as
    tiops.rules.engine._cascade finds them over the whole repository: in repository order, each
    relationship and sighting a rule kept whose pointer names an id dropped so far goes too. From
    the file indexes' relationship and sighting ends. Drops are told by id, as the engine tells
    them: a repository that compiles defines each id once (an id defined twice is TI302, an error)."""
    gone: set[str] = set().union(*rule_dropped.values())
    cascade: dict[int, list[str]] = {}
    for place, file in enumerate(files):
        index = file.index
        ids = index.ids
        pointing = sorted([(position, (source, target)) for position, source, target, _ in index.relationships]
                          + [(position, (seen_ref,)) for position, seen_ref in index.sightings], key=_first_int)
        dropped_here = rule_dropped.get(place, ())
        for position, pointers in pointing:
            identifier = ids[position]
            if identifier in dropped_here:
                continue  # not a survivor of the rules: the cascade never sees it
            if any(type(pointer) is str and pointer in gone for pointer in pointers):
                gone.add(identifier)
                cascade.setdefault(place, []).append(identifier)
    return cascade


def _first_int(item: tuple[Any, ...]) -> int:
    place: int = item[0]
    return place


def _splice(content: bytes, old_keys: list[str], old_offsets: list[int], removed: set[str],
            added: list[tuple[str, dict[str, Any]]], entries: RecordedEntries, extras: list[str],
            old_groups: tuple[list[str], bytes]) -> Spliced | None:
    """The previous lines but ``removed`` ones, with ``added`` in key order, as runs of kept lines;
    the bundle id from ``old_groups`` (the previous bundle's line groups and their digests) with
    the groups of the lines removed and added digested again."""
    count = len(old_keys)
    added_keys = [line_key for line_key, _ in added]
    if len(set(added_keys)) != len(added_keys) or any(line_key.count("\0") != 1 for line_key in added_keys):
        return None  # two objects with one key, or a type holding NUL: tiops.compile orders those
    gone: set[int] = set()
    for line_key in removed:
        position = bisect.bisect_left(old_keys, line_key)
        if position == count or old_keys[position] != line_key:
            return None
        gone.add(position)
    # (position, 0 insert before it / 1 drop it, order among inserts, line, key)
    events: list[tuple[int, int, int, bytes, str]] = [(position, 1, 0, b"", "") for position in gone]
    for order, (line_key, obj) in enumerate(added):
        position = bisect.bisect_left(old_keys, line_key)
        if position < count and old_keys[position] == line_key and position not in gone:
            return None  # the key of a kept line
        events.append((position, 0, order, object_line(obj), line_key))
    events.sort(key=_event_order)
    view = memoryview(content)
    body_end = len(content) - len(BUNDLE_TAIL)
    pieces: list[bytes | LineRun] = []
    piece_lines: list[int] = []  # the number of each piece's first line
    keys: list[str] = []
    offsets: list[int] = []
    at = bundle_head_size()  # where the next piece starts in the new file
    cursor = 0

    def keep(stop: int) -> None:
        nonlocal at
        if cursor < stop:
            first = old_offsets[cursor]
            end = old_offsets[stop] - 2 if stop < count else body_end
            starts = old_offsets[cursor:stop]
            piece_lines.append(len(keys))
            pieces.append(LineRun(view, first, end, starts))
            keys.extend(old_keys[cursor:stop])
            shift = at - first
            offsets.extend(offset + shift for offset in starts)
            at += end - first + 2

    for position, kind, _order, line, line_key in events:
        keep(position)
        cursor = max(cursor, position)
        if kind:
            cursor = position + 1
        else:
            piece_lines.append(len(keys))
            pieces.append(line)
            keys.append(line_key)
            offsets.append(at)
            at += len(line) + 2
    keep(count)
    changed_groups = {line_group(line_key) for line_key in itertools.chain(removed, added_keys)}
    names, digests = _regrouped(old_groups, changed_groups, pieces, piece_lines, keys)
    return Spliced(pieces, keys, offsets, entries, extras, names, digests)


def _regrouped(old_groups: tuple[list[str], bytes], changed: set[str], pieces: list[bytes | LineRun],
               piece_lines: list[int], keys: list[str]) -> tuple[list[str], bytes]:
    """The line groups of the bundle made of ``pieces`` (whose lines' keys are ``keys``, ascending)
    and their digests: the previous bundle's, ``old_groups``, but those of the ``changed`` groups
    digested from their lines now (a group left with no line goes).

    A group no line was removed from or added to holds the lines it held, kept byte for byte.
    Keys ascending give groups ascending, each a run of lines (tiops.compile.line_group), so a
    changed group's lines are found by bisection, and its place among the others likewise.
    """
    old_names, old_digests = old_groups
    names: list[str] = []
    digests = bytearray()
    taken = 0  # old groups up to here are placed
    for name in sorted(changed):
        at = bisect.bisect_left(old_names, name, lo=taken)
        names.extend(old_names[taken:at])
        digests += old_digests[taken * GROUP_DIGEST_SIZE:at * GROUP_DIGEST_SIZE]
        taken = at + 1 if at < len(old_names) and old_names[at] == name else at
        first = bisect.bisect_left(keys, name, key=line_group)
        stop = bisect.bisect_right(keys, name, lo=first, key=line_group)
        if first < stop:
            names.append(name)
            digests += run_lines_digest(pieces, piece_lines, first, stop)
    names.extend(old_names[taken:])
    digests += old_digests[taken * GROUP_DIGEST_SIZE:]
    return names, bytes(digests)


def _event_order(event: tuple[int, int, int, bytes, str]) -> tuple[int, int, int]:
    return event[0], event[1], event[2]


def _first(item: tuple[str, Any]) -> str:
    return item[0]


def _previous_content(output: Path, sha256: Any, size: Any) -> bytes | None:
    """The bundle at ``output``, if it is still the one recorded."""
    if type(size) is not int:
        return None
    # The user's bundle may be a link; but a named pipe, a device or a file of another size is not the one recorded.
    content = read_regular_file(output, follow_links=True, size=size)
    if content is None or hashlib.sha256(content).hexdigest() != sha256 or not content.endswith(BUNDLE_TAIL):
        return None
    return content


def _file_line_offsets(path: Path) -> list[int] | None:
    """Where each object line of the bundle at ``path`` starts, read a megabyte at a time.

    Lines are joined by ",\n" after the head's first line break (tiops.compile); canonical
    JSON holds no raw line break, so every line break of the body ends a line. The file
    is never held whole: a million objects' bundle is most of a gigabyte.
    """
    try:
        with path.open("rb") as bundle:
            size = os.fstat(bundle.fileno()).st_size
            body_end = size - len(BUNDLE_TAIL)
            if body_end < 0:
                return None
            bundle.seek(body_end)
            if bundle.read(len(BUNDLE_TAIL)) != BUNDLE_TAIL:
                return None
            bundle.seek(0)
            offsets: list[int] = []
            at = 0  # where the chunk read last starts in the file
            before = b""  # the byte before that chunk
            while at < body_end:
                chunk = bundle.read(min(_READ_CHUNK, body_end - at))
                if not chunk:
                    return None
                newline = chunk.find(b"\n")
                while newline >= 0:
                    if offsets:  # every line break after the head's is a separator: ",\n"
                        previous = chunk[newline - 1:newline] if newline else before
                        if previous != b",":
                            return None
                    offsets.append(at + newline + 1)
                    newline = chunk.find(b"\n", newline + 1)
                before = chunk[-1:]
                at += len(chunk)
    except OSError:
        return None
    return offsets or None
