"""Rule files: parse and check ``rules/ingestion/*.yaml`` into frozen rules.

Every defect is a finding at the rule file's line and column (codes TI5xx), so
``tiops validate`` reports broken rules next to broken intel. Checking compiles
each condition once, which is also how the engine runs it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tiops.codes import make_finding
from tiops.config import Config
from tiops.enrich.fields import ENRICHMENT_SUBFIELDS
from tiops.findings import Finding, Location, PathPart
from tiops.inputs import InputProblem, display_name, is_utf8_name
from tiops.jsonschemas import (
    known_properties,
    property_kinds,
    stix_types_with_schema,
    tiops_schema_errors,
)
from tiops.limits import number_problems
from tiops.rules.conditions import (
    COMBINATORS,
    PSEUDO_FIELDS,
    ConditionError,
    check_condition,
    parse_duration,
    parse_timestamp,
    uses_as_of,
)
from tiops.stix import ALL_TYPES, canonical_json
from tiops.yamlio import PositionIndex, YamlProblem, parse_yaml

INGESTION_DIR = "ingestion"
RULE_KEYS = frozenset({"name", "description", "order", "enabled", "object_types", "when", "actions", "tests"})
ACTIONS = ("drop", "extend", "set", "add_tags", "remove_tags", "set_confidence", "revoke")
# Properties a rule may not set: they identify the object or its version, and rules
# never change `modified` (Microsoft Sentinel ingestion rules behave the same way).
PROTECTED_PROPERTIES = frozenset({"id", "type", "spec_version", "created", "modified"})
DEFAULT_ORDER = 0
# Conditions are checked with a stand-in as-of time; the engine compiles them again with the real one.
_CHECK_AS_OF = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Action:
    kind: str
    field: str = ""
    duration: timedelta = timedelta()
    values: tuple[tuple[str, Any], ...] = ()  # set: (property, value) pairs
    tags: tuple[str, ...] = ()
    confidence: int = 0


@dataclass(frozen=True)
class RuleTest:
    name: str
    input: dict[str, Any]
    source: str | None
    expect_dropped: bool | None
    expect_fields: dict[str, Any] | None
    index: int
    as_of: datetime | None = None  # pins older-than / newer-than so the example never ages
    # Locked enrichment results the example's object gets before the rule runs, as `tiops
    # enrich` would lock them: {"geo": {value: {field: ...}}, "whois": {...}} (None: none).
    enrichment: dict[str, dict[str, dict[str, Any]]] | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    order: int
    enabled: bool
    object_types: frozenset[str] | None
    when: dict[str, Any] | None
    actions: tuple[Action, ...]
    tests: tuple[RuleTest, ...]
    file: str
    index: int
    line: int
    column: int

    @property
    def sort_key(self) -> tuple[int, str, int]:
        """Lowest order first; ties broken by file path, then position in the file."""
        return (self.order, self.file, self.index)

    @property
    def needs_as_of(self) -> bool:
        return uses_as_of(self.when)

    def location(self, *more: PathPart) -> Location:
        return Location(self.file, path=(self.index, *more))


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]  # in evaluation order, disabled rules included
    digest: str  # sha256 over the rules as parsed, in order: names a rule set in build metadata

    @property
    def needs_as_of(self) -> bool:
        return any(rule.enabled and rule.needs_as_of for rule in self.rules)


def rule_files(config: Config, findings: list[Finding] | None = None) -> list[tuple[Path, str]]:
    """(path, repository-relative name) of every rule file, sorted by name.

    Folders and names that cannot be read are added to ``findings`` (never skipped silently).
    """
    folder = config.rules_path / INGESTION_DIR
    found: list[tuple[Path, str]] = []
    files = config.files

    def report(path: str, code: str, message: str) -> None:
        if findings is not None:
            relative = display_name(Path(path).relative_to(config.root).as_posix())
            findings.append(make_finding(code, message, Location(relative, 1, 1)))

    if findings is not None:
        _report_stray_rule_files(config, report)
    if not files.is_dir(os.fspath(folder)):
        return found

    for directory, subdirs, filenames in files.walk(os.fspath(folder), report):
        subdirs[:] = [name for name in subdirs if not name.startswith(".")]  # as intel's dot-folders (tiops.load)
        for filename in filenames:
            if filename.endswith((".yaml", ".yml")) and not filename.startswith("."):
                path = Path(directory) / filename
                if not is_utf8_name(filename):
                    report(os.fspath(path), "TI114", "the file name is not UTF-8; the file was not read")
                    continue
                found.append((path, path.relative_to(config.root).as_posix()))
    return sorted(found, key=lambda item: item[1])


def _report_stray_rule_files(config: Config, report: Callable[[str, str, str], None]) -> None:
    """TI513 for a YAML file directly in the rules folder that nothing reads: rules put there
    instead of rules/ingestion/ would otherwise never run, and nothing would say so."""
    from tiops.validate.relationships import RELATIONSHIPS_FILE

    top = os.fspath(config.rules_path)
    if not config.files.is_dir(top):
        return
    for _directory, _subdirs, filenames in config.files.walk(top, lambda *_: None):
        for filename in filenames:
            if filename.endswith((".yaml", ".yml")) and not filename.startswith(".") and filename != RELATIONSHIPS_FILE:
                report(os.path.join(top, filename), "TI513",
                       f"{filename} is read by nothing: ingestion rules are read from "
                       f"{config.rules_dir}/{INGESTION_DIR}/, relationship rules from {config.rules_dir}/{RELATIONSHIPS_FILE}")
        break  # the rules folder itself; its subfolders are ingestion/ and the team's own


def load_rules(config: Config) -> tuple[RuleSet, list[Finding]]:
    """Every ingestion rule of the repository and the findings about the rule files."""
    rules: list[Rule] = []
    findings: list[Finding] = []
    raw_rules: list[Any] = []
    for path, relative in rule_files(config, findings):
        try:
            text = config.files.read(os.fspath(path)).decode("utf-8")
        except InputProblem as problem:
            findings.append(make_finding(problem.code, problem.message, Location(relative, 1, 1)))
            continue
        except UnicodeDecodeError as error:
            findings.append(make_finding("TI106", f"not UTF-8 ({error.reason} at byte {error.start})", Location(relative, 1, 1)))
            continue
        file_rules, file_findings = parse_rule_file(text, relative)
        rules.extend(file_rules)
        findings.extend(file_findings)
    rules.sort(key=lambda r: r.sort_key)
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.name in seen:
            first = seen[rule.name]
            findings.append(make_finding("TI508", f"rule name {rule.name!r} is already used at {first.file}:{first.line}",
                                         Location(rule.file, rule.line, rule.column)))
        seen.setdefault(rule.name, rule)
        raw_rules.append(_digest_form(rule))
    digest = hashlib.sha256(canonical_json(raw_rules)).hexdigest()
    return RuleSet(tuple(rules), digest), findings


def _digest_form(rule: Rule) -> dict[str, Any]:
    return {
        "name": rule.name, "order": rule.order, "enabled": rule.enabled,
        "object_types": sorted(rule.object_types) if rule.object_types is not None else None,
        "when": rule.when,
        "actions": [[a.kind, a.field, a.duration.total_seconds(), [list(v) for v in a.values], list(a.tags), a.confidence]
                    for a in rule.actions],
    }  # fmt: skip


def parse_rule_file(text: str, file: str) -> tuple[list[Rule], list[Finding]]:
    """The well-formed rules of one file, and a finding for each defect (located by line and column)."""
    findings: list[Finding] = []
    try:
        data = parse_yaml(text)
    except YamlProblem as problem:
        return [], [make_finding(problem.code, problem.message, Location(file, problem.line, problem.column))]
    if data is None:
        return [], []
    positions = PositionIndex(text)

    def report(code: str, message: str, path: tuple[PathPart, ...], **kwargs: Any) -> None:
        line, column = positions.position(path)
        findings.append(make_finding(code, message, Location(file, line, column), **kwargs))

    if not isinstance(data, list):
        report("TI500", "a rule file holds a YAML list of rules", ())
        return [], findings
    # YAML reads integers of any size and .nan/.inf; the rules, their digest in the build
    # metadata and their tests all go through JSON, which holds neither (STIX 2.1 section 2.16).
    for path, reason in number_problems(data):
        report("TI500", f"rule {path[0]}, {'.'.join(map(str, path[1:]))}: {reason}", path)
    if findings:
        return [], findings
    rules: list[Rule] = []
    for index, entry in enumerate(data):
        before = len(findings)
        rule = _parse_rule(entry, index, file, positions, report)
        if rule is not None and len(findings) == before:
            rules.append(rule)
    if not findings:
        # The JSON Schema (schemas/tiops/ingestion-rules.json) is the editor-facing contract:
        # anything it refuses that the checks above let through is still a finding.
        for path, message in tiops_schema_errors("ingestion-rules", data):
            report("TI500", message, path)
        if findings:
            return [], findings
    return rules, findings


Reporter = Any  # Callable[[str, str, tuple[PathPart, ...]], None] with keyword extras


def _parse_rule(entry: Any, index: int, file: str, positions: PositionIndex, report: Reporter) -> Rule | None:
    at: tuple[PathPart, ...] = (index,)
    if not isinstance(entry, dict):
        report("TI500", f"rule {index} is not a mapping", at)
        return None
    for key in entry:
        if key not in RULE_KEYS:
            report("TI501", f"unknown rule key {key!r}; a rule has {', '.join(sorted(RULE_KEYS))}", (*at, key))
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        report("TI500", "the rule needs a 'name' (a non-empty string)", (*at, "name") if "name" in entry else at)
        name = f"rule {index}"
    order = entry.get("order", DEFAULT_ORDER)
    if isinstance(order, bool) or not isinstance(order, int):
        report("TI500", "'order' must be a whole number (lowest runs first)", (*at, "order"))
        order = DEFAULT_ORDER
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        report("TI500", "'enabled' must be true or false", (*at, "enabled"))
    object_types = _parse_object_types(entry, at, report)
    when = entry.get("when")
    if "when" in entry:
        try:
            check_condition(when, _CHECK_AS_OF, (*at, "when"))
        except ConditionError as error:
            report(error.code, error.message, error.path)
        else:
            _check_fields(when, object_types, (*at, "when"), report)
    actions_raw = entry.get("actions")
    actions: list[Action] = []
    if not isinstance(actions_raw, list) or not actions_raw:
        report("TI500", "the rule needs 'actions', a non-empty list", (*at, "actions") if "actions" in entry else at)
    else:
        for action_index, raw in enumerate(actions_raw):
            action = _parse_action(raw, (*at, "actions", action_index), report)
            if action is not None:
                actions.append(action)
    tests = _parse_tests(entry.get("tests"), "tests" in entry, at, report)
    line, column = positions.position(at)
    return Rule(
        name=name, order=order, enabled=enabled is not False,
        object_types=object_types, when=_dates_completed(when) if isinstance(when, dict) else None,
        actions=tuple(actions), tests=tests, file=file, index=index, line=line, column=column,
    )  # fmt: skip


def _parse_object_types(entry: dict[str, Any], at: tuple[PathPart, ...], report: Reporter) -> frozenset[str] | None:
    if "object_types" not in entry:
        return None
    raw = entry["object_types"]
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) for t in raw):
        report("TI500", "'object_types' is a list of STIX types", (*at, "object_types"))
        return None
    for position, stix_type in enumerate(raw):
        if stix_type not in ALL_TYPES and not stix_type.startswith("x-"):
            report("TI512", f"{stix_type!r} is not a STIX 2.1 type", (*at, "object_types", position))
    return frozenset(raw)


def _check_fields(condition: Any, object_types: frozenset[str] | None, at: tuple[PathPart, ...], report: Reporter) -> None:
    """Unknown fields are errors; a test that no listed type can pass is a warning (TI507)."""
    schema_types = stix_types_with_schema()
    every_known = _every_known_property()
    listed = [t for t in object_types or () if t in schema_types]
    custom_listed = any(t not in schema_types for t in object_types or ())
    of_listed = frozenset().union(*(known_properties(t) for t in listed)) if listed else every_known

    def walk(node: Any, path: tuple[PathPart, ...], conjunctive: bool) -> None:
        for combinator in COMBINATORS:
            if combinator in node:
                inner = node[combinator]
                if combinator == "not":
                    walk(inner, (*path, "not"), False)
                else:
                    for i, child in enumerate(inner):
                        walk(child, (*path, combinator, i), conjunctive and combinator == "all")
                return
        field, op = node["field"], node["op"]
        top, _, rest = field.partition(".")
        if top in ENRICHMENT_SUBFIELDS and rest and rest not in ENRICHMENT_SUBFIELDS[top]:
            report("TI502", f"unknown field {field!r}: {top}.* is one of "
                            f"{', '.join(sorted(ENRICHMENT_SUBFIELDS[top]))} (docs/enrich.md)", (*path, "field"))
            return
        kind_problem = _value_kind_problem(field, op, node.get("value"), "value" in node)
        if kind_problem is not None:
            report("TI510", kind_problem, (*path, "value") if "value" in node else path)
            return
        if top in PSEUDO_FIELDS or top.startswith("x_") or top in ("extensions", "id", "type"):
            if top == "type" and conjunctive and object_types is not None:
                _check_type_test(node, object_types, (*path, "value"), report)
            return
        if top not in every_known:
            report("TI502", f"unknown field {field!r}: not a STIX 2.1 property (custom properties start with x_), "
                            "nor source, tags, tlp, file, enrichment.* or whois.*", (*path, "field"))
        elif conjunctive and not custom_listed and top not in of_listed \
                and op not in ("not-exists", "not-equals", "not-in"):
            report("TI507", f"rule can never match: {field!r} is not a property of {', '.join(sorted(listed))}",
                   (*path, "field"))

    walk(condition, at, True)


_KIND_OPERATORS = frozenset({"equals", "not-equals", "in", "not-in", ">", ">=", "<", "<="})
_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _value_kind_problem(field: str, op: Any, value: Any, has_value: bool) -> str | None:
    """Why ``value`` cannot be compared with ``field`` (None: it can), by the kinds ``tiops query``
    checks (tiops.where): a number field never equals or orders against text, a timestamp field
    compares with a STIX timestamp or a date that exists (completed to midnight UTC:
    :func:`_dates_completed`), a boolean with true or false.
    Without this a rule such as ``whois.age_days < "30"`` validated and never matched."""
    from tiops.enrich.fields import ENRICHMENT_KINDS

    if field in ENRICHMENT_SUBFIELDS and op not in ("exists", "not-exists"):
        return (f"{field} alone is tested with exists or not-exists; name one of its fields to compare, "
                f"e.g. {field}.{sorted(ENRICHMENT_SUBFIELDS[field])[0]}")
    kind = ENRICHMENT_KINDS.get(field) or _property_kind("labels" if field == "tags" else field)
    if kind in (None, "any") or not has_value:
        return None
    if op in ("older-than", "newer-than"):
        return None if kind == "timestamp" else f"'{op}' compares a timestamp with the as-of time; {field} is a {kind}"
    if op not in _KIND_OPERATORS:
        return None
    for item in value if isinstance(value, list) else [value]:
        if kind == "number" and (isinstance(item, bool) or not isinstance(item, (int, float))):
            return f"{field} is a number; {item!r} is not one (write it without quotes)"
        if kind == "boolean" and (not isinstance(item, bool) or op in (">", ">=", "<", "<=")):
            return f"{field} is true or false; {item!r} is not"
        if kind == "timestamp" and parse_timestamp(
                f"{item}T00:00:00Z" if isinstance(item, str) and _DATE_ONLY.fullmatch(item) else item) is None:
            return (f"{field} is a timestamp; {item!r} is neither a date that exists nor a STIX timestamp such as "
                    "2025-01-01T00:00:00Z")
    return None


def _dates_completed(node: Any) -> Any:
    """``node`` (a checked condition) with each date compared with a timestamp field completed to
    midnight UTC, as ``tiops query`` completes it (tiops.where): one text, one meaning. A date alone
    compared as text, so ``whois.registered = 2025-03-01`` never matched and ``>`` matched midnight."""
    if not isinstance(node, dict):
        return node
    if "field" not in node:
        return {key: ([_dates_completed(child) for child in value] if isinstance(value, list)
                      else _dates_completed(value)) for key, value in node.items()}
    if "value" not in node or node.get("op") not in _KIND_OPERATORS:
        return node
    from tiops.enrich.fields import ENRICHMENT_KINDS

    field = node["field"]
    if (ENRICHMENT_KINDS.get(field) or _property_kind(field)) != "timestamp":
        return node

    def completed(item: Any) -> Any:
        return f"{item}T00:00:00Z" if isinstance(item, str) and _DATE_ONLY.fullmatch(item) else item

    value = node["value"]
    return {**node, "value": [completed(v) for v in value] if isinstance(value, list) else completed(value)}


@functools.cache
def _every_known_property() -> frozenset[str]:
    return frozenset().union(*(known_properties(t) for t in stix_types_with_schema()))


def _check_type_test(node: dict[str, Any], object_types: frozenset[str], path: tuple[PathPart, ...], report: Reporter) -> None:
    op, value = node["op"], node.get("value")
    values = {v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)}
    if op in ("equals", "in"):
        possible = object_types & values
    elif op in ("not-equals", "not-in"):
        possible = object_types - values
    else:
        return
    if not possible:
        report("TI507", f"rule can never match: object_types {sorted(object_types)} excludes every type its condition allows",
               path)


def _parse_action(raw: Any, at: tuple[PathPart, ...], report: Reporter) -> Action | None:
    if not isinstance(raw, dict) or not raw:
        report("TI504", f"an action is a mapping like {{drop: true}}; actions are {', '.join(ACTIONS)}", at)
        return None
    kinds = [key for key in raw if key in ACTIONS]
    unknown = [key for key in raw if key not in ACTIONS and not (key == "by" and "extend" in raw)]
    if unknown:
        report("TI504", f"unknown action {unknown[0]!r}; actions are {', '.join(ACTIONS)}", (*at, unknown[0]))
        return None
    if len(kinds) != 1:
        report("TI504", f"one action per entry, found {', '.join(kinds)}", at)
        return None
    kind = kinds[0]
    value = raw[kind]
    where = (*at, kind)
    if kind in ("drop", "revoke"):
        if value is not True:
            report("TI510", f"write '{kind}: true'", where)
            return None
        return Action(kind)
    if kind == "extend":
        if not isinstance(value, str) or not value:
            report("TI510", "'extend' names a timestamp property, e.g. valid_until", where)
            return None
        if value in PROTECTED_PROPERTIES:
            report("TI510", f"rules do not change {value!r}", where)
            return None
        if _property_kind(value) != "timestamp":
            report("TI510", f"'extend' moves a timestamp property (valid_until, valid_from...); {value!r} is not one",
                   where)
            return None
        if "by" not in raw:
            report("TI506", "'extend' needs 'by: DURATION', e.g. by: 30d", at)
            return None
        try:
            duration = parse_duration(raw["by"])
        except ValueError as error:
            report("TI506", str(error), (*at, "by"))
            return None
        return Action(kind, field=value, duration=duration)
    if kind == "set":
        if not isinstance(value, dict) or not value:
            report("TI510", "'set' is a mapping of property: value", where)
            return None
        problems = [(prop, problem) for prop, given in value.items()
                    if (problem := _set_problem(str(prop), given)) is not None]
        for prop, problem in problems:  # every one at once, not one per run
            report("TI510", problem, (*where, prop))
        if problems:
            return None
        return Action(kind, values=tuple((("labels" if k == "tags" else k), v) for k, v in value.items()))
    if kind in ("add_tags", "remove_tags"):
        tags = [value] if isinstance(value, str) else value
        if not isinstance(tags, list) or not tags or not all(isinstance(t, str) and t for t in tags):
            report("TI510", f"'{kind}' is a list of tags", where)
            return None
        return Action(kind, tags=tuple(tags))
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        report("TI510", "'set_confidence' is a whole number from 0 to 100 (STIX 2.1 section 3.2)", where)
        return None
    return Action(kind, confidence=value)


# STIX 2.1 section 3.1: property names are ASCII letters in lower case, digits and underscores, 3 to 250 long.
_PROPERTY_NAME = re.compile(r"[a-z0-9_]{3,250}")


def _property_kind(name: str) -> str | None:
    return property_kinds().get(name)


def _set_problem(prop: str, value: Any) -> str | None:
    """Why a rule may not set ``prop`` to ``value`` (None: it may): what it writes goes into the bundle
    after every check of the objects, so it is checked here, where the rule is read."""
    if prop in PROTECTED_PROPERTIES:
        return f"rules do not change {prop!r}"
    name = "labels" if prop == "tags" else prop
    if not _PROPERTY_NAME.fullmatch(name):
        return f"{prop!r} is not a property name: lower-case letters, digits and _, 3 to 250 long (STIX 2.1 section 3.1)"
    kind = _property_kind(name)
    if name == "confidence":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            return "confidence is a whole number from 0 to 100 (STIX 2.1 section 3.2)"
    elif kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"{prop} is a number, not {value!r}"
    elif kind == "boolean" and not isinstance(value, bool):
        return f"{prop} is true or false, not {value!r}"
    elif kind == "timestamp":
        if parse_timestamp(value) is None:
            return f"{prop} is a STIX timestamp such as 2025-01-01T00:00:00.000Z (section 3.2), not {value!r}"
    elif name == "labels" and (not isinstance(value, list) or not value
                               or not all(isinstance(tag, str) and tag for tag in value)):
        return f"{prop} is a list of tags, not {value!r}"
    elif name == "pattern":
        from tiops.validate.patterns import pattern_errors

        errors = pattern_errors(value) if isinstance(value, str) else ("a pattern is text",)
        if errors:
            return f"pattern {value!r} is not a STIX pattern: {errors[0]}"
    return None


def _parse_tests(raw: Any, present: bool, at: tuple[PathPart, ...], report: Reporter) -> tuple[RuleTest, ...]:
    if not present:
        return ()
    if not isinstance(raw, list):
        report("TI509", "'tests' is a list of {input, expect} examples", (*at, "tests"))
        return ()
    tests: list[RuleTest] = []
    for index, entry in enumerate(raw):
        where = (*at, "tests", index)
        if not isinstance(entry, dict) or not isinstance(entry.get("input"), dict) or not isinstance(entry.get("expect"), dict):
            report("TI509", "a rule test has 'input' (a STIX object) and 'expect' ({dropped: BOOL} or {fields: {...}})", where)
            continue
        unknown = sorted(set(entry) - {"name", "input", "source", "as_of", "expect", "enrichment"})
        expect = entry["expect"]
        bad_expect = set(expect) - {"dropped", "fields"} or len(expect) != 1
        if unknown or bad_expect:
            report("TI509", f"unexpected key(s) in a rule test: {', '.join(unknown) or ', '.join(map(str, expect))}", where)
            continue
        dropped = expect.get("dropped")
        fields = expect.get("fields")
        if ("dropped" in expect and not isinstance(dropped, bool)) or ("fields" in expect and not isinstance(fields, dict)):
            report("TI509", "'expect' is {dropped: true|false} or {fields: {property: value}}", (*where, "expect"))
            continue
        input_problems = _test_input_problems(entry["input"])
        for prop, reason in input_problems:  # an input no build could hold tests nothing
            report("TI509", f"test input: {reason}", (*where, "input", prop))
        if input_problems:
            continue
        source = entry.get("source")
        as_of = parse_timestamp(entry.get("as_of")) if "as_of" in entry else None
        if "as_of" in entry and as_of is None:
            report("TI509", "'as_of' is a UTC timestamp like 2025-06-01T00:00:00Z", (*where, "as_of"))
            continue
        enrichment = None
        if "enrichment" in entry:
            problem = _test_enrichment_problem(entry["enrichment"], entry["input"])
            if problem is not None:
                report("TI509", problem, (*where, "enrichment"))
                continue
            enrichment = entry["enrichment"]
        tests.append(RuleTest(name=str(entry.get("name") or f"test {index + 1}"), input=entry["input"],
                              source=source if isinstance(source, str) else None,
                              expect_dropped=dropped, expect_fields=fields, index=index, as_of=as_of,
                              enrichment=enrichment))
    return tuple(tests)


def _test_input_problems(subject: dict[str, Any]) -> list[tuple[str, str]]:
    """Why a rule test's input is no object a build could hand the rule: an unknown type (the rule
    would never see it, so an expectation of 'unchanged' passes for the wrong reason) or a property
    value of the wrong kind (``confidence: "60"`` matches no number test). Partial objects are fine."""
    problems: list[tuple[str, str]] = []
    stix_type = subject.get("type")
    custom = isinstance(stix_type, str) and stix_type not in ALL_TYPES
    if not isinstance(stix_type, str) or (custom and not stix_type.startswith("x-")
                                          and not _defines_new_type(subject)):
        problems.append(("type", f"{stix_type!r} is not a STIX 2.1 type"))
    for prop, value in subject.items():
        prop = str(prop)
        if custom and prop not in _COMMON_KINDS:
            continue  # a custom or extension-defined type's own properties: no STIX type's schema holds them
        if prop in ("created", "modified"):
            problem = None if parse_timestamp(value) is not None else \
                f"{prop} is a STIX timestamp such as 2025-01-01T00:00:00.000Z (section 3.2), not {value!r}"
        elif prop in PROTECTED_PROPERTIES:
            continue
        else:
            problem = _set_problem(prop, value)
        if problem is not None:
            problems.append((prop, problem))
    return problems


# Properties every object type has with one meaning (STIX 2.1 section 3.2), custom types too.
_COMMON_KINDS = frozenset({"created", "modified", "confidence", "labels", "revoked"})


def _defines_new_type(subject: dict[str, Any]) -> bool:
    """Whether the input says an extension definition defines its type (STIX 2.1 section 7.3:
    ``extensions`` holding an ``extension-definition--`` key whose extension_type is new-sdo,
    new-sco or new-sro)."""
    extensions = subject.get("extensions")
    return isinstance(extensions, dict) and any(
        str(key).startswith("extension-definition--") and isinstance(value, dict)
        and str(value.get("extension_type", "")).startswith("new-") for key, value in extensions.items())


def _test_enrichment_problem(raw: Any, subject: dict[str, Any]) -> str | None:
    """Why a rule test's ``enrichment`` is not locked results as tiops writes them for values its
    input names, or None."""
    from tiops.enrich.fields import BUNDLE_FIELDS
    from tiops.enrich.lock import result_shape_problem
    from tiops.enrich.values import canonical_value, object_enrich_values

    shape = ("'enrichment' is {geo: {VALUE: {country_code: ..., asn: ...}}, whois: {VALUE: {registered: ...}}}: "
             "the results 'tiops enrich' would lock for the values the input names")
    if not isinstance(raw, dict) or not raw or set(raw) - set(BUNDLE_FIELDS):
        return shape
    for section, results in raw.items():
        if not isinstance(results, dict) or not all(isinstance(entry, dict) for entry in results.values()):
            return shape
        for value, result in results.items():
            written = canonical_value(value) if isinstance(value, str) else None
            if written != value:
                return (f"{value!r} is not an IP address, CIDR block or domain name as the lock writes it"
                        + (f": write it {written!r}" if written else ""))
            named_kinds = dict((name, kind) for kind, name in object_enrich_values(subject))
            named = set(named_kinds)
            if section == "geo" and named_kinds.get(value) == "domain":
                # Geolocation is of addresses only: a build never attaches one to a name, so the test would test nothing.
                return f"{value!r} is a domain name; GeoLocation results are for IP addresses (give it whois results)"
            if value not in named:
                # A result for a value the input does not name would be ignored: the test would not test it.
                return (f"the input names no {value!r}; it names {', '.join(map(repr, sorted(named))) or 'no value'}"
                        " that enrichment looks up")
            unknown = sorted(set(result) - set(BUNDLE_FIELDS[section]))
            if unknown:
                return (f"{section} results have no {', '.join(map(repr, unknown))}; they hold "
                        f"{', '.join(BUNDLE_FIELDS[section])}")
            problem = result_shape_problem(value, result)
            if problem is not None:
                return problem
    return None
