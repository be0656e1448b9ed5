"""Checks on one object at a time: schema, properties, vocabularies, timestamps, patterns."""

from __future__ import annotations

import json
import re
from collections.abc import Set as AbstractSet
from typing import Any, Final

from tiops.codes import make_finding
from tiops.findings import Finding
from tiops.jsonschemas import common_properties_validator, stix_validator
from tiops.load import IntelObject
from tiops.stix import (
    ALL_TYPES,
    REAL_DAYS,
    SPEC_SECTIONS,
    TIME_WINDOWS,
    TIMESTAMP_RE,
    is_real_day,
    is_real_second,
    timestamp_key,
)
from tiops.validate.extensions import check_extension_object, declared_kind
from tiops.validate.numbers import check_numbers
from tiops.validate.patterns import pattern_errors
from tiops.validate.rules21 import RESERVED_PROPERTIES, check_rules
from tiops.validate.shapes import TIMESTAMP_PROPERTIES, Shape, shape_of
from tiops.validate.values import check_values

# Section 2.9: an identifier's UUID is an RFC 4122 one: version 1 to 5, the variant bits 10.
# tiops.stix.ID_RE takes any 8-4-4-4-12 hexadecimal digits: enough to tell what an id names, not to accept it.
_RFC4122_ID_RE = re.compile(
    r"^([a-z][a-z0-9-]*[a-z0-9])--[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-5][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
)

# The later end of each time window; an object without one has no window to check.
_WINDOW_ENDS = frozenset(end for _start, end, _strict, _section in TIME_WINDOWS)


def check_object(obj: IntelObject) -> list[Finding]:
    data = obj.data
    stix_type = data["type"]
    validator = stix_validator(stix_type)
    if validator is None:
        findings: list[Finding] = check_numbers(obj)
        kind = declared_kind(data) if stix_type not in ALL_TYPES else None
        if kind is not None:  # a type an extension-definition defines (section 7.3)
            findings.extend(check_extension_object(obj, kind))
            return findings
        if stix_type not in ALL_TYPES and not stix_type.startswith("x-"):
            findings.append(make_finding("TI202", f"'{stix_type}' is not a STIX 2.1 object type", obj.location("type"), stix_id=obj.id))
        elif stix_type.startswith("x-"):
            _check_custom_common(obj, findings)
        _check_id(obj, findings)
        _check_timestamps(obj, findings, skip=frozenset())
        findings.extend(check_rules(obj))
        findings.extend(check_values(obj))
        return findings
    already_bad: AbstractSet[str | int] = frozenset()
    shape = shape_of(stix_type, data)
    valid = validator.is_valid(data)
    # Numbers STIX cannot hold are what the schema of a number-free shape rules out.
    findings = [] if valid and shape.number_free else check_numbers(obj)
    if not valid:
        findings.extend(_schema_findings(obj, validator))
        depth = len(obj.path)
        already_bad = {f.location.path[depth] for f in findings if f.code == "TI204" and len(f.location.path) > depth}
    # A schema-valid object needs no id check of its own: every type schema requires an
    # id anchored to that type (tests/test_schemas.py holds them to it).
    _check_properties(obj, findings, shape)
    _check_timestamps(obj, findings, skip=already_bad, shape=shape)
    pattern_parsed = True
    if stix_type == "indicator" and type(data.get("pattern")) is str:
        pattern_type = data.get("pattern_type", "stix")
        for reason in pattern_errors(data["pattern"], pattern_type if isinstance(pattern_type, str) else "stix", "2.1"):
            pattern_parsed = False
            findings.append(make_finding("TI207", reason, obj.location("pattern"), stix_id=obj.id))
    findings.extend(check_rules(obj, shape))
    findings.extend(check_values(obj, pattern_parsed=pattern_parsed, shape=shape))
    _check_id_case(obj, findings)
    return findings


def _check_id(obj: IntelObject, findings: list[Finding]) -> None:
    identifier = obj.data.get("id")
    match = _RFC4122_ID_RE.match(identifier) if isinstance(identifier, str) else None
    if match is None or match.group(1) != obj.data["type"]:
        findings.append(
            make_finding("TI203", f"id {identifier!r} is not '{obj.data['type']}--<UUID>' with an RFC 4122 UUID "
                                  "(STIX 2.1 section 2.9)", obj.location("id"), stix_id=obj.id)
        )
    else:
        _check_id_case(obj, findings)


def _check_id_case(obj: IntelObject, findings: list[Finding]) -> None:
    """TI252: another spelling of the same UUID was no duplicate id, and a lower-case reference to it dangled.

    Not for partner intel: its ids are the partner's (an import keeps them as sent), and a warning
    nobody in the repository may act on would fail every ``validate --strict`` (docs/import.md)."""
    if obj.imported_folder is not None:
        return
    identifier = obj.data.get("id")
    if isinstance(identifier, str) and not identifier.islower() and _RFC4122_ID_RE.match(identifier) is not None:
        findings.append(make_finding("TI252", f"id {identifier!r} has upper-case hex digits; RFC 4122 UUIDs are "
                                              "written in lower case", obj.location("id"), stix_id=obj.id))


# Common properties of a custom object that tiops.validate.rules21 checks itself (with the
# spec_version of STIX 2.0 content in mind) or that have findings of their own: the
# common-properties schema is not asked about them.
_CUSTOM_CHECKED_ELSEWHERE = frozenset({"type", "spec_version", "id", "created", "modified", "lang"})


def _check_custom_common(obj: IntelObject, findings: list[Finding]) -> None:
    """A custom object's common properties (STIX 2.1 section 11.2) hold what section 3.2 says
    they hold: created_by_ref an identifier, confidence 0 to 100, external references and
    granular markings of their own shapes. The object's own properties are its producer's."""
    validator = common_properties_validator("sdo")
    if validator.is_valid(obj.data):
        return
    findings.extend(_schema_findings(obj, validator, skip_top=_CUSTOM_CHECKED_ELSEWHERE))


def _schema_findings(obj: IntelObject, validator: Any, *, skip_top: AbstractSet[str] = frozenset()) -> list[Finding]:
    """``skip_top``: top-level properties whose errors are left to other checks; with any,
    the object's missing properties and property names are left to them too."""
    findings: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for error in validator.iter_errors(obj.data):
        path = tuple(error.instance_path)
        schema_path = [str(part) for part in error.schema_path]
        keyword = schema_path[-1] if schema_path else ""
        if skip_top and ((path and path[0] in skip_top) or (not path and keyword in ("required", "propertyNames"))
                         or (keyword == "minItems" and error.instance == [])):
            continue
        where = ".".join(str(part) for part in path)
        if keyword in ("pattern", "not") and _is_well_formed_reference(path, error.instance):
            continue  # a well-formed id of the wrong type: TI301 says so with the target named
        if keyword == "required":
            code, message = "TI201", f"missing required property {error.message.split(' is a required')[0]}"
            if where:
                message += f" in {where}"
        elif path[:1] == ("id",):
            code, message = "TI203", f"id {obj.data.get('id')!r} is not '{obj.data['type']}--<UUID>'"
        elif keyword == "minItems" and error.instance == []:
            code, message = "TI243", f"{where} is an empty list; an optional list is left out instead (STIX 2.1 section 2, list type)"
        elif keyword == "pattern" and _is_reference_path(path):
            code, message = "TI200", (f"{where}: {error.instance!r} is not an identifier: the target's type, '--' and "
                                      "an RFC 4122 UUID (STIX 2.1 section 2.9)")
        elif keyword == "contains" and path == ("extension_types",):
            code, message = "TI200", ("extension_properties is used only when extension_types holds "
                                      "toplevel-property-extension (STIX 2.1 section 7.3)")
        elif (keyword == "oneOf" and len(path) == 2 and path[0] == "granular_markings" and isinstance(error.instance, dict)
              and "lang" in error.instance and "marking_ref" in error.instance):
            code, message = "TI200", (f"{where}: a granular marking has lang or marking_ref, not both "
                                      "(STIX 2.1 section 7.2.3): keep one in each marking")
        elif keyword in ("anyOf", "oneOf") and not path and (alternatives := _required_alternatives(
                obj.data.get("type"), schema_path)) is not None:
            code, message = "TI200", _alternatives_message(keyword, alternatives, obj.data)
        elif (keyword in ("anyOf", "oneOf") and path and isinstance(error.instance, dict)
              and (alternatives := _required_alternatives(obj.data.get("type"), schema_path)) is not None):
            # A nested object (an external reference: description, url or external_id) lacks its alternatives.
            code, message = "TI200", f"{where}: " + _alternatives_message(
                keyword, alternatives, error.instance, what=_NESTED_NAMES.get(schema_path[-2], schema_path[-2]))
        elif (keyword == "not" and isinstance(error.instance, dict)
              and (forbidden := _forbidden_properties(obj.data.get("type"), schema_path, error.instance))):
            # A conditional rule (if ... then not required): name the property and the condition.
            condition = _condition_text(obj.data.get("type"), schema_path)
            code, message = "TI200", (f"{where + ': ' if where else ''}{' and '.join(forbidden)} must be absent"
                                      f"{' when ' + condition if condition else ''}")
            if (section := SPEC_SECTIONS.get(str(obj.data.get("type")))) is not None:
                message += f" (STIX 2.1 section {section}, {obj.data['type']})"
            path = (*path, forbidden[0])
        elif "timestamp" in schema_path:
            if "millisecond" in schema_path and type(error.instance) is str and TIMESTAMP_RE.match(error.instance):
                # Well formed, but created and modified need three or more digits after the seconds.
                code, message = "TI204", (f"{where}: {error.instance!r} is not precise to the millisecond; {where} has at "
                                          "least three digits after the seconds, like 2024-05-01T12:00:00.000Z "
                                          "(STIX 2.1 section 3.2)")
            else:
                code, message = "TI204", f"{where}: {error.instance!r} is not an RFC 3339 UTC timestamp like 2024-05-01T12:00:00.000Z"
        else:
            code, message = "TI200", f"{where}: {error.message}" if where else str(error.message)
            if (section := SPEC_SECTIONS.get(str(obj.data.get("type")))) is not None:
                message += f" (STIX 2.1 section {section}, {obj.data['type']})"
        if (code, message) in seen:  # allOf/anyOf branches can report one defect twice
            continue
        seen.add((code, message))
        if "propertyNames" in schema_path and (name := _named_property(error.message)) is not None:
            # A property's name is wrong: the finding goes at that key, not at the object's first line.
            holder = error.instance
            if isinstance(holder, dict) and name in holder:
                path = (*path, name)
        findings.append(make_finding(code, message, obj.location(*path), stix_id=obj.id))
    return findings


def _schema_node(stix_type: Any, schema_path: list[str]) -> Any:
    """The node of the type's schema (or the shared common.json) at ``schema_path``, or None."""
    from tiops.jsonschemas import stix_schema

    for schema_name in (str(stix_type), "common"):
        try:
            node: Any = stix_schema(schema_name)
            for part in schema_path:
                node = node[int(part)] if isinstance(node, list) else node[part]
            return node
        except (KeyError, IndexError, ValueError, TypeError, OSError):
            continue
    return None


def _forbidden_properties(stix_type: Any, schema_path: list[str], instance: dict[str, Any]) -> list[str]:
    """The present properties a ``not: {required: [...]}`` forbids, or [] for any other ``not``."""
    node = _schema_node(stix_type, schema_path)
    if not isinstance(node, dict) or set(node) != {"required"} or not isinstance(node["required"], list):
        return []
    return [str(name) for name in node["required"] if name in instance]


def _condition_text(stix_type: Any, schema_path: list[str]) -> str:
    """``is_multipart is true`` for an ``if: {properties: {is_multipart: {const: true}}}`` beside the rule."""
    if len(schema_path) < 2 or schema_path[-2] != "then":
        return ""
    condition = _schema_node(stix_type, [*schema_path[:-2], "if"])
    if not isinstance(condition, dict) or not isinstance(condition.get("properties"), dict):
        return ""
    parts = [f"{name} is {json.dumps(rule['const'])}" for name, rule in condition["properties"].items()
             if isinstance(rule, dict) and "const" in rule]
    return " and ".join(parts)


def _required_alternatives(stix_type: Any, schema_path: list[str]) -> list[list[str]] | None:
    """The property sets an anyOf/oneOf asks one of (``[{required: [...]}, ...]``), or None."""
    node = _schema_node(stix_type, schema_path)  # a $defs path may be the shared common.json's
    if node is None:
        return None
    if not isinstance(node, list) or not all(isinstance(option, dict) and set(option) == {"required"}
                                             and option["required"] for option in node):
        return None
    return [[str(name) for name in option["required"]] for option in node]


# What a nested anyOf/oneOf of required properties is about, by its $defs name.
_NESTED_NAMES: Final = {"external-reference": "an external reference (section 2.5)"}


def _alternatives_message(keyword: str, alternatives: list[list[str]], data: dict[str, Any], *,
                          what: str | None = None) -> str:
    """What an anyOf/oneOf of required properties means, instead of the whole object dumped."""
    named = [" and ".join(option) for option in alternatives]
    given = [name for name, option in zip(named, alternatives, strict=True) if all(p in data for p in option)]
    listed = ", ".join(named[:-1]) + f" or {named[-1]}" if len(named) > 1 else named[0]
    if what is not None:
        return f"{what} needs {'exactly' if keyword == 'oneOf' else 'at least'} one of {listed} (STIX 2.1)"
    if keyword == "oneOf" and len(given) > 1:
        return f"has {' and '.join(given)}: {data.get('type')} objects take exactly one of {listed} (STIX 2.1)"
    if keyword == "oneOf":
        return f"{data.get('type')} objects need exactly one of {listed} (STIX 2.1)"
    return f"{data.get('type')} objects need at least one of {listed} (STIX 2.1)"


def _named_property(message: str) -> str | None:
    """The property name a propertyNames error is about: its message starts with it, JSON-quoted."""
    match = _QUOTED_START.match(message)
    if match is None:
        return None
    try:
        name = json.loads(match[0])
    except ValueError:
        return None
    return name if isinstance(name, str) else None


_QUOTED_START = re.compile(r'"(?:[^"\\]|\\.)*"')


def _is_reference_path(path: tuple[object, ...]) -> bool:
    names = [part for part in path if isinstance(part, str)]
    return bool(names) and names[-1].endswith(("_ref", "_refs"))


def _is_well_formed_reference(path: tuple[object, ...], value: object) -> bool:
    names = [part for part in path if isinstance(part, str)]
    return (bool(names) and names[-1].endswith(("_ref", "_refs")) and isinstance(value, str)
            and _RFC4122_ID_RE.match(value) is not None)


def _check_properties(obj: IntelObject, findings: list[Finding], shape: Shape | None = None) -> None:
    data = obj.data
    stix_type = data["type"]
    if shape is None:
        shape = shape_of(stix_type, data)
    for name in shape.unknown:  # in the order written, for stable output
        if not name.startswith("x_") and name != "extensions" and name not in RESERVED_PROPERTIES:
            findings.append(
                make_finding(
                    "TI208",
                    f"'{name}' is not a property of {stix_type} objects",
                    obj.location(name),
                    stix_id=obj.id,
                )
            )
    for name, vocabulary, values in shape.vocabularies:
        value = data[name]
        if value is None or (type(value) is str and value in values) or (type(value) is list and _all_in(value, values)):
            continue  # the common case: only suggested values
        candidates = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        for index, item in enumerate(candidates):
            if isinstance(item, str) and item not in values:
                at = obj.location(name, index) if isinstance(value, list) else obj.location(name)
                findings.append(
                    make_finding("TI209", f"{name}: '{item}' is not in the {vocabulary} vocabulary", at, stix_id=obj.id,
                                 hint=f"Suggested values: {', '.join(sorted(values))}.")
                )


def _all_in(items: list[Any], values: frozenset[str]) -> bool:
    try:
        return values.issuperset(items)
    except TypeError:  # an unhashable item (a mapping in the list): the item-by-item loop reports it
        return False


def _check_timestamps(obj: IntelObject, findings: list[Finding], *, skip: AbstractSet[str | int],
                      shape: Shape | None = None) -> None:
    data = obj.data
    if shape is None:
        present = TIMESTAMP_PROPERTIES.intersection(data)
        created_and_modified = "created" in data and "modified" in data
        windows = TIME_WINDOWS if not _WINDOW_ENDS.isdisjoint(data) else ()
    else:
        present, created_and_modified, windows = shape.timestamps, shape.created_and_modified, shape.windows
    if not present and not windows:
        return  # every property checked below is one of them (network-traffic start/end: a window only)
    real_days = REAL_DAYS
    for name in present:
        value = data[name]
        # The schema reports wrong types and shapes; its pattern accepts impossible days
        # (2025-02-30) and second 60 at any time, which is real only where a leap second fell.
        if (type(value) is str and (not (real_days.get(value[:10]) or is_real_day(value))
                                    or (value[17:19] == "60" and not is_real_second(value)))
                and name not in skip and TIMESTAMP_RE.match(value)):
            findings.append(make_finding("TI204", f"{name}: {value!r} is not a real date and time", obj.location(name), stix_id=obj.id))
    if created_and_modified:
        created, modified = data["created"], data["modified"]
        # The usual pair is told in order without a call: two texts of one shape (length, the
        # character after the seconds) compare as the times do, and _before would say False.
        if not (type(created) is str and type(modified) is str and len(created) == len(modified)
                and created[19:20] == modified[19:20] and modified >= created) and (
                created is not None and modified is not None and _before(modified, created, strict=False)):
            findings.append(
                make_finding("TI205", f"modified {modified} is before created {created}", obj.location("modified"), stix_id=obj.id)
            )
    for start, end, strict, section in windows:
        start_value, end_value = data.get(start), data.get(end)
        if not (type(start_value) is str and type(end_value) is str and len(start_value) == len(end_value)
                and start_value[19:20] == end_value[19:20] and (end_value > start_value if strict else end_value >= start_value)) and (
                start_value is not None and end_value is not None and _before(end_value, start_value, strict=strict)):
            relation = "after" if strict else "at or after"
            findings.append(
                make_finding("TI206", f"{end} {end_value} must be {relation} {start} {start_value} ({section})",
                             obj.location(end), stix_id=obj.id)
            )


def _before(later: object, earlier: object, *, strict: bool) -> bool:
    """Whether ``later`` breaks its order with ``earlier`` (both real STIX timestamps, else False)."""
    if type(later) is not str or type(earlier) is not str:
        return False
    if len(later) == len(earlier) and later[19:20] == earlier[19:20]:
        # Same shape (same precision): the text orders exactly as the time does, so the
        # keys are built only to confirm both are real timestamps when the order is broken.
        broken = later <= earlier if strict else later < earlier
        if not broken:
            return False
    later_key, earlier_key = timestamp_key(later), timestamp_key(earlier)
    if later_key is None or earlier_key is None:
        return False
    return later_key <= earlier_key if strict else later_key < earlier_key
