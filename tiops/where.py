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

The evaluator below is a stand-in until the ingestion-rules evaluator exists
(TO MERGE with tiops/rules/ when it lands): it understands the same tree.
"""

from __future__ import annotations

import re
from typing import Any

from tiops.errors import UsageError
from tiops.load import IntelObject
from tiops.stix import TLP2_MARKINGS

Condition = dict[str, Any]
_SYMBOLS = {"=": "equals", "==": "equals", "!=": "not-equals", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
_WORD_OPS = {"in", "not-in", "contains", "starts-with", "ends-with", "matches", "equals", "not-equals"}
_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<sym>>=|<=|!=|==|[=<>()\[\],])|(?P<word>[^\s=<>!()\[\],"']+))""")


def parse_where(text: str) -> Condition:
    tokens = _tokenize(text)
    parser = _Parser(tokens, text)
    condition = parser.expr()
    if parser.position < len(tokens):
        raise UsageError(f"--where: unexpected {tokens[parser.position][1]!r} in {text!r}")
    return condition


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
        if token is not None and token.lower() == "not":
            self._take()
            return {"not": self.factor()}
        if token == "(":
            self._take()
            inner = self.expr()
            if self._take()[1] != ")":
                raise UsageError(f"--where: missing ')' in {self.text!r}")
            return inner
        return self.test()

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
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if re.fullmatch(r"-?\d+\.\d+", text):
            return float(text)
        return {"true": True, "false": False}.get(text, text)


# --- Evaluation (TO MERGE with the ingestion-rules evaluator in tiops/rules/) -----------

_MISSING = object()
_TLP_BY_ID = {marking_id: level for level, (marking_id, _) in TLP2_MARKINGS.items()}


def field_value(obj: IntelObject, field: str) -> Any:
    if field == "source":
        return obj.source if obj.source is not None else _MISSING
    if field == "tags":
        return obj.data.get("labels", _MISSING)
    if field == "file":
        return obj.file
    if field == "tlp":
        levels = [_TLP_BY_ID[m] for m in obj.data.get("object_marking_refs") or () if m in _TLP_BY_ID]
        return levels[0] if levels else _MISSING
    value: Any = obj.data
    for part in field.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


def matches(condition: Condition, obj: IntelObject) -> bool:
    if "all" in condition:
        return all(matches(part, obj) for part in condition["all"])
    if "any" in condition:
        return any(matches(part, obj) for part in condition["any"])
    if "not" in condition:
        return not matches(condition["not"], obj)
    value = field_value(obj, condition["field"])
    op = condition["op"]
    expected: Any = condition.get("value")
    if op == "exists":
        return value is not _MISSING
    if op == "not-exists":
        return value is _MISSING
    if value is _MISSING:
        return op in ("not-equals", "not-in")
    values = value if isinstance(value, list) else [value]
    if op == "equals":
        return any(_same(v, expected) for v in values)
    if op == "not-equals":
        return not any(_same(v, expected) for v in values)
    if op == "in":
        return any(_same(v, e) for v in values for e in expected)
    if op == "not-in":
        return not any(_same(v, e) for v in values for e in expected)
    if op == "contains":
        return any(isinstance(v, str) and str(expected).lower() in v.lower() for v in values)
    if op == "starts-with":
        return any(isinstance(v, str) and v.lower().startswith(str(expected).lower()) for v in values)
    if op == "ends-with":
        return any(isinstance(v, str) and v.lower().endswith(str(expected).lower()) for v in values)
    if op == "matches":
        return any(isinstance(v, str) and re.search(str(expected), v) is not None for v in values)
    return any(_compare(v, op, expected) for v in values)


def _same(value: Any, expected: Any) -> bool:
    if isinstance(value, str) and isinstance(expected, str):
        return value.lower() == expected.lower()
    return bool(value == expected)


def _compare(value: Any, op: str, expected: Any) -> bool:
    numbers = (int, float)
    comparable = (isinstance(value, numbers) and isinstance(expected, numbers)) or (
        isinstance(value, str) and isinstance(expected, str)
    )
    if isinstance(value, bool) or not comparable:
        return False
    left: Any = value
    if op == ">":
        return bool(left > expected)
    if op == ">=":
        return bool(left >= expected)
    if op == "<":
        return bool(left < expected)
    return bool(left <= expected)
