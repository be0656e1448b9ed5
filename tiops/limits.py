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
    if isinstance(value, dict | list):
        # A walk in Python: measured cheaper than asking orjson (which would have to
        # write the whole value inside 154 levels of padding to test the depth).
        _walk_structure(value)


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
                    yield (*path, key), f"{item} is outside the STIX 2.1 integer range"
            elif kind is float:
                if not math.isfinite(item):
                    yield (*path, key), f"{item} is not a number STIX can hold (NaN and Infinity are not JSON)"
            elif kind is dict or kind is list:
                push((item, (*path, key)))
