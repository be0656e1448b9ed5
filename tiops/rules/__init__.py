"""Ingestion rules: ordered, tested rules in ``rules/ingestion/*.yaml`` applied at compile time.

* :mod:`tiops.rules.model` parses and checks rule files (findings TI5xx);
* :mod:`tiops.rules.conditions` is the field and operator vocabulary, reusable by any filter;
* :mod:`tiops.rules.engine` applies the rules in one pass;
* :mod:`tiops.rules.trace` explains what happened to an object;
* :mod:`tiops.rules.testing` runs the examples written on each rule.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tiops.errors import TiopsError, UsageError
from tiops.findings import Finding, Severity
from tiops.rules.conditions import format_timestamp, parse_timestamp

if TYPE_CHECKING:
    from tiops.load import Repo
    from tiops.rules.engine import RulesOutcome, apply_rules
    from tiops.rules.model import Rule, RuleSet, load_rules

# The engine and the rule model are imported when first used, not with the package: a
# query reads tiops.rules.conditions, and importing the package must not cost it the
# engine, the loader and the enrichment lock (docs/performance.md, tiops query).
_LAZY = {"RulesOutcome": "tiops.rules.engine", "apply_rules": "tiops.rules.engine",
         "Rule": "tiops.rules.model", "RuleSet": "tiops.rules.model", "load_rules": "tiops.rules.model"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "AsOf",
    "Rule",
    "RuleSet",
    "RulesInvalid",
    "RulesOutcome",
    "apply_repo_rules",
    "apply_rules",
    "build_metadata",
    "load_rules",
    "resolve_as_of",
    "rule_findings",
]


class RulesInvalid(TiopsError):
    """The ingestion rule files have errors, so no rule is applied."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__(f"the ingestion rules have {sum(1 for f in findings if f.severity is Severity.ERROR)} error(s)",
                         hint="Run 'tiops validate' to see them.")
        self.findings = findings


@dataclass(frozen=True)
class AsOf:
    """The moment older-than / newer-than compare with: never the wall clock."""

    moment: datetime | None
    origin: str  # "--as-of", "head-commit" or "none"

    @property
    def text(self) -> str | None:
        return format_timestamp(self.moment) if self.moment is not None else None


def resolve_as_of(root: Path, override: str | None = None) -> AsOf:
    """``override`` (``--as-of``) if given, else the HEAD commit's time, else none."""
    if override is not None:
        text = override if "T" in override else f"{override}T00:00:00Z"
        moment = parse_timestamp(text)
        if moment is None:
            raise UsageError(f"--as-of {override!r} is not a date or a UTC timestamp",
                             hint="Write it like 2025-06-01 or 2025-06-01T12:00:00Z.")
        return AsOf(moment, "--as-of")
    from tiops.gitrepo import head_commit_time

    head_time = head_commit_time(root)
    return AsOf(parse_timestamp(head_time), "head-commit") if head_time else AsOf(None, "none")


def rule_findings(repo: Repo) -> list[Finding]:
    """Findings about the rule files of a repository (none for a plain bundle)."""
    from tiops.rules.model import load_rules

    if repo.is_bundle:
        return []
    return load_rules(repo.config)[1]


def apply_repo_rules(repo: Repo, as_of: AsOf | None = None, *, record: bool = False,
                     skip_invalid: bool = False) -> tuple[RulesOutcome, RuleSet, AsOf]:
    """The repository's objects after its ingestion rules, the rules, and the as-of time used.

    ``record`` keeps what every rule did to every object (for explain and traces).
    ``skip_invalid``: rule files with errors apply no rule instead of raising RulesInvalid (a
    revision ``tiops diff`` compares, whose note counts its errors: the change under review may be
    the one that mends them).
    Locked enrichment is on the objects the rules see; when no rule could tell, it is
    left to the bundle instead (``RulesOutcome.enrichment``, added by tiops.compile).
    """
    from tiops.enrich.attach import (
        ATTACH_READS,
        BundleEnrichment,
        LockedEnrichment,
        attach_enrichment,
        without_enrichment,
    )
    from tiops.enrich.lock import read_lock_for_build
    from tiops.rules.engine import RulesOutcome, apply_rules, changed_properties
    from tiops.rules.model import RuleSet, load_rules

    if repo.is_bundle:
        empty = RuleSet((), "")
        return RulesOutcome(objects=list(repo.objects)), empty, as_of or AsOf(None, "none")
    rule_set, findings = load_rules(repo.config)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors and not skip_invalid:
        raise RulesInvalid(errors)
    if errors:
        rule_set = RuleSet((), "")
    as_of = as_of if as_of is not None else resolve_as_of(repo.root)
    if as_of.moment is None and rule_set.needs_as_of:
        needing = next(r for r in rule_set.rules if r.enabled and r.needs_as_of)
        raise TiopsError(
            f"rule {needing.name!r} ({needing.file}:{needing.line}) uses older-than/newer-than, "
            "but there is no as-of time: the repository is not a git checkout with a commit",
            hint="Pass --as-of 2025-06-01T00:00:00Z (or commit the repository).",
        )
    # Locked enrichment (tiops.enrich) is on the objects before the first rule, so rules see
    # enrichment.* and whois.* fields; the lock is read from disk, never from the network.
    if not _rules_see_enrichment(rule_set):
        # No rule would see it: the bundle adds it as it copies each object anyway
        # (tiops.compile), the same bytes without a copy of every enriched object here. A cold
        # build's helper may have made it ready (tiops.enrich.beside; only within tiops.pipeline.build).
        from tiops.enrich.beside import prepared_enrichment

        enrichment: BundleEnrichment | None = (
            prepared_enrichment(repo.config.intel_path) if repo.config.source is None else None)
        if enrichment is None:
            lock = read_lock_for_build(repo.config.intel_path, repo.root, repo.config.source)[0]
            enrichment = LockedEnrichment(lock) if len(lock) else None
        outcome = apply_rules(repo.objects, rule_set, as_of.moment, record=record)
        outcome.enrichment = enrichment
        return outcome, rule_set, as_of
    lock = read_lock_for_build(repo.config.intel_path, repo.root, repo.config.source)[0]
    objects = attach_enrichment(repo.objects, lock)
    outcome = apply_rules(objects, rule_set, as_of.moment, record=record)
    if len(lock) and changed_properties(rule_set) & (ATTACH_READS - {"extensions"}):
        # A rule changed what an object's results were found from (its pattern, its value, the
        # valid_from whois age_days counts from): rules saw the enrichment of the object as it
        # came in, and the bundle carries that of the object as it leaves them, not a stale one.
        outcome.objects = attach_enrichment([without_enrichment(obj) for obj in outcome.objects], lock)
    return outcome, rule_set, as_of


# What a bundle adds besides its objects' own lines comes from these (tiops.compile.survey_objects,
# builtin_extras), and an object's line is found by its type and id (tiops.bundlereuse).
_BUNDLE_SHAPE = frozenset({"type", "id", "object_marking_refs", "granular_markings", "extensions"})


def per_object_rules(rule_set: RuleSet) -> bool:
    """Whether the enabled rules make each object's compiled form from that object alone (and the
    as-of time): none changes what the bundle adds for its objects, none reads or feeds locked
    enrichment. The bundle line of each object is then a function of the object, the rule set
    and the as-of time (tiops.bundlereuse). A rule may drop objects: whether an object is
    dropped is then its own affair too, and what points at it through the properties of
    :data:`~tiops.rules.engine.POINTERS` goes with it, which the bundle reuse works out from the
    file indexes, so no rule may change those properties.
    """
    from tiops.rules.engine import POINTERS, changed_properties

    changed = changed_properties(rule_set)
    if rule_drops(rule_set) and changed & {name for names in POINTERS.values() for name in names}:
        return False
    return not (changed & _BUNDLE_SHAPE) and not _rules_see_enrichment(rule_set)


def rule_drops(rule_set: RuleSet) -> bool:
    """Whether an enabled rule drops objects."""
    return any(action.kind == "drop" for rule in rule_set.rules if rule.enabled for action in rule.actions)


def _rules_see_enrichment(rule_set: RuleSet) -> bool:
    """Whether attaching enrichment after the rules could give other objects than before them:
    a rule reads an enrichment field or the extensions, or changes what attaching reads."""
    from tiops.enrich.attach import ATTACH_READS
    from tiops.enrich.fields import ENRICHMENT_FIELDS
    from tiops.rules.conditions import condition_fields
    from tiops.rules.engine import changed_properties

    enabled = [rule for rule in rule_set.rules if rule.enabled]
    read = {name.partition(".")[0] for rule in enabled for name in condition_fields(rule.when)}
    return bool(read & {*ENRICHMENT_FIELDS, "extensions"}) or bool(changed_properties(rule_set) & ATTACH_READS)


def build_metadata(root: Path, outcome: RulesOutcome, rule_set: RuleSet, as_of: AsOf) -> dict[str, object]:
    """What ``dist/build.json`` records so a build can be reproduced (no wall-clock time)."""
    from tiops.gitrepo import head_commit

    return {
        "as_of": as_of.text,
        "as_of_origin": as_of.origin,
        "source_commit": head_commit(root),
        "rules": {
            "digest": rule_set.digest or None,
            "count": len(rule_set.rules),
            "enabled": sum(1 for r in rule_set.rules if r.enabled),
        },
        "dropped": {"by_rules": outcome.dropped_by_rules, "relationships": outcome.dropped_by_cascade},
        "changed_by_rules": outcome.changed,
    }


