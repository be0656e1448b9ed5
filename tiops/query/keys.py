"""One host, however written: the key under which ``observable = V`` compares an address or name.

An analyst asks "do we already have intel on 8.8.8.8?"; feeds write that host as
``8.8.8.8/32`` (Sentinel and many feeds write every IP as a CIDR block), ``::ffff:8.8.8.8``
(an IPv4-mapped IPv6 address, RFC 4291 section 2.5.5.2), and a name as ``EVIL.example.``
(the root's dot, RFC 1034 section 3.1) or in U-labels (``bücher.example`` is
``xn--bcher-kva.example``, RFC 5890 section 2.3.2.1). Enrichment already reads each such
value as one canonical text (tiops.enrich.values.canonical_value: RFC 5952 text for IPv6,
a /32 or /128 block as its address, an IPv4-mapped address as the IPv4 one, a name in
lower case without the root's dot, in A-labels); ``observable`` equality uses the same text,
so a lookup and the enrichment lock agree on what one host is.

What stays apart: a wider block is a block (``8.8.8.0/24`` is not ``8.8.8.8``, and written
``8.8.8.0/255.255.255.0`` it is the same block), and a wildcard (``*.example.com``, RFC 4592)
names every host under a domain, not the domain, so it has no key and is equal only to
itself written another case. docs/query.md states the rule; static/query.js computes the
same keys in the report's browser (tests/query/test_keys.py compares the two).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Final

__all__ = ["KEY_FIELD", "host_key", "keyed_condition", "keys_column", "query_keys", "reads_observable_keys"]

# The row field that holds an object's keys in a condition rewritten by keyed_condition: a name
# with a space, which no STIX property has (section 3.1) and --where cannot write.
KEY_FIELD: Final = "observable key"
_EQUALITY: Final = frozenset({"equals", "not-equals", "in", "not-in"})


def host_key(value: Any) -> str | None:
    """The canonical text of ``value`` as an IP address, CIDR block or host name, or None
    (not text, a wildcard or cookie-style ``.name``, or neither an address nor a name)."""
    return _text_key(value) if value.__class__ is str else None


@lru_cache(maxsize=1 << 16)
def _text_key(value: str) -> str | None:
    if value.strip()[:1] in ("*", "."):
        return None
    from tiops.enrich.values import canonical_value  # when first needed, as in keys_column

    return canonical_value(value)


def keys_column(observables: Iterable[Iterable[Any] | None]) -> list[list[str] | None]:
    """A view's keys column: for each object's observable values, the keys of those that differ from
    the value in folded case, or None when none does. Most values are written canonically already;
    only the others need a key, since a value is also equal to itself (in any case)."""
    # Imported when first needed: a query that compares no observable need not load IDNA's tables.
    from tiops.enrich.values import PLAIN_CANONICAL

    column: list[list[str] | None] = []
    for values in observables:
        found = None
        for value in values or ():
            # Told without canonicalising (a view keys the observables of 100k objects): a value
            # that is a lower-case name or a dotted-decimal address is canonical as it stands, if
            # at all (PLAIN_CANONICAL); one of ASCII without a dot or colon (a hash) and a URL (no
            # host name holds "://") have no key.
            if value.__class__ is not str or PLAIN_CANONICAL(value) is not None or "://" in value or (
                    value.isascii() and "." not in value and ":" not in value):
                continue
            key = host_key(value)
            if key is not None and key != value.casefold():
                found = [key] if found is None else found if key in found else [*found, key]
        column.append(found)
    return column


def query_keys(values: Iterable[Any]) -> list[str]:
    """The keys of the values an ``observable`` test compares with, each once."""
    return list(dict.fromkeys(key for value in values if (key := host_key(value)) is not None))


def reads_observable_keys(condition: Any) -> bool:
    """Whether ``condition`` holds an ``observable`` equality test (=, !=, in, not-in). A malformed
    tree holds none: compiling it says what is wrong."""
    if not isinstance(condition, Mapping):
        return False
    if "field" in condition:
        return condition["field"] == "observable" and condition.get("op") in _EQUALITY and "value" in condition
    if "not" in condition:
        return reads_observable_keys(condition["not"])
    parts = [part for key in ("all", "any") if isinstance(found := condition.get(key), list) for part in found]
    return any(reads_observable_keys(part) for part in parts)


def keyed_condition(condition: dict[str, Any]) -> dict[str, Any]:
    """``condition`` with each ``observable`` equality test also holding for a value written
    another way: ``observable = V`` becomes "an observable value equals V or V's key, or an
    observable's key equals V's key" (the row's keys in :data:`KEY_FIELD`). != and not-in are
    the negations of = and in, as everywhere in the language."""
    if not isinstance(condition, dict):
        return condition  # malformed: compiling it says what is wrong
    if "field" in condition:
        if condition["field"] != "observable" or condition.get("op") not in _EQUALITY or "value" not in condition:
            return condition
        op, value = condition["op"], condition["value"]
        values = value if isinstance(value, list) else [value]
        keys = query_keys(values)
        if not keys:
            return condition
        equal: dict[str, Any] = {"any": [{"field": "observable", "op": "in", "value": [*values, *keys]},
                                         {"field": KEY_FIELD, "op": "in", "value": keys}]}
        return {"not": equal} if op in ("not-equals", "not-in") else equal
    if "not" in condition and len(condition) == 1:
        return {"not": keyed_condition(condition["not"])}
    for combinator in ("all", "any"):
        if isinstance(condition.get(combinator), list):
            return {combinator: [keyed_condition(part) for part in condition[combinator]]}
    return condition
