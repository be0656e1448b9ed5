"""STIX input: a bundle or a bare array of objects, STIX 2.1 or 2.0 (upgraded to 2.1)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import orjson

from tiops.findings import PathPart
from tiops.importers import Candidate, ParsedInput, Rejection
from tiops.jsontext import DuplicateKey, duplicate_keys, item_spans
from tiops.limits import MAX_NESTING_DEPTH, StructureProblem, check_structure
from tiops.lookup import object_name
from tiops.stix import SCO_TYPES
from tiops.stix20 import (
    TYPES_21_ONLY,
    holds_only_implicit_20,
    is_stix20_object,
    upgrade_from_20,
    upgrade_observables,
)
from tiops.yamlio import YamlProblem, json_kind, parse_json


def parse(raw: bytes, source: str) -> ParsedInput:
    result = ParsedInput()
    too_deep: dict[int, str] = {}
    try:
        data = parse_json(raw)
    except YamlProblem as problem:
        read = None
        if problem.code == "TI112" or _BEYOND_DOUBLE in problem.message:
            try:
                read = _without_unreadable_items(raw)
            except YamlProblem as other:
                problem = other  # the rest of the document has a defect of its own, at its own line
        if read is None:
            result.rejections.append(Rejection(f"line {problem.line}", (problem.message,)))
            result.total = 1  # the document, which holds no item that can be read
            return result
        # One object nested too deep, or holding a number no reader takes: it alone is rejected
        # (docs/limits.md), the others read.
        raw, data, too_deep = read
    duplicates = duplicate_keys(raw, data)
    prefix: tuple[PathPart, ...] | None  # where the items are in the document (None: it is the one item)
    # A bundle; some publishers leave out its "type" (OASIS's TLP 2.0 extension-definition file).
    if isinstance(data, dict) and (_says_bundle(data, duplicates) or ("type" not in data and "objects" in data)):
        if wrapper := [duplicate for duplicate in duplicates if not duplicate.path]:
            # Which of the values holds the bundle's objects (or its id, its type) is a guess.
            rows = sum(len(value) for value in _values(wrapper, "objects", data.get("objects")) if isinstance(value, list))
            names = " and ".join(_show(duplicate.key) for duplicate in wrapper)
            result.rejections.append(Rejection("bundle", (
                f"the bundle names {names} more than once: which value counts is a guess (RFC 8259 section 4: names "
                f"SHOULD be unique; parsers keep the first, the last, or refuse), so none of its {rows} object(s) "
                "is imported; ask the producer for a bundle that names each once",), rows=max(rows, 1)))
            result.total = max(rows, 1)
            return result
        items = data.get("objects")
        if not isinstance(items, list):
            result.rejections.append(Rejection("bundle", ("the bundle has no 'objects' array",)))
            result.total = 1  # the document, which holds no item that can be read
            return result
        prefix = ("objects",)
    elif isinstance(data, list):
        items, prefix = data, ()
    elif isinstance(data, dict) and isinstance(data.get("type"), str) and "id" in data:
        items, prefix = [data], None  # one object on its own, as OASIS publishes its common objects
    else:
        result.rejections.append(Rejection("document", ("expected a STIX bundle, a JSON array of STIX objects or one STIX object",)))
        result.total = 1  # the document, which holds no item that can be read
        return result
    stix20_bundle = isinstance(data, dict) and data.get("spec_version") == "2.0"
    # parse_json checked the whole document's structure (the items too deep were left out of it)
    return parse_items(items, result, structure_checked=True, stix20_bundle=stix20_bundle,
                       duplicates=_by_item(duplicates, prefix), refused=too_deep)


def _says_bundle(data: dict[str, Any], duplicates: list[DuplicateKey]) -> bool:
    """Whether a top-level mapping is a bundle: its type says so, in any of the values written for it."""
    return data.get("type") == "bundle" or "bundle" in _values(duplicates, "type", None)


def _values(duplicates: list[DuplicateKey], key: str, value: Any) -> tuple[Any, ...]:
    """Every value the top-level mapping gives ``key``: those of a repeated name, else ``value``."""
    return next((d.values for d in duplicates if not d.path and d.key == key), (value,))


def _by_item(duplicates: list[DuplicateKey], prefix: tuple[PathPart, ...] | None) -> dict[int, list[DuplicateKey]]:
    """The repeated names of each item, their paths within it. ``prefix``: where the items are in the
    document (None: the document is the one item)."""
    by_item: dict[int, list[DuplicateKey]] = {}
    for duplicate in duplicates:
        if prefix is None:
            by_item.setdefault(0, []).append(duplicate)
            continue
        path = duplicate.path
        if len(path) > len(prefix) and path[:len(prefix)] == prefix and type(path[len(prefix)]) is int:
            index = path[len(prefix)]
            by_item.setdefault(int(index), []).append(DuplicateKey(path[len(prefix) + 1:], duplicate.key,
                                                                   duplicate.values))
    return by_item


def _without_unreadable_items(raw: bytes) -> tuple[bytes, Any, dict[int, str]] | None:
    """The document with each item that nests too deep, or holds a number beyond a double, written as
    null, what it reads as, and why each such item (by index) is left out; None when the items cannot
    be told apart.

    orjson stops at 1,024 levels, and at a number beyond a double (``1e400``, or an integer of more
    digits than Python converts), and refuses the whole text: a bundle of which one object is such
    still holds the others. The
    objects array is found by a scan of the text (tiops.jsontext.item_spans); an item
    too deep is blanked out, keeping its line breaks so that every position after it
    stays the same, and the rest is read and checked as a whole document is. Anything
    else wrong with the document is still the whole document's problem: raises
    YamlProblem, at its line in the text as given.
    """
    spans = item_spans(raw)
    if spans is None:
        return None
    too_deep: dict[int, str] = {}
    parts: list[bytes] = []
    done = 0
    for index, (start, end) in enumerate(spans):
        deep = raw.count(b"{", start, end) + raw.count(b"[", start, end) > MAX_NESTING_DEPTH
        if not deep and not _HUGE_NUMBER.search(raw, start, end):
            continue  # fewer brackets than the limit and no number that long: nothing to leave out
        reason = _depth_problem(raw[start:end]) if deep else None
        reason = reason or _number_problem(raw[start:end])
        if reason is None:
            continue
        too_deep[index] = reason
        parts += [raw[done:start], b"null", b"\n" * raw.count(b"\n", start, end)]
        done = end
    if not too_deep:
        return None
    patched = b"".join([*parts, raw[done:]])
    return patched, parse_json(patched), too_deep


#: What tiops.yamlio.parse_json says of a number beyond a double that no reader of it takes either.
_BEYOND_DOUBLE = "infinity when parsed as double"
#: A number that may be one: 300 digits or more (a double's range ends near 1.8e308), or an exponent of three digits.
_HUGE_NUMBER = re.compile(rb"[0-9]{300}|[eE][+-]?[0-9]{3}")


def _number_problem(text: bytes) -> str | None:
    """Why one item cannot be read for a number in it (beyond a double, or an integer of more digits than
    Python converts), or None when it can."""
    try:
        parse_json(text)
    except YamlProblem as problem:
        if _BEYOND_DOUBLE in problem.message:
            return ("holds a number beyond the range of a double (RFC 8259 section 6: such numbers are not "
                    "read alike by every parser), which no STIX property takes")
    return None


def _depth_problem(text: bytes) -> str | None:
    """Why one item is too deep (its path when a parser reads it), or None when it is not."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        if "recursion" in error.msg or "depth" in error.msg:
            return f"nested more than {MAX_NESTING_DEPTH} levels deep (deeper than a JSON parser reads)"
        return None
    try:
        check_structure(value)
    except StructureProblem as problem:
        where = ".".join(map(str, problem.path))
        return f"{where}: {problem.message}" if where else problem.message
    return None


def _show(value: Any, limit: int = 60) -> str:
    """A value for a message, cut short: a string quoted with its control characters escaped, anything else as JSON."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = orjson.dumps(value).decode()
        except (TypeError, orjson.JSONEncodeError):  # an integer beyond 64 bits
            text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def parse_items(items: list[Any], result: ParsedInput | None = None, *, structure_checked: bool = False,
                stix20_bundle: bool = False, duplicates: Mapping[int, list[DuplicateKey]] | None = None,
                refused: Mapping[int, str] | None = None) -> ParsedInput:
    """Candidates from objects already read (a TAXII pull), each checked like a bundle's items.

    ``structure_checked``: the items come from a document whose structure (string keys,
    nesting depth) was checked as a whole already, so they are not walked again.
    ``stix20_bundle``: the items come from a bundle that says spec_version 2.0, whose
    2.0 objects are its own content and its 2.1 objects the odd ones out.
    ``duplicates``: the names an item gives twice (tiops.jsontext.duplicate_keys), by index;
    ``refused``: why an item that could not be read is rejected (nested too deep), by index.
    """
    result = result if result is not None else ParsedInput()
    result.total = len(items)
    upgrades: Counter[str] = Counter()
    upgraded: list[int] = []  # candidate positions of upgraded objects
    native = 0  # objects that were STIX 2.1 already
    custom_as_20 = not stix20_bundle and holds_only_implicit_20(items)
    for index, item in enumerate(items):
        position = f"index {index}"
        if refused and index in refused:
            result.rejections.append(Rejection(position, (refused[index],)))
            continue
        repaired: tuple[str, ...] = ()
        if duplicates and index in duplicates and isinstance(item, dict):
            rejection, repaired = _repeated_names(position, item, duplicates[index])
            if rejection is not None:
                result.rejections.append(rejection)
                continue
        if not isinstance(item, dict):
            result.rejections.append(Rejection(position, (f"item is a JSON {json_kind(item)}, not a STIX object",)))
            continue
        if not structure_checked:  # a TAXII page was not checked when read
            try:
                check_structure(item)
            except StructureProblem as problem:
                where = ".".join(map(str, problem.path))
                result.rejections.append(Rejection(position, (f"{where}: {problem.message}" if where else problem.message,)))
                continue
        missing = [name for name in ("type", "id") if not isinstance(item.get(name), str) or not item.get(name)]
        if missing:
            reasons = tuple(f"missing required property '{name}'" for name in missing)
            result.rejections.append(Rejection(position, reasons, item.get("id") if isinstance(item.get("id"), str) else None,
                                               object_name(item)))
            continue
        if "spec_version" not in item and (item["type"] in TYPES_21_ONLY or (
                item["type"] not in SCO_TYPES
                and not is_stix20_object(item, in_stix20_bundle=stix20_bundle, custom_as_20=custom_as_20))):
            # a 2.1 object that left out spec_version (section 3.2; 11.2 for custom objects), as validate reads it
            why = ("no such type in STIX 2.0" if item["type"] in TYPES_21_ONLY else
                   "a custom object, and nothing beside it is STIX 2.0 content")
            result.candidates.append(Candidate(position, {"type": item["type"], "spec_version": "2.1", **item}, repairs=(
                *repaired, f"spec_version: a {item['type']} is STIX 2.1 ({why}); spec_version 2.1 added")))
            native += 1
            continue
        if item["type"] not in SCO_TYPES:
            if item.get("spec_version", "2.0") == "2.0":
                item = upgrade_observables(upgrade_from_20(item, upgrades, import_labels=True), upgrades)
                upgraded.append(len(result.candidates))
            else:
                native += 1
        result.candidates.append(Candidate(position, item, repairs=repaired))
    if upgraded and native and not stix20_bundle:
        # A mixed bundle: the 2.0 objects are the odd ones out, each reported as repaired.
        for at in upgraded:
            candidate = result.candidates[at]
            result.candidates[at] = Candidate(candidate.position, candidate.data, candidate.versioned, (
                *candidate.repairs, "spec_version: a STIX 2.0 object in a 2.1 bundle, upgraded to 2.1"))
    if upgrades:
        changes = ", ".join(f"{what}: {count}" for what, count in sorted(upgrades.items()))
        result.notes.append(f"upgraded {upgrades['objects']} STIX 2.0 object(s) to 2.1 ({changes})")
    if native and stix20_bundle:
        # STIX 2.0 Part 1, bundle: a 2.0 bundle holds 2.0 objects; these say otherwise and stay as sent.
        result.notes.append(f"{native} object(s) are STIX 2.1 (spec_version 2.1, or a type STIX 2.0 has not) in a "
                            "bundle that says 2.0: imported as STIX 2.1")
    return result


def _repeated_names(position: str, item: dict[str, Any],
                    duplicates: list[DuplicateKey]) -> tuple[Rejection | None, tuple[str, ...]]:
    """An object that names a property twice: rejected when the values differ, else repaired.

    RFC 8259 section 4 leaves what a parser makes of a repeated name open (most keep the
    last value, some the first, some refuse), so when the values differ, which one the
    producer meant is a guess, and tiops repairs nothing that is a guess: the object is
    rejected, naming each value. When every value is the same, keeping one loses nothing:
    a repair, reported as such (and refused under --strict).
    """
    differ = [duplicate for duplicate in duplicates if not duplicate.same]
    if not differ:
        return None, tuple(f"{_where(duplicate)}: written {duplicate.times} with the same value; one kept "
                           "(RFC 8259 section 4: names SHOULD be unique)" for duplicate in duplicates)
    reasons = tuple(f"{_where(duplicate)}: written {duplicate.times} with different values "
                    f"({', '.join(_show(value) for value in duplicate.values)}): which one the producer meant is a "
                    "guess (RFC 8259 section 4: names SHOULD be unique; parsers keep the first, the last, or refuse)"
                    for duplicate in differ)
    unsure = {duplicate.key for duplicate in differ if not duplicate.path}
    identifier = item.get("id") if "id" not in unsure and isinstance(item.get("id"), str) else None
    return Rejection(position, reasons, identifier, None if "name" in unsure else object_name(item)), ()


def _where(duplicate: DuplicateKey) -> str:
    return ".".join(map(str, (*duplicate.path, duplicate.key)))
