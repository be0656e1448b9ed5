"""The rule index must never change an outcome: it only skips rules that cannot match.

Hypothesis draws rule sets (including rules whose actions change fields that later
rules test) and objects, and compares the engine with its index against the same engine
with every rule tried on every object.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from tiops.load import IntelObject
from tiops.rules import engine
from tiops.rules.engine import _Plan, apply_rules
from tiops.rules.model import Action, Rule, RuleSet

from .test_conditions import STAMPS

AS_OF = datetime(2025, 6, 1, tzinfo=UTC)
ACTIONS = [
    Action("add_tags", tags=("zz1",)), Action("add_tags", tags=("Copper", "amber")), Action("remove_tags", tags=("amber",)),
    Action("set", values=(("name", "zz1 renamed"),)), Action("set", values=(("x_extra", "copper"),)),
    Action("set_confidence", confidence=10), Action("revoke"), Action("drop"),
    Action("extend", field="valid_until", duration=timedelta(days=30)),
]
SOURCES = [None, "Contoso TI", "zz1"]
# A small vocabulary shared by objects and tests, so that drawn tests often hit and often miss.
vocabulary = st.sampled_from(["Contoso TI", "zz1", "ZZ1 renamed", "Copper"])
FIELDS = ["source", "name", "tags", "tlp", "external_references.source_name", "x_extra", "confidence"]
OPS = ["equals", "equals", "in", "starts-with", "not-equals", ">=", "exists"]  # mostly tests the index serves


def leaf(field: str, op: str, word: str, number: int) -> dict[str, Any]:
    if op == "exists":
        return {"field": field, "op": op}
    if op == ">=":
        return {"field": "confidence", "op": op, "value": number}
    if field == "tlp":
        word = "amber"
    value: Any = number if field == "confidence" else word
    return {"field": field, "op": op, "value": [value, "Copper"] if op == "in" else value}


leaves = st.builds(leaf, st.sampled_from(FIELDS), st.sampled_from(OPS), vocabulary, st.integers(0, 100))
conditions = st.recursive(leaves, lambda inner: st.one_of(
    st.builds(lambda c: {"all": c}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda c: {"any": c}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda c: {"not": c}, inner)), max_leaves=4)


@st.composite
def valid_objects(draw: st.DrawFn) -> IntelObject:
    """Objects as rules meet them: validated, so every property has its STIX shape."""
    optional: dict[str, Any] = {
        "name": vocabulary, "confidence": st.integers(0, 100), "labels": st.lists(vocabulary, min_size=1, max_size=3),
        "modified": st.sampled_from(STAMPS[:4]), "valid_from": st.sampled_from(STAMPS[:4]), "x_extra": vocabulary,
        "external_references": st.lists(st.fixed_dictionaries({"source_name": vocabulary}), min_size=1, max_size=2),
        "object_marking_refs": st.just(["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"]),
    }
    data = {"type": draw(st.sampled_from(["indicator", "malware"]))}
    data.update({name: draw(strategy) for name, strategy in optional.items() if draw(st.booleans())})
    return IntelObject(data=data, file=draw(st.sampled_from(["intel/a.yaml", "intel/feeds/b.yaml"])),
                       source=draw(st.sampled_from(SOURCES)))


def rule(position: int, when: dict[str, Any] | None, actions: tuple[Action, ...], types: frozenset[str] | None) -> Rule:
    return Rule(f"r{position}", position, True, types, when, actions, (), "rules/ingestion/r.yaml", position, 1, 1)


rule_sets = st.lists(st.tuples(st.one_of(st.none(), conditions), st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=2),
                               st.sampled_from([None, frozenset({"indicator"}), frozenset({"malware"})])),
                     min_size=1, max_size=6).map(
    lambda drawn: RuleSet(tuple(rule(i, when, tuple(actions), types) for i, (when, actions, types) in enumerate(drawn)), "x"))


def outcome_of(objects: list[IntelObject], rule_set: RuleSet) -> tuple[Any, ...]:
    outcome = apply_rules(objects, rule_set, AS_OF)
    return ([o.data for o in outcome.objects], outcome.applied, outcome.dropped, outcome.changed)


@settings(max_examples=800, deadline=None)
@given(rule_sets, st.lists(valid_objects(), min_size=1, max_size=4))
def test_the_index_never_changes_an_outcome(rule_set: RuleSet, drawn: list[IntelObject]) -> None:
    batch = [IntelObject(data={**o.data, "id": f"{o.data['type']}--00000000-0000-4000-8000-{i:012d}"}, file=o.file, source=o.source)
             for i, o in enumerate(drawn)]
    indexed = outcome_of(batch, rule_set)
    with mock.patch.object(engine, "_probes", return_value=None):
        assert outcome_of(batch, rule_set) == indexed
    # Past MAX_PROGRAMS hit combinations, objects run the type's guarded program.
    with mock.patch.object(_Plan, "MAX_PROGRAMS", 0):
        assert outcome_of(batch, rule_set) == indexed


def test_any_of_a_dotted_equality_and_a_prefix_is_indexed() -> None:
    when = {"any": [{"field": "external_references.source_name", "op": "equals", "value": "Src-1"},
                    {"field": "name", "op": "starts-with", "value": "ZZ1"}]}
    compiled = engine._compile(0, rule(0, when, (Action("revoke"),), None), AS_OF, set())
    plan = _Plan([compiled], AS_OF, record=False)

    def meets(data: dict[str, Any]) -> bool:
        return compiled in plan.candidates(IntelObject(data={"type": "indicator", **data}, file="f.yaml", source=None))

    assert meets({"external_references": [{"source_name": "x"}, {"source_name": "src-1"}]})
    assert meets({"name": "zz1 beacon"}) and meets({"name": "Zz10"})
    assert not meets({"name": "z1", "external_references": [{"source_name": "src-2"}]})
    assert not meets({})


def test_a_field_some_action_changes_is_not_indexed() -> None:
    when = {"field": "name", "op": "starts-with", "value": "zz"}
    assert engine._compile(0, rule(0, when, (Action("drop"),), None), AS_OF, {"name"}).probes is None
    assert engine._compile(0, rule(0, when, (Action("drop"),), None), AS_OF, {"labels"}).probes is not None


def test_null_and_numeric_values_are_found_by_the_index() -> None:
    rule_set = RuleSet((rule(0, {"field": "x_extra", "op": "equals", "value": None}, (Action("revoke"),), None),
                        rule(1, {"field": "confidence", "op": "in", "value": [40, 50]}, (Action("add_tags", tags=("mid",)),), None)), "x")
    objects = [IntelObject(data={"type": "indicator", "id": "indicator--1", "x_extra": None, "confidence": 50}, file="f.yaml"),
               IntelObject(data={"type": "indicator", "id": "indicator--2", "confidence": 60}, file="f.yaml")]
    first, second = apply_rules(objects, rule_set, AS_OF).objects
    assert (first.data.get("revoked"), first.data.get("labels")) == (True, ["mid"])
    assert "revoked" not in second.data and "labels" not in second.data
