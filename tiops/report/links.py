"""The overview's bars as links: each to ``browse.html#q=EXPR``, the query (docs/query.md) that
selects exactly the objects the bar counts, so the browser's count is the bar's.

A bar counts the objects whose field holds a value (:func:`tiops.query.group_counts`: exactly
that value, a list once per value). The language's ``=`` is looser: text without regard to case,
a timestamp as the moment it names. So a value is written ``field = value`` only when no other
value the panel counted is equal to it that way; otherwise (``APT`` beside ``apt``) it is
``field matches "\\A...\\z"``, case and all. A value the language cannot write (a mapping, a
null, a number JavaScript cannot hold) gets no link rather than a link to another count.
Every expression is parsed here as ``tiops query`` parses it, and a bar whose expression does
not parse gets no link.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

import orjson

from tiops.errors import UsageError
from tiops.inputs import is_utf8_name
from tiops.query import Row, parse_query
from tiops.rules.conditions import MISSING, fast_timestamp_key, field_getter

BROWSE = "browse.html"
# A value written without quotes: starts with a letter and holds no character the tokenizer
# (tiops/where.py, static/query.js) or a number or boolean reading could take otherwise.
_BARE = re.compile(r"[A-Za-z][A-Za-z0-9_.:+/@-]*")
_WORDS = frozenset({"and", "or", "not", "true", "false", "in", "not-in", "exists", "not-exists"})
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_SAFE_INTEGER = 2 ** 53 - 1  # beyond it JavaScript's numbers are not whole numbers one by one


def browse_href(expression: str) -> str:
    """The browser's address for ``expression``, every character but letters and digits
    percent-encoded: the browser reads the fragment with URLSearchParams, for which a raw
    ``+`` is a space and ``&`` ends the query; nothing from intel stays raw in the address."""
    return f"{BROWSE}#q={quote(expression, safe='', encoding='utf-8', errors='strict')}"


def literal(value: Any) -> str | None:
    """``value`` as a VALUE of the query language that reads back as the same value, or None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) <= _SAFE_INTEGER else None
    if isinstance(value, float):
        text = repr(value)
        return text if _NUMBER.fullmatch(text) and len(text.lstrip("-").partition(".")[0]) <= 15 else None
    # The address carries UTF-8 only: a lone surrogate would come back as U+FFFD.
    if not isinstance(value, str) or not is_utf8_name(value):
        return None
    if _BARE.fullmatch(value) and value.lower() not in _WORDS:
        return value
    # A backslash keeps the next character (docs/query.md): only the backslash and the quote
    # need one. Anything else, newlines and controls included, stands for itself in quotes.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def equality_key(value: Any) -> tuple[str, Any]:
    """What ``=`` compares of a value (tiops.rules.conditions: text case-folded, a timestamp as its
    moment, numbers and booleans as Python compares them, 1 == True): values with one key are
    the same to ``=``."""
    if isinstance(value, str):
        moment = fast_timestamp_key(value)
        return ("moment", moment) if moment is not None else ("text", value.casefold())
    if isinstance(value, bool | int | float):
        return "number", float(value)
    return "other", repr(value)


def exact_match(value: str) -> str:
    """A ``matches`` pattern for ``value`` and nothing else, case included: every character
    but an ASCII letter or digit as ``\\x{...}`` (RE2 and the browser's rewrite read it alike)."""
    body = "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in value)
    return f"\\A{body}\\z"


def value_test(field: str, value: Any, ambiguous: bool) -> str | None:
    """The test that holds for an object when ``field`` holds ``value``; ``ambiguous``: another
    value counted beside it is equal to it for ``=``."""
    if not ambiguous:
        written = literal(value)
        return None if written is None else f"{field} = {written}"
    if isinstance(value, str) and is_utf8_name(value):
        pattern = literal(exact_match(value))
        return None if pattern is None else f"{field} matches {pattern}"
    return None  # 1 beside true: the language has no test for one without the other


def value_tests(field: str, values: Iterable[Any]) -> dict[Any, str]:
    """The test for each of ``values`` (every value counted of one field, so that the tests
    tell apart the values ``=`` would take as one)."""
    listed = list(values)
    keys: dict[tuple[str, Any], int] = {}
    for value in listed:
        key = equality_key(value)
        keys[key] = keys.get(key, 0) + 1
    tests: dict[Any, str] = {}
    for value in listed:
        test = value_test(field, value, keys[equality_key(value)] > 1)
        if test is not None:
            tests[value] = test
    return tests


def group_tests(rows: Sequence[Row], field: str) -> dict[str, str]:
    """The test of each bar of ``tiops query --group-by field`` over ``rows``, by its label (the
    value as text, as the overview shows it). A value that is a mapping or a list (counted as its
    JSON text) or null has none, nor do two values shown as one label (``1`` and ``"1"``)."""
    getter = field_getter(field)
    plain: dict[Any, set[type]] = {}  # value -> its classes: Python counts 1 and true as one value
    structured: set[Any] = set()
    for row in rows:
        value = getter(row)
        if value is MISSING or value is None:
            continue
        for item in value if value.__class__ is list else (value,):
            if isinstance(item, dict | list):
                structured.add(orjson.dumps(item, option=orjson.OPT_SORT_KEYS).decode())
            elif item is not None:
                plain.setdefault(item, set()).add(item.__class__)
    labels: dict[str, list[Any]] = {}
    for item, classes in plain.items():
        # 1 beside true (or 1.0): one bar, which '=' in the browser (JavaScript's ===) would split.
        labels.setdefault(str(item), []).extend([item] * len(classes))
    tests = value_tests(field, plain)
    return {label: tests[items[0]] for label, items in labels.items()
            if len(items) == 1 and label not in structured and items[0] in tests}


def month_test(field: str, month: str) -> str | None:
    """The objects whose ``field`` falls in ``month`` (``YYYY-MM``), as a range of moments."""
    match = _MONTH.fullmatch(month)
    if match is None:
        return None
    year, number = int(match[1]), int(match[2])
    if not 1 <= number <= 12:
        return None
    start = f"{field} >= {year:04d}-{number:02d}-01"
    if year == 9999 and number == 12:
        return start
    following = f"{year + (number == 12):04d}-{number % 12 + 1:02d}-01"
    return f"{start} and {field} < {following}"


def joined(*parts: str | None) -> str:
    """Tests joined by ``and``, each in parentheses when it has an ``or`` (``and`` binds tighter)."""
    present = [part for part in parts if part]
    if len(present) == 1:
        return present[0]
    return " and ".join(f"({part})" if _compound(part) else part for part in present)


def _compound(expression: str) -> bool:
    # The word "or" outside quotes; erring towards parentheses is harmless.
    outside = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expression)
    return re.search(r"(?i)(?:^|[\s)])or(?:[\s(]|$)", outside) is not None


def checked(expression: str, seen: Iterable[str], seen_types: Iterable[str]) -> str | None:
    """``expression`` when ``tiops query`` (and so the browser) reads it, else None: a bar
    whose query the language refuses has no link rather than one to an error."""
    try:
        parse_query(expression, seen=seen, seen_types=seen_types)
    except UsageError:
        return None
    return expression
