"""What a JSON parse does not tell about the text it read.

* :func:`duplicate_keys`: the names a mapping gives more than once. RFC 8259 section 4
  says the names within an object SHOULD be unique and that software receiving one
  that repeats a name behaves unpredictably (most parsers, orjson and the standard
  library among them, keep the last value without a word); I-JSON (RFC 7493 section
  2.3) forbids it. A parse that keeps one value loses the other silently, so an input
  from elsewhere is checked.

It reads the bytes as written; the files tiops writes itself need no such check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from tiops.findings import PathPart

__all__ = ["DuplicateKey", "duplicate_keys"]

_UTF8_BOM = b"\xef\xbb\xbf"
# ':' written as an escape inside a string: the one way a colon of the text is not a colon byte.
_ESCAPED_COLON = re.compile(rb"\\u003[aA]")


@dataclass(frozen=True)
class DuplicateKey:
    """A name one mapping of the document gives more than once."""

    path: tuple[PathPart, ...]  # the mapping's place in the document (() for the top level)
    key: str
    values: tuple[Any, ...]  # every value written for the name, in the order written

    @property
    def same(self) -> bool:
        """Whether every value is the same JSON value (1 and 1.0, or true and 1, are not)."""
        first = _canonical(self.values[0])
        return all(_canonical(value) == first for value in self.values[1:])


def duplicate_keys(raw: bytes, value: Any) -> list[DuplicateKey]:
    """Every name a mapping of the JSON text ``raw`` gives twice, ``value`` being what a parse of it gave.

    The common document, with no name twice, is proved so without a second parse: every
    member of a mapping is written with one ':' before its value, and a ':' byte is
    otherwise only ever a colon inside a string. A parse that keeps one of two values
    for a name loses a member (and whatever the lost value held), so ``value`` written
    out again holds fewer colons than the text, unless the text has none to lose: the
    counts are equal exactly when no name is given twice. (A colon written as the escape
    ``\\u003a`` has no byte of its own: such a text is parsed again, as is a value
    orjson cannot write, such as an integer beyond 64 bits.) Only a document that fails
    the proof is parsed again with the standard library, which hands every mapping's
    members over as written.

    The paths of the mappings that repeat a name are as in ``value``; a repeat inside a
    value that was itself lost to a repeated name is not listed (its containing name is).
    """
    if _proved_unique(raw, value):
        return []
    found: list[tuple[dict[str, Any], list[tuple[str, tuple[Any, ...]]]]] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        mapping = dict(pairs)
        if len(mapping) != len(pairs):
            found.append((mapping, _repeated(pairs)))
        return mapping

    try:
        tree = json.loads(raw.removeprefix(_UTF8_BOM), object_pairs_hook=pairs_hook)
    except (ValueError, RecursionError):
        # Not reached for a text orjson read within tiops' nesting limit (tiops.limits): the
        # standard library reads every such text.
        return []
    if not found:
        return []
    paths = _paths_of({id(mapping) for mapping, _ in found}, tree)
    return [DuplicateKey(paths[id(mapping)], key, values)
            for mapping, repeats in found if id(mapping) in paths for key, values in repeats]


def _proved_unique(raw: bytes, value: Any) -> bool:
    try:
        written = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return raw.count(b":") == written.count(b":") and _ESCAPED_COLON.search(raw) is None


def _repeated(pairs: list[tuple[str, Any]]) -> list[tuple[str, tuple[Any, ...]]]:
    values: dict[str, list[Any]] = {}
    for key, item in pairs:
        values.setdefault(key, []).append(item)
    return [(key, tuple(items)) for key, items in values.items() if len(items) > 1]


def _paths_of(wanted: set[int], tree: Any) -> dict[int, tuple[PathPart, ...]]:
    """The path of each mapping of ``tree`` whose id() is in ``wanted`` (an iterative walk, stopped when all are found)."""
    paths: dict[int, tuple[PathPart, ...]] = {}
    stack: list[tuple[Any, tuple[PathPart, ...]]] = [(tree, ())]
    while stack and len(paths) < len(wanted):
        node, path = stack.pop()
        if type(node) is dict:
            if id(node) in wanted:
                paths[id(node)] = path
            children: Iterator[tuple[PathPart, Any]] = iter(node.items())
        elif type(node) is list:
            children = enumerate(node)
        else:
            continue
        stack.extend((child, (*path, part)) for part, child in children if type(child) is dict or type(child) is list)
    return paths


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
