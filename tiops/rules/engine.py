"""The rules engine: ordered ingestion rules applied to every object in one pass.

Microsoft Sentinel's semantics: rules run from the lowest order up (ties by file
path, then position in the file); each rule sees every object that is still
there; a drop ends the object's journey; disabled rules are skipped; rules never
touch ``modified``. Objects are copied on write, so the loaded repository stays
as the authors wrote it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tiops.load import IntelObject
from tiops.memory import paused_gc
from tiops.rules.conditions import (
    MISSING,
    ConditionWriter,
    check_condition,
    fast_timestamp_key,
    field_getter,
    format_timestamp,
    hashable,
    parse_timestamp,
    simple_property,
)
from tiops.rules.model import Action, Rule, RuleSet
from tiops.stix import SCO_TYPES, shifted

if TYPE_CHECKING:
    from tiops.enrich.attach import BundleEnrichment

# Properties through which an SRO points at other objects (STIX 2.1 sections 5.1, 5.2):
# when their target is dropped, the relationship or sighting would dangle, so it goes too.
POINTERS: dict[str, tuple[str, ...]] = {
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
    cascaded: set[str] = field(default_factory=set)  # the ids of ``dropped`` that point at a dropped object
    changed: int = 0
    # Locked enrichment the bundle still has to add to the survivors (tiops.rules.apply_repo_rules
    # defers it when no rule reads it); None when it is on the objects already, or there is none.
    enrichment: BundleEnrichment | None = None


# An action reads an object's data and returns the properties it would change, as
# (name, new value) pairs with _ABSENT for a removal; None or () when nothing changes.
# It never mutates: the engine copies the object first, and only when there is a change.
_Applier = Callable[[dict[str, Any]], "Sequence[tuple[str, Any]] | None"]


@dataclass(frozen=True)
class _CompiledRule:
    position: int
    rule: Rule
    appliers: tuple[_Applier, ...]
    touches: tuple[str, ...]  # the properties the actions may change
    drops: bool
    probes: tuple[_Probe, ...] | None  # at least one passes whenever the rule matches; None: no index
    rest: Any  # the condition left to test once the probes found an object; None: nothing


def apply_rules(objects: Iterable[IntelObject], rule_set: RuleSet, as_of: datetime | None,
                *, record: bool = True) -> RulesOutcome:
    """Apply the enabled rules of ``rule_set`` to ``objects`` in one pass.

    Rules are indexed by object type and by a test every match needs (``source equals
    X``, ``tlp in [...]``, a ``starts-with``, an ``any`` of such tests), so most objects
    only meet the rules that can match them; those run as one generated program.
    """
    with paused_gc():
        return _apply(objects, rule_set, as_of, record)


def rule_results(objects: Iterable[IntelObject], rule_set: RuleSet, as_of: datetime | None) -> list[IntelObject | None]:
    """Each object as the enabled rules leave it (itself, or a changed copy), None where a rule
    drops it; what points at a dropped object is not dropped here (:func:`apply_rules` does that
    over the whole repository; tiops.bundlereuse works it out from the file indexes)."""
    results: list[IntelObject | None] = []
    with paused_gc():
        _apply(objects, rule_set, as_of, False, results)
    return results


def _apply(objects: Iterable[IntelObject], rule_set: RuleSet, as_of: datetime | None, record: bool,
           results: list[IntelObject | None] | None = None) -> RulesOutcome:
    enabled = [rule for rule in rule_set.rules if rule.enabled]
    changed_fields = {name for rule in enabled for name in _touched(rule.actions)}
    compiled = [_compile(position, rule, as_of, changed_fields) for position, rule in enumerate(enabled)]
    plans: dict[str, _Plan] = {}
    outcome = RulesOutcome(objects=[])
    survivors = outcome.objects
    applied = outcome.applied
    copies: set[int] = set()  # identities of the survivors that rules changed
    notes: list[tuple[_CompiledRule, tuple[Change, ...]]] | None = [] if record else None
    for obj in objects:
        stix_type: str = obj.data.get("type", "")
        plan = plans.get(stix_type)
        if plan is None:
            plan = plans[stix_type] = _Plan([c for c in compiled if c.rule.object_types is None
                                             or stix_type in c.rule.object_types], as_of, record)
        result = plan.run(obj, notes)
        if notes:
            applied[obj.id] = [RuleApplication(entry.rule.name, entry.rule.file, entry.rule.line, entry.rule.order,
                                               changes, entry.drops) for entry, changes in notes]
            notes.clear()
        if isinstance(result, _CompiledRule):  # the rule that dropped the object
            outcome.dropped[obj.id] = f"rule {result.rule.name!r}"
            outcome.dropped_by_rules += 1
            if results is not None:
                results.append(None)
            continue
        if result is not obj:
            outcome.changed += 1
            copies.add(id(result))
        survivors.append(result)
        if results is not None:
            results.append(result)
    if outcome.dropped and results is None:
        outcome.objects = _cascade(survivors, outcome, copies)
    return outcome


class _Plan:
    """The rules for one object type: those always tried, and those found by an index.

    An indexed rule has probes (see :func:`_probes`), at least one of which an object
    passes whenever the rule matches it, so an object whose values hit none of them
    never meets the rule.
    """

    # Each distinct set of index hits gets its own program. Past this many, objects run
    # the type's guarded program instead, so that a rule set whose index hits combine in
    # thousands of ways (tags, say) does not compile thousands of programs.
    MAX_PROGRAMS = 64

    def __init__(self, rules: list[_CompiledRule], as_of: datetime | None, record: bool) -> None:
        self.rules, self.as_of, self.record = rules, as_of, record
        always: list[_CompiledRule] = []
        exact: dict[str, dict[Any, list[_CompiledRule]]] = {}
        prefixes: dict[str, dict[int, dict[str, list[_CompiledRule]]]] = {}
        for entry in rules:
            if entry.probes is None:
                always.append(entry)
                continue
            for probe in entry.probes:
                for value in probe.values:
                    if probe.prefix:
                        table = prefixes.setdefault(probe.field, {}).setdefault(len(value), {})
                    else:
                        table = exact.setdefault(probe.field, {})
                    table.setdefault(value, []).append(entry)
        self.always = (always, _program(always, as_of, record))
        self.indexes = [(field_getter(name), exact.get(name, {}), sorted(prefixes.get(name, {}).items()))
                        for name in sorted(exact.keys() | prefixes.keys())]
        # ids of the index hits -> the rules they give, in order, and their program
        self.merged: dict[tuple[int, ...], tuple[list[_CompiledRule], _Program]] = {}
        self.guarded: _Program | None = None

    def run(self, obj: IntelObject, notes: list[tuple[_CompiledRule, tuple[Change, ...]]] | None) -> IntelObject | _CompiledRule:
        """Run ``obj`` through the rules it meets (see :data:`_Program`)."""
        hits = self._hits(obj)
        if not hits:
            return self.always[1](obj, notes, None)
        found = self._merged(hits)
        if found is not None:
            return found[1](obj, notes, None)
        if self.guarded is None:
            self.guarded = _program(self.rules, self.as_of, self.record, guarded=True)
        return self.guarded(obj, notes, {entry.position for rules in hits for entry in rules})

    def candidates(self, obj: IntelObject) -> list[_CompiledRule]:
        """The rules ``obj`` meets, in order."""
        return self._rules_for(self._hits(obj))

    def _rules_for(self, hits: list[list[_CompiledRule]]) -> list[_CompiledRule]:
        chosen = {id(e): e for e in self.always[0]}
        for found in hits:
            chosen.update((id(e), e) for e in found)
        return sorted(chosen.values(), key=lambda e: e.position)

    def _merged(self, hits: list[list[_CompiledRule]]) -> tuple[list[_CompiledRule], _Program] | None:
        key = tuple(map(id, hits))
        merged = self.merged.get(key)
        if merged is None and len(self.merged) < self.MAX_PROGRAMS:
            rules = self._rules_for(hits)
            merged = self.merged[key] = (rules, _program(rules, self.as_of, self.record))
        return merged

    def _hits(self, obj: IntelObject) -> list[list[_CompiledRule]]:
        """The index entries ``obj`` hits: lists of the rules it may meet."""
        hits: list[list[_CompiledRule]] = []
        for get, exact, prefixes in self.indexes:
            value = get(obj)
            if value.__class__ is str:  # the usual case, written out
                value = value.casefold()
                if (found := exact.get(value)) is not None:
                    hits.append(found)
                for length, table in prefixes:
                    if (found := table.get(value[:length])) is not None:
                        hits.append(found)
            elif value is not MISSING:
                self._probe_values(value, exact, prefixes, hits)
        return hits

    @staticmethod
    def _probe_values(value: Any, exact: dict[Any, list[_CompiledRule]],
                      prefixes: list[tuple[int, dict[str, list[_CompiledRule]]]], hits: list[list[_CompiledRule]]) -> None:
        for item in value if value.__class__ is list else (value,):
            if item.__class__ is str:
                item = item.casefold()
                for length, table in prefixes:
                    if (found := table.get(item[:length])) is not None:
                        hits.append(found)
            elif not hashable(item):
                continue
            if (found := exact.get(item)) is not None:
                hits.append(found)


# --- Programs ---------------------------------------------------------------------------
#
# A loop over rule objects (fetch the test, call it, fetch the actions, check what they
# returned, check for a drop, record...) cost more per object than the rules' own tests
# and actions. So the rules an object meets are one generated function: a block per
# rule, in order, its condition written inline (tiops.rules.conditions.ConditionWriter).
# Rule values, actions and entries are bound as closure names: as for conditions, no
# text from a rule file enters the source. Lists of rules of the same shape write the
# same source, which is compiled once.

# A program runs one object: it returns the object as the rules left it (the object
# itself when nothing changed), or the rule that dropped it. With a list for notes, it
# appends each matching rule and the changes it made. A guarded program runs only the
# indexed rules whose positions are in its third argument; others ignore it.
_Program = Callable[[IntelObject, "list[tuple[_CompiledRule, tuple[Change, ...]]] | None", "set[int] | None"],
                    "IntelObject | _CompiledRule"]


def _program(rules: Sequence[_CompiledRule], as_of: datetime | None, record: bool, *, guarded: bool = False) -> _Program:
    writer = ConditionWriter(as_of)
    # In the program, `obj` and `data` are the object as the rules so far left it.
    body = ["obj = original", "data = original.data", "owned = False"]
    for rule in rules:
        entry = writer.bind(rule)
        block: list[str] = []
        if record and rule.appliers:
            block.append(f"before = snapshot(data, {entry}.touches)")
        if len(rule.appliers) > 1:
            block.append("edited = False")
        for applier in rule.appliers:
            block += [f"updates = {writer.bind(applier)}(data)",
                      "if updates:",
                      "    if not owned:  # copy on the first real change; later edits go to the copy",
                      "        data = dict(data)",
                      "        obj = original.with_data(data)",
                      "        owned = True",
                      *(["    edited = True"] if len(rule.appliers) > 1 else []),
                      "    for key, value in updates:",
                      "        if value is ABSENT:",
                      "            data.pop(key, None)",
                      "        else:",
                      "            data[key] = value"]
        if len(rule.appliers) > 1:
            block += ["if edited and data == original.data:  # the rule's actions undid each other",
                      "    obj, data, owned = original, original.data, False"]
        if record:
            block.append(f"notes.append(({entry}, changes_of({entry}.touches, before, data)))" if rule.appliers
                         else f"notes.append(({entry}, ()))")
        if rule.drops:
            block.append(f"return {entry}")
        tests = [f"{rule.position:d} in candidates"] if guarded and rule.probes is not None else []
        if rule.rest is not None:
            tests.append(writer.expression(rule.rest))
        if tests:
            body += [f"if {' and '.join(tests)}:", *("    " + line for line in block or ["pass"])]
        else:
            body += block
    body.append("return obj")
    program: _Program = writer.function("run", "original, notes, candidates", body,
                                        ABSENT=_ABSENT, snapshot=_snapshot, changes_of=_changes)
    return program


def _snapshot(data: dict[str, Any], keys: tuple[str, ...]) -> list[Any]:
    return [data.get(key, _ABSENT) for key in keys]


def _changes(keys: tuple[str, ...], before: list[Any], after: dict[str, Any]) -> tuple[Change, ...]:
    return tuple(Change(key, None if old is _ABSENT else old, after.get(key))
                 for key, old in zip(keys, before, strict=True) if after.get(key, _ABSENT) != old)


@dataclass(frozen=True)
class _Probe:
    """Values of one field, folded, of which an object must have one (or one prefix)."""

    field: str
    values: tuple[Any, ...]
    prefix: bool = False


def _probes(condition: Any, stable: Callable[[str], bool]) -> tuple[list[_Probe], Any] | None:
    """Probes that every object the condition matches passes, and what is left to test.

    ``equals``/``in`` give exact probes and ``starts-with`` a prefix probe, on fields no
    action changes (a changed field could match later in the pass than at its start). In
    an ``all``, one test with probes is enough: an equality is then taken out of what is
    left to test. An ``any`` has probes only when every branch has some.
    """
    if not isinstance(condition, dict):
        return None
    if "all" in condition:
        tests = condition["all"]
        if not isinstance(tests, list):
            return None
        found = [(position, _probes(test, stable)) for position, test in enumerate(tests)]
        for position, probes in found:
            if probes is not None and probes[1] is None:
                rest = tests[:position] + tests[position + 1:]
                return probes[0], ({"all": rest} if rest else None)
        return next(((probes[0], condition) for _, probes in found if probes is not None), None)
    if "any" in condition:
        branches = condition["any"]
        if not isinstance(branches, list):
            return None
        union: list[_Probe] = []
        for branch in branches:
            probes = _probes(branch, stable)
            if probes is None:
                return None
            union.extend(probes[0])
        return (union, condition) if union else None
    field_name, op, value = condition.get("field"), condition.get("op"), condition.get("value")
    if not isinstance(field_name, str) or not stable(field_name):
        return None
    if op in ("equals", "in"):
        values = value if op == "in" else [value]
        # A timestamp equals every text of the same moment (2024-01-01T00:00:00Z and ...00.000Z):
        # no exact probe finds those, so the test runs on every object.
        if (isinstance(values, list) and all(hashable(v) for v in values)
                and not any(isinstance(v, str) and fast_timestamp_key(v) is not None for v in values)):
            return [_Probe(field_name, tuple(v.casefold() if isinstance(v, str) else v for v in values))], None
    if op == "starts-with" and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return [_Probe(field_name, (str(value).casefold(),), prefix=True)], condition
    return None


def _stable_fields(changed_fields: set[str]) -> Callable[[str], bool]:
    """Whether a field reads only properties that no enabled rule's action changes."""
    def stable(field_name: str) -> bool:
        if field_name in ("source", "file"):
            return True
        if field_name == "tlp":
            return "object_marking_refs" not in changed_fields
        read = simple_property(field_name) or field_name.split(".")[0]
        return read not in changed_fields

    return stable


_ABSENT = object()


def _cascade(survivors: list[IntelObject], outcome: RulesOutcome, copies: set[int]) -> list[IntelObject]:
    kept: list[IntelObject] = []
    gone = outcome.dropped
    for obj in survivors:
        pointers = POINTERS.get(obj.data.get("type", ""))
        target = None
        for pointer in pointers or ():
            if (value := obj.data.get(pointer)) in gone:
                target = value
                break
        if target is None:
            kept.append(obj)
            continue
        gone[obj.id] = f"points at dropped {target}"
        outcome.cascaded.add(obj.id)
        outcome.dropped_by_cascade += 1
        if id(obj) in copies:  # a dropped object no longer counts as changed
            outcome.changed -= 1
    return kept


def _compile(position: int, rule: Rule, as_of: datetime | None, changed_fields: set[str]) -> _CompiledRule:
    check_condition(rule.when, as_of, (rule.index, "when"))  # fail here, at the rule, not in a program
    appliers = tuple(_applier(action) for action in rule.actions if action.kind != "drop")
    found = _probes(rule.when, _stable_fields(changed_fields))
    probes, rest = (None, rule.when) if found is None else (tuple(found[0]), found[1])
    return _CompiledRule(position, rule, appliers, _touched(rule.actions), any(a.kind == "drop" for a in rule.actions),
                         probes, rest)


def changed_properties(rule_set: RuleSet) -> frozenset[str]:
    """The properties the actions of the enabled rules may change."""
    return frozenset(name for rule in rule_set.rules if rule.enabled for name in _touched(rule.actions))


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
        tags = tuple(dict.fromkeys(action.tags))  # a rule may name a tag twice

        def add_tags(data: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
            if data.get("type") in SCO_TYPES:
                return ()  # an SCO has no labels (STIX 2.1 section 6.1)
            labels = data.get("labels") or ()
            missing = [tag for tag in tags if tag not in labels]
            return (("labels", [*labels, *missing]),) if missing else ()

        if len(tags) == 1:
            [tag] = tags

            def add_tag(data: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
                # The usual rule adds one tag; this runs for most objects of a feed.
                labels = data.get("labels") or ()
                return () if tag in labels or data.get("type") in SCO_TYPES else (("labels", [*labels, tag]),)

            return add_tag
        return add_tags
    if action.kind == "remove_tags":
        unwanted = frozenset(action.tags)

        def remove_tags(data: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
            labels = data.get("labels") or ()
            if unwanted.isdisjoint(labels):
                return ()
            kept = [label for label in labels if label not in unwanted]
            # STIX lists must not be empty (section 3.2, labels): no tags left, no property.
            return (("labels", kept if kept else _ABSENT),)

        return remove_tags
    if action.kind == "set_confidence":
        confidence = action.confidence

        def set_confidence(data: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
            if data.get("confidence", _ABSENT) == confidence or data.get("type") in SCO_TYPES:
                return ()  # an SCO has no confidence (STIX 2.1 section 6.1)
            return (("confidence", confidence),)

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
        moved = shifted(base, duration)
        extended = format_timestamp(moved, like=base_text)
        if isinstance(base_text, str) and len(base_text) > 27:  # more fraction digits than a datetime's microseconds
            # Durations are whole seconds, so the fraction is the base's own, kept as written ("keeping its
            # precision" means its digits too); at the end of time, the last moment at that precision.
            fraction = base_text[19:-1] if moved - base == duration else "." + "9" * (len(base_text) - 21)
            extended = extended[:19] + fraction + "Z"
        return () if data.get(name) == extended else ((name, extended),)

    return extend
