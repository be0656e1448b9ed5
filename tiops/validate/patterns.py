"""STIX pattern validation: a fast, sound path for common patterns, the reference grammar for the rest.

The reference checker (``stix2patterns``, an ANTLR parser) costs roughly 0.4 ms a pattern,
far too slow for feeds of 100k indicators. Nearly every real indicator pattern has one
of a few simple shapes (STIX 2.1 section 9: one observation expression such as
``[ipv4-addr:value = '198.51.100.1']``, or a few comparisons or observations joined by
``AND``/``OR``), so a strict regular expression recognises those and accepts them
directly. The regular expression is *sound*: it accepts only patterns the reference
checker accepts (same lexical rules, same hash checks); everything it does not
recognise, valid or not, goes to the reference checker, whose messages are then
reworded for people.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from tiops.lazyregex import LazyPattern

__all__ = ["clear_pattern_cache", "pattern_errors"]

# Distinct (pattern, spec_version) results remembered: bulk feeds repeat patterns, and
# 65k short tuples of short strings stay within a few megabytes.
_CACHE_SIZE: Final = 1 << 16

# The fast path is written against the STIX 2.0 and 2.1 pattern grammars; the reference
# checker treats any other version as 2.0, so other versions always take the slow path.
_FAST_PATH_VERSIONS: Final = frozenset({"2.0", "2.1"})

# --- The fast path -------------------------------------------------------------------
#
# Each piece mirrors a lexer or parser rule of the reference grammar (STIXPattern.g4 as
# shipped in stix2patterns), restricted where the full rule has traps.

# Whitespace the reference lexer skips (it skips more, e.g. U+00A0; those go the slow way).
_WS: Final = r"[ \t\r\n]"

# Keywords are their own tokens in the lexer (case-sensitive), so a property or type
# spelled exactly like one is a syntax error there. EXISTS is a keyword only in 2.1;
# excluding it for 2.0 too only sends such (odd) patterns to the slow path.
_KEYWORDS: Final = (
    "AND", "OR", "NOT", "FOLLOWEDBY", "LIKE", "MATCHES", "ISSUPERSET", "ISSUBSET",
    "EXISTS", "LAST", "IN", "START", "STOP", "SECONDS", "true", "false", "WITHIN",
    "REPEATS", "TIMES",
)  # fmt: skip
_NOT_KEYWORD: Final = rf"(?!(?:{'|'.join(_KEYWORDS)})(?![A-Za-z0-9_-]))"

# Object type: the STIX type-name rules (type property, Common Properties; custom object
# types likewise): 3-250 characters of a-z, 0-9 and hyphen, no hyphen after a hyphen.
# Every SCO type of STIX 2.1 section 6 and any well-formed custom type fits; it is also
# narrowed to start with a letter, as the grammar's identifiers cannot start with a digit.
_OBJECT_TYPE: Final = rf"{_NOT_KEYWORD}(?=[a-z0-9-]{{3,250}}:)[a-z][a-z0-9]*(?:-[a-z0-9]+)*"

# A path key after ':' or '.': IdentifierWithoutHyphen (a hyphenated name lexes as one
# IdentifierWithHyphen token, which a path step does not accept).
_IDENTIFIER: Final = rf"{_NOT_KEYWORD}[A-Za-z_][A-Za-z0-9_]*"

# StringLiteral: QUOTE ( ~['\\] | '\\\'' | '\\\\' )* QUOTE, as an unrolled loop so the
# regex engine never backtracks through it.
_STRING: Final = r"'[^'\\]*(?:\\['\\][^'\\]*)*'"

# Array index: IntPosLiteral without sign (no leading zeros) or '*'. A negative index is
# grammatical but crashes the reference checker, so it is left to the slow path.
_INDEX: Final = r"\[(?:0|[1-9][0-9]*|\*)\]"

_PATH: Final = rf"(?:{_IDENTIFIER}|{_STRING})(?:\.(?:{_IDENTIFIER}|{_STRING})|{_INDEX})*"

# Literals allowed after '=' and '!=' (primitiveLiteral), each exactly as the lexer has it;
# checked against the reference lexer for edge cases (leap second 60 accepted, hour 24 not).
_INTEGER: Final = r"-?(?:0|[1-9][0-9]*)"
_BOOLEAN: Final = r"(?:true|false)"
_TIMESTAMP: Final = (
    r"t'[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?Z'"
)
_HEX: Final = r"h'(?:[0-9A-Fa-f]{2})*'"
_BASE64_CHAR: Final = r"[A-Za-z0-9+/]"
_BINARY: Final = (
    rf"b'(?:{_BASE64_CHAR}{{4}})*"
    rf"(?:{_BASE64_CHAR}{{4}}|{_BASE64_CHAR}{{3}}=|{_BASE64_CHAR}{{2}}==)'"
)
_EQUALITY_VALUE: Final = rf"(?:{_STRING}|{_INTEGER}|{_BOOLEAN}|{_TIMESTAMP}|{_HEX}|{_BINARY})"

# A comparison (propTest): PATH = VALUE, PATH != VALUE, PATH LIKE 'x', PATH MATCHES 'x'.
# Keywords get whitespace on both sides so no neighbouring characters can merge with them.
_COMPARISON: Final = (
    rf"(?P<object_type>{_OBJECT_TYPE}):(?P<path>{_PATH})"
    rf"(?:{_WS}*!?={_WS}*(?P<value>{_EQUALITY_VALUE})"
    rf"|{_WS}+(?:LIKE|MATCHES){_WS}+(?P<string_value>{_STRING}))"
)
_COMPARISON_NO_GROUPS: Final = re.sub(r"\(\?P<\w+>", "(?:", _COMPARISON)

_BOOLEAN_JOIN: Final = rf"{_WS}+(?:AND|OR){_WS}+"
_OBSERVATION: Final = (
    rf"\[{_WS}*{_COMPARISON_NO_GROUPS}(?:{_BOOLEAN_JOIN}{_COMPARISON_NO_GROUPS})*{_WS}*\]"
)
_SIMPLE_PATTERN_RE: Final = LazyPattern(
    rf"{_WS}*{_OBSERVATION}(?:{_BOOLEAN_JOIN}{_OBSERVATION})*{_WS}*"
)

# Walking an accepted pattern one piece at a time, to find its comparisons.
_PIECE_RE: Final = LazyPattern(rf"{_COMPARISON}|{_WS}+|AND|OR|\[|\]")
_PATH_STEP_RE: Final = LazyPattern(
    rf"\.(?:(?P<key>{_IDENTIFIER})|(?P<quoted_key>{_STRING}))"
    rf"|\[(?:(?P<index>[0-9]+)|\*)\]"
)
_FIRST_STEP_RE: Final = LazyPattern(rf"(?P<key>{_IDENTIFIER})|(?P<quoted_key>{_STRING})")


class _AnyIndex:
    """The ``[*]`` path step."""


_ANY_INDEX: Final = _AnyIndex()
_PathStep = str | int | _AnyIndex

# The reference checker also rejects a comparison on a path containing a ``hashes`` key
# whose value does not look like a hash of the algorithm named by the last key (STIX 2.1
# section 10.7 hashing-algorithm-ov). Its own table is reused so both agree exactly, quirks
# included (it strips every quote from the literal text and matches with re.match).
# Built on the first pattern that names a hash, like the other expressions here.
@lru_cache(maxsize=2)
def _hash_value_res(spec_version: str) -> dict[str, re.Pattern[str]]:
    if spec_version == "2.0":
        from stix2patterns.v20.object_validator import HASHES_REGEX
    else:
        from stix2patterns.v21.object_validator import HASHES_REGEX
    return {name: re.compile(regex) for name, (regex, _label) in HASHES_REGEX.items()}


def _unquote(string_literal: str) -> str:
    """A StringLiteral's value, unescaped the same way the reference checker does it."""
    return string_literal[1:-1].replace("\\'", "'").replace("\\\\", "\\")


def _path_steps(path: str) -> list[_PathStep]:
    first = _FIRST_STEP_RE.match(path)
    if first is None:  # pragma: no cover - the path already matched _PATH
        raise ValueError(f"not an object path: {path!r}")
    steps: list[_PathStep] = [
        first["key"] if first["key"] is not None else _unquote(first["quoted_key"])
    ]
    for step in _PATH_STEP_RE.finditer(path, first.end()):
        if step["key"] is not None:
            steps.append(step["key"])
        elif step["quoted_key"] is not None:
            steps.append(_unquote(step["quoted_key"]))
        elif step["index"] is not None:
            steps.append(int(step["index"]))
        else:
            steps.append(_ANY_INDEX)
    return steps


def _comparisons(pattern: str) -> list[tuple[list[_PathStep], str]] | None:
    """(path steps, literal text) of each comparison of a pattern the fast regex accepted,
    or None if the pattern does not split into pieces end to end (never expected)."""
    found: list[tuple[list[_PathStep], str]] = []
    position = 0
    while position < len(pattern):
        piece = _PIECE_RE.match(pattern, position)
        if piece is None or piece.end() == position:
            return None
        if piece["path"] is not None:
            literal = piece["value"] if piece["value"] is not None else piece["string_value"]
            found.append((_path_steps(piece["path"]), literal))
        position = piece.end()
    return found


# The commonest hash pattern, one comparison such as [file:hashes.'SHA-256' = '...']: its
# comparison is read by this one expression instead of the general piece-by-piece walk.
# Only ever tried on patterns the fast expression accepted; the result is what
# _comparisons gives for it (tests/validate/test_patterns.py compares the two).
_ONE_HASH_COMPARISON_RE: Final = LazyPattern(
    r"\[[a-z][a-z0-9-]*:hashes\.(?:'(?P<quoted>[A-Za-z0-9_-]+)'|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
    r" ?!?= ?(?P<literal>'[^'\\]*')\]"
)


def _one_hash_comparison(pattern: str) -> list[tuple[list[_PathStep], str]] | None:
    match = _ONE_HASH_COMPARISON_RE.fullmatch(pattern)
    if match is None:
        return None
    algorithm = match["quoted"] if match["quoted"] is not None else match["bare"]
    return [(["hashes", algorithm], match["literal"])]


def _hash_values_pass(pattern: str, spec_version: str) -> bool:
    """Whether the reference checker's hash-value check passes on an accepted pattern."""
    comparisons = _one_hash_comparison(pattern) or _comparisons(pattern)
    if comparisons is None:
        return False
    hash_value_res = _hash_value_res(spec_version)
    for steps, literal in comparisons:
        if "hashes" not in steps:
            continue
        selector = steps[-1]
        if isinstance(selector, _AnyIndex):
            continue
        if isinstance(selector, int):
            # The reference checker fails outright on hashes[N]; let it say so.
            return False
        algorithm = selector.upper().replace("-", "").replace("'", "")
        value_re = hash_value_res.get(algorithm)
        if value_re is not None and value_re.match(literal.replace("'", "")) is None:
            return False
    return True


def _fast_accepts(pattern: str, spec_version: str = "2.1") -> bool:
    """True when ``pattern`` has a simple shape the reference checker is known to accept.

    False means "not known here", not "invalid": the caller then asks the reference checker.
    """
    if spec_version not in _FAST_PATH_VERSIONS or _SIMPLE_PATTERN_RE.fullmatch(pattern) is None:
        return False
    # A key spelled "hashes" (bare or quoted) needs the hash-value check; any such key
    # has these six letters in the text, since quoted keys only escape ' and \.
    return "hashes" not in pattern or _hash_values_pass(pattern, spec_version)


# --- The slow path and its messages --------------------------------------------------

_POSITIONED_ERROR_RE: Final = LazyPattern(
    r"(?:FAIL: )?Error found at line (?P<line>\d+):(?P<column>\d+)\. (?P<message>.*)", re.DOTALL
)
_DUPLICATE_QUALIFIER_RE: Final = LazyPattern(
    r"(?:FAIL: )?Duplicate qualifier type encountered: (?P<qualifier>\w+)"
)
_MISSING_RE: Final = LazyPattern(r"missing (?P<expected>\{[^}]*\}|\S+) at (?P<found>.*)", re.DOTALL)

# The grammar's token names as people would say them.
_TOKEN_WORDS: Final = {
    "<EOF>": "the end of the pattern",
    "IntNegLiteral": "an integer",
    "IntPosLiteral": "an integer",
    "FloatNegLiteral": "a number",
    "FloatPosLiteral": "a number",
    "HexLiteral": "a hex value h'...'",
    "BinaryLiteral": "a base64 value b'...'",
    "StringLiteral": "a quoted string",
    "BoolLiteral": "true or false",
    "TimestampLiteral": "a timestamp t'YYYY-MM-DDThh:mm:ssZ'",
    "IdentifierWithoutHyphen": "a name",
    "IdentifierWithHyphen": "a name",
}

# Every literal token: the parser expects all of them where a comparison value belongs.
_LITERAL_TOKENS: Final = frozenset(
    {
        "IntNegLiteral",
        "IntPosLiteral",
        "FloatNegLiteral",
        "FloatPosLiteral",
        "HexLiteral",
        "BinaryLiteral",
        "StringLiteral",
        "BoolLiteral",
        "TimestampLiteral",
    }
)

# Literal prefixes the lexer reads as a lone identifier when the literal is malformed.
_MALFORMED_LITERAL_HINTS: Final = {
    "'t'": "a timestamp t'...' must look like t'2024-01-15T12:30:45Z' (valid month, day and time)",
    "'h'": "a hex value h'...' must hold pairs of hex digits",
    "'b'": "a binary value b'...' must be padded base64",
}


def _say_expected(expected: str) -> str:
    """Token names (one, or a {set}) reworded."""
    names = expected[1:-1].split(", ") if expected.startswith("{") else [expected]
    if _LITERAL_TOKENS.issubset(names) and len(names) == len(_LITERAL_TOKENS):
        return "a value such as 'text', 42, 1.5, true, t'2024-01-15T12:30:45Z', h'ff' or b'AAAA'"
    words: list[str] = []
    for name in names:
        word = _TOKEN_WORDS.get(name, name)
        if word not in words:
            words.append(word)
    if len(words) == 1:
        return words[0]
    listed = ", ".join(words[:-1]) + " or " + words[-1]
    return listed if len(words) == 2 else "one of " + listed


def _say_syntax_message(message: str, next_character: str) -> str:
    missing = _MISSING_RE.fullmatch(message)
    if missing is not None:
        found = _TOKEN_WORDS.get(missing["found"].strip("'"), missing["found"])
        return f"missing {_say_expected(missing['expected'])} before {found}"
    head, separator, expected = message.rpartition(" expecting ")
    if not separator:
        return message
    hint = ""
    for prefix, advice in _MALFORMED_LITERAL_HINTS.items():
        if head == f"extraneous input {prefix}" and next_character == "'":
            hint = f"; {advice}"
    head = head.replace("input '<EOF>'", "the end of the pattern")
    return f"{head}, expected {_say_expected(expected)}{hint}"


def _say_reference_error(raw: str, pattern: str) -> str:
    """One reference-checker message without its parser jargon, keeping the position."""
    positioned = _POSITIONED_ERROR_RE.fullmatch(raw)
    if positioned is not None:
        message = positioned["message"]
        if message == "input is missing square brackets":
            return (
                "the pattern must start with an observation expression in square brackets, "
                "e.g. [ipv4-addr:value = '198.51.100.1']"
            )
        line, column = int(positioned["line"]), int(positioned["column"])
        # ANTLR counts lines by "\n" and columns from 0 within the line.
        offset = sum(len(text) + 1 for text in pattern.split("\n")[: line - 1]) + column
        next_character = pattern[offset + 1 : offset + 2]
        where = (
            f"at character {column + 1}"
            if "\n" not in pattern
            else f"at line {line}, column {column + 1}"
        )
        return f"{where}: {_say_syntax_message(message, next_character)}"
    duplicate = _DUPLICATE_QUALIFIER_RE.fullmatch(raw)
    if duplicate is not None:
        return f"an observation expression has more than one {duplicate['qualifier']} qualifier"
    return raw.removeprefix("FAIL: ")


@lru_cache(maxsize=_CACHE_SIZE)
def _stix_pattern_errors(pattern: str, spec_version: str) -> tuple[str, ...]:
    if _fast_accepts(pattern, spec_version):
        return ()
    if not pattern.strip():
        return ("the pattern is empty",)
    try:
        # The ANTLR parser costs a quarter of a second to import; only the slow path needs it.
        from stix2patterns.validator import run_validator

        raw_errors: list[str] = run_validator(pattern, stix_version=spec_version)
    except Exception as error:  # the reference checker has crash bugs (e.g. on hashes[0])
        return (
            "the pattern could not be checked: the STIX pattern checker failed on it "
            f"({type(error).__name__}: {error})",
        )
    reasons: list[str] = []
    for raw in raw_errors:
        reason = _say_reference_error(str(raw), pattern)
        if reason not in reasons:
            reasons.append(reason)
    return tuple(reasons)


# The commonest pattern of all, one comparison of a value or a hash with a plain string,
# such as [ipv4-addr:value = '198.51.100.1'] or [file:hashes.'SHA-256' = '...']. Its type
# and path end at the first ':' and ' ', and its literal holds no quote or backslash, so
# the fast expression reads it one way only, and whether it accepts it depends on the
# type and path alone: that answer is remembered per (type, path), and only a hash
# literal is matched against its algorithm's expression each time.
_ONE_COMPARISON: Final = r"([a-z0-9-]+):(value|hashes\.(?:'[A-Za-z0-9_-]+'|[A-Za-z_][A-Za-z0-9_]*)) = '([^'\\]*)'"
_ONE_COMPARISON_RE: Final = LazyPattern(rf"\[{_ONE_COMPARISON}\]")
_COMPARISON_STEP_RE: Final = LazyPattern(_ONE_COMPARISON)
# Several of them joined by single-spaced AND or OR in one observation; once the whole
# matched, _COMPARISON_STEP_RE reads them one by one (a literal holds no quote, so no
# comparison can start inside one).
_JOINED_COMPARISONS_RE: Final = LazyPattern(
    r"\[{0}(?: (?:AND|OR) {0})+\]".format(re.sub(r"\((?!\?)", "(?:", _ONE_COMPARISON))
)

# (object type, path, spec version) -> whether the fast expression accepts the comparison
# with any plain literal, and the hash-value expression the literal must then match.
_ONE_COMPARISON_SHAPES: dict[tuple[str, str, str], tuple[bool, re.Pattern[str] | None]] = {}
_ONE_COMPARISON_SHAPES_LIMIT: Final = 4096


def _one_comparison_accepts(object_type: str, path: str, literal: str, spec_version: str) -> bool:
    """What :func:`_fast_accepts` says of ``[object_type:path = 'literal']``, and of such a comparison
    joined with others (tests/validate/test_fast_path_agreement.py holds the two to agreement)."""
    key = (object_type, path, spec_version)
    shape = _ONE_COMPARISON_SHAPES.get(key)
    if shape is None:
        accepted = _SIMPLE_PATTERN_RE.fullmatch(f"[{object_type}:{path} = '']") is not None
        value_re = None
        if path != "value":  # hashes.ALGORITHM, read as _hash_values_pass reads it
            algorithm = path[len("hashes."):].upper().replace("-", "").replace("'", "")
            value_re = _hash_value_res(spec_version).get(algorithm)
        shape = (accepted, value_re)
        if len(_ONE_COMPARISON_SHAPES) < _ONE_COMPARISON_SHAPES_LIMIT:
            _ONE_COMPARISON_SHAPES[key] = shape
    accepted, value_re = shape
    return accepted and (value_re is None or value_re.match(literal) is not None)


def pattern_errors(
    pattern: str, pattern_type: str = "stix", spec_version: str = "2.1"
) -> tuple[str, ...]:
    """Empty tuple when valid; otherwise the reasons, worded for a human.

    Only ``pattern_type`` "stix" is checked (STIX 2.1 section 9); every other language of
    the pattern-type-ov vocabulary (snort, yara, sigma, ...) is opaque text to tiops.
    Results are memoised, since bulk feeds repeat patterns.
    """
    if pattern_type != "stix":
        return ()
    if spec_version in _FAST_PATH_VERSIONS:
        one = _ONE_COMPARISON_RE.fullmatch(pattern)
        if one is not None:
            if _one_comparison_accepts(one[1], one[2], one[3], spec_version):
                return ()
        elif _JOINED_COMPARISONS_RE.fullmatch(pattern) is not None and all(
                _one_comparison_accepts(step[1], step[2], step[3], spec_version)
                for step in _COMPARISON_STEP_RE.finditer(pattern)):
            return ()
    return _stix_pattern_errors(pattern, spec_version)


def clear_pattern_cache() -> None:
    """Forget memoised results (for measurements and long-lived processes)."""
    _stix_pattern_errors.cache_clear()
