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
"""

from __future__ import annotations

import re
from typing import Any

from tiops.errors import UsageError

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
