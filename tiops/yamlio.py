"""YAML and JSON input: the only module that imports a YAML library.

Loading is split in two on purpose (measured in docs/performance.md):

* :func:`parse_yaml` reads YAML 1.2 with yaml-rs (Rust): ~25x faster than
  PyYAML's C loader, and YAML 1.2 keeps ``no``/``on``/``NO`` as strings (country
  codes matter in intel). Timestamps stay the exact text written. yaml-rs reads a few
  number spellings as YAML 1.1 did (``1_000``, ``0b101``), which the YAML 1.2 core schema
  reads as text (section 10.3.2): a file with one is refused (TI116), found by two C
  searches over the text (:func:`_refuse_ambiguous_numbers`).
* Positions are needed only for files that have findings, so
  :class:`PositionIndex` composes a node tree with PyYAML's C composer on demand
  (it works for JSON too) and maps a property path to a line and column.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import yaml_rs

from tiops.lazyregex import LazyPattern
from tiops.limits import MAX_NESTING_DEPTH, StructureProblem, check_structure
from tiops.memory import NotShareable, shared_document
from tiops.outputs import replace_whole

if TYPE_CHECKING:
    import yaml
# PyYAML is imported inside the functions that use it (events, positions, dumps, list edits):
# yaml_rs parses every document, and importing PyYAML is about 11 ms of each command's start.

# An alias bomb expands a few lines into millions of nodes. Real intel files
# never need more than a handful of alias replays.
_ALIAS_LIMITS = yaml_rs.AliasLimits(max_total_replayed_events=100_000, max_replay_stack_depth=16)
_POSITION = re.compile(r"line (\d+), column (\d+)")
_MARKER = re.compile(r"(?m)^(---|\.\.\.)(\s|$)")
_TAG = re.compile(r"Invalid tag: '([^']*)'")
# Block nesting needs indentation or "- "/"? " indicators in front of a line's content, about
# one column per level: a line with fewer than this many of them in front cannot start a
# document deeper than the limit. Only files that have such a line get the exact (slower)
# depth check before yaml-rs reads them; yaml-rs crashes the process on block nesting some
# ten thousand levels deep, where it should report an error. Searched as "a newline, then
# the run" (plus a match at the start): a literal first character lets the regex engine
# skip from newline to newline, five times faster than a multi-line "^" on 48k files.
_DEEP_RUN = rf"[ \t?:-]{{{MAX_NESTING_DEPTH // 2}}}"
_DEEP_INDENT_AT_START = re.compile(_DEEP_RUN)
_DEEP_INDENT_AFTER_NEWLINE = re.compile(rf"\n{_DEEP_RUN}")
# Where either of the two checks above could match after a newline (a document marker
# can only start a line: at the start of the text or after one). One search over the
# newlines clears the usual file of both; only a file it finds pays for the exact tests.
_MARKER_OR_DEEP_AFTER_NEWLINE = re.compile(rf"\n(?:---|\.\.\.|{_DEEP_RUN})")
_MARKERS = ("---", "...")
# Characters outside YAML 1.2's c-printable (section 5.1), tab, line feed and carriage return aside.
_NOT_PRINTABLE = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")
# The printable ASCII characters: what is left of an ASCII text without them is its control characters.
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))


def _may_hold_unprintable(text: str) -> bool:
    """Whether ``text`` may hold a character outside c-printable: False for an ASCII text whose only
    control characters are tab, line feed and carriage return, the usual intel file, told apart by
    one C pass (a regular expression over every file cost about 5 % of a 100k-object compile)."""
    if not text.isascii():
        return True
    return bool(text.encode("ascii").translate(None, _PRINTABLE_ASCII).strip(b"\t\n\r"))


# YAML 1.1 (libyaml) reads these as line breaks, YAML 1.2 as content; a BOM past the start is content to yaml-rs.
_LIBYAML_ONLY_BREAKS = re.compile("[\x85\u2028\u2029\ufeff]")

# --- Numbers yaml-rs reads where YAML 1.2 reads text (TI116) ------------------------------
# The YAML 1.2 core schema (section 10.3.2) resolves a plain scalar to an integer or a float only
# when it is spelled as below (.inf and .nan aside); everything else is a string.
_CORE_NUMBER = LazyPattern(
    r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+"
    r"|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
# What yaml-rs reads as a number: the core schema's spellings widened much as YAML 1.1 widened
# them, as section 10.3.2 does not: "_" anywhere among the digits (1_000, 1_0.5, _1, 1_),
# binary (0b101), upper-case radix letters (0X1F, 0O17) and a sign before a radix (+0x1F, -0o17).
# Checked against yaml-rs 0.1.6 on some million generated spellings (tests/test_yamlio.py keeps
# a sample): where it reads a number and the core schema a string, this matches and
# _CORE_NUMBER does not. (Mixed-case .iNf and .nAn are the one other difference: every
# non-finite number is refused in intel anyway, TI220.)
_YAML_RS_NUMBER_SOURCE = (
    r"[-+]?(?:0[xX][0-9a-fA-F_]*[0-9a-fA-F][0-9a-fA-F_]*|0[oO][0-7_]*[0-7][0-7_]*|0[bB][01_]*[01][01_]*"
    r"|(?:[0-9_]*[0-9][0-9_]*(?:\.[0-9_]*)?|[0-9_]*\.[0-9_]*[0-9][0-9_]*)(?:[eE][-+]?[0-9_]*[0-9][0-9_]*)?)")
_YAML_RS_NUMBER = LazyPattern(_YAML_RS_NUMBER_SOURCE)
# The prefilter, two searches at C speed over every text (about 1.5 us for a 1.2 kB intel file,
# docs/performance.md): such a number holds a "_" that is not followed by a lower-case letter
# other than e (the "_" of a property name is: created_by_ref), or starts with a radix prefix
# where a plain scalar can start: after a blank, a flow indicator, ":" or a sign (a hexadecimal
# 0xa_b has no "_" the first search finds). A "-" there also finds the "-0b" of a UUID now and
# then (one more lookbehind for the sign's own left side costs more than those lines); only the
# lines either finds something on are looked at.
_UNDERSCORE_OUTSIDE_A_NAME = re.compile(r"_(?![a-df-z])")
_RADIX_PREFIX_AT_SCALAR_START = re.compile(r"0[bBxXoO](?<![^\s\[{,:+-]0.)")
# A whole yaml-rs number where a plain scalar can stand: after a blank, an indicator of flow
# collections or ":" (a JSON-like key), and before the end of the line, a comment, ":" or a
# flow indicator. Which of them are plain scalars is for libyaml's events to say.
_NUMBER_TOKEN = LazyPattern(
    rf"(?:(?<=[\s\[{{,:])|^)(?:{_YAML_RS_NUMBER_SOURCE})(?=[ \t\r]*(?:[,\]}}#:\n]|$))", re.MULTILINE)
_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


@dataclass(frozen=True)
class YamlProblem(Exception):
    """Why a document could not be read, with the finding code that says so."""

    code: str
    message: str
    line: int = 1
    column: int = 1


def parse_yaml(text: str, *, shared: bool = False) -> Any:
    """Parse one YAML 1.2 document; raise :class:`YamlProblem` on any defect.

    ``shared``: property names and recurring values come back as shared strings
    (tiops.memory.shared_document), for data that stays in memory; that walk checks
    the structure too, so a clean document costs one walk, not two.
    """
    if text.startswith("\ufeff"):
        # A byte order mark may start a YAML stream (1.2 section 5.2); yaml-rs read it as part of the first key.
        text = text[1:]
    if "\0" in text:
        # YAML allows no NUL (1.2 section 5.1, c-printable), and yaml-rs stops reading at one:
        # everything after it would be dropped without a word.
        at = text.index("\0")
        line = text.count("\n", 0, at) + 1
        raise YamlProblem("TI100", "a NUL character (U+0000), which YAML does not allow (YAML 1.2 section 5.1); "
                                   "remove it or write it escaped inside a double-quoted string (\"\\0\")",
                          line, at - (text.rfind("\n", 0, at) + 1) + 1)
    if _may_hold_unprintable(text) and (bad := _NOT_PRINTABLE.search(text)) is not None:
        # Nor any other character outside c-printable: yaml-rs reads them into values without a word
        # (an ESC that recolours a reviewer's terminal), and libyaml, which checks tags, refuses the
        # whole text, so a tag beside one would go unchecked.
        at = bad.start()
        raise YamlProblem("TI100", f"the character U+{ord(bad.group()):04X}, which YAML does not allow (YAML 1.2 "
                                   "section 5.1); remove it or write it escaped inside a double-quoted string "
                                   f"(\"\\u{ord(bad.group()):04x}\")", *_offset_position(text, at))
    if "!" in text:
        _refuse_explicit_tags(text)
    if (_MARKER_OR_DEEP_AFTER_NEWLINE.search(text) or text.startswith(_MARKERS)
            or _DEEP_INDENT_AT_START.match(text)):
        if ("---" in text or "..." in text) and _MARKER.search(text) and _document_count(text) > 1:
            # yaml-rs returns a stream of documents as a list, which would read as a bulk file.
            raise YamlProblem("TI105", "the file holds more than one YAML document", *_second_document(text))
        if _DEEP_INDENT_AT_START.match(text) or _DEEP_INDENT_AFTER_NEWLINE.search(text):
            _refuse_deep_blocks(text)
    try:
        value = yaml_rs.loads(text, parse_datetime=False, alias_limits=_ALIAS_LIMITS)
    except yaml_rs.YAMLDecodeError as error:
        raise _explain(text, str(error)) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as error:
        raise YamlProblem("TI100", f"cannot read YAML: {error}") from None
    # Numbers YAML 1.2 reads as text (TI116): two C searches clear the usual text, run here because
    # a function call for every text would cost about as much as they do.
    underscore, radix = _UNDERSCORE_OUTSIDE_A_NAME.search(text), _RADIX_PREFIX_AT_SCALAR_START.search(text)
    if underscore is not None or radix is not None:
        _refuse_ambiguous_numbers(text, [hit for hit in (underscore, radix) if hit is not None])
    if shared:
        try:
            return shared_document(value, MAX_NESTING_DEPTH)
        except NotShareable:
            pass  # the structure check below finds which key or level, and where
    _check_structure(value, text)
    return value


def _second_document(text: str) -> tuple[int, int]:
    """Line and column where the second document of a stream starts (its marker, or the first's end)."""
    seen = False
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith(("---", "...")) and (len(line) == 3 or line[3] in " \t\r"):
            if line.startswith("...") or seen:
                return number, 1
            seen = True
        elif line.strip() and not line.lstrip().startswith("#"):
            seen = True  # content: a "---" from here on starts another document
    return 1, 1


def _check_structure(value: Any, text: str | None) -> None:
    """Non-string keys and over-deep nesting become a problem at their position."""
    try:
        check_structure(value)
    except StructureProblem as problem:
        line, column = PositionIndex(text).position(problem.path) if text is not None else (1, 1)
        raise YamlProblem(problem.code, problem.message, line, column) from None


def _refuse_deep_blocks(text: str) -> None:
    """Count nesting with libyaml's events, which stop at 1,000 levels with an error, not a crash."""
    import yaml
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING_DEPTH:
                    mark = event.start_mark
                    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
                    raise YamlProblem("TI112", f"nested more than {MAX_NESTING_DEPTH} levels deep", line, column)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        if "nesting depth" in str(error):
            raise YamlProblem("TI112", f"nested more than {MAX_NESTING_DEPTH} levels deep", line, column) from None
        raise YamlProblem("TI100", str(getattr(error, "problem", None) or error).splitlines()[0], line, column) from None


# YAML 1.2 core schema tags (spec section 10.3); anything else, from !!python/object
# to a local !custom tag, could mean something tiops would silently ignore.
_ALLOWED_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")
) | {"!"}


def _refuse_explicit_tags(text: str) -> None:
    """yaml-rs drops tags it does not know without a word, so look for explicit ones first."""
    import yaml
    # Same length, so positions hold: a character libyaml reads as a line break (YAML 1.1) but
    # yaml-rs as content (1.2) would stop libyaml before the tags after it.
    scanned = _LIBYAML_ONLY_BREAKS.sub("_", text)
    try:
        for event in yaml.parse(scanned, Loader=yaml.CSafeLoader):
            tag = getattr(event, "tag", None)
            if tag is not None and tag not in _ALLOWED_TAGS:
                mark = event.start_mark
                line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
                raise YamlProblem("TI102", f"tag '{tag}' is not allowed", line, column)
            if tag in _NUMBER_TAGS and isinstance(event, yaml.ScalarEvent) and _is_ambiguous_event(event):
                # "!!int 1_000" is 1000 to yaml-rs and no integer to YAML 1.2 (section 10.3.2): the
                # prefilter of the plain ones (_refuse_ambiguous_numbers) does not look inside quotes.
                raise _ambiguous_number_problem(*_start(event), event.value, tag, 0)
    except yaml.YAMLError as error:
        # yaml-rs drops a tag it knows (!!set, !!binary, !!python/...) without a word, so a text whose
        # tags cannot be checked is not read: a syntax error yaml-rs also finds is reported in its words.
        with contextlib.suppress(yaml_rs.YAMLDecodeError, ValueError, TypeError, OverflowError, RecursionError):
            yaml_rs.loads(text, parse_datetime=False, alias_limits=_ALIAS_LIMITS)
            mark = getattr(error, "problem_mark", None)
            line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            raise YamlProblem("TI100", "cannot check this file's tags: "
                              + str(getattr(error, "problem", None) or error).splitlines()[0], line, column) from None


def _is_ambiguous_number(spelling: str) -> bool:
    """Whether yaml-rs reads ``spelling`` (a plain scalar) as a number that YAML 1.2 reads as a string."""
    return _YAML_RS_NUMBER.fullmatch(spelling) is not None and _CORE_NUMBER.fullmatch(spelling) is None


def _refuse_ambiguous_numbers(text: str, firsts: list[re.Match[str]]) -> None:
    """Raise TI116 at the first plain scalar yaml-rs read as a number where YAML 1.2 reads text.

    yaml-rs resolves plain scalars with number spellings much as YAML 1.1 did (``x_count: 1_000``
    is 1000, ``name: 0b101`` is 5), where the YAML 1.2 core schema (section 10.3.2) and every
    1.2 tool read the text: the value would change without a word. yaml-rs cannot be told to
    use the core schema, so the file is refused, as one with a duplicate key is. ``firsts``: the
    first hit of each prefilter search that found one (:data:`_UNDERSCORE_OUTSIDE_A_NAME`,
    :data:`_RADIX_PREFIX_AT_SCALAR_START`, run by :func:`parse_yaml` on every text); the lines they
    find are searched for a whole number (:data:`_NUMBER_TOKEN`), and only a text with one is read
    again with libyaml's events, which tell a plain scalar from one in quotes, a block scalar or a comment.
    """
    candidates = _number_tokens(text, firsts)
    if candidates:
        found = _ambiguous_scalars(text, candidates)
        if found:
            raise _ambiguous_number_problem(*found[0], len(found) - 1)


def _number_tokens(text: str, firsts: list[re.Match[str]]) -> list[tuple[int, str]]:
    """(offset, spelling) of the whole numbers yaml-rs reads where YAML 1.2 reads text, on each line
    a prefilter search finds something on, from the first hit of each search on."""
    found: set[tuple[int, str]] = set()
    lines_seen: set[int] = set()
    for first in firsts:
        hit: re.Match[str] | None = first
        while hit is not None:
            line_start = text.rfind("\n", 0, hit.start()) + 1
            line_end = text.find("\n", hit.end())
            line_end = len(text) if line_end < 0 else line_end
            if line_start not in lines_seen:
                lines_seen.add(line_start)
                found.update((token.start(), token.group()) for token in _NUMBER_TOKEN.finditer(text, line_start, line_end)
                             if _is_ambiguous_number(token.group()))
            hit = first.re.search(text, line_end + 1)
    return sorted(found)


def _ambiguous_scalars(text: str, candidates: list[tuple[int, str]]) -> list[tuple[int, int, str, str | None]]:
    """(line, column, spelling, tag) of the plain (or !!int, !!float) scalars among ``candidates``'
    files that yaml-rs reads as numbers YAML 1.2 reads as text, in document order, from libyaml's events."""
    import yaml
    # Same length, so positions hold (as for the tags); "~" can make no number of a neighbour.
    scanned = _LIBYAML_ONLY_BREAKS.sub("~", text)
    found: list[tuple[int, int, str, str | None]] = []
    try:
        for event in yaml.parse(scanned, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.ScalarEvent) and _is_ambiguous_event(event):
                found.append((*_start(event), event.value, event.tag))
    except yaml.YAMLError:
        # A text yaml-rs reads and libyaml does not: yaml-rs itself says which candidates are plain scalars.
        return [(*_offset_position(text, offset), spelling, None) for offset, spelling in _yaml_rs_plain(text, candidates)]
    return found


def _yaml_rs_plain(text: str, candidates: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The ``candidates`` that yaml-rs reads as a whole plain scalar, for a text libyaml cannot parse.

    libyaml fails on YAML 1.2 it does not know, ``[::1]`` among them (an IPv6 address in a flow
    sequence: a ":" starts a plain scalar in 1.2, is a value indicator in 1.1), and a candidate is
    only a number-like word where a plain scalar can start: ``2021_1`` in ``description: builds
    2021_1, 2022_2`` is part of the text. Each candidate is replaced by a word of letters of its
    own and the text read again: a candidate whose word comes back as a whole key or value stood
    alone. When that reading fails too, every candidate is taken: a value changed without a word
    is the worse mistake.
    """
    marks: dict[str, tuple[int, str]] = {}
    pieces: list[str] = []
    previous = 0
    for offset, spelling in candidates:
        number = len(marks)
        word = "tiopsq"
        while True:  # letters only: a word in base 26, never a number nor a YAML word
            word += "abcdefghijklmnopqrstuvwxyz"[number % 26]
            number //= 26
            if not number:
                break
        while word in text:
            word += "q"
        marks[word] = (offset, spelling)
        pieces += [text[previous:offset], word]
        previous = offset + len(spelling)
    pieces.append(text[previous:])
    try:
        value = yaml_rs.loads("".join(pieces), parse_datetime=False)
    except (yaml_rs.YAMLDecodeError, ValueError, TypeError, OverflowError, RecursionError):
        return candidates
    standing: list[tuple[int, str]] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack += item.keys()
            stack += item.values()
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, str) and item in marks:
            standing.append(marks[item])
    return sorted(standing)


def _is_ambiguous_event(event: Any) -> bool:
    """Whether a libyaml scalar event is one yaml-rs reads as a number that YAML 1.2 does not
    spell so: a plain scalar without a tag, or any scalar tagged !!int or !!float (libyaml
    writes the plain style as '' and the pure-Python parser as None)."""
    if event.tag is None:
        return not event.style and _is_ambiguous_number(event.value)
    return event.tag in _NUMBER_TAGS and _is_ambiguous_number(event.value)


def _start(event: yaml.Event) -> tuple[int, int]:
    """The 1-based line and column where a libyaml event starts."""
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _ambiguous_number_problem(line: int, column: int, spelling: str, tag: str | None, more: int) -> YamlProblem:
    """TI116 for ``spelling`` at ``line``:``column``, saying what yaml-rs made of it and how to write either reading."""
    try:
        read: Any = yaml_rs.loads(f"[{spelling}]", parse_datetime=False)  # only number characters: one flow item
        value = read[0]
    except (yaml_rs.YAMLDecodeError, ValueError, TypeError, OverflowError):
        value = None
    number = f"the number {value!r}" if isinstance(value, (int, float)) else "a number"
    written = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    others = f" ({more} more such value{'s' if more > 1 else ''} in this file)" if more else ""
    if tag is not None:
        kind = tag.rpartition(":")[2]
        return YamlProblem("TI116", f"!!{kind} {spelling} is read as {number}, but YAML 1.2 spells no {kind} so "
                                    f"(core schema, section 10.3.2)" + (f": write {value!r}" if written else "")
                           + others, line, column)
    return YamlProblem("TI116", f"{spelling} is read as {number}, but YAML 1.2 reads it as the text '{spelling}' "
                                f"(core schema, section 10.3.2): quote it ('{spelling}') if it is text"
                       + (f"; if it is a number, write {value!r}" if written else "") + others, line, column)


def _document_count(text: str) -> int:
    import yaml
    try:
        return sum(1 for _ in yaml.compose_all(text, Loader=yaml.CSafeLoader))
    except yaml.YAMLError:
        return 1


def json_kind(value: Any) -> str:
    """The JSON type of a parsed value, as a message to a sender names it (RFC 8259 section 3)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def parse_json(data: bytes) -> Any:
    """Parse JSON; integers stay exact however large (for the STIX integer range check)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(data) > 1 and (data[0] == 0 or data[1] == 0)):
        # RFC 8259 section 8.1: JSON exchanged between systems is UTF-8; a UTF-16 or UTF-32
        # export (its byte order mark, or a NUL beside the first character) is said to be one.
        raise YamlProblem("TI100", "the file is UTF-16 or UTF-32, not UTF-8: JSON between systems is UTF-8 "
                                   "(RFC 8259 section 8.1); save it as UTF-8", 1, 1)
    if data.startswith(_UTF8_BOM):
        # RFC 8259 section 8.1: a parser MAY ignore a byte order mark, and exports saved on
        # Windows often carry one; orjson refuses it. Positions past line 1 are unchanged.
        data = data[len(_UTF8_BOM):]
    try:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            if "infinity when parsed as double" not in error.msg:
                raise
            # An integer too long for a double (RFC 8259 allows any length): the standard library reads
            # it exactly and the integer range check reports it on its object, not on the whole file.
            try:
                value = json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
            except (ValueError, RecursionError):
                raise error from None
    except orjson.JSONDecodeError as error:
        if "depth limit" in error.msg or "recursion" in error.msg:
            raise YamlProblem("TI112", f"nested more than {MAX_NESTING_DEPTH} levels deep",
                              error.lineno, error.colno) from None
        raise YamlProblem("TI100", f"invalid JSON: {error.msg}", error.lineno, error.colno) from None
    try:
        check_structure(value)
    except StructureProblem as problem:
        line, column = PositionIndex(data.decode("utf-8", "replace")).position(problem.path)
        raise YamlProblem(problem.code, problem.message, line, column) from None
    if _LONG_DIGITS.search(data):
        # orjson reads an integer beyond 64 bits (19 digits or more) as a float, which
        # would pass as a float; the standard library keeps it an int, which the range
        # check reports. Only inputs with such a run of digits pay for the second parse.
        with contextlib.suppress(ValueError, RecursionError):  # else keep what orjson read
            value = json.loads(data, parse_constant=_refuse_constant)
    return value


_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_UTF8_BOM = b"\xef\xbb\xbf"


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(text)
    return number


def _refuse_constant(name: str) -> Any:
    raise YamlProblem("TI100", f"invalid JSON: {name} is not a JSON number (RFC 8259 section 6)")


def _explain(text: str, raw: str) -> YamlProblem:
    first_line = raw.splitlines()[0] if raw else "unknown error"
    if raw.startswith("duplicate mapping key"):
        named = re.match(r"duplicate mapping key: '(.*)'$", first_line)
        line, column = _duplicate_key_position(text, named.group(1) if named else None)
        return YamlProblem("TI101", first_line, line, column)
    if match := _TAG.search(raw):
        offset = text.find(match.group(1))
        line, column = _offset_position(text, offset) if offset >= 0 else (1, 1)
        return YamlProblem("TI102", f"tag '{match.group(1)}' is not allowed", line, column)
    if "alias" in raw and "limit" in raw:
        offset = text.find("*")
        line, column = _offset_position(text, offset) if offset >= 0 else (1, 1)
        return YamlProblem("TI103", f"aliases expand too far ({first_line})", line, column)
    if "recursion limit" in raw:
        line, column = (int(match.group(1)), int(match.group(2))) if (match := _POSITION.search(raw)) else (1, 1)
        return YamlProblem("TI112", f"nested more than {MAX_NESTING_DEPTH} levels deep", line, column)
    if match := _POSITION.search(raw):
        detail = raw.splitlines()[-1].strip() if "\n" in raw else first_line
        line, column = int(match.group(1)), int(match.group(2))
        if "tab" in detail:
            line, column = _tab_position(text, line) or (line, column)
        elif (tab := _tab_position(text, line)) is not None and tab[0] == line:
            # The line the parser stopped at is indented with a tab: that is what to fix.
            line, column = tab
            detail += " (a tab indents this line; YAML indents with spaces only)"
        return YamlProblem("TI100", detail, line, column)
    return YamlProblem("TI100", first_line)


def _tab_position(text: str, from_line: int) -> tuple[int, int] | None:
    """The first tab in a line's indentation from ``from_line`` on (YAML 1.2 section 6.1: indentation
    is spaces only). yaml-rs reports where the scalar or block holding it started, lines before."""
    lines = text.split("\n")
    for number in range(max(from_line, 1), len(lines) + 1):
        indentation = len(lines[number - 1]) - len(lines[number - 1].lstrip(" \t"))
        column = lines[number - 1].find("\t", 0, indentation)
        if column >= 0:
            return number, column + 1
    return None


def _offset_position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _duplicate_key_position(text: str, key: str | None = None) -> tuple[int, int]:
    """yaml-rs names the key but not where it is: the second of two equal keys in one mapping.

    Found in libyaml's node tree, comparing keys as text as yaml-rs does (it reads no timestamps,
    so ``2025-01-01`` and ``"2025-01-01"`` are one key); ruamel.yaml, which constructs them as two
    values, is the fallback for a text libyaml cannot compose.
    """
    import yaml
    with contextlib.suppress(yaml.YAMLError):
        root = yaml.compose(text, Loader=yaml.CSafeLoader)
        first: tuple[int, int] | None = None
        stack = [root] if root is not None else []
        seen_nodes: set[int] = set()
        while stack:
            node = stack.pop()
            if id(node) in seen_nodes:
                continue
            seen_nodes.add(id(node))
            if isinstance(node, yaml.MappingNode):
                keys: set[str] = set()
                for key_node, value in node.value:
                    if isinstance(key_node, yaml.ScalarNode):
                        if key_node.value in keys and (key is None or key_node.value == key):
                            found = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                            first = found if first is None else min(first, found)
                        keys.add(key_node.value)
                    stack.extend((key_node, value))
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)
        if first is not None:
            return first
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import DuplicateKeyError

    try:
        YAML(typ="safe", pure=True).load(text)
    except DuplicateKeyError as error:
        mark = error.problem_mark
        if mark is not None:
            return mark.line + 1, mark.column + 1
    except Exception:
        pass
    return 1, 1


class PositionIndex:
    """Maps a property path inside a YAML or JSON file to a 1-based line and column.

    A path names mapping keys and list indexes, like ``(3, "external_references", 0, "url")``.
    A path that does not exist in the file (a missing property) resolves to the
    deepest part that does exist, which is where the fix goes.
    """

    def __init__(self, text: str) -> None:
        import yaml
        try:
            self._root: yaml.Node | None = yaml.compose(text, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            self._root = None
        # Where each alias stands (``*types``), by the path that reaches it: composing gives an
        # alias the very node of its anchor, whose position is the first object's, not this one's.
        self._aliases: dict[tuple[str | int, ...], Any] = {}
        if self._root is not None and "&" in text and "*" in text:
            self._find_aliases(text)

    def _find_aliases(self, text: str) -> None:
        import yaml

        marks = iter([event.start_mark for event in yaml.parse(text, Loader=yaml.CSafeLoader)
                      if isinstance(event, yaml.AliasEvent)])
        seen: set[int] = set()

        def walk(node: yaml.Node, path: tuple[str | int, ...] | None) -> None:
            # In document order, as the events came: a node met again is the next alias.
            if id(node) in seen:
                mark = next(marks, None)
                if path is not None and mark is not None:
                    self._aliases[path] = mark
                return
            seen.add(id(node))
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    walk(key, None)
                    walk(value, None if path is None or not isinstance(key, yaml.ScalarNode) else (*path, key.value))
            elif isinstance(node, yaml.SequenceNode):
                for index, item in enumerate(node.value):
                    walk(item, None if path is None else (*path, index))

        if self._root is not None:
            walk(self._root, ())

    def position(self, path: Sequence[str | int]) -> tuple[int, int]:
        import yaml
        node = self._root
        if node is None:
            return (1, 1)
        mark = node.start_mark
        reached: tuple[str | int, ...] = ()
        for depth, part in enumerate(path, 1):
            child: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                        mark = key.start_mark
                        child = value
                        reached = (*reached, key.value)
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                child = node.value[part]
                mark = child.start_mark
                reached = (*reached, part)
            if child is None:
                break
            if reached in self._aliases and (depth < len(path) or isinstance(node, yaml.SequenceNode)):
                # What is inside an alias is written at its anchor, elsewhere: the alias is this
                # object's place for it (a property whose value is one stays at its key).
                mark = self._aliases[reached]
                break
            node = child
        return (mark.line + 1, mark.column + 1)


# --- Output --------------------------------------------------------------------------


def dump_yaml(value: Any) -> str:
    """Block-style YAML that reads back (with :func:`parse_yaml`) as exactly ``value``.

    PyYAML quotes every string that YAML 1.1 would read as something else (timestamps,
    ``no``, ``1_000``), which is a superset of what YAML 1.2 needs. A value that would
    still not read back identically is written as JSON, which YAML 1.2 reads as is.
    The shapes tiops writes most are written by :mod:`tiops.yamlemit` instead: the
    same text, several times faster, and only where it is sure to read back as written.
    """
    import yaml

    # Imported here: only commands that write YAML need it, and making its patterns costs ~10 ms.
    from tiops.yamlemit import block_yaml

    fast = block_yaml(value)
    if fast is not None:
        return fast
    text: str = yaml.dump(value, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True,
                          default_flow_style=False, width=1_000_000)
    try:
        if parse_yaml(text) == value:
            return text
    except YamlProblem:
        pass
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n"


def load_roundtrip(text: str) -> Any:
    """A ruamel.yaml document that keeps comments, key order, quotes and indentation when dumped."""
    from ruamel.yaml.util import load_yaml_guess_indent

    _, indent, offset = load_yaml_guess_indent(text)
    document = _roundtrip_yaml(indent or 2, offset or 0).load(text)
    return _RoundTrip(document, indent or 2, offset or 0)


@dataclass
class _RoundTrip:
    document: Any
    indent: int
    offset: int


def roundtrip_root(handle: Any) -> Any:
    """The editable document inside what :func:`load_roundtrip` returned."""
    return handle.document


def dump_roundtrip(handle: Any) -> str:
    """Write back a document read with :func:`load_roundtrip`, changes included."""
    import io

    buffer = io.StringIO()
    _roundtrip_yaml(handle.indent, handle.offset).dump(handle.document, buffer)
    return buffer.getvalue()


def _roundtrip_yaml(indent: int, offset: int) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.scalarstring import PlainScalarString

    yaml_rt = YAML(typ="rt")
    # Timestamps stay the text written, as everywhere in tiops (YAML 1.2 has no timestamp type).
    yaml_rt.constructor.add_constructor(
        "tag:yaml.org,2002:timestamp", lambda loader, node: PlainScalarString(loader.construct_scalar(node))
    )
    yaml_rt.preserve_quotes = True
    yaml_rt.width = 1_000_000
    yaml_rt.indent(mapping=2, sequence=indent, offset=offset)
    return yaml_rt


ListEdit = tuple[Sequence[str | int], str, list[str] | None]
_PLAIN_SCALAR = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ ./+@-]*$")
_YAML_WORDS = frozenset({"null", "true", "false", "yes", "no", "on", "off", "y", "n", "~"})


def set_list_properties(text: str, edits: Sequence[ListEdit]) -> str:
    """Set (or, with ``None``, remove) list properties of mappings inside a YAML text.

    Each edit names the mapping by its path in the document, the key, and the new items.
    Only the bytes of that property change: comments, quoting, key order, indentation
    and every other object stay exactly as written, so a reviewer's diff shows the edit
    and nothing else. A block list stays a block list; a flow list stays a flow list.
    """
    import yaml
    root = yaml.compose(text, Loader=yaml.CSafeLoader)
    replacements: list[tuple[int, int, str]] = []
    for path, key, items in edits:
        mapping: yaml.Node | None = root
        for part in path:
            mapping = _child(mapping, part)
        if not isinstance(mapping, yaml.MappingNode) or mapping.flow_style:
            raise ValueError(f"{'/'.join(map(str, path)) or 'the document'} is not a block mapping")
        replacements.append(_list_replacement(text, mapping, key, items))
    for start, end, new in sorted(replacements, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _child(node: yaml.Node | None, part: str | int) -> yaml.Node:
    import yaml
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        child: yaml.Node = node.value[part]
        return child
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                found: yaml.Node = value
                return found
    raise ValueError(f"no {part!r} in the document")


def _list_replacement(text: str, mapping: yaml.MappingNode, key: str, items: list[str] | None) -> tuple[int, int, str]:
    import yaml
    entries = {k.value: (k, v) for k, v in mapping.value if isinstance(k, yaml.ScalarNode)}
    if key in entries:
        key_node, value = entries[key]
        end = _value_end(text, value)
        if items is None:  # remove the whole "key: value" lines
            start = text.rfind("\n", 0, key_node.start_mark.index) + 1
            return start, min(_line_end(text, end) + 1, len(text)), ""
        if isinstance(value, yaml.SequenceNode) and not value.flow_style and value.value:
            # Up to the end of the last item's line, so its comment moves with it.
            return value.start_mark.index, _line_end(text, end), _block_list(text, value, items)
        return value.start_mark.index, end, _flow(items)
    if items is None:
        return 0, 0, ""
    last_key, last_value = mapping.value[-1]
    insert_at = _value_end(text, last_value)
    return insert_at, insert_at, f"\n{' ' * last_key.start_mark.column}{key}: {_flow(items)}"


def _block_list(text: str, node: yaml.SequenceNode, items: list[str]) -> str:
    """The new text of a block list: items kept keep their own line (and its comment)."""
    import yaml
    indent = " " * node.start_mark.column
    line_of: dict[str, str] = {}
    for item in node.value:
        if isinstance(item, yaml.ScalarNode):
            line_start = text.rfind("\n", 0, item.start_mark.index) + 1
            line_end = _line_end(text, item.end_mark.index)
            line_of.setdefault(item.value, text[line_start:line_end].strip())
    return f"\n{indent}".join(line_of.get(item) or f"- {_scalar(item)}" for item in items)


def _line_end(text: str, index: int) -> int:
    found = text.find("\n", index)
    return len(text) if found < 0 else found


def _value_end(text: str, node: yaml.Node) -> int:
    """Where a value's own text ends (block collections' end marks run into the next line)."""
    import yaml
    end = node.end_mark.index
    while end > node.start_mark.index and text[end - 1] in " \t\r\n":
        end -= 1
    if isinstance(node, yaml.SequenceNode | yaml.MappingNode) and not node.flow_style and node.value:
        last = node.value[-1]
        end = _value_end(text, last[1] if isinstance(last, tuple) else last)
    return end


def _scalar(item: str) -> str:
    # "_1" starts with no digit and yaml-rs reads it as 1 all the same (TI116): quoted like "1_0".
    if (_PLAIN_SCALAR.match(item) and item.lower() not in _YAML_WORDS and not item[0].isdigit()
            and _YAML_RS_NUMBER.fullmatch(item) is None):
        return item
    return orjson.dumps(item).decode()  # a JSON string is a valid YAML double-quoted scalar


def _flow(items: list[str]) -> str:
    return "[" + ", ".join(_scalar(item) for item in items) + "]"


# One inline relationship entry to add: its TYPE: TARGET pair, then further properties.
MappingEntry = list[tuple[str, str]]


def append_mapping_items(text: str, path: Sequence[str | int], key: str, entries: Sequence[MappingEntry]) -> str:
    """Append block-mapping items to the list under ``key`` of the mapping at ``path``.

    A text edit like :func:`set_list_properties`: the list (created when missing) gets
    the new items after its last one, in its own indentation; nothing else changes.
    """
    import yaml
    root = yaml.compose(text, Loader=yaml.CSafeLoader)
    mapping = _block_mapping(root, path)
    found = {k.value: v for k, v in mapping.value if isinstance(k, yaml.ScalarNode)}
    value = found.get(key)
    # A block list, or an empty one ("key: []"), takes new items; anything else is left to the author.
    if value is not None and not (isinstance(value, yaml.SequenceNode) and (not value.value or not value.flow_style)):
        raise ValueError(f"'{key}' is not a block list")
    if value is not None and value.value:
        column = value.start_mark.column
        insert_at = _line_end(text, _value_end(text, value))  # after the last item's comment
        prefix = ""
    else:
        key_column = mapping.value[0][0].start_mark.column
        column = key_column + 2
        if value is not None:  # "key: []": replace the empty list
            start, end = value.start_mark.index, _value_end(text, value)
            items = "".join(f"\n{_mapping_item(entry, column)}" for entry in entries)
            return text[:start].rstrip(" ") + items + text[end:]
        insert_at = _line_end(text, _value_end(text, mapping.value[-1][1]))
        prefix = f"\n{' ' * key_column}{key}:"
    added = prefix + "".join(f"\n{_mapping_item(entry, column)}" for entry in entries)
    return text[:insert_at] + added + text[insert_at:]


def remove_list_items(text: str, path: Sequence[str | int], key: str, indexes: Sequence[int]) -> str:
    """Remove items (by index) of the block list under ``key``; the key goes when the list empties."""
    import yaml
    root = yaml.compose(text, Loader=yaml.CSafeLoader)
    mapping = _block_mapping(root, path)
    entries = {k.value: (k, v) for k, v in mapping.value if isinstance(k, yaml.ScalarNode)}
    if key not in entries:
        raise ValueError(f"no '{key}' in the document")
    key_node, value = entries[key]
    if not isinstance(value, yaml.SequenceNode) or value.flow_style:
        raise ValueError(f"'{key}' is not a block list")
    if set(range(len(value.value))) <= set(indexes):
        start = text.rfind("\n", 0, key_node.start_mark.index) + 1
        return text[:start] + text[min(_line_end(text, _value_end(text, value)) + 1, len(text)):]
    ranges = []
    for index in sorted(set(indexes)):
        item = value.value[index]
        start = text.rfind("\n", 0, item.start_mark.index) + 1
        ranges.append((start, min(_line_end(text, _value_end(text, item)) + 1, len(text))))
    for start, end in reversed(ranges):  # from the end, so earlier offsets stay right
        text = text[:start] + text[end:]
    return text


def _block_mapping(root: yaml.Node | None, path: Sequence[str | int]) -> yaml.MappingNode:
    import yaml
    mapping = root
    for part in path:
        mapping = _child(mapping, part)
    if not isinstance(mapping, yaml.MappingNode) or mapping.flow_style or not mapping.value:
        raise ValueError(f"{'/'.join(map(str, path)) or 'the document'} is not a block mapping")
    return mapping


def _mapping_item(entry: MappingEntry, column: int) -> str:
    indent = " " * column
    lines = [f"{indent}- {name}: {_scalar(value)}" if i == 0 else f"{indent}  {name}: {_scalar(value)}"
             for i, (name, value) in enumerate(entry)]
    return "\n".join(lines)


def read_for_edit(path: Path) -> tuple[str, str]:
    """A file's text as the editing commands (tag, relate, bump) work on it, with line feeds, and the
    line break it was written with ("\r\n" or "\n"), to write it back with (:func:`write_edited`):
    they promise every byte they do not edit stays as written, the line breaks of a Windows editor too."""
    raw = path.read_bytes()
    first = raw.find(b"\n")
    newline = "\r\n" if first > 0 and raw[first - 1:first] == b"\r" else "\n"
    return raw.decode("utf-8").replace("\r\n", "\n"), newline


def write_edited(path: Path, text: str, newline: str = "\n") -> None:
    """``text`` (line feeds) into ``path`` with the line break the file was read with (:func:`read_for_edit`).

    Whole or not at all: written beside the file (a dot name, which loading skips) and renamed over
    it, so a full disk, a read-only folder or Ctrl-C leaves the file as it was, never cut short. A
    file-system error is a TiopsError naming the file (exit 1), not an internal error.
    """
    from tiops.errors import TiopsError

    data = (text if newline == "\n" else text.replace("\n", newline)).encode("utf-8")
    try:
        replace_whole(path, data, tag="editing")
    except OSError as error:
        raise TiopsError(f"cannot write {path}: {error.strerror or error}; the file is unchanged",
                         hint="Check that the folder is writable and the disk has room, then run the command "
                              "again.") from None
