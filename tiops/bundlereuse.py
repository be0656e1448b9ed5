"""The previous bundle's lines reused for the objects of unchanged files.

A bundle line is the canonical JSON of one object (tiops.compile). When no ingestion
rule is enabled and no enrichment is locked, an object's line depends on nothing but
the object, and the object on nothing but its file, its folder's defaults and the
context the build cache is bound to (tiops.buildcache.context_key). So a compile
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
from collections.abc import Container, Iterable, Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from tiops.compile import _survey, _with_source
from tiops.enrich.attach import ENRICHMENT_EXTENSION_OBJECT
from tiops.load import IntelObject
from tiops.stix import BUILTIN_DEPENDENCIES, BUILTIN_OBJECTS, SOURCE_EXTENSION_OBJECTS

RECORD = "bundle-record"
_TAIL = b'\n],"type":"bundle"}\n'  # what tiops.compile writes after the last object
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

    keys: list[str]  # type NUL id of each object
    sourced: bool
    enriched: bool
    markings: list[str]  # built-in marking definitions they reference


def record_key(context: str, rules_digest: str, as_of: str | None) -> str:
    """What besides the objects decides their lines: the cache context, the rule set and the as-of time."""
    return hashlib.sha256("\0".join((context, rules_digest, as_of or "")).encode()).hexdigest()


def mark_of(objects: list[IntelObject]) -> EntryMark:
    keyed, sourced, enriched, markings = _survey(objects)
    return EntryMark([f"{stix_type}\0{stix_id}" for stix_type, stix_id in keyed], sourced, enriched, sorted(markings))


def recorded_keys(objects: Iterable[dict[str, Any]], keys: list[str]) -> Iterator[dict[str, Any]]:
    """``objects`` as they are written, noting each one's key in ``keys``."""
    for obj in objects:
        keys.append(f"{obj['type']}\0{obj['id']}")
        yield obj


def record(key: str, output: Path, sha256: str, size: int, keys: list[str],
           marks: dict[str, EntryMark]) -> dict[str, Any] | None:
    """The record of a bundle just written (None when its lines are not in plain key order: not kept)."""
    if any(earlier >= later for earlier, later in pairwise(keys)):
        return None
    owned = {line_key for mark in marks.values() for line_key in mark.keys}
    return {"key": key, "output": os.fspath(output.resolve()), "sha256": sha256, "size": size, "lines": keys,
            "extras": [line_key for line_key in keys if line_key not in owned],
            "entries": {entry: tuple(mark) for entry, mark in marks.items()}}


def spliced_objects(previous: dict[str, Any] | None, key: str, output: Path, files: Sequence[BundleFile],
                    present: Container[str]) -> tuple[list[dict[str, Any] | bytes], list[str], dict[str, EntryMark]] | None:
    """The bundle's objects in order (kept lines as bytes), their keys and each entry's mark; None to write it afresh.

    ``present``: the ids of every object (tiops.validate.indexed.repository_maps' id -> type map).
    """
    if previous is None or previous.get("key") != key or previous.get("output") != os.fspath(output.resolve()):
        return None
    entries = previous.get("entries")
    old_keys = previous.get("lines")
    old_extras = previous.get("extras")
    if not isinstance(entries, dict) or not isinstance(old_keys, list) or not isinstance(old_extras, list):
        return None
    lines = _previous_lines(output, previous.get("sha256"), previous.get("size"), len(old_keys))
    if lines is None:
        return None
    added: list[tuple[str, dict[str, Any] | bytes]] = []
    fresh: dict[str, EntryMark] = {}
    reused: list[str] = []
    sourced = enriched = False
    markings: set[str] = set()
    try:
        for file in files:
            entry = file.entry
            if entry is not None and not file.parsed and entry in entries:
                reused.append(entry)
                continue
            objects = file.objects()[0]
            mark = mark_of(objects)
            added.extend(zip(mark.keys, map(_with_source, objects), strict=True))
            sourced = sourced or mark.sourced
            enriched = enriched or mark.enriched
            markings.update(mark.markings)
            if entry is not None:
                fresh[entry] = mark
        kept_marks = [entries[entry] for entry in reused]
        sourced = sourced or any(mark[1] for mark in kept_marks)
        enriched = enriched or any(mark[2] for mark in kept_marks)
        markings.update(*(mark[3] for mark in kept_marks))
        removed = set(old_extras)  # worked out again below
        for entry in entries.keys() - set(reused):
            removed.update(entries[entry][0])  # the objects of files changed, moved or deleted since
        marks = {**dict(zip(reused, map(_as_mark, kept_marks), strict=True)), **fresh}
    except (TypeError, ValueError, IndexError):
        return None
    # The built-in objects the bundle adds, as tiops.compile.bundle_objects adds them.
    extra: dict[str, dict[str, Any]] = {}
    if sourced:
        extra.update({o["id"]: o for o in SOURCE_EXTENSION_OBJECTS if o["id"] not in present})
    if enriched:
        for definition in (SOURCE_EXTENSION_OBJECTS[0], ENRICHMENT_EXTENSION_OBJECT):
            if definition["id"] not in present:
                extra[definition["id"]] = definition
    for marking_id in sorted(marking for marking in markings if marking not in present):
        extra[marking_id] = BUILTIN_OBJECTS[marking_id]
        for dependency in BUILTIN_DEPENDENCIES.get(marking_id, ()):
            if dependency not in present:
                extra[dependency] = BUILTIN_OBJECTS[dependency]
    added.extend((f"{o['type']}\0{o['id']}", o) for o in extra.values())
    added.sort(key=_first)
    kept = [position for position, line_key in enumerate(old_keys) if line_key not in removed]
    kept_keys = [old_keys[position] for position in kept]
    added_keys = [line_key for line_key, _ in added]
    if (len(set(added_keys)) != len(added_keys) or any(_holds(kept_keys, line_key) for line_key in added_keys)
            or any(line_key.count("\0") != 1 for line_key in added_keys)):
        return None  # two objects with one key, or a type holding NUL: tiops.compile orders those
    result: list[dict[str, Any] | bytes] = []
    keys: list[str] = []
    start = 0
    for line_key, obj in added:
        stop = bisect.bisect_left(kept_keys, line_key, start)
        result.extend(lines[position] for position in kept[start:stop])
        keys.extend(kept_keys[start:stop])
        result.append(obj)
        keys.append(line_key)
        start = stop
    result.extend(lines[position] for position in kept[start:])
    keys.extend(kept_keys[start:])
    return result, keys, marks


def _as_mark(stored: Any) -> EntryMark:
    return EntryMark._make(stored)


def _holds(ordered: list[str], line_key: str) -> bool:
    position = bisect.bisect_left(ordered, line_key)
    return position < len(ordered) and ordered[position] == line_key


def _first(item: tuple[str, Any]) -> str:
    return item[0]


def _previous_lines(output: Path, sha256: Any, size: Any, count: int) -> list[bytes] | None:
    """The object lines of the bundle at ``output``, if it is still the one recorded."""
    try:
        content = output.read_bytes()
    except OSError:
        return None
    if len(content) != size or hashlib.sha256(content).hexdigest() != sha256:
        return None
    # One object per line, lines joined by ",\n"; a line's JSON holds no newline (tiops.compile).
    start = content.find(b"\n") + 1
    if not start or not content.endswith(_TAIL) or not count:
        return None
    lines = content[start:len(content) - len(_TAIL)].split(b",\n")
    return lines if len(lines) == count else None
