"""Conditions: the field and operator vocabulary of ingestion rules.

A condition is a tree of plain data, as written in a rule file (or parsed from
``--where``): ``{all: [...]}``, ``{any: [...]}``, ``{not: ...}`` or one test
``{field, op, value}``. :func:`compile_condition` turns a checked tree into a
Python closure once, so evaluating it over 100k objects costs a function call per
test, not a walk over dictionaries. Anything with ``data``, ``source`` and
``file`` attributes (an :class:`~tiops.load.IntelObject`) can be tested.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from tiops.enrich.fields import ENRICHMENT_FIELDS, field_path
from tiops.stix import EARLIEST_MOMENT, LATEST_MOMENT, TIMESTAMP_RE, is_real_day, shifted, tlp_level

Condition = dict[str, Any]
Predicate = Callable[["ObjectView"], bool]

# Fields that are not STIX properties (Microsoft Sentinel's names for them).
PSEUDO_FIELDS = frozenset({"source", "tags", "tlp", "file", *ENRICHMENT_FIELDS})
OPERATORS = (
    "equals", "not-equals", "in", "not-in", "contains", "starts-with", "ends-with", "matches",
    ">", ">=", "<", "<=", "exists", "not-exists", "older-than", "newer-than",
)  # fmt: skip
VALUELESS_OPERATORS = frozenset({"exists", "not-exists"})
LIST_OPERATORS = frozenset({"in", "not-in"})
TIME_OPERATORS = frozenset({"older-than", "newer-than"})
COMBINATORS = ("all", "any", "not")
_DURATION = re.compile(r"^([0-9]+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MISSING: Any = object()
_NUMBERS = frozenset({int, float})


class ObjectView(Protocol):
    """What a condition can look at: the STIX properties and where the object came from."""

    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def source(self) -> str | None: ...
    @property
    def file(self) -> str: ...


class ConditionError(ValueError):
    """A condition that cannot be compiled; ``code`` is the finding code, ``path`` where it is."""

    def __init__(self, code: str, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.code, self.message, self.path = code, message, path


# --- Durations and timestamps -----------------------------------------------------------


# The span between the first and last moments a STIX timestamp can write: no longer
# duration reaches a timestamp.
_LONGEST_SECONDS: Final = int((LATEST_MOMENT - EARLIEST_MOMENT).total_seconds())


def parse_duration(text: Any) -> timedelta:
    """``30d``, ``12h``, ``2w`` (also ``s`` and ``m``) as a timedelta; ValueError otherwise,
    also for one longer than any two timestamps are apart (about 10,000 years)."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30d, 12h or 2w (a whole number and one of s, m, h, d, w)")
    number = match.group(1)
    if len(number) > 12 or int(number) * _UNIT_SECONDS[match.group(2)] > _LONGEST_SECONDS:
        raise ValueError(f"{text!r} is longer than any two STIX timestamps are apart "
                         f"(at most {_LONGEST_SECONDS // 86_400}d, from year 1 to year 9999)")
    return timedelta(seconds=int(number) * _UNIT_SECONDS[match.group(2)])


def parse_timestamp(text: Any) -> datetime | None:
    """A STIX timestamp (section 3.2: RFC 3339, UTC, ``Z``) as an aware datetime, or None."""
    if not isinstance(text, str):
        return None
    match = TIMESTAMP_RE.match(text)
    if match is None or not is_real_day(text):
        return None
    if match.group(6) != "60":
        # The regular expression checked the STIX shape; the C parser is 40x quicker than
        # building the datetime by hand (and, like the fallback, keeps microseconds).
        return datetime.fromisoformat(text)
    # A leap second (section 3.2 allows 60) is read as the last second of its minute.
    fraction = match.group(7) or ""
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    year, month, day, hour, minute = (int(match.group(i)) for i in range(1, 6))
    return datetime(year, month, day, hour, minute, 59, micro, tzinfo=UTC)


def format_timestamp(moment: datetime, like: str | None = None) -> str:
    """A STIX timestamp with the fraction digits of ``like`` (millisecond precision by default)."""
    digits = 3
    if like is not None and (match := TIMESTAMP_RE.match(like)):
        digits = len(match.group(7) or ".") - 1
    # isoformat() of a UTC moment starts with YYYY-MM-DDTHH:MM:SS; it is quicker than strftime.
    text = moment.astimezone(UTC).isoformat()[:19]
    if digits:
        text += "." + f"{moment.microsecond:06d}"[:digits].ljust(digits, "0")
    return text + "Z"


# --- Field resolution -----------------------------------------------------------------


def field_getter(field: str) -> Callable[[ObjectView], Any]:
    """A function reading ``field`` from an object (MISSING when absent).

    ``source`` is the source system, ``tags`` are STIX ``labels``, ``tlp`` the TLP
    level of ``object_marking_refs`` (clear, green, amber, amber+strict, red), ``file``
    the YAML file, ``enrichment.*`` and ``whois.*`` the locked enrichment results of the
    values the object names (docs/enrich.md, tiops.enrich.fields); anything else is a property name or dotted path, where a list is
    searched element by element (``external_references.source_name``) and a number
    picks one element (``external_references.0.url``).
    """
    if field == "source":
        return lambda obj: obj.source if obj.source is not None else MISSING
    if field == "file":
        return lambda obj: obj.file
    if field == "tlp":
        return lambda obj: tlp_level(obj.data.get("object_marking_refs")) or MISSING
    if field == "tags":
        field = "labels"
    enrichment_path = field_path(field)  # enrichment.country, whois.registered (tiops.enrich.attach)
    if enrichment_path is not None:
        return lambda obj: _walk(obj.data, enrichment_path)
    parts = field.split(".")
    if len(parts) == 1:
        name = parts[0]
        return lambda obj: obj.data.get(name, MISSING)
    if len(parts) == 2 and not parts[1].isdigit():
        outer, inner = parts

        def get_nested(obj: ObjectView) -> Any:
            # The common dotted path (external_references.source_name), written out for speed.
            value = obj.data.get(outer, MISSING)
            if value.__class__ is dict:
                return value.get(inner, MISSING)
            if value.__class__ is list:
                found = [item[inner] for item in value if item.__class__ is dict and inner in item]
                flat = [x for v in found for x in (v if v.__class__ is list else [v])]
                return flat if flat else MISSING
            return MISSING

        return get_nested
    return lambda obj: _walk(obj.data, parts)


def _walk(value: Any, parts: list[str]) -> Any:
    for index, part in enumerate(parts):
        if isinstance(value, dict):
            value = value.get(part, MISSING)
        elif isinstance(value, list):
            if part.isdigit():
                value = value[int(part)] if int(part) < len(value) else MISSING
            else:
                found = [v for item in value if (v := _walk(item, parts[index:])) is not MISSING]
                flat = [x for v in found for x in (v if isinstance(v, list) else [v])]
                return flat if flat else MISSING
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


# --- Compilation ----------------------------------------------------------------------

# Deeper trees are refused: the generated expression nests a few parentheses per level,
# and CPython's parser stops at 200.
MAX_DEPTH = 32


def compile_condition(condition: Condition | None, as_of: datetime | None = None,
                      path: tuple[str | int, ...] = ()) -> Predicate:
    """A function testing ``condition``; raises :class:`ConditionError` on a malformed tree.

    ``as_of`` is the build's as-of time, needed only by older-than / newer-than.
    """
    if condition is None:
        return always_true
    writer = ConditionWriter(as_of)
    expression = writer.expression(condition, path)
    predicate: Predicate = writer.function("predicate", "obj", ["data = obj.data", f"return {expression}"])
    return predicate


def check_condition(condition: Condition | None, as_of: datetime | None = None,
                    path: tuple[str | int, ...] = ()) -> None:
    """Raise :class:`ConditionError` if ``condition`` is malformed, without compiling it.

    Writing the expression runs every check :func:`compile_condition` makes; what it
    writes always compiles (the nesting limit keeps it within CPython's parser).
    """
    if condition is not None:
        ConditionWriter(as_of).expression(condition, path)


def always_true(obj: object) -> bool:
    """The test of a rule without conditions (``when`` omitted)."""
    return True


class ConditionWriter:
    """Writes condition trees as Python expressions, and compiles functions made of them.

    A tree of closures costs a call per node and per test; over 100k objects and a rule
    set of 50 that was most of the rules' time, so a condition is written as one
    expression over ``obj`` (the object) and ``data`` (its properties). The source is
    made only of fixed templates and generated names (``_c3``, ``_v5``): every value
    from a rule file (property names, expected values, regular expressions) is bound to
    a name of the function's closure and never written into the source. That is the
    technique of :mod:`dataclasses` and :func:`collections.namedtuple`. The rules engine
    writes whole rule programs with it (tiops.rules.engine).
    """

    def __init__(self, as_of: datetime | None) -> None:
        self.as_of = as_of
        self.constants: list[Any] = []
        self.temporaries = 0

    def bind(self, value: Any) -> str:
        """A name under which the compiled function sees ``value``."""
        self.constants.append(value)
        return f"_c{len(self.constants) - 1}"

    def temporary(self) -> str:
        self.temporaries += 1
        return f"_v{self.temporaries - 1}"

    def function(self, name: str, parameters: str, body: list[str], **fixed: Any) -> Callable[..., Any]:
        """Compile ``def name(parameters): body`` with the bound values and ``fixed`` names in scope."""
        names = ["MISSING", "_NUMBERS", *fixed, *(f"_c{i}" for i in range(len(self.constants)))]
        source = "\n".join([f"def factory({', '.join(names)}):", f"    def {name}({parameters}):",
                            *(f"        {line}" for line in body), f"    return {name}", ""])
        function: Callable[..., Any] = _factory(source)(MISSING, _NUMBERS, *fixed.values(), *self.constants)
        return function

    def expression(self, condition: Any, path: tuple[str | int, ...] = (), depth: int = 0) -> str:
        """``condition`` as an expression; raises :class:`ConditionError` on a malformed tree."""
        if not isinstance(condition, dict):
            raise ConditionError("TI500", "a condition must be a mapping (all, any, not, or field/op/value)", path)
        if depth > MAX_DEPTH:
            raise ConditionError("TI500", f"conditions nest at most {MAX_DEPTH} levels deep", path)
        keys = set(condition)
        for combinator in COMBINATORS:
            if combinator in condition:
                if len(keys) != 1:
                    extra = sorted(str(k) for k in keys - {combinator})
                    raise ConditionError("TI501", f"'{combinator}' stands alone; unexpected key(s) {', '.join(extra)}", path)
                inner = condition[combinator]
                if combinator == "not":
                    return f"(not {self.expression(inner, (*path, 'not'), depth + 1)})"
                if not isinstance(inner, list) or not inner:
                    raise ConditionError("TI500", f"'{combinator}' needs a non-empty list of conditions", (*path, combinator))
                parts = [self.expression(c, (*path, combinator, i), depth + 1) for i, c in enumerate(inner)]
                return "(" + (" and " if combinator == "all" else " or ").join(parts) + ")"
        unknown = keys - {"field", "op", "value"}
        if unknown:
            raise ConditionError("TI501", f"unknown key(s) in a condition: {', '.join(sorted(map(str, unknown)))}"
                                 " (a test has field, op and value; combine tests with all, any, not)", (*path, sorted(map(str, unknown))[0]))
        if "field" not in condition or "op" not in condition:
            raise ConditionError("TI500", "a test needs 'field' and 'op'", path)
        return self.test(condition, path)

    def test(self, test: Condition, path: tuple[str | int, ...]) -> str:
        field, op = test["field"], test["op"]
        if not isinstance(field, str) or not field:
            raise ConditionError("TI500", "'field' must be a property name", (*path, "field"))
        if op not in OPERATORS:
            raise ConditionError("TI503", f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}", (*path, "op"))
        has_value = "value" in test
        if op in VALUELESS_OPERATORS:
            if has_value:
                raise ConditionError("TI510", f"'{op}' takes no value", (*path, "value"))
            return self.presence(field, op == "exists")
        if not has_value:
            raise ConditionError("TI510", f"'{op}' needs a value", path)
        element = element_test(op, test["value"], self.as_of, path)
        hit = self.any_value(field, element)
        # not-equals / not-in hold for a missing property too: it equals nothing.
        return f"(not {hit})" if op in ("not-equals", "not-in") else hit

    def presence(self, field: str, exists: bool) -> str:
        name = simple_property(field)
        if name is not None:
            return f"({self.bind(name)} {'in' if exists else 'not in'} data)"
        return f"({self.bind(field_getter(field))}(obj) is {'not ' if exists else ''}MISSING)"

    def any_value(self, field: str, element: ElementTest) -> str:
        """A list property matches when any element does; a missing one never matches."""
        value = self.temporary()
        each = self.bind(element.call)
        one = element.inline.format(x=value, c=self.bind(element.constant)) if element.inline else f"{each}({value})"
        if field == "source":  # never a list
            return f"(({value} := obj.source) is not None and {one})"
        name = simple_property(field)
        fetch = f"data.get({self.bind(name)}, MISSING)" if name is not None else f"{self.bind(field_getter(field))}(obj)"
        return f"(({value} := {fetch}) is not MISSING and (any(map({each}, {value})) if {value}.__class__ is list else {one}))"


@functools.lru_cache(maxsize=1024)
def _factory(source: str) -> Callable[..., Any]:
    # Rules of one shape write the same source (values are bound, not written), so they share the code.
    namespace: dict[str, Any] = {}
    exec(compile(source, "<tiops rules>", "exec"), namespace)  # only fixed templates: see ConditionWriter
    factory: Callable[..., Any] = namespace["factory"]
    return factory


@dataclass(frozen=True)
class ElementTest:
    """An operator and its value, as a test of one value of a property.

    ``inline`` is the same test as an expression over ``{x}`` (the value) and ``{c}``
    (``constant``), for the operators that run most; it never contains rule text.
    """

    call: Callable[[Any], bool]
    inline: str | None = None
    constant: Any = None


_COMPARE_INLINE = {op: f"({{x}}.__class__ in _NUMBERS and {{x}} {op} {{c}})" for op in (">", ">=", "<", "<=")}
_MEMBER_INLINE = "({x}.casefold() in {c} if {x}.__class__ is str else ({x}.__class__ is not dict and {x} in {c}))"


def element_test(op: str, expected: Any, as_of: datetime | None, path: tuple[str | int, ...]) -> ElementTest:
    """The test of one value for ``op`` and its ``expected`` value (every operator but exists / not-exists)."""
    value_path = (*path, "value")
    if op in LIST_OPERATORS:
        if not isinstance(expected, list) or not expected:
            raise ConditionError("TI510", f"'{op}' needs a non-empty list as its value", value_path)
        return _equal_to_one_of([e for e in expected if hashable(e)])
    if op in ("equals", "not-equals"):
        if isinstance(expected, (list, dict)):
            raise ConditionError("TI510", f"'{op}' compares with one value; use 'in' for a list", value_path)
        return _equal_to_one_of([expected])
    if op in ("contains", "starts-with", "ends-with"):
        if not isinstance(expected, (str, int, float)) or isinstance(expected, bool):
            raise ConditionError("TI510", f"'{op}' needs a string value", value_path)
        needle = str(expected).casefold()
        if op == "contains":
            # A list contains a member; a string contains a substring (case-insensitive).
            return ElementTest(lambda v: (v.__class__ is str and needle in v.casefold()) or v == expected)
        if op == "starts-with":
            return ElementTest(lambda v: v.__class__ is str and v.casefold().startswith(needle),
                               "({x}.__class__ is str and {x}.casefold().startswith({c}))", needle)
        return ElementTest(lambda v: v.__class__ is str and v.casefold().endswith(needle),
                           "({x}.__class__ is str and {x}.casefold().endswith({c}))", needle)
    if op == "matches":
        if not isinstance(expected, str):
            raise ConditionError("TI510", "'matches' needs a regular expression string", value_path)
        search = _linear_search(expected, value_path)
        return ElementTest(lambda v: v.__class__ is str and search(v) is not None,
                           "({x}.__class__ is str and {c}({x}) is not None)", search)
    if op in TIME_OPERATORS:
        try:
            duration = parse_duration(expected)
        except ValueError as error:
            raise ConditionError("TI506", str(error), value_path) from None
        if as_of is None:
            raise ConditionError("TI511", f"'{op}' compares with the build's as-of time, and there is none", path)
        if as_of - EARLIEST_MOMENT < duration:
            # The cutoff falls before year 1, the first moment a STIX timestamp writes (section 3.2):
            # every timestamp is newer than it, none older (held to year 1, 0001-01-01T00:00:00Z was not).
            if op == "older-than":
                return ElementTest(lambda v: False)
            return ElementTest(lambda v: v.__class__ is str and fast_timestamp_key(v) is not None)
        cutoff = fast_timestamp_key(format_timestamp(shifted(as_of, -duration), like="2000-01-01T00:00:00.000000Z"))
        assert cutoff is not None
        cutoff_key = cutoff
        if op == "older-than":
            return ElementTest(lambda v: v.__class__ is str and (k := fast_timestamp_key(v)) is not None and k < cutoff_key)
        return ElementTest(lambda v: v.__class__ is str and (k := fast_timestamp_key(v)) is not None and k > cutoff_key)
    return _comparison(op, expected, value_path)


def _linear_search(pattern: str, value_path: tuple[str | int, ...]) -> Callable[[str], Any]:
    """The search of ``pattern`` by RE2, whose time is linear in the text searched.

    The texts are partner intel: with Python's backtracking engine a pattern such as
    ``(a+)+$`` took a build exponentially long on 40 characters that nearly match. A time
    limit would instead make the bundle depend on the machine's speed. RE2 has no
    backreferences or lookaround; a pattern using them is TI505 with RE2's reason.
    """
    import re2  # type: ignore[import-untyped]

    options = re2.Options()
    options.log_errors = False  # the finding says why; RE2 would also print it on stderr
    try:
        compiled = re2.compile(pattern, options=options)
    except re2.error as error:
        why = error.args[0].decode("utf-8", "replace") if error.args and isinstance(error.args[0], bytes) else str(error)
        raise ConditionError("TI505", f"bad regular expression {pattern!r}: {why} (RE2 syntax: no backreferences "
                                      "or lookaround, so a match takes time linear in the text)", value_path) from None
    search: Callable[[str], Any] = compiled.search
    return search


def _comparison(op: str, expected: Any, value_path: tuple[str | int, ...]) -> ElementTest:
    if isinstance(expected, bool) or not isinstance(expected, (int, float, str)):
        raise ConditionError("TI510", f"'{op}' compares with a number or a timestamp", value_path)
    compare: Callable[[Any, Any], bool] = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}[op]
    if isinstance(expected, str):
        # Timestamps compare as moments whatever their precision (section 3.2), other text as text.
        expected_key = fast_timestamp_key(expected)
        if expected_key is not None:
            key = expected_key
            return ElementTest(lambda v: v.__class__ is str and (k := fast_timestamp_key(v)) is not None and compare(k, key))
        text = expected
        return ElementTest(lambda v: v.__class__ is str and compare(v, text))
    number = expected
    return ElementTest(lambda v: v.__class__ in _NUMBERS and compare(v, number), _COMPARE_INLINE[op], number)


def _equal_to_one_of(expected: list[Any]) -> ElementTest:
    """Equal to one of ``expected``: text without regard to case, a timestamp as the moment it names
    whatever its precision (section 3.2: 2024-01-01T00:00:00Z is 2024-01-01T00:00:00.000Z), as the
    ordering comparisons take it."""
    moments = frozenset(key for e in expected if isinstance(e, str) and (key := fast_timestamp_key(e)) is not None)
    folded = frozenset(_fold(e) for e in expected if not (isinstance(e, str) and fast_timestamp_key(e) is not None))
    if not moments:
        return ElementTest(_member_of(folded), _MEMBER_INLINE, folded)
    member = _member_of(folded)
    return ElementTest(lambda v: member(v) or (v.__class__ is str and fast_timestamp_key(v) in moments))


def _member_of(folded: frozenset[Any]) -> Callable[[Any], bool]:
    def member(value: Any) -> bool:
        kind = value.__class__
        if kind is str:
            return value.casefold() in folded
        return kind is not list and kind is not dict and value in folded

    return member


def simple_property(field: str) -> str | None:
    """The top-level STIX property a field reads directly, or None (pseudo fields, dotted paths)."""
    if field == "tags":
        return "labels"
    if field in PSEUDO_FIELDS or "." in field:
        return None
    return field


def fast_timestamp_key(text: str) -> tuple[str, str] | None:
    """An ordering key for a STIX timestamp (section 3.2), without a regular expression.

    Seconds and the fraction without trailing zeros compare as strings, so timestamps of
    any precision order correctly. Objects are validated before compile; the shape check
    here keeps anything else from comparing at all.
    """
    if len(text) < 20 or text[-1] != "Z" or text[10] != "T" or text[4] != "-" or text[13] != ":":
        return None
    if len(text) == 20:
        return text[:19], ""
    if text[19] != ".":
        return None
    return text[:19], text[20:-1].rstrip("0")


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def hashable(value: Any) -> bool:
    return not isinstance(value, (list, dict))


def condition_fields(condition: Any) -> set[str]:
    """Every field a condition tree reads."""
    found: set[str] = set()
    if isinstance(condition, dict):
        if isinstance(condition.get("field"), str):
            found.add(condition["field"])
        for key, inner in condition.items():
            if key in COMBINATORS:
                found |= condition_fields(inner)
    elif isinstance(condition, list):
        for inner in condition:
            found |= condition_fields(inner)
    return found


def uses_as_of(condition: Any) -> bool:
    """Whether a condition tree compares with the as-of time (older-than / newer-than)."""
    if isinstance(condition, dict):
        if condition.get("op") in TIME_OPERATORS:
            return True
        return any(uses_as_of(v) for k, v in condition.items() if k in COMBINATORS)
    if isinstance(condition, list):
        return any(uses_as_of(c) for c in condition)
    return False


def matches(condition: Condition | None, obj: ObjectView, as_of: datetime | None = None) -> bool:
    """Evaluate a condition tree once (for repeated use, keep :func:`compile_condition`'s closure)."""
    return compile_condition(condition, as_of)(obj)
