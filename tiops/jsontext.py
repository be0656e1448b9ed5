"""What a JSON parse does not tell about the text it read.

* :func:`duplicate_keys`: the names a mapping gives more than once. RFC 8259 section 4
  says the names within an object SHOULD be unique and that software receiving one
  that repeats a name behaves unpredictably (most parsers, orjson and the standard
  library among them, keep the last value without a word); I-JSON (RFC 7493 section
  2.3) forbids it. A parse that keeps one value loses the other silently, so an input
  from elsewhere is checked.
* :func:`item_spans`: where each item of a document's array of objects (a bare array,
  or a bundle's ``objects``) starts and ends, without parsing the items: a document of
  which one item nests deeper than a parser reads still holds the others.

Both read the bytes as written; neither is needed for the files tiops writes itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from tiops.findings import PathPart

__all__ = ["DuplicateKey", "duplicate_keys", "item_spans"]

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
    def times(self) -> str:
        """How often the name is written, for a message: "twice", "3 times"."""
        return "twice" if len(self.values) == 2 else f"{len(self.values)} times"

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


# A string (escapes and all), or one byte of structure.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[][{}:,]', re.DOTALL)
_WHITESPACE = re.compile(rb"[ \t\r\n]*")  # RFC 8259 section 2
_QUOTE, _COLON, _COMMA, _ARRAY, _MAPPING, _ARRAY_END, _MAPPING_END = b'":,[{]}'


def item_spans(raw: bytes) -> list[tuple[int, int]] | None:
    """The (start, end) byte offsets of each item of the document's array of objects: the
    top-level array, or the array a top-level mapping holds under ``objects`` (a bundle,
    STIX 2.1 section 8). None when the text has no such array, or the array is not closed.

    The text is scanned, not parsed: strings are skipped whole (a bracket in a
    description is text), so an item is found however deep it nests. Whether the text
    is JSON is for a parse of it to say.
    """
    start = len(_UTF8_BOM) if raw.startswith(_UTF8_BOM) else 0
    blank = _WHITESPACE.match(raw, start)
    start = blank.end() if blank else start
    if start >= len(raw) or raw[start] not in (_ARRAY, _MAPPING):
        return None
    depth = 0
    inside = 1 if raw[start] == _ARRAY else 0  # the depth inside the array of objects, once it is open
    item_start = start + 1
    spans: list[tuple[int, int]] = []
    last_string = key = b""
    for match in _TOKEN.finditer(raw, start):
        at = match.start()
        byte = raw[at]
        if byte == _QUOTE:
            if depth == 1:
                last_string = match.group()
        elif byte == _MAPPING:
            depth += 1
        elif byte == _ARRAY:
            depth += 1
            if not inside and depth == 2 and key == b'"objects"':
                inside, item_start = 2, at + 1
        elif byte == _COMMA:
            if depth == inside:
                spans.append((item_start, at))
                item_start = at + 1
            elif depth == 1:
                key = b""
        elif byte == _COLON:
            if depth == 1:  # the string before it is a name of the top-level mapping
                key = last_string
        else:
            if depth == inside and byte == _ARRAY_END:
                if raw[item_start:at].strip() or spans:
                    spans.append((item_start, at))
                return spans
            depth -= 1
    return None
