"""The limits every input is held to, and the checks that enforce them (docs/limits.md).

One set of numbers shared by load, validate, compile and import, so that what
validates also compiles and imports:

* :data:`MAX_FILE_BYTES`: larger intel files, bundles and CSVs are refused with a
  finding before they are read (a symlink to ``/dev/zero`` would otherwise fill memory).
* :data:`MAX_NESTING_DEPTH`: how many mappings and lists a document may nest. Well
  below every parser and serializer tiops uses (orjson writes at most 254 levels,
  libyaml reads 1,000), so a value that validates always compiles.
* :data:`STIX_INTEGER_MIN` .. :data:`STIX_INTEGER_MAX`: the STIX 2.1 integer type
  (section 2.16: a signed 54-bit value). NaN and Infinity are not JSON numbers
  (RFC 8259 section 6) and are no STIX float either.

The walks are iterative: a deep value must not exhaust Python's recursion limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import orjson

from tiops.findings import PathPart

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_NESTING_DEPTH = 100
STIX_INTEGER_MIN = -(2**53) + 2
STIX_INTEGER_MAX = 2**53 - 2


class StructureProblem(Exception):
    """A document that tiops cannot hold as STIX: a key that is not a string, or nesting too deep."""

    def __init__(self, code: str, message: str, path: tuple[PathPart, ...]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path


def check_structure(value: Any) -> None:
    """Raise :class:`StructureProblem` for the first non-string key or over-deep collection.

    Keys must be strings because STIX is JSON (RFC 8259 section 4: names are strings);
    YAML allows ``1:`` or ``~:`` as keys, which no later stage can handle.
    """
    if isinstance(value, dict | list) and not provably_sound(value):
        # The walk finds the first problem, in the same order every time.
        _walk_structure(value)


def provably_sound(value: dict[Any, Any] | list[Any], depth_budget: int = MAX_NESTING_DEPTH) -> bool:
    """True only when ``value`` certainly has string keys only and nests at most ``depth_budget`` levels.

    A cheap proof for the common, clean document, so that only the rest is walked in
    Python: orjson refuses any key that is not a string (RFC 8259 section 4), and writes
    one opening bracket per mapping and list, so a text holding at most ``depth_budget``
    of them cannot nest deeper (brackets inside strings only make the count larger).
    A bulk file's items, or a large mapping's values, are proved one by one, down to
    :data:`_PROOF_LEVELS` levels; False means "not proved" and the caller walks.
    """
    return _proved(value, depth_budget, _PROOF_LEVELS)


# How many levels the proof descends into a value too large to prove at once: a bundle
# (its "objects") needs two; deeper values are walked.
_PROOF_LEVELS = 3


def _proved(value: dict[Any, Any] | list[Any], budget: int, levels: int) -> bool:
    if type(value) is list and levels == _PROOF_LEVELS:
        # The top-level list of a bulk file has no keys of its own: prove its items directly.
        return all(_proved(item, budget - 1, levels - 1) for item in value if type(item) is dict or type(item) is list)
    try:
        written = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):  # a non-string key, an integer beyond 64 bits, 255 levels
        return False
    if written.count(b"{") + written.count(b"[") <= budget:
        return True
    if levels <= 1 or budget <= 1:
        return False
    children = value.values() if type(value) is dict else value
    return all(_proved(child, budget - 1, levels - 1) for child in children if type(child) is dict or type(child) is list)


def _walk_structure(value: Any) -> None:
    stack: list[tuple[Any, int, tuple[PathPart, ...]]] = [(value, 1, ())]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth, path = pop()
        if depth > MAX_NESTING_DEPTH:
            raise StructureProblem(
                "TI112", f"nested more than {MAX_NESTING_DEPTH} levels deep", path
            )
        if type(node) is dict:
            for key, item in node.items():
                if type(key) is not str:
                    # The key's own text is what points at it in the file (tiops.yamlio.PositionIndex).
                    written = "~" if key is None else key if type(key) is int else str(key)
                    raise StructureProblem(
                        "TI113", f"the key {_show_key(key)} is not a string", (*path, written)
                    )
                if type(item) is dict or type(item) is list:
                    push((item, depth + 1, (*path, key)))
        else:
            for index, item in enumerate(node):
                if type(item) is dict or type(item) is list:
                    push((item, depth + 1, (*path, index)))


def _show_key(key: Any) -> str:
    if key is None:
        return "null (~)"
    return repr(key)


def shown_integer(value: int) -> str:
    """An integer as a message shows it: written out, or by its size when it is too long to
    read (and past Python's 4,300-digit limit for writing an int, which raises)."""
    if value.bit_length() <= 200:  # up to 61 digits
        return str(value)
    return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"


def number_problems(value: Any) -> Iterator[tuple[tuple[PathPart, ...], str]]:
    """(path, reason) of every integer outside the STIX 2.1 range and every NaN or Infinity."""
    try:
        # OPT_STRICT_INTEGER refuses integers beyond +-(2^53-1); NaN and Infinity are written as null.
        written = orjson.dumps(value, option=orjson.OPT_STRICT_INTEGER)
    except (TypeError, orjson.JSONEncodeError):
        return _walk_numbers(value)
    if b"null" in written or b"9007199254740991" in written:
        return _walk_numbers(value)
    return iter(())


def _walk_numbers(value: Any) -> Iterator[tuple[tuple[PathPart, ...], str]]:
    stack: list[tuple[Any, tuple[PathPart, ...]]] = [(value, ())]
    pop, push = stack.pop, stack.append
    while stack:
        node, path = pop()
        items = node.items() if type(node) is dict else enumerate(node) if type(node) is list else ()
        for key, item in items:
            kind = type(item)
            if kind is int:
                if not STIX_INTEGER_MIN <= item <= STIX_INTEGER_MAX:
                    yield (*path, key), f"{shown_integer(item)} is outside the STIX 2.1 integer range"
            elif kind is float:
                if not math.isfinite(item):
                    yield (*path, key), f"{item} is not a number STIX can hold (NaN and Infinity are not JSON)"
            elif kind is dict or kind is list:
                push((item, (*path, key)))
