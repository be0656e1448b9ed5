"""The rules engine: ordered ingestion rules applied to every object in one pass.

Microsoft Sentinel's semantics: rules run from the lowest order up (ties by file
path, then position in the file); each rule sees every object that is still
there; a drop ends the object's journey; disabled rules are skipped; rules never
touch ``modified``. Objects are copied on write, so the loaded repository stays
as the authors wrote it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tiops.load import IntelObject
from tiops.memory import paused_gc
from tiops.rules.conditions import (
    MISSING,
    Predicate,
    compile_condition,
    field_getter,
    format_timestamp,
    hashable,
    parse_timestamp,
    simple_property,
)
from tiops.rules.model import Action, Rule, RuleSet

# Properties through which an SRO points at other objects (STIX 2.1 sections 5.1, 5.2):
# when their target is dropped, the relationship or sighting would dangle, so it goes too.
_POINTERS: dict[str, tuple[str, ...]] = {
    "relationship": ("source_ref", "target_ref"),
    "sighting": ("sighting_of_ref",),
}


@dataclass(frozen=True)
class Change:
    field: str
    before: Any  # None when the property was absent
    after: Any  # None when the property was removed


@dataclass(frozen=True)
class RuleApplication:
    """One rule that matched one object, and what it did."""

    rule: str
    file: str
    line: int
    order: int
    changes: tuple[Change, ...]
    dropped: bool = False


@dataclass
class RulesOutcome:
    objects: list[IntelObject]  # the survivors, in input order
    applied: dict[str, list[RuleApplication]] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)  # id -> why ("rule NAME" or "points at ID")
    dropped_by_rules: int = 0
    dropped_by_cascade: int = 0
    changed: int = 0


# An action reads an object's data and returns the properties it would change, as
# (name, new value) pairs with _ABSENT for a removal; None or () when nothing changes.
# It never mutates: the engine copies the object first, and only when there is a change.
_Applier = Callable[[dict[str, Any]], "Sequence[tuple[str, Any]] | None"]


@dataclass(frozen=True)
class _CompiledRule:
    position: int
    rule: Rule
    predicate: Predicate
    appliers: tuple[_Applier, ...]
    touches: tuple[str, ...]  # the properties the actions may change
    drops: bool
    index_key: tuple[str, list[Any]] | None = None  # (field, values) of an equality every match needs
    rest: Predicate | None = None  # the condition without that equality, for objects the index found

    @functools.cached_property
    def test(self) -> Predicate:
        # The index already checked the rule's equality test (on a field no rule changes).
        return self.predicate if self.rest is None else self.rest


def apply_rules(objects: Iterable[IntelObject], rule_set: RuleSet, as_of: datetime | None,
                *, record: bool = True) -> RulesOutcome:
    """Apply the enabled rules of ``rule_set`` to ``objects`` in one pass.

    Each condition is compiled once; rules are indexed by object type, and by the value
    of an equality test that every match needs (``source equals X``, ``tlp in [...]``),
    so most objects only meet the rules that can match them.
    """
    with paused_gc():
        return _apply(objects, rule_set, as_of, record)


def _apply(objects: Iterable[IntelObject], rule_set: RuleSet, as_of: datetime | None, record: bool) -> RulesOutcome:
    enabled = [rule for rule in rule_set.rules if rule.enabled]
    changed_fields = {name for rule in enabled for name in _touched(rule.actions)}
    compiled = [_compile(position, rule, as_of, changed_fields) for position, rule in enumerate(enabled)]
    plans: dict[str, _Plan] = {}
    outcome = RulesOutcome(objects=[])
    survivors = outcome.objects
    applied = outcome.applied
    for obj in objects:
        stix_type: str = obj.data.get("type", "")
        plan = plans.get(stix_type)
        if plan is None:
            plan = plans[stix_type] = _Plan([c for c in compiled if c.rule.object_types is None
                                             or stix_type in c.rule.object_types])
        current = obj
        owned = False  # whether `current` is already this pass's private copy
        dropped = False
        for entry in plan.candidates(obj):
            if not entry.test(current):
                continue
            changes: tuple[Change, ...] = ()
            if entry.appliers:
                before = [current.data.get(key, _ABSENT) for key in entry.touches] if record else None
                edited = False
                for applier in entry.appliers:
                    updates = applier(current.data)
                    if not updates:
                        continue
                    if not owned:
                        # Copy on the first real change only: later edits go to the copy.
                        current, owned = current.with_data(dict(current.data)), True
                    edited = True
                    _update(current.data, updates)
                if edited and len(entry.appliers) > 1 and current.data == obj.data:
                    current, owned = obj, False  # the rule's actions undid each other
                if before is not None:
                    after = current.data
                    changes = tuple(Change(key, None if old is _ABSENT else old, after.get(key))
                                    for key, old in zip(entry.touches, before, strict=True) if after.get(key, _ABSENT) != old)
            rule = entry.rule
            if record:
                applied.setdefault(obj.id, []).append(
                    RuleApplication(rule.name, rule.file, rule.line, rule.order, changes, entry.drops))
            if entry.drops:
                dropped = True
                outcome.dropped[obj.id] = f"rule {rule.name!r}"
                outcome.dropped_by_rules += 1
                break
        if not dropped:
            if current is not obj:
                outcome.changed += 1
            survivors.append(current)
    if outcome.dropped:
        outcome.objects = _cascade(survivors, outcome)
    return outcome


def _update(data: dict[str, Any], updates: Sequence[tuple[str, Any]]) -> None:
    for key, value in updates:
        if value is _ABSENT:
            data.pop(key, None)
        else:
            data[key] = value


class _Plan:
    """The rules for one object type: those always tried, and those found by an index."""

    def __init__(self, rules: list[_CompiledRule]) -> None:
        self.always: list[_CompiledRule] = []
        indexes: dict[str, dict[Any, list[_CompiledRule]]] = {}
        for entry in rules:
            key = entry.index_key
            if key is None:
                self.always.append(entry)
                continue
            field_name, values = key
            for value in values:
                indexes.setdefault(field_name, {}).setdefault(value, []).append(entry)
        self.indexes = [(field_getter(name), table) for name, table in sorted(indexes.items())]
        self.merged: dict[tuple[Any, ...], list[_CompiledRule]] = {}  # index hits -> rules in order

    def candidates(self, obj: IntelObject) -> list[_CompiledRule]:
        if not self.indexes:
            return self.always
        hits: list[Any] = []  # index position, value, index position, value, ...
        for position, (get, table) in enumerate(self.indexes):
            value = get(obj)
            if value is MISSING:
                continue
            for item in value if value.__class__ is list else (value,):
                if hashable(item) and (item.casefold() if item.__class__ is str else item) in table:
                    hits.append(position)
                    hits.append(item.casefold() if item.__class__ is str else item)
        if not hits:
            return self.always
        key = tuple(hits)
        found = self.merged.get(key)
        if found is None:
            chosen = {id(e): e for e in self.always}
            for position in range(0, len(hits), 2):
                chosen.update((id(e), e) for e in self.indexes[hits[position]][1][hits[position + 1]])
            found = self.merged[key] = sorted(chosen.values(), key=lambda e: e.position)
        return found


def _index_key(condition: Any, changed_fields: set[str]) -> tuple[str, list[Any], list[Any]] | None:
    """(field, folded values, the other tests) of an equals/in test that every match passes."""
    if not isinstance(condition, dict):
        return None
    tests = condition.get("all", [condition])
    for position, test in enumerate(tests):
        if not isinstance(test, dict) or test.get("op") not in ("equals", "in"):
            continue
        field_name = test.get("field")
        property_name = simple_property(field_name) if isinstance(field_name, str) else None
        read = {"tlp": "object_marking_refs"}.get(str(field_name), property_name)
        # A field an action may change could match later in the pass than it did at the start.
        if not isinstance(field_name, str) or read in changed_fields or (property_name is None and field_name not in ("source", "tlp", "file")):
            continue
        values = test.get("value") if test["op"] == "in" else [test.get("value")]
        if isinstance(values, list) and all(hashable(v) for v in values):
            return field_name, [v.casefold() if isinstance(v, str) else v for v in values], tests[:position] + tests[position + 1:]
    return None


_ABSENT = object()


def _cascade(survivors: list[IntelObject], outcome: RulesOutcome) -> list[IntelObject]:
    kept: list[IntelObject] = []
    gone = outcome.dropped
    for obj in survivors:
        pointers = _POINTERS.get(obj.type)
        target = next((obj.data.get(p) for p in pointers or () if obj.data.get(p) in gone), None)
        if target is not None:
            gone[obj.id] = f"points at dropped {target}"
            outcome.dropped_by_cascade += 1
            if obj.id in outcome.applied and any(a.changes for a in outcome.applied[obj.id]):
                outcome.changed -= 1
            continue
        kept.append(obj)
    return kept


def _compile(position: int, rule: Rule, as_of: datetime | None, changed_fields: set[str]) -> _CompiledRule:
    predicate = compile_condition(rule.when, as_of, (rule.index, "when"))
    appliers = tuple(_applier(action) for action in rule.actions if action.kind != "drop")
    key = _index_key(rule.when, changed_fields)
    rest: Predicate | None = None
    if key is not None:
        rest = compile_condition({"all": key[2]}, as_of) if key[2] else _always
    return _CompiledRule(position, rule, predicate, appliers, _touched(rule.actions), any(a.kind == "drop" for a in rule.actions),
                         (key[0], key[1]) if key is not None else None, rest)


def _always(obj: object) -> bool:
    return True


def _touched(actions: Iterable[Action]) -> tuple[str, ...]:
    names: list[str] = []
    for action in actions:
        if action.kind == "set":
            names.extend(name for name, _ in action.values)
        elif action.kind in ("add_tags", "remove_tags"):
            names.append("labels")
        elif action.kind == "set_confidence":
            names.append("confidence")
        elif action.kind == "revoke":
            names.append("revoked")
        elif action.kind == "extend":
            names.append(action.field)
    return tuple(sorted(set(names)))


def _applier(action: Action) -> _Applier:
    if action.kind == "extend":
        return _extender(action)
    if action.kind == "set":
        values = action.values

        def set_values(data: dict[str, Any]) -> list[tuple[str, Any]]:
            return [(key, value) for key, value in values if data.get(key, _ABSENT) != value]

        return set_values
    if action.kind == "add_tags":
        tags = action.tags

        def add_tags(data: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
            labels = data.get("labels") or ()
            missing = [tag for tag in tags if tag not in labels]
            if not missing:
                return ()
            added = list(labels)
            for tag in missing:
                if tag not in added:  # a rule may name a tag twice
                    added.append(tag)
            return (("labels", added),)

        return add_tags
    if action.kind == "remove_tags":
        unwanted = frozenset(action.tags)

        def remove_tags(data: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
            labels = data.get("labels") or ()
            if not any(label in unwanted for label in labels):
                return ()
            kept = [label for label in labels if label not in unwanted]
            # STIX lists must not be empty (section 3.2, labels): no tags left, no property.
            return (("labels", kept if kept else _ABSENT),)

        return remove_tags
    if action.kind == "set_confidence":
        confidence = action.confidence

        def set_confidence(data: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
            return () if data.get("confidence", _ABSENT) == confidence else (("confidence", confidence),)

        return set_confidence

    def revoke(data: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
        return () if data.get("revoked") is True else (("revoked", True),)

    return revoke


def _extender(action: Action) -> _Applier:
    name, duration = action.field, action.duration

    def extend(data: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
        # From the current value; an indicator without valid_until counts from valid_from.
        base_text = data.get(name)
        if base_text is None and name == "valid_until":
            base_text = data.get("valid_from")
        base = parse_timestamp(base_text)
        if base is None:
            return ()
        extended = format_timestamp(base + duration, like=base_text)
        return () if data.get(name) == extended else ((name, extended),)

    return extend
