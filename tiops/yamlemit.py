"""Block YAML for the plain shapes tiops writes, byte for byte what PyYAML writes, without PyYAML's cost.

``tiops import`` writes one file per object. PyYAML builds a node for every value in
Python before libyaml writes it, which made dumping most of an import's time
(docs/performance.md). The objects tiops writes are mappings of strings, lists, integers,
booleans and nulls, so this module writes them directly, making the same choices as
PyYAML's representer and resolver with libyaml's emitter (``yaml.CSafeDumper``,
``sort_keys=False, allow_unicode=True, default_flow_style=False, width=1_000_000``):

* a string is plain unless YAML 1.1 would read it as another type (the resolver's
  implicit patterns) or libyaml's scalar analysis forbids it (indicators, leading or
  trailing spaces, line breaks); then single-quoted, or double-quoted with escapes when
  single quotes cannot hold it (a space next to a line break);
* mappings and sequences in block style, sequences inside mappings not indented,
  empty ones as ``{}`` and ``[]``.

Everything else returns None and the caller uses PyYAML: floats, characters outside
the printable set, tabs, line breaks other than ``\\n``, long or non-ASCII keys, very
long strings, deep nesting, a list or mapping that appears twice (PyYAML writes an
anchor), and every string YAML 1.2 could read as something other than a string
(``1e5``, ``0o17``), which PyYAML writes plain but tiops' YAML 1.2 reader would not read
back as written. So what this module returns always reads back as the value given.
tests/test_yamlemit.py compares it with PyYAML on the shared corpora and on generated
strings.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
import yaml_rs

# PyYAML's implicit resolvers (YAML 1.1 bool, int, float, null, timestamp, merge, value),
# by the first character they apply to, as yaml.resolver.Resolver.resolve looks them up.
_RESOLVERS: dict[str, tuple[re.Pattern[str], ...]] = {
    first: tuple(pattern for _tag, pattern in entries)
    for first, entries in yaml.CSafeDumper.yaml_implicit_resolvers.items()
    if first is not None
}
# Any character libyaml would escape or analyse specially: control characters, tab, \r,
# NEL, line and paragraph separators, the BOM, surrogates, U+FFFE/U+FFFF and characters beyond the BMP (libyaml's
# IS_PRINTABLE stops at U+FFFD).
_UNUSUAL = re.compile(r"[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd]")
# Plain scalars made only of the characters numbers, booleans and nulls are written with
# (digits, signs, "_", ".", ":", hex and radix letters, the letters of null, true, false,
# yes, no, on, off, inf, nan). yaml-rs reads some of them as numbers where YAML 1.1 and
# even YAML 1.2's core schema would not ("_1" is 1), so these are tried with yaml-rs itself.
_MAYBE_NOT_STRING = re.compile(r"[-+_.:~0-9a-fA-FxXoObBnNuUlLtTrRsSiIyY]*")
# Indicators that make a plain scalar impossible in block context (libyaml's
# yaml_emitter_analyze_scalar): these anywhere, "-", "?", ":" first and followed by a blank.
_FIRST_INDICATORS = frozenset("#,[]{}&*!|>'\"%@`")
_MAX_STRING = 100_000  # libyaml folds lines beyond the width (1,000,000 columns): stay far below
_MAX_KEY = 128  # libyaml writes longer keys as "? key" (not a simple key)
_MAX_DEPTH = 50  # below tiops.limits.MAX_NESTING_DEPTH, which the reader enforces
_MAX_INT = 2**53


class _Unsupported(Exception):
    """A value this module does not write exactly as PyYAML does."""


def block_yaml(value: Any) -> str | None:
    """``value`` (a mapping) as PyYAML writes it, or None when PyYAML must write it."""
    if type(value) is not dict:
        return None
    if not value:
        return "{}\n"
    out: list[str] = []
    try:
        _mapping(value, 0, False, out, set(), 1)
    except _Unsupported:
        return None
    return "".join(out)


def _mapping(data: dict[Any, Any], indent: int, inline: bool, out: list[str], seen: set[int], depth: int) -> None:
    if depth > _MAX_DEPTH or id(data) in seen:
        raise _Unsupported
    seen.add(id(data))
    pad = " " * indent
    keys, strings = _KEYS, _STRINGS
    for key, item in data.items():
        written = keys.get(key) if type(key) is str else None
        if written is None:
            written = _key(key)
        if inline:
            inline = False  # the first key follows the sequence's "- "
        else:
            written = pad + written
        kind = type(item)
        if kind is str:
            value = strings.get(item)
            out.append(f"{written}: {_string(item, indent + 2) if value is None else value}\n")
        elif kind is dict and item:
            out.append(written + ":\n")
            _mapping(item, indent + 2, False, out, seen, depth + 1)
        elif kind is list and item:
            out.append(written + ":\n")
            _sequence(item, indent, False, out, seen, depth + 1)  # not indented inside a mapping
        else:
            out.append(f"{written}: {_scalar(item)}\n")


def _sequence(data: list[Any], indent: int, inline: bool, out: list[str], seen: set[int], depth: int) -> None:
    if depth > _MAX_DEPTH or id(data) in seen:
        raise _Unsupported
    seen.add(id(data))
    dash = " " * indent + "- "
    strings = _STRINGS
    for item in data:
        if inline:
            inline = False
            out.append("- ")
        else:
            out.append(dash)
        kind = type(item)
        if kind is str:
            value = strings.get(item)
            out.append((_string(item, indent + 2) if value is None else value) + "\n")
        elif kind is dict and item:
            _mapping(item, indent + 2, True, out, seen, depth + 1)
        elif kind is list and item:
            _sequence(item, indent + 2, True, out, seen, depth + 1)
        else:
            out.append(_scalar(item) + "\n")


def _scalar(value: Any) -> str:
    """Anything but a string or a non-empty collection."""
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        if not -_MAX_INT < value < _MAX_INT:
            raise _Unsupported
        return str(value)
    if value is None:
        return "null"
    if kind is dict:  # empty: a non-empty one is a block
        return "{}"
    if kind is list:
        return "[]"
    raise _Unsupported  # floats (PyYAML's own repr rules), dates, anything else


# Strings and keys written so far, as written (only those whose text needs no indentation).
_STRINGS: dict[str, str] = {}
_KEYS: dict[str, str] = {}
_CACHE_LIMIT = 200_000


def _key(key: Any) -> str:
    # libyaml writes a key longer than 128 bytes, or with a line break, as "? key".
    if type(key) is not str or not key or len(key) > _MAX_KEY or not key.isascii() or _UNUSUAL.search(key):
        raise _Unsupported
    written = _string(key, 0)
    if len(_KEYS) > _CACHE_LIMIT:
        _KEYS.clear()
    _KEYS[key] = written
    return written


def _string(text: str, indent: int) -> str:
    if len(text) > _MAX_STRING:
        raise _Unsupported
    if _UNUSUAL.search(text):
        if "\u2028" in text or "\u2029" in text:
            raise _Unsupported  # line breaks to libyaml, with rules of their own
        # libyaml's analysis finds "special characters": double quotes, with escapes.
        written = '"' + _UNUSUAL_OR_ESCAPED.sub(_escape, text) + '"'
        if not _reads_back(written, text):
            raise _Unsupported
        return written
    style = _style(text)
    if style == "plain":
        if _MAYBE_NOT_STRING.fullmatch(text) and not _reads_back(text, text):
            raise _Unsupported
        written = text
    elif style == "single":
        written = "'" + text.replace("'", "''") + "'"
        if "\n" in text:
            return _folded_breaks(written, indent)
    else:
        written = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if len(_STRINGS) > _CACHE_LIMIT:
        _STRINGS.clear()
    _STRINGS[text] = written
    return written


def _reads_back(written: str, text: str) -> bool:
    """Whether tiops' YAML 1.2 reader (yaml-rs, as tiops.yamlio.parse_yaml uses it) reads ``written`` as ``text``."""
    try:
        return bool(yaml_rs.loads("k: " + written, parse_datetime=False) == {"k": text})
    except (yaml_rs.YAMLDecodeError, ValueError, TypeError, OverflowError):
        return False


# libyaml's escapes in double quotes (yaml_emitter_write_double_quoted), upper-case hex.
_ESCAPES = {"\0": "\\0", "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f",
            "\r": "\\r", "\x1b": "\\e", '"': '\\"', "\\": "\\\\", "\x85": "\\N", "\u2028": "\\L",
            "\u2029": "\\P"}
_UNUSUAL_OR_ESCAPED = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd]")  # and \\n " \\


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    escaped = _ESCAPES.get(char)
    if escaped is not None:
        return escaped
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        raise _Unsupported  # a lone surrogate is no text at all; PyYAML refuses it
    if code <= 0xFF:
        return f"\\x{code:02X}"
    if code <= 0xFFFF:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


def _folded_breaks(quoted: str, indent: int) -> str:
    """libyaml's single-quoted line breaks: a run of n breaks is n + 1 of them, then the indentation."""
    return re.sub(r"\n+", lambda run: run.group() + "\n" + " " * indent, quoted)


def _style(text: str) -> str:
    """"plain", "single" or "double", as libyaml chooses for a value in block context."""
    if not text:
        return "single"  # '' reads as null when plain
    for pattern in _RESOLVERS.get(text[0], ()):
        if pattern.match(text):
            return "single" if _single_allowed(text) else "double"
    if _plain_allowed(text):
        return "plain"
    return "single" if _single_allowed(text) else "double"


def _single_allowed(text: str) -> bool:
    # A space before or after a line break cannot be kept in single quotes.
    return "\n" not in text or (" \n" not in text and "\n " not in text)


def _plain_allowed(text: str) -> bool:
    if text[0] == " " or text[-1] == " " or "\n" in text:
        return False
    first = text[0]
    if first in _FIRST_INDICATORS:
        return False
    if first in "-?:" and (len(text) == 1 or text[1] == " "):
        return False
    if text.startswith(("---", "...")):
        return False
    return not (": " in text or " #" in text or text[-1] == ":")
