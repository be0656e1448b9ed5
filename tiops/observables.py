"""The observable model: which cyber-observable values an object names.

One place answers "what values does this intel talk about?" for every stage that
asks: the SQL stores' indicator tables, `tiops query`'s ``observable`` field,
enrichment (which IPs and domains to look up) and value validation (which literal
to check against its SCO property's rules). It imports nothing from tiops, so any
stage may import it.

Two sources of observables:

* an indicator's STIX pattern (STIX 2.1 section 9): every comparison
  ``object-type:object.path OP literal`` whose literal is a string, with the
  string unescaped (``\\'`` and ``\\\\`` are the only escapes, section 9.2);
* a cyber-observable object itself (STIX 2.1 section 6), through the property
  that names its value (``value`` for most, ``hashes`` and ``name`` for files...).

The pattern reader is a lexer, not a validator: it finds comparisons in any
pattern that tiops' validator accepted, and degrades gracefully (finds fewer) on
text that is not a pattern. Validation stays in ``tiops.validate.patterns``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

__all__ = [
    "Observable",
    "object_observables",
    "pattern_observables",
    "sco_observables",
    "unescape_string_literal",
]


@dataclass(frozen=True, slots=True)
class Observable:
    """One value an object names, and where it sits in the STIX observable model.

    ``object_type`` and ``path`` name the SCO property, ``path`` with quoted keys
    unquoted and dots between steps (``hashes.SHA-256``, ``src_ref.value``).
    ``key`` is the text Sentinel's ThreatIntelIndicators table shows in its
    ObservableKey column: the object path as the pattern writes it
    (``file:hashes.'SHA-256'``). ``operator`` is the pattern's comparison
    operator (``=`` for an SCO's own value); ``negated`` is a preceding NOT.
    """

    object_type: str
    path: str
    key: str
    value: str
    operator: str = "="
    negated: bool = False

    @property
    def is_equality(self) -> bool:
        """Whether the observable is asserted as equal to the value (=, IN, or an SCO's own)."""
        return not self.negated and self.operator in ("=", "IN")


# --- Patterns ------------------------------------------------------------------------

_STRING: Final = r"'(?:[^'\\]|\\.)*'"
_IDENT: Final = r"[A-Za-z_][A-Za-z0-9_]*"
_STEP: Final = rf"(?:\.(?:{_IDENT}|{_STRING})|\[(?:-?[0-9]+|\*)\])"
# object-type:first-step(.step | [index])*
_OBJECT_PATH: Final = rf"(?P<object_type>[a-z][a-z0-9-]*):(?P<path>(?:{_IDENT}|{_STRING}){_STEP}*)"

_TOKEN_RE: Final = re.compile(
    rf"""
    (?P<ws>\s+)
  | (?P<comparison_path>{_OBJECT_PATH})
  | (?P<typed>[thb]{_STRING})
  | (?P<string>{_STRING})
  | (?P<operator>!=|<=|>=|=|<|>)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
  | (?P<punct>[\[\](),])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_PATH_STEP_RE: Final = re.compile(rf"(?P<ident>{_IDENT})|(?P<string>{_STRING})|\.|\[(?:-?[0-9]+|\*)\]")

# Comparison operators that take a literal on the right (STIX 2.1 section 9.6).
_WORD_OPERATORS: Final = frozenset({"LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET", "IN"})


def unescape_string_literal(literal: str) -> str:
    """The value of a pattern string literal written with its quotes (section 9.2):
    ``\\'`` is a quote and ``\\\\`` a backslash; those are the only escapes."""
    body = literal[1:-1]
    if "\\" not in body:
        return body
    return re.sub(r"\\(.)", r"\1", body, flags=re.DOTALL)


def _normalised_path(path: str) -> str:
    steps: list[str] = []
    for step in _PATH_STEP_RE.finditer(path):
        if step["ident"] is not None:
            steps.append(step["ident"])
        elif step["string"] is not None:
            steps.append(unescape_string_literal(step["string"]))
        elif step.group() != ".":
            steps[-1:] = [(steps[-1] if steps else "") + step.group()]
    return ".".join(steps)


# The shape most indicators have: one equality of one unescaped literal, the path plain
# steps or quoted keys without escapes ([ipv4-addr:value = '...'], [file:hashes.'SHA-256' = '...']).
# Read without the lexer, it gives the same Observable (tests/test_observables.py compares them).
_SIMPLE_PATTERN: Final = re.compile(
    rf"\[(?P<object_type>[a-z][a-z0-9-]*):(?P<path>{_IDENT}(?:\.(?:{_IDENT}|'[^'\\]*'))*) = '(?P<value>[^'\\]*)'\]")


# Properties whose value is no observed value but says what an object is: a comparison such as
# [network-traffic:dst_ref.type = 'ipv4-addr'] names no address (Sentinel keeps no row for it).
_NOT_VALUES: Final = frozenset({"type", "id", "spec_version"})


# A step that leads to another object: a reference (dst_ref, resolves_to_refs[*]) is
# dereferenced in a pattern path (STIX 2.1 section 9.5), so a type/id/spec_version after it is
# that object's own. Anywhere else (a dictionary key, an extension's property) it is a value.
_REFERENCE_STEP: Final = re.compile(r"[a-z0-9_]*_refs?(?:\[(?:-?[0-9]+|\*)\])?")


def _names_a_value(raw_path: str) -> bool:
    head, dot, last = raw_path.rpartition(".")
    if last not in _NOT_VALUES:  # a quoted key ('type') is a dictionary key or extension property: a value
        return True
    if not dot:
        return False  # the object's own type, id or spec_version
    return _REFERENCE_STEP.fullmatch(head.rpartition(".")[2]) is None


def pattern_object_types(pattern: str) -> tuple[str, ...]:
    """The object type of every comparison in a STIX pattern, in order (string literals skipped),
    including comparisons :func:`pattern_observables` leaves out."""
    simple = _SIMPLE_PATTERN.fullmatch(pattern)
    if simple is not None:  # the one-comparison shape of most indicators, without the lexer
        return (simple["object_type"],)
    return _lexed_object_types(pattern)


@lru_cache(maxsize=1 << 14)
def _lexed_object_types(pattern: str) -> tuple[str, ...]:
    return tuple(m["object_type"] for m in _TOKEN_RE.finditer(pattern) if m.lastgroup == "comparison_path")


def pattern_observables(pattern: str) -> tuple[Observable, ...]:
    """Every comparison in a STIX pattern whose right-hand side is a string literal
    (or a list of them, for IN), in pattern order, unescaped; not one of a property that
    says what an object is (``type``, ``id``, ``spec_version``)."""
    simple = _SIMPLE_PATTERN.fullmatch(pattern)
    if simple is not None:
        if not _names_a_value(simple["path"]):
            return ()
        object_type, raw_path = simple["object_type"], simple["path"]
        # A quoted step without escapes is its text between the quotes (section 9.2).
        return (Observable(object_type, raw_path.replace("'", ""), f"{object_type}:{raw_path}", simple["value"]),)
    return lexed_pattern_observables(pattern)


def equality_pairs(pattern: str) -> list[tuple[str, str]]:
    """(key, value) of each observable the pattern asserts equal (``=``, ``IN``), in pattern
    order, each pair once: what :func:`pattern_observables` gives, without an Observable
    made for the one-comparison shape most indicators have."""
    simple = _SIMPLE_PATTERN.fullmatch(pattern)
    if simple is not None:
        if not _names_a_value(simple["path"]):
            return []
        return [(f"{simple['object_type']}:{simple['path']}", simple["value"])]
    return list(dict.fromkeys((o.key, o.value) for o in lexed_pattern_observables(pattern) if o.is_equality))


@lru_cache(maxsize=1 << 14)
def lexed_pattern_observables(pattern: str) -> tuple[Observable, ...]:
    """:func:`pattern_observables` through the pattern lexer, for any pattern."""
    tokens = [(m.lastgroup, m) for m in _TOKEN_RE.finditer(pattern) if m.lastgroup != "ws"]
    found: list[Observable] = []
    index = 0
    while index < len(tokens):
        kind, match = tokens[index]
        index += 1
        if kind != "comparison_path":
            continue
        object_type, raw_path = match["object_type"], match["path"]
        negated = False
        if index < len(tokens) and tokens[index][0] == "word" and tokens[index][1].group() == "NOT":
            negated, index = True, index + 1
        if index >= len(tokens):
            break
        op_kind, op_match = tokens[index]
        operator = op_match.group()
        if op_kind == "word" and operator not in _WORD_OPERATORS:
            continue  # EXISTS and friends take no literal
        if op_kind not in ("operator", "word"):
            continue
        index += 1
        literals: list[str] = []
        if index < len(tokens) and tokens[index][0] == "string":
            literals.append(tokens[index][1].group())
            index += 1
        elif operator == "IN" and index < len(tokens) and tokens[index][1].group() == "(":
            index += 1
            while index < len(tokens) and tokens[index][1].group() != ")":
                if tokens[index][0] == "string":
                    literals.append(tokens[index][1].group())
                index += 1
        if not _names_a_value(raw_path):
            continue
        path = _normalised_path(raw_path)
        key = f"{object_type}:{raw_path}"
        found.extend(
            Observable(object_type, path, key, unescape_string_literal(literal), operator, negated)
            for literal in literals
        )
    return tuple(found)


# --- Cyber-observable objects --------------------------------------------------------

# The property that names an SCO's value (STIX 2.1 section 6), for the SCOs that have one.
_VALUE_TYPES: Final = frozenset({
    "autonomous-system", "domain-name", "email-addr", "ipv4-addr", "ipv6-addr", "mac-addr",
    "mutex", "url", "user-account", "windows-registry-key", "directory", "software",
    "x509-certificate", "artifact", "file", "email-message", "process", "network-traffic",
})  # fmt: skip
_VALUE_PROPERTIES: Final[Mapping[str, tuple[str, ...]]] = {
    "autonomous-system": ("number",),
    "directory": ("path",),
    "email-message": ("subject",),
    "file": ("name",),
    "mutex": ("name",),
    "software": ("name", "cpe"),
    "user-account": ("account_login", "user_id"),
    "windows-registry-key": ("key",),
    "x509-certificate": ("serial_number", "subject"),
    "process": ("command_line",),
}


def sco_observables(obj: Mapping[str, Any]) -> Iterator[Observable]:
    """The values a cyber-observable object names: its value property and its hashes."""
    stix_type = obj.get("type")
    if not isinstance(stix_type, str):
        return
    for prop in _VALUE_PROPERTIES.get(stix_type, ("value",)):
        value = obj.get(prop)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            yield Observable(stix_type, prop, f"{stix_type}:{prop}", str(value))
    hashes = obj.get("hashes")
    if isinstance(hashes, Mapping):
        for algorithm in sorted(hashes):
            value = hashes[algorithm]
            if isinstance(algorithm, str) and isinstance(value, str):
                yield Observable(
                    stix_type, f"hashes.{algorithm}", f"{stix_type}:hashes.'{algorithm}'", value
                )


def object_observables(obj: Mapping[str, Any]) -> tuple[Observable, ...]:
    """The observables an object names: an indicator's STIX pattern comparisons, or an
    SCO's own values. Other objects (and non-STIX patterns) name none."""
    stix_type = obj.get("type")
    if stix_type == "indicator":
        pattern = obj.get("pattern")
        if isinstance(pattern, str) and obj.get("pattern_type", "stix") == "stix":
            return pattern_observables(pattern)
        return ()
    if stix_type in _VALUE_TYPES:
        return tuple(sco_observables(obj))
    return ()
