"""`--where EXPR`: a small text syntax for conditions, parsed into the condition tree that
ingestion rules use (``{all: [...]}``, ``{any: [...]}``, ``{not: ...}``, ``{field, op, value}``).

Grammar (``and`` binds tighter than ``or``; parentheses group)::

    expr    := term ("or" term)*
    term    := factor ("and" factor)*
    factor  := "not" factor | "(" expr ")" | test
    test    := FIELD OP VALUE | FIELD "exists" | FIELD "not-exists"
    OP      := = != > >= < <= in not-in contains starts-with ends-with matches

VALUE is a number, a bare word, a "double" or 'single' quoted string, or for
``in``/``not-in`` a bracketed list ``[a, "b c"]``.

Evaluation is the ingestion rules' own (:func:`tiops.rules.conditions.compile_condition`),
so ``--where`` and rule files can never disagree on what a condition means.

Typos are errors: every field must be a STIX 2.1 property (any type), a custom ``x_``
property, a property found in the data searched, or one of the place's own fields
(:class:`Fields`); a value must be of the field's kind (a number for ``confidence``, a
timestamp or date for ``valid_until``, a STIX type for ``type``). Either mistake is a
:class:`~tiops.errors.UsageError` naming the nearest field or value. docs/query.md
describes the language for every place that uses it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tiops.enrich.fields import ENRICHMENT_KINDS, ENRICHMENT_SUBFIELDS
from tiops.errors import UsageError
from tiops.jsonschemas import property_kinds
from tiops.rules.conditions import MAX_DEPTH, parse_timestamp
from tiops.stix import ALL_TYPES, SCO_TYPES

Condition = dict[str, Any]
_SYMBOLS = {"=": "equals", "==": "equals", "!=": "not-equals", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
_WORD_OPS = {"in", "not-in", "contains", "starts-with", "ends-with", "matches", "equals", "not-equals"}
_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<sym>>=|<=|!=|==|[=<>()\[\],])|(?P<word>[^\s=<>!()\[\],"']+))""")


TLP_LEVELS = ("clear", "green", "amber", "amber+strict", "red")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
_COMPARISONS = frozenset({"equals", "not-equals", ">", ">=", "<", "<=", "in", "not-in"})


@dataclass(frozen=True)
class Fields:
    """The fields a place offers beyond STIX properties, each with its value kind
    (``any``, ``number``, ``boolean``, ``timestamp``, ``stix-type``, ``sco-type``, ``tlp``)."""

    own: Mapping[str, str] = field(default_factory=dict)


#: ``tiops tag --where``: the ingestion rules' fields.
TAG_FIELDS = Fields({"source": "any", "tags": "any", "tlp": "tlp", "file": "any"})
#: ``tiops query``, report panels and the report browser: compiled objects have no file,
#: and carry the locked enrichment the rules see (``enrichment.country``, ``whois.age_days``).
QUERY_FIELDS = Fields({"source": "any", "tags": "any", "tlp": "tlp", "observable": "any",
                       "observable_type": "sco-type", "external_id": "any", **ENRICHMENT_KINDS})


def parse_where(text: str, fields: Fields | None = TAG_FIELDS, seen: Iterable[str] = (),
                seen_types: Iterable[str] = ()) -> Condition:
    """The condition tree of ``text``, its fields and values checked against ``fields``
    and the STIX properties (``None``: the syntax only); ``seen`` adds property names
    found in the data searched, ``seen_types`` its object types (an extension-definition's
    new-sdo or new-sco type is one as much as a STIX 2.1 type)."""
    tokens = _tokenize(text)
    parser = _Parser(tokens, text)
    condition = parser.expr()
    if parser.position < len(tokens):
        raise UsageError(f"--where: unexpected {tokens[parser.position][1]!r} in {text!r}")
    if fields is not None:
        check_fields(condition, fields, seen, seen_types)
    return condition


def check_fields(condition: Condition, fields: Fields = TAG_FIELDS, seen: Iterable[str] = (),
                 seen_types: Iterable[str] = ()) -> None:
    """Raise :class:`UsageError` for an unknown field or a value the field cannot hold.

    Timestamps written as dates (``2025-06-01``) are completed to midnight UTC in place.
    """
    kinds = {**property_kinds(), "labels": "any", "type": "stix-type", **fields.own}
    known = set(kinds) | set(seen)
    _check(condition, kinds, known, frozenset(seen_types))


def _check(condition: Condition, kinds: Mapping[str, str], known: set[str], types: frozenset[str]) -> None:
    for combinator in ("all", "any"):
        if combinator in condition:
            for part in condition[combinator]:
                _check(part, kinds, known, types)
            return
    if "not" in condition:
        _check(condition["not"], kinds, known, types)
        return
    name = condition["field"]
    head = name.split(".", 1)[0]
    if head not in known and not head.startswith("x_"):
        close = difflib.get_close_matches(head, sorted(known), n=3, cutoff=0.6)
        raise UsageError(f"--where: unknown field {head!r}" + (f"; did you mean {' or '.join(map(repr, close))}?" if close else ""),
                         hint="Fields are STIX properties or dotted paths (external_references.source_name), "
                              "x_ custom properties, and " + ", ".join(sorted(k for k in kinds if k not in property_kinds()))
                              + " (docs/query.md).")
    rest = name[len(head) + 1:]
    if head in ENRICHMENT_SUBFIELDS and head in kinds and rest and rest not in ENRICHMENT_SUBFIELDS[head]:
        # The rules refuse the same names (tiops.rules.model, TI502): both read tiops.enrich.fields.
        close = difflib.get_close_matches(rest, sorted(ENRICHMENT_SUBFIELDS[head]), n=3, cutoff=0.6)
        raise UsageError(f"--where: unknown field {name!r}" + (f"; did you mean {' or '.join(repr(f'{head}.{c}') for c in close)}?" if close else ""),
                         hint=f"{head}.* is one of {', '.join(sorted(ENRICHMENT_SUBFIELDS[head]))} (docs/enrich.md).")
    op = condition["op"]
    if name in ENRICHMENT_SUBFIELDS and head in kinds and op not in ("exists", "not-exists"):
        raise UsageError(f"--where: {name} alone is tested with exists or not-exists; name one of its fields",
                         hint=f"{name}.* is one of {', '.join(sorted(ENRICHMENT_SUBFIELDS[name]))} (docs/enrich.md).")
    kind = kinds.get(name, "any")
    if kind == "any" or op not in _COMPARISONS or "value" not in condition:
        return
    value = condition["value"]
    if isinstance(value, list):
        condition["value"] = [_typed(name, kind, op, v, types) for v in value]
    else:
        condition["value"] = _typed(name, kind, op, value, types)


def _typed(name: str, kind: str, op: str, value: Any, types: frozenset[str] = frozenset()) -> Any:
    ordering = op in (">", ">=", "<", "<=")
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"--where: {name} is a number; {value!r} is not one", hint=f"Write e.g. '{name} >= 80'.")
        return value
    if kind == "boolean":
        if not isinstance(value, bool) or ordering:
            raise UsageError(f"--where: {name} is true or false; {value!r} is not", hint=f"Write '{name} = true'.")
        return value
    if kind == "timestamp":
        written = value
        if isinstance(value, str) and _DATE.match(value):
            value += "T00:00:00Z"
        # The shape and a day, hour and minute that exist (2024-02-30 and T99:99:99Z do not).
        if not isinstance(value, str) or not _TIMESTAMP.match(value) or parse_timestamp(value) is None:
            value = written
            raise UsageError(f"--where: {name} is a timestamp; {value!r} is not one",
                             hint=f"Write a date or a STIX timestamp, e.g. '{name} >= 2025-06-01' or 2025-06-01T12:00:00Z.")
        return value
    if ordering:
        return value
    choices = {"stix-type": ALL_TYPES | types, "sco-type": SCO_TYPES, "tlp": frozenset(TLP_LEVELS)}.get(kind)
    if choices is None:
        return value
    text = str(value).lower() if isinstance(value, str) else value
    if text in choices or (isinstance(text, str) and text.startswith("x-") and kind != "tlp"):
        return text
    close = difflib.get_close_matches(str(value), sorted(choices), n=3, cutoff=0.6)
    raise UsageError(f"--where: {value!r} is not a {_KIND_NAMES[kind]}" + (f"; did you mean {' or '.join(map(repr, close))}?" if close else ""),
                     hint=f"{name} is one of {', '.join(sorted(choices))}.")


_KIND_NAMES = {"stix-type": "STIX object type", "sco-type": "cyber-observable type", "tlp": "TLP level"}


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise UsageError(f"--where: cannot read {text[position:]!r}")
        kind = match.lastgroup or "word"
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], text: str) -> None:
        self.tokens, self.text, self.position = tokens, text, 0
        self.depth = 0  # the parentheses and 'not's open around the position read

    def _peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise UsageError(f"--where: {self.text!r} ends too early")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def expr(self) -> Condition:
        parts = [self.term()]
        while (self._peek() or "").lower() == "or":
            self._take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else {"any": parts}

    def term(self) -> Condition:
        parts = [self.factor()]
        while (self._peek() or "").lower() == "and":
            self._take()
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else {"all": parts}

    def factor(self) -> Condition:
        token = self._peek()
        if token is None or (token.lower() != "not" and token != "("):
            return self.test()
        # Each level is one more call here; the rules' conditions stop at the same depth.
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise UsageError(f"--where: parentheses and 'not' nest at most {MAX_DEPTH} levels deep",
                             hint="Write the condition flatter: 'a and b and c' needs no parentheses.")
        try:
            return self._nested(token)
        finally:
            self.depth -= 1

    def _nested(self, token: str) -> Condition:
        """The factor that ``token``, a 'not' or a '(', opens."""
        self._take()
        if token != "(":
            return {"not": self.factor()}
        inner = self.expr()
        if self._peek() != ")":
            raise UsageError(f"--where: missing ')' in {self.text!r}")
        self._take()
        return inner

    def test(self) -> Condition:
        kind, field = self._take()
        if kind != "word":
            raise UsageError(f"--where: expected a field name, found {field!r}")
        kind, op = self._take()
        op = _SYMBOLS.get(op, op.lower())
        if op in ("exists", "not-exists"):
            return {"field": field, "op": op}
        if op not in _WORD_OPS and op not in _SYMBOLS.values():
            raise UsageError(f"--where: unknown operator {op!r}",
                             hint="Use =, !=, >, >=, <, <=, in, not-in, contains, starts-with, ends-with, matches, exists, not-exists.")
        if op in ("in", "not-in"):
            if self._take()[1] != "[":
                raise UsageError(f"--where: '{op}' needs a list like [a, b]")
            values: list[Any] = []
            while self._peek() != "]":
                values.append(self._value())
                if self._peek() == ",":
                    self._take()
            self._take()
            return {"field": field, "op": op, "value": values}
        return {"field": field, "op": op, "value": self._value()}

    def _value(self) -> Any:
        kind, text = self._take()
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind != "word":
            raise UsageError(f"--where: expected a value, found {text!r}")
        if re.fullmatch(r"-?\d+(?:\.\d+)?", text) and len(text.lstrip("-").partition(".")[0]) > 20:
            # No STIX number has so many digits (integers end at 2^53, section 2.16); past 4,300
            # digits Python could not even write the number back in a message.
            raise UsageError(f"--where: {text[:24]}... ({len(text)} characters) is longer than any STIX number",
                             hint="STIX integers lie within +-(2^53-1) (STIX 2.1 section 2.16).")
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if re.fullmatch(r"-?\d+\.\d+", text):
            return float(text)
        return {"true": True, "false": False}.get(text, text)
