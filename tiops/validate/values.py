"""Checks of the values inside an object: observable values, pattern literals, nested
timestamps and language tags.

The rules themselves live in :mod:`tiops.values`, keyed by (SCO type, property path);
this module finds the values an object holds and turns problems into findings at
their place.
"""

from __future__ import annotations

import re
from typing import Any

from tiops.codes import make_finding
from tiops.findings import Finding, PathPart
from tiops.jsonschemas import known_properties
from tiops.load import IntelObject
from tiops.observables import pattern_object_types, pattern_observables
from tiops.stix import SCO_TYPES, TIMESTAMP_RE, is_real_day, is_real_second
from tiops.validate.shapes import Shape
from tiops.values import (
    ValueProblem,
    check_hash,
    check_language_tag,
    check_observable_value,
    pattern_value_check,
)

# Operators whose literal is a value of the property (STIX 2.1 section 9.6); LIKE and
# MATCHES take wildcards and regular expressions, which are not values.
_VALUE_OPERATORS = frozenset({"=", "!=", "IN", "ISSUBSET", "ISSUPERSET"})

# [type:path = 'value']: one equality and a literal without escapes. Quoted path steps
# (hashes.'SHA-256') are unquoted by dropping the quotes; a quoted key holding a dot
# would then miss its rule, never find a wrong one.
_SIMPLE_PATTERN_RE = re.compile(r"^\[([a-z0-9-]+):([^ =\\\[\]]+) = '([^'\\]*)'\]$")

# Equalities of that kind joined by single-spaced AND or OR inside one observation, with
# the types and paths tiops.observables' lexer reads (identifier steps and quoted keys
# without escapes), so each gives the observable the lexer would.
_COMPARISON = r"([a-z][a-z0-9-]*):([A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|'[^'\\]*'))*) = '([^'\\]*)'"
_COMPARISON_RE = re.compile(_COMPARISON)
_JOINED_PATTERN_RE = re.compile(r"\[{0}(?: (?:AND|OR) {0})+\]".format(re.sub(r"\((?!\?)", "(?:", _COMPARISON)))

# Top-level properties whose strings are never observable values, timestamps or
# language tags of interest here (checked elsewhere, or free text).
_SKIP_TOP = frozenset({"type", "id", "spec_version", "created_by_ref", "object_marking_refs",
                       "description", "name", "pattern", "external_references", "granular_markings"})


def check_values(obj: IntelObject, *, pattern_parsed: bool = True, shape: Shape | None = None) -> list[Finding]:
    """Value findings of one object; a pattern's literals only when the pattern parsed
    (the pattern grammar's own errors, TI207, come first and cover hashes).
    ``shape``: :func:`tiops.validate.shapes.shape_of` the object, when the caller has it."""
    data = obj.data
    stix_type = data["type"]
    findings: list[Finding] = []
    if stix_type in SCO_TYPES:
        _walk_sco(obj, stix_type, data, (), "", findings)
    else:
        if stix_type == "indicator" and pattern_parsed:
            _check_pattern_values(obj, findings)
        if shape is not None and shape.values_plain:
            return findings
        _walk_nested(obj, data, findings, shape)
    references = data.get("external_references")
    if type(references) is list:
        _check_reference_hashes(obj, references, findings)
    lang = data.get("lang")
    if type(lang) is str:
        _report(obj, check_language_tag(lang), ("lang",), findings)
    markings = data.get("granular_markings")
    if type(markings) is list:
        for index, marking in enumerate(markings):
            if type(marking) is dict and type(marking.get("lang")) is str:
                _report(obj, check_language_tag(marking["lang"]), ("granular_markings", index, "lang"), findings)
    if stix_type == "language-content" and type(data.get("contents")) is dict:
        for key in data["contents"]:  # section 7.1: keys are RFC 5646 language codes
            if type(key) is str:
                _report(obj, check_language_tag(key), ("contents", key), findings)
    return findings


def _check_reference_hashes(obj: IntelObject, references: list[Any], findings: list[Finding]) -> None:
    """Section 2.5: an external reference's hashes are of the hashes type (section 2.7), each
    value fitting its algorithm as an SCO's do."""
    for index, reference in enumerate(references):
        hashes = reference.get("hashes") if type(reference) is dict else None
        if type(hashes) is dict:
            for algorithm, value in hashes.items():
                if type(value) is str and type(algorithm) is str:
                    _report(obj, check_hash(algorithm, value), ("external_references", index, "hashes", algorithm), findings)


def _report(obj: IntelObject, problem: ValueProblem | None, path: tuple[PathPart, ...], findings: list[Finding]) -> None:
    if problem is not None:
        where = ".".join(str(part) for part in path)
        findings.append(make_finding(problem.code, f"{where}: {problem.reason}", obj.location(*path), stix_id=obj.id))


def _walk_sco(obj: IntelObject, sco_type: str, value: Any, path: tuple[PathPart, ...], dotted: str,
              findings: list[Finding]) -> None:
    """Every value of an SCO, checked by its (type, path) rule; timestamps at any depth."""
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is str and (path or key not in _SKIP_TOP):
                _walk_sco(obj, sco_type, item, (*path, key), f"{dotted}.{key}" if dotted else key, findings)
    elif type(value) is list:
        for index, item in enumerate(value):
            _walk_sco(obj, sco_type, item, (*path, index), dotted, findings)
    elif type(value) is str:
        _report(obj, check_observable_value(sco_type, dotted, value), path, findings)
        _check_timestamp(obj, value, path, findings)


def _walk_nested(obj: IntelObject, data: dict[str, Any], findings: list[Finding], shape: Shape | None) -> None:
    """Timestamps inside nested values and custom properties of non-SCO objects.

    Top-level timestamps of the STIX types are checked by name in tiops.validate.objects;
    custom objects' top-level ones are checked here, by shape.
    """
    if data["type"].startswith("x-"):
        for key, item in data.items():
            if key != "created" and key != "modified":
                _walk_timestamps(obj, item, (key,), findings)
        return
    # STIX-defined properties of SDOs, SROs and meta objects hold no nested timestamps
    # (their own are checked by name); extensions and custom properties may.
    extensions = data.get("extensions")
    if extensions is not None:
        _walk_timestamps(obj, extensions, ("extensions",), findings)
    if shape is not None:
        for key in shape.custom:
            _walk_timestamps(obj, data[key], (key,), findings)
        return
    known = known_properties(data["type"])
    if not known.issuperset(data):  # custom properties are rare; skip the scan without them
        for key in data:
            if key not in known and key.startswith("x_"):
                _walk_timestamps(obj, data[key], (key,), findings)


def _walk_timestamps(obj: IntelObject, value: Any, path: tuple[PathPart, ...], findings: list[Finding]) -> None:
    if type(value) is dict:
        for key, item in value.items():
            _walk_timestamps(obj, item, (*path, key), findings)
    elif type(value) is list:
        for index, item in enumerate(value):
            _walk_timestamps(obj, item, (*path, index), findings)
    elif type(value) is str:
        _check_timestamp(obj, value, path, findings)


def _check_timestamp(obj: IntelObject, value: str, path: tuple[PathPart, ...], findings: list[Finding]) -> None:
    # Only text shaped like a STIX timestamp is taken for one (section 2.16); the day
    # must exist (a format pattern accepts 2025-02-30).
    if (len(value) >= 20 and value[10:11] == "T" and value[-1] == "Z" and TIMESTAMP_RE.match(value)
            and not (is_real_day(value) and is_real_second(value))):
        where = ".".join(str(part) for part in path)
        findings.append(make_finding("TI204", f"{where}: {value!r} is not a real date and time (STIX 2.1 section 2.16)",
                                     obj.location(*path), stix_id=obj.id))


# Section 3.1: a type name is 3 to 250 characters of a-z, 0-9 and hyphen, starting with a
# letter and ending with a letter or digit, without two hyphens in a row.
_TYPE_NAME_RE = re.compile(r"^(?!.*--)[a-z][a-z0-9-]{1,248}[a-z0-9]$")


def _check_object_type(obj: IntelObject, object_type: str, findings: list[Finding]) -> None:
    """A pattern's object type names an object type (sections 3.1, 9.2): a name no type can
    have makes a comparison that can never match."""
    if object_type not in SCO_TYPES and not _TYPE_NAME_RE.match(object_type):
        findings.append(make_finding("TI207", f"pattern: '{object_type}' is not an object type name: 3 to 250 "
                                              "characters of a-z, 0-9 and hyphen (STIX 2.1 sections 3.1, 9.2)",
                                     obj.location("pattern"), stix_id=obj.id))


def _check_comparison(obj: IntelObject, comparison: re.Match[str], findings: list[Finding]) -> None:
    """One ``object_type:path = 'value'`` comparison read by a fast-path expression (groups: type,
    path, value): the path's quotes dropped for the rule lookup, as the lexer does, and kept as
    written in the message."""
    object_type, path, value = comparison.groups()
    _check_object_type(obj, object_type, findings)
    check = pattern_value_check(object_type, path.replace("'", "") if "'" in path else path)
    problem = None if check is None else check(value)
    if problem is not None:
        findings.append(make_finding(problem.code, f"pattern: {object_type}:{path}: {problem.reason}",
                                     obj.location("pattern"), stix_id=obj.id))


# A timestamp literal (section 9.3): t' after a space, '=', '(' or ','. Inside a string
# literal a quote is escaped (\'), so t' there never has one of those before it.
_TIMESTAMP_LITERAL_RE = re.compile(r"(?<=[\s=(,])t'([^']*)'")


def _check_timestamp_literals(obj: IntelObject, pattern: str, findings: list[Finding]) -> None:
    """A pattern's timestamp literals name real days and times, as every STIX timestamp does
    (section 2.16); the pattern grammar checks their shape only."""
    for literal in _TIMESTAMP_LITERAL_RE.finditer(pattern):
        value = literal.group(1)
        if TIMESTAMP_RE.match(value) and not (is_real_day(value) and is_real_second(value)):
            findings.append(make_finding("TI204", f"pattern: t'{value}' is not a real date and time (STIX 2.1 "
                                                  "sections 2.16, 9.3; RFC 3339 section 5.7)",
                                         obj.location("pattern"), stix_id=obj.id))


def _check_pattern_values(obj: IntelObject, findings: list[Finding]) -> None:
    pattern = obj.data.get("pattern")
    if type(pattern) is not str or obj.data.get("pattern_type", "stix") != "stix":
        return
    simple = _SIMPLE_PATTERN_RE.match(pattern)
    if simple is not None:
        # One equality, plain path steps, a literal without escapes: the common indicator,
        # read without the general lexer of tiops.observables (several times its cost).
        _check_comparison(obj, simple, findings)
        return
    if _JOINED_PATTERN_RE.fullmatch(pattern) is not None:
        # Several such equalities joined by AND or OR: each read as the lexer reads it
        # (its path's quotes dropped, the key the path as written), without the lexer.
        for comparison in _COMPARISON_RE.finditer(pattern):
            _check_comparison(obj, comparison, findings)
        return
    # The two readings above take string literals only: a timestamp literal can be here alone.
    if "t'" in pattern:
        _check_timestamp_literals(obj, pattern, findings)
    # Every comparison's object type, those of a type/id comparison too (no observable names them).
    for object_type in dict.fromkeys(pattern_object_types(pattern)):
        _check_object_type(obj, object_type, findings)
    for observable in pattern_observables(pattern):
        if observable.operator not in _VALUE_OPERATORS:
            continue
        check = pattern_value_check(observable.object_type, observable.path)
        problem = None if check is None else check(observable.value)
        if problem is not None:
            findings.append(make_finding(problem.code, f"pattern: {observable.key}: {problem.reason}",
                                         obj.location("pattern"), stix_id=obj.id))
