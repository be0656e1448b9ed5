"""Conditions: the generated predicates against a plain reading of docs/rules.md.

`compile_condition` writes each condition tree as one Python function for speed. The
reference below evaluates the same trees the slow, obvious way; Hypothesis looks for a
tree and an object on which the two disagree.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiops.load import IntelObject
from tiops.rules.conditions import (
    MAX_DEPTH,
    MISSING,
    ConditionError,
    check_condition,
    compile_condition,
    field_getter,
    format_timestamp,
    parse_duration,
    parse_timestamp,
)

AS_OF = datetime(2025, 6, 1, tzinfo=UTC)


def reference(condition: dict[str, Any], obj: IntelObject) -> bool:
    if "all" in condition:
        return all(reference(c, obj) for c in condition["all"])
    if "any" in condition:
        return any(reference(c, obj) for c in condition["any"])
    if "not" in condition:
        return not reference(condition["not"], obj)
    op, expected = condition["op"], condition.get("value")
    value = field_getter(condition["field"])(obj)
    if op == "exists":
        return value is not MISSING
    if op == "not-exists":
        return value is MISSING
    if op in ("not-equals", "not-in"):
        return not reference({**condition, "op": op[4:]}, obj)
    values = [] if value is MISSING else value if isinstance(value, list) else [value]
    return any(_one(op, expected, v) for v in values)


def _one(op: str, expected: Any, value: Any) -> bool:
    def fold(x: Any) -> Any:
        return x.casefold() if isinstance(x, str) else x

    if op in ("equals", "in"):
        options = expected if op == "in" else [expected]
        return not isinstance(value, (list, dict)) and any(fold(value) == fold(o) for o in options)
    if op == "contains":
        return (isinstance(value, str) and str(expected).casefold() in value.casefold()) or value == expected
    if op == "starts-with":
        return isinstance(value, str) and value.casefold().startswith(str(expected).casefold())
    if op == "ends-with":
        return isinstance(value, str) and value.casefold().endswith(str(expected).casefold())
    if op == "matches":
        return isinstance(value, str) and re.search(expected, value) is not None
    if op in ("older-than", "newer-than"):
        moment = parse_timestamp(value)
        cutoff = AS_OF - parse_duration(expected)
        return moment is not None and (moment < cutoff if op == "older-than" else moment > cutoff)
    # >, >=, <, <=: numbers with numbers, timestamps as moments, other text as text.
    compare = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}[op]
    if isinstance(expected, str):
        if parse_timestamp(expected) is not None:
            return parse_timestamp(value) is not None and compare(parse_timestamp(value), parse_timestamp(expected))
        return isinstance(value, str) and compare(value, expected)
    return type(value) in (int, float) and compare(value, expected)


WORDS = ["Copper", "copper", "COPPER C2", "c2", "zz1", "Zz1-x", "", "ß", "ss", "10", "2025-05-01T00:00:00Z"]
STAMPS = ["2025-05-01T00:00:00Z", "2025-05-31T12:00:00.5Z", "2025-06-01T00:00:00.000Z", "2024-01-01T00:00:00.123456Z", "not a time"]
scalars = st.one_of(st.sampled_from(WORDS), st.sampled_from(STAMPS), st.integers(-2, 101), st.sampled_from([0.5, 85.0]),
                    st.booleans(), st.none())
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.lists(st.lists(scalars, max_size=2), max_size=2),
                   st.dictionaries(st.sampled_from(["source_name", "url"]), scalars, max_size=2))
FIELDS = ["name", "confidence", "labels", "tags", "modified", "source", "tlp", "file",
          "external_references.source_name", "external_references.0.url", "x_extra"]


@st.composite
def objects(draw: st.DrawFn) -> IntelObject:
    data: dict[str, Any] = {"type": "indicator", "id": "indicator--00000000-0000-4000-8000-000000000001"}
    for name in ("name", "confidence", "labels", "modified", "x_extra"):
        if draw(st.booleans()):
            data[name] = draw(values)
    if draw(st.booleans()):
        data["external_references"] = draw(st.lists(st.dictionaries(st.sampled_from(["source_name", "url"]), values, max_size=2), max_size=3))
    if draw(st.booleans()):
        data["object_marking_refs"] = ["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"]
    return IntelObject(data=data, file=draw(st.sampled_from(["intel/a.yaml", "intel/feeds/b.yaml"])),
                       source=draw(st.sampled_from([None, "Contoso TI", "contoso ti", "zz1 feed"])))


@st.composite
def single_tests(draw: st.DrawFn) -> dict[str, Any]:
    field = draw(st.sampled_from(FIELDS))
    op = draw(st.sampled_from(["equals", "not-equals", "in", "not-in", "contains", "starts-with", "ends-with", "matches",
                               ">", ">=", "<", "<=", "exists", "not-exists", "older-than", "newer-than"]))
    if op in ("exists", "not-exists"):
        return {"field": field, "op": op}
    if op in ("in", "not-in"):
        value: Any = draw(st.lists(st.one_of(st.sampled_from(WORDS), st.integers(0, 100), st.booleans()), min_size=1, max_size=3))
    elif op in ("equals", "not-equals"):
        value = draw(st.one_of(st.sampled_from(WORDS), st.integers(0, 100), st.booleans(), st.none()))
    elif op in ("contains", "starts-with", "ends-with"):
        value = draw(st.one_of(st.sampled_from(WORDS), st.integers(0, 100)))
    elif op == "matches":
        value = draw(st.sampled_from(["^Cop+er", "c2$", "[0-9]", "(?i)zz"]))
    elif op in ("older-than", "newer-than"):
        value = draw(st.sampled_from(["1d", "12h", "2w", "400d"]))
    else:
        value = draw(st.one_of(st.integers(-1, 101), st.sampled_from([50.5, "2025-05-01T00:00:00.000Z", "m"])))
    return {"field": field, "op": op, "value": value}


conditions = st.recursive(single_tests(), lambda inner: st.one_of(
    st.builds(lambda c: {"all": c}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda c: {"any": c}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda c: {"not": c}, inner)), max_leaves=6)


@settings(max_examples=400, deadline=None)
@given(conditions, objects())
def test_generated_predicates_agree_with_the_reference(condition: dict[str, Any], obj: IntelObject) -> None:
    assert compile_condition(condition, AS_OF)(obj) is reference(condition, obj)


def test_rule_text_is_data_never_code() -> None:
    # Values and field names are bound to names of the generated function, never written into it.
    hostile = "x') or __import__('os')._exit(3) or ('"
    obj = IntelObject(data={"type": "indicator", "name": hostile, "x_'quoted\"": 1}, file="f.yaml", source=None)
    assert compile_condition({"field": "name", "op": "equals", "value": hostile})(obj) is True
    assert compile_condition({"field": "name", "op": "equals", "value": "x"})(obj) is False
    assert compile_condition({"field": "x_'quoted\"", "op": ">=", "value": 1})(obj) is True
    assert compile_condition({"field": "x_'quoted\"", "op": "exists"})(obj) is True


def test_rules_of_one_shape_do_not_share_values() -> None:
    # Rules of the same shape share generated code; each keeps its own values.
    first = compile_condition({"field": "confidence", "op": ">=", "value": 80})
    second = compile_condition({"field": "confidence", "op": ">=", "value": 20})
    obj = IntelObject(data={"type": "indicator", "confidence": 50}, file="f.yaml", source=None)
    assert (first(obj), second(obj)) == (False, True)


def nested(depth: int) -> dict[str, Any]:
    """A test under ``depth`` nots."""
    condition: dict[str, Any] = {"field": "name", "op": "exists"}
    for _ in range(depth):
        condition = {"not": condition}
    return condition


def test_nesting_depth_has_a_limit_with_a_clear_error() -> None:
    obj = IntelObject(data={"type": "indicator", "name": "n"}, file="f.yaml", source=None)
    assert compile_condition(nested(MAX_DEPTH))(obj) is (MAX_DEPTH % 2 == 0)
    with pytest.raises(ConditionError) as error:
        compile_condition(nested(MAX_DEPTH + 1), path=(0, "when"))
    assert error.value.code == "TI500" and "nest" in error.value.message
    assert error.value.path == (0, "when", *(["not"] * (MAX_DEPTH + 1)))


def test_a_wide_condition_compiles() -> None:
    wide = {"any": [{"field": "name", "op": "equals", "value": f"n{i}"} for i in range(2000)]}
    predicate = compile_condition(wide)
    assert predicate(IntelObject(data={"name": "N1999"}, file="f.yaml", source=None)) is True
    assert predicate(IntelObject(data={"name": "n2000"}, file="f.yaml", source=None)) is False


def test_time_operators_use_the_as_of_time_not_the_clock() -> None:
    obj = IntelObject(data={"modified": "2025-05-25T00:00:00.000Z"}, file="f.yaml", source=None)
    condition = {"field": "modified", "op": "older-than", "value": "1w"}
    assert compile_condition(condition, AS_OF)(obj) is False
    assert compile_condition(condition, AS_OF + timedelta(days=1))(obj) is True


@pytest.mark.parametrize(("text", "like", "expected"), [
    ("2025-03-04T10:00:00.123Z", "2025-03-04T10:00:00.123Z", "2025-03-04T10:00:00.123Z"),
    ("2025-03-04T10:00:00.123456Z", "2025-03-04T10:00:00Z", "2025-03-04T10:00:00Z"),
    ("2025-03-04T10:00:00.1Z", "2025-01-01T00:00:00.10000Z", "2025-03-04T10:00:00.10000Z"),
    ("2016-12-31T23:59:60.5Z", None, "2016-12-31T23:59:59.500Z"),  # a leap second reads as :59
    ("0999-12-31T23:59:59Z", None, "0999-12-31T23:59:59.000Z"),  # years below 1000 keep four digits
])
def test_timestamps_parse_and_format_at_the_authors_precision(text: str, like: str | None, expected: str) -> None:
    moment = parse_timestamp(text)
    assert moment is not None and moment.tzinfo is not None
    assert format_timestamp(moment, like=like) == expected


@pytest.mark.parametrize("text", ["2025-02-30T00:00:00Z", "2025-03-04 10:00:00Z", "2025-03-04T10:00:00+00:00", "20250304T100000Z", 7])
def test_only_stix_timestamps_parse(text: Any) -> None:
    assert parse_timestamp(text) is None


@pytest.mark.parametrize("condition", [
    [], {"all": []}, {"any": "x"}, {"all": [{"field": "a", "op": "exists"}], "not": {}},
    {"field": "a", "op": "exists", "extra": 1}, {"op": "equals", "value": 1}, {"field": "", "op": "exists"},
    {"field": "a", "op": "near"}, {"field": "a", "op": "exists", "value": 1}, {"field": "a", "op": "equals"},
    {"field": "a", "op": "in", "value": []}, {"field": "a", "op": "equals", "value": [1]},
    {"field": "a", "op": "matches", "value": "("}, {"field": "a", "op": "older-than", "value": "soon"},
    {"field": "a", "op": ">", "value": True}, {"any": [{"field": "a", "op": "exists"}, {"not": 3}]},
    nested(MAX_DEPTH + 1),
])
def test_checking_refuses_what_compiling_refuses_at_the_same_place(condition: Any) -> None:
    # Rule files are checked without compiling (tiops.rules.model); the two must agree.
    with pytest.raises(ConditionError) as compiled:
        compile_condition(condition, AS_OF, (0, "when"))
    with pytest.raises(ConditionError) as checked:
        check_condition(condition, AS_OF, (0, "when"))
    assert (checked.value.code, checked.value.path) == (compiled.value.code, compiled.value.path)



def test_a_timestamp_equals_the_moment_it_names_whatever_its_precision() -> None:
    from tiops.rules.conditions import matches

    class View:
        def __init__(self, data: dict[str, object]) -> None:
            self.data, self.source, self.file = data, None, "x.yaml"

    obj = View({"type": "indicator", "created": "2024-01-01T00:00:00.000Z", "name": "2024-01-01T00:00:00Z"})
    for expected in ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000000Z", "2024-01-01T00:00:00.0Z"):
        assert matches({"field": "created", "op": "equals", "value": expected}, obj)  # type: ignore[arg-type]
        assert not matches({"field": "created", "op": "not-equals", "value": expected}, obj)  # type: ignore[arg-type]
        assert matches({"field": "created", "op": "in", "value": ["other", expected]}, obj)  # type: ignore[arg-type]
    assert not matches({"field": "created", "op": "equals", "value": "2024-01-01T00:00:00.001Z"}, obj)  # type: ignore[arg-type]
    assert matches({"field": "type", "op": "in", "value": ["INDICATOR", "2024-01-01T00:00:00Z"]}, obj)  # type: ignore[arg-type]


def test_a_rule_on_a_timestamp_of_another_precision_finds_its_objects_through_the_index() -> None:
    from tiops.load import IntelObject
    from tiops.rules.engine import apply_rules
    from tiops.rules.model import Action, Rule, RuleSet

    objects = [IntelObject({"type": "indicator", "id": f"indicator--{n}", "created": f"2024-01-0{n}T00:00:00.000Z"},
                           "x.yaml", (n,)) for n in range(1, 4)]
    rule = Rule("tag", 1, True, None, {"field": "created", "op": "in", "value": ["2024-01-02T00:00:00Z"]},
                (Action("add_tags", tags=("hit",)),), (), "rules/ingestion/r.yaml", 1, 1, 1)
    outcome = apply_rules(objects, RuleSet((rule,), "d"), None)
    assert [obj.data.get("labels") for obj in outcome.objects] == [None, ["hit"], None]


def test_matches_takes_time_linear_in_the_text_whatever_the_pattern() -> None:
    import time

    from tiops.rules.conditions import ConditionError, matches

    class View:
        def __init__(self, data: dict[str, object]) -> None:
            self.data, self.source, self.file = data, None, "x.yaml"

    # Nested quantifiers on a text that nearly matches: exponential for a backtracking engine
    # (Python's re took minutes at 40 characters), linear for RE2.
    obj = View({"type": "malware", "name": "a" * 5000 + "b", "description": "ab" * 3000})
    started = time.process_time()
    for pattern in ("(a+)+$", "^(a|aa)+$", "(a|a?)+c", "^(aa|a)*$"):
        assert not matches({"field": "name", "op": "matches", "value": pattern}, obj)  # type: ignore[arg-type]
    assert matches({"field": "description", "op": "matches", "value": "^(ab|a)*$"}, obj)  # type: ignore[arg-type]
    assert time.process_time() - started < 5  # seconds, where backtracking would not end
    for pattern, said in (("(a)\\1", "invalid escape sequence"), ("(?<=a)b", "invalid perl operator")):
        try:
            matches({"field": "name", "op": "matches", "value": pattern}, obj)  # type: ignore[arg-type]
        except ConditionError as error:
            assert error.code == "TI505" and said in error.message and "RE2 syntax" in error.message
        else:
            raise AssertionError(pattern)


def test_extend_keeps_every_fraction_digit_of_the_timestamp_it_moves() -> None:
    from datetime import timedelta

    from tiops.rules.engine import _extender
    from tiops.rules.model import Action

    extend = _extender(Action("extend", field="valid_until", duration=timedelta(days=1)))
    assert extend({"valid_until": "2025-01-01T00:00:00.123456789Z"}) == (("valid_until", "2025-01-02T00:00:00.123456789Z"),)
    assert extend({"valid_until": "2025-01-01T00:00:00.5Z"}) == (("valid_until", "2025-01-02T00:00:00.5Z"),)
    # Past the last moment STIX writes it stops there, at the precision written.
    assert extend({"valid_until": "9999-12-31T12:00:00.123456789Z"}) == (("valid_until", "9999-12-31T23:59:59.999999999Z"),)


def test_newer_than_a_cutoff_before_year_1_holds_for_every_timestamp() -> None:
    from datetime import UTC, datetime

    from tiops.rules.conditions import matches

    class View:
        def __init__(self, data: dict[str, object]) -> None:
            self.data, self.source, self.file = data, None, "x.yaml"

    as_of = datetime(2025, 1, 1, tzinfo=UTC)
    first = View({"type": "malware", "created": "0001-01-01T00:00:00Z"})
    for duration, newer in (("3652059d", True), ("739250d", False)):  # before year 1; 2025-01-01 minus it is 0001-01-02
        assert matches({"field": "created", "op": "newer-than", "value": duration}, first, as_of) is newer  # type: ignore[arg-type]
        assert matches({"field": "created", "op": "older-than", "value": duration}, first, as_of) is not newer  # type: ignore[arg-type]
