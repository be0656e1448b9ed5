"""The previous bundle's lines reused for the objects of unchanged files.

A bundle line is the canonical JSON of one object (tiops.compile). When no ingestion
rule is enabled, an object's line depends on nothing but the object and the enrichment
lock (its results for the values the object names), and the object on nothing but its
file, its folder's defaults and the context the build cache is bound to
(tiops.buildcache.context_key); the record's key holds the lock's digest. So a compile
through the cache writes, beside the bundle, a record (``bundle-record`` in the cache
folder): where the bundle went, its SHA-256 and size, the key (type NUL id) of each
line in order, and for each cache entry it was built from whether its objects carry a
source system or the enrichment extension and which built-in markings they reference.

The next compile to the same file, under the same context, takes the line of each
object of an entry the record lists from that bundle, after checking that the file is
still the one recorded; the objects of files read afresh are serialised as ever, and
the built-in objects the bundle adds are worked out as tiops.compile.bundle_objects
does. Anything unexpected (a line not found, two objects with one key, a type holding
NUL, the bundle changed or gone) means the whole bundle is written the usual way. The
bytes are those of an uncached compile (tests/test_buildcache.py compares them over
random edits).
"""

from __future__ import annotations

import bisect
import hashlib
import os
import threading
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from tiops.compile import (
    BUNDLE_TAIL,
    LineRun,
    WrittenBundle,
    builtin_extras,
    bundle_head_size,
    entry_forms,
    object_line,
    survey_objects,
)
from tiops.enrich.attach import LockedEnrichment
from tiops.inputs import read_regular_file
from tiops.load import IntelObject

RECORD = "bundle-record"
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
                  marks: dict[str, EntryMark] | None = None) -> Iterator[dict[str, Any]]:
    """``objects`` as they are written, noting each one's key in ``keys``.

    With ``marks``, a key its entries' marks hold already is noted as that very string:
    the record then holds (and marshal writes) each key once, not twice, which at a
    million objects is about 100 MB less at the end of a compile.
    """
    known: dict[str, str] = {line_key: line_key for mark in (marks or {}).values() for line_key in mark.keys}
    for obj in objects:
        line_key = f"{obj['type']}\0{obj['id']}"
        keys.append(known.get(line_key, line_key))
        yield obj


def record(key: str, output: Path, written: WrittenBundle, keys: list[str], marks: dict[str, EntryMark],
           offsets: list[int] | None = None) -> dict[str, Any] | None:
    """The record of a bundle just written (None when its lines are not in plain key order: not kept).

    ``offsets``: where each line starts in the file, when the caller knows; else the file is read for them.
    """
    if any(earlier >= later for earlier, later in pairwise(keys)):
        return None
    if not os.path.isfile(output):
        return None  # a named pipe or a device (-o /dev/stdout): nothing to read lines back from, next time either
    if offsets is None:
        offsets = _file_line_offsets(output)
        if offsets is None or len(offsets) != len(keys):
            return None
    owned = {line_key for mark in marks.values() for line_key in mark[0]}  # by position: a kept mark is a tuple
    return _record(key, output, written, keys, offsets, [line_key for line_key in keys if line_key not in owned],
                   marks)


def spliced_record(key: str, output: Path, written: WrittenBundle, spliced: Spliced) -> dict[str, Any]:
    """The record of a bundle written from ``spliced`` (:func:`spliced`), as :func:`record` makes it.

    What :func:`record` works out is known here: the lines are in key order (the previous
    record's were, and each new line went in at its place among them, no key twice:
    :func:`_splice`), their offsets are in ``spliced``, and the lines no entry owns are
    the built-in objects the bundle adds (a key of theirs that an entry held would have
    been two objects with one key, which :func:`_splice` refuses).
    """
    return _record(key, output, written, spliced.keys, spliced.offsets, spliced.extras, spliced.marks)


def _record(key: str, output: Path, written: WrittenBundle, keys: list[str], offsets: list[int], extras: list[str],
            marks: dict[str, EntryMark]) -> dict[str, Any]:
    # A mark kept from the previous record is its stored tuple already, which tuple() returns as it is.
    return {"key": key, "output": os.fspath(output.resolve()), "sha256": written.sha256, "size": written.size,
            "lines": keys, "offsets": offsets, "extras": extras,
            "entries": {entry: tuple(mark) for entry, mark in marks.items()}}


class Spliced(NamedTuple):
    """A bundle made of the previous one's lines and new ones, ready for tiops.compile.write_line_runs."""

    pieces: list[bytes | LineRun]  # a new line, or kept lines of the previous bundle still joined by ",\n"
    keys: list[str]  # of every line, in order
    offsets: list[int]  # where each line will start in the file
    marks: dict[str, EntryMark]
    extras: list[str]  # keys of the built-in objects the bundle adds (no entry's), in order
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
        sha256, size = record.get("sha256"), record.get("size")
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
            prefetched: PreviousBundle | None = None) -> Spliced | None:
    """The bundle with the previous bundle's lines for unchanged entries; None to write it the full way.

    ``present``: the ids of every object (tiops.validate.indexed.repository_maps' id -> type map).
    ``enrichment``: gives the locked enrichment the objects of files read afresh take (the
    lock's digest is part of ``key``), asked only when there are such objects.
    ``ruled``: the ingestion rules (the rule set and as-of time are part of ``key``), applied to
    the objects of files read afresh; one object in, the same object, a changed copy or None
    (dropped) out, in order (tiops.rules.engine.rule_results; tiops.rules.per_object_rules: no
    rule changes what the bundle adds). What points at a dropped object goes too: worked out
    from every file's index, and a kept entry that gains or loses such an object is read again.
    """
    if previous is None or previous.get("key") != key or previous.get("output") != os.fspath(output.resolve()):
        return None
    entries = previous.get("entries")
    old_keys = previous.get("lines")
    old_offsets = previous.get("offsets")
    old_extras = previous.get("extras")
    if not (isinstance(entries, dict) and isinstance(old_keys, list) and isinstance(old_extras, list)
            and isinstance(old_offsets, list) and len(old_offsets) == len(old_keys) and old_keys):
        return None
    if prefetched is not None:
        content = prefetched.content(os.fspath(output.resolve()), previous.get("sha256"), previous.get("size"))
    else:
        content = _previous_content(output, previous.get("sha256"), previous.get("size"))
    if content is None:
        return None
    added: list[tuple[str, dict[str, Any]]] = []
    fresh: dict[str, EntryMark] = {}
    reused: list[str] = []
    # Each file whose objects are read: its place, its objects, and what the rules made of each (None: dropped).
    read: list[_Read] = []
    kept_at: dict[str, int] = {}  # the place of each reused entry's file
    try:
        for place, file in enumerate(files):
            entry = file.entry
            if entry is not None and not file.parsed and entry in entries:
                reused.append(entry)
                kept_at[entry] = place
                continue
            objects = file.objects()[0]
            read.append((place, file, objects, []))
        read = _ruled_all(read, ruled)
        kept_marks = [entries[entry] for entry in reused]
        if not all(type(mark) is tuple and len(mark) == len(EntryMark._fields) and type(mark[4]) is int
                   and type(mark[5]) in _ID_LISTS and type(mark[6]) in _ID_LISTS for mark in kept_marks):
            return None
        # What the rules dropped, and what goes with it: worked out for every file (tiops.rules.engine._cascade).
        rule_dropped: dict[int, set[str]] = {kept_at[entry]: set(mark[5]) for entry, mark in
                                             zip(reused, kept_marks, strict=True) if mark[5]}
        for place, _, objects, results in read:
            dropped_here = {obj.id for obj, result in zip(objects, results, strict=True) if result is None}
            if dropped_here:
                rule_dropped[place] = dropped_here
        cascade = _cascaded(files, rule_dropped) if rule_dropped else {}
        # A kept entry whose objects now go with a dropped object, or no longer do, is read again.
        again = [entry for entry, mark in zip(reused, kept_marks, strict=True)
                 if cascade.get(kept_at[entry], []) != list(mark[6])]
        if again:
            places = [kept_at.pop(entry) for entry in again]
            read.extend(_ruled_all([(place, files[place], files[place].objects()[0], []) for place in places], ruled))
            read.sort(key=_first_int)
            reused = [entry for entry in reused if entry in kept_at]
            kept_marks = [entries[entry] for entry in reused]
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
        sourced = sourced or any(mark[1] for mark in kept_marks)
        enriched = enriched or any(mark[2] for mark in kept_marks)
        markings.update(*(mark[3] for mark in kept_marks))
        removed = set(old_extras)  # worked out again below
        for entry in entries.keys() - set(reused):
            removed.update(entries[entry][0])  # the objects of files changed, moved or deleted since
        # The previous record's marks as stored (EntryMark's fields as a tuple): read as EntryMark fields
        # by position only, so they need not be made EntryMark again for the next record.
        marks: dict[str, EntryMark] = {**dict(zip(reused, kept_marks, strict=True)), **fresh}
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
    made = _splice(content, old_keys, old_offsets, removed, added, marks, sorted(extra_keys))
    if made is None:
        return None
    # Kept marks are stored tuples: their counts are read by position.
    return made._replace(changed_by_rules=sum(mark[4] for mark in marks.values()) + unmarked[0],
                         dropped_by_rules=sum(len(mark[5]) for mark in marks.values()) + unmarked[1],
                         dropped_by_cascade=sum(len(mark[6]) for mark in marks.values()) + unmarked[2],
                         dropped_ids=frozenset().union(*rule_dropped.values()),
                         gone_ids=frozenset(identifier for place in cascade for identifier in cascade[place]))


_Read = tuple[int, BundleFile, list[IntelObject], list[IntelObject | None]]


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
            added: list[tuple[str, dict[str, Any]]], marks: dict[str, EntryMark], extras: list[str]) -> Spliced | None:
    """The previous lines but ``removed`` ones, with ``added`` in key order, as runs of kept lines."""
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
            pieces.append(line)
            keys.append(line_key)
            offsets.append(at)
            at += len(line) + 2
    keep(count)
    return Spliced(pieces, keys, offsets, marks, extras)


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
