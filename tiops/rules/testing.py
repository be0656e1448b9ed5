"""``tiops test``: run the examples written on each ingestion rule.

A rule test applies its one rule (even a disabled one: the example documents the
rule) to its ``input`` object and compares the outcome with ``expect``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tiops.load import IntelObject
from tiops.rules.conditions import ConditionError
from tiops.rules.engine import apply_rules
from tiops.rules.model import Rule, RuleSet, RuleTest


@dataclass(frozen=True)
class RuleTestResult:
    rule: str
    test: str
    file: str
    line: int
    passed: bool
    diff: tuple[str, ...]  # "field: expected X, got Y" lines when it failed
    # The rule is disabled: its tests run (a rule is tested before it is turned on), and say so.
    disabled: bool = False


def run_rule_tests(rule_set: RuleSet, as_of: datetime | None) -> list[RuleTestResult]:
    """Every rule test of ``rule_set``, in rule order."""
    return [run_rule_test(rule, test, as_of) for rule in rule_set.rules for test in rule.tests]


def run_rule_test(rule: Rule, test: RuleTest, as_of: datetime | None) -> RuleTestResult:
    subject = IntelObject(data=dict(test.input), file=rule.file, source=test.source)
    if test.enrichment:
        subject = _enriched(subject, test.enrichment)
    single = RuleSet((replace(rule, enabled=True),), "")
    try:
        outcome = apply_rules([subject], single, test.as_of or as_of)
    except ConditionError as error:
        return RuleTestResult(rule.name, test.name, rule.file, rule.line, False, (error.message + "; give the test an as_of",),
                              not rule.enabled)
    dropped = not outcome.objects
    diff: list[str] = []
    if test.expect_dropped is not None and dropped != test.expect_dropped:
        diff.append(f"dropped: expected {str(test.expect_dropped).lower()}, got {str(dropped).lower()}")
    if test.expect_fields is not None:
        if dropped:
            diff.append("expected fields, but the rule dropped the object")
        else:
            result = outcome.objects[0].data
            for name, expected in test.expect_fields.items():
                actual: Any = result.get("labels" if name == "tags" else name)
                if actual != expected:
                    diff.append(f"{name}: expected {expected!r}, got {'(absent)' if actual is None else repr(actual)}")
    return RuleTestResult(rule.name, test.name, rule.file, rule.line, not diff, tuple(diff), not rule.enabled)


def _enriched(subject: IntelObject, results: dict[str, dict[str, dict[str, Any]]]) -> IntelObject:
    """``subject`` with the test's results attached as a build attaches the lock's (tiops.enrich.attach)."""
    from tiops.enrich.attach import attach_enrichment
    from tiops.enrich.lock import EnrichmentLock

    lock = EnrichmentLock()
    for section, entries in results.items():
        lock.section(section).update({value: {**entry, "status": "found"} for value, entry in entries.items()})
    return attach_enrichment([subject], lock)[0]
