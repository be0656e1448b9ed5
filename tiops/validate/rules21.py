"""STIX 2.1 MUST rules the JSON schemas cannot say: property names, empty lists, external
id conventions, custom objects' common properties, SCO ids and extension names,
markings (selectors, TLP definitions, circular markings).

Each rule names its section in the finding; docs/findings.md maps every MUST of
sections 2-7 to the code that checks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

from tiops.codes import make_finding
from tiops.findings import Finding, PathPart
from tiops.jsonschemas import known_properties
from tiops.load import IntelObject
from tiops.stix import (
    ALL_TYPES,
    BUILTIN_OBJECTS,
    ID_RE,
    SCO_TYPES,
    SDO_TYPES,
    SRO_TYPES,
    TIMESTAMP_RE,
    TLP1_MARKINGS,
    TLP2_MARKINGS,
    timestamp_key,
)
from tiops.validate.shapes import Shape

# Reserved for future use on every object (STIX 2.1; the OASIS 2.1 schemas reject them).
RESERVED_PROPERTIES: Final = frozenset({"severity", "action", "username", "phone_numbers"})

# Section 11.1 (custom properties): a-z, 0-9 and _, 3 to 250 characters; section 3.1:
# property names begin with an alpha character.
_CUSTOM_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_]{2,249}$")
# Names the JSON schemas' propertyNames already reject (reported there as TI200).
_SCHEMA_NAME_RE: Final = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,249}$")

# Section 2.5 with section 4.19 (vulnerability) and 4.1 (attack-pattern): the CVE and
# CAPEC identifiers in their own formats.
_EXTERNAL_ID_FORMATS: Final = {
    "cve": (re.compile(r"^CVE-[0-9]{4}-(?:0[0-9]{3}|[1-9][0-9]{3,})$"), "CVE-YYYY-NNNN (four or more digits)"),
    "capec": (re.compile(r"^CAPEC-[0-9]+$"), "CAPEC-N"),
}

# Section 2.9 with each SCO's section 6.x: the id-contributing properties. Without any
# of them present the id MUST be a UUIDv4; process has none.
_ID_CONTRIBUTING: Final[dict[str, tuple[str, ...]]] = {
    "artifact": ("hashes", "payload_bin"),
    "autonomous-system": ("number",),
    "directory": ("path",),
    "domain-name": ("value",),
    "email-addr": ("value",),
    "email-message": ("from_ref", "subject", "body"),
    "file": ("hashes", "name", "extensions", "parent_directory_ref"),
    "ipv4-addr": ("value",),
    "ipv6-addr": ("value",),
    "mac-addr": ("value",),
    "mutex": ("name",),
    "network-traffic": ("start", "end", "src_ref", "dst_ref", "src_port", "dst_port", "protocols", "extensions"),
    "process": (),
    "software": ("name", "cpe", "swid", "vendor", "version"),
    "url": ("value",),
    "user-account": ("account_type", "user_id", "account_login"),
    "windows-registry-key": ("key", "values"),
    "x509-certificate": ("hashes", "serial_number"),
}

# Section 7.2.3.1: a selector is property names and [index] steps joined by dots.
_SELECTOR_RE: Final = re.compile(r"^[A-Za-z0-9_-]+(?:\.(?:\[(?:0|[1-9][0-9]*)\]|[A-Za-z0-9_-]+))*$")

_TLP1_IDS: Final = frozenset(TLP1_MARKINGS.values())
_TLP2_IDS: Final = frozenset(marking_id for marking_id, _name in TLP2_MARKINGS.values())

# Section 3.2: the common properties, which custom objects (section 11.2) share.
_COMMON_PROPERTIES: Final = frozenset({
    "type", "spec_version", "id", "created_by_ref", "created", "modified", "revoked", "labels",
    "confidence", "lang", "external_references", "object_marking_refs", "granular_markings",
    "extensions", "defanged",
})  # fmt: skip


def check_rules(obj: IntelObject, shape: Shape | None = None) -> list[Finding]:
    """``shape``: :func:`tiops.validate.shapes.shape_of` the object, when the caller has it."""
    if shape is not None and shape.rules_free:
        return []
    data = obj.data
    stix_type = data["type"]
    findings: list[Finding] = []
    custom_type = stix_type not in ALL_TYPES
    known = _COMMON_PROPERTIES if custom_type else known_properties(stix_type)
    if shape is not None and not custom_type:
        unknown = list(shape.unknown)  # the names not in known_properties(stix_type)
    else:
        unknown = [] if known.issuperset(data) else [name for name in data if name not in known]
    if unknown:  # rare: most objects hold only the properties STIX defines
        _check_names(obj, unknown, custom_type, findings)
        # The schemas report empty lists in the properties they define (as TI243, see
        # tiops.validate.objects); custom properties and custom objects are walked here.
        _check_empty_lists(obj, {name: data[name] for name in unknown}, (), findings)
    if custom_type:
        _check_empty_lists(obj, {name: data[name] for name in known.intersection(data)}, (), findings)
    references = data.get("external_references")
    if type(references) is list:
        _check_external_ids(obj, references, findings)
    if custom_type and stix_type.startswith("x-"):  # other unknown types are TI202 already
        _check_custom_object(obj, findings)
    if stix_type in SCO_TYPES:
        _check_sco(obj, stix_type, findings)
    if type(data.get("extensions")) is dict:
        _check_extensions(obj, stix_type in SCO_TYPES, data["extensions"], findings,
                          sdo_or_sro=stix_type in SDO_TYPES or stix_type in SRO_TYPES)
    if type(data.get("granular_markings")) is list:
        _check_selectors(obj, findings)
    if stix_type == "marking-definition":
        _check_marking_definition(obj, findings)
    if stix_type == "observed-data" and type(data.get("objects")) is dict:
        _check_observable_dictionary(obj, data["objects"], findings)
    return findings


def _check_observable_dictionary(obj: IntelObject, observables: dict[str, Any], findings: list[Finding]) -> None:
    """References inside the deprecated ``objects`` of an observed-data name keys of that same
    dictionary (section 4.14 keeps the property from STIX 2.0, whose Part 3 says so; the
    reference validator holds 2.1 content to it too)."""
    for where, reference in _observable_references(observables, ("objects",)):
        if type(reference) is not str or reference not in observables:
            findings.append(make_finding(
                "TI300", f"{'.'.join(map(str, where))}: {reference!r} is no key of this observed-data's objects "
                "(STIX 2.1 section 4.14, objects (deprecated), as STIX 2.0 Part 3: its references name objects of "
                "the same dictionary)", obj.location(*where), stix_id=obj.id,
                hint=f"Use one of the keys {', '.join(sorted(map(str, observables)))}, or add the object it names."))


def _observable_references(observables: dict[str, Any], where: tuple[PathPart, ...]) -> Iterator[tuple[tuple[PathPart, ...], Any]]:
    """Every ``*_ref`` value and ``*_refs`` item of the observables of an observed-data's
    ``objects`` (at ``where``), with its path: what must name a key of that dictionary.
    The generic reference walk (tiops.validate.references) does not fit: these references
    name dictionary keys, not identifiers."""
    for key, observable in observables.items():
        if isinstance(observable, dict):
            yield from _references(observable, (*where, key))


def _references(value: Any, where: tuple[PathPart, ...], name: str = "") -> Iterator[tuple[tuple[PathPart, ...], Any]]:
    """Every ``*_ref`` value and ``*_refs`` item under ``value``, with its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _references(item, (*where, key), str(key))
    elif name.endswith("_refs") and isinstance(value, list):
        for index, item in enumerate(value):
            yield (*where, index), item
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _references(item, (*where, index))
    elif name.endswith("_ref"):
        yield where, value


def _add(findings: list[Finding], obj: IntelObject, code: str, message: str, *path: PathPart) -> None:
    findings.append(make_finding(code, message, obj.location(*path), stix_id=obj.id))


def _check_names(obj: IntelObject, unknown: list[str], custom_type: bool, findings: list[Finding]) -> None:
    for name in unknown:
        if type(name) is not str:
            continue
        if name in RESERVED_PROPERTIES:
            _add(findings, obj, "TI241", f"'{name}' is a reserved property name in STIX 2.1; it MUST NOT be used", name)
        elif name != "extensions" and not _CUSTOM_NAME_RE.match(name) and (custom_type or _SCHEMA_NAME_RE.match(name)):
            _add(findings, obj, "TI242", f"'{name}': custom property names are 3-250 characters of a-z, 0-9 and _, "
                                         "starting with a letter (STIX 2.1 section 11.1)", name)


def _check_empty_lists(obj: IntelObject, value: dict[str, Any], path: tuple[PathPart, ...], findings: list[Finding]) -> None:
    """Empty lists anywhere STIX defines the structure: not inside a custom property's
    value, whose shape its producer defines, nor an extension-definition's extension."""
    for key, item in value.items():
        if type(item) is list:
            if not item:
                _add(findings, obj, "TI243", f"{'.'.join(map(str, (*path, key)))} is an empty list; an optional list "
                                             "is left out instead (STIX 2.1 section 2, list type)", *path, key)
            else:
                for index, element in enumerate(item):
                    if type(element) is dict and not key.startswith("x_"):
                        _check_empty_lists(obj, element, (*path, key, index), findings)
        elif type(item) is dict and item and not (type(key) is str and key.startswith(("x_", "extension-definition--"))):
            _check_empty_lists(obj, item, (*path, key), findings)


def _check_external_ids(obj: IntelObject, references: list[Any], findings: list[Finding]) -> None:
    for index, reference in enumerate(references):
        if type(reference) is not dict:
            continue
        source = reference.get("source_name")
        rule = _EXTERNAL_ID_FORMATS.get(source.lower()) if type(source) is str else None
        external_id = reference.get("external_id")
        if rule is not None and type(external_id) is str and not rule[0].match(external_id):
            _add(findings, obj, "TI240", f"external_references[{index}]: source_name {source} needs an external_id like "
                                         f"{rule[1]}, not {external_id!r} (STIX 2.1 section 2.5)",
                 "external_references", index, "external_id")


def _check_custom_object(obj: IntelObject, findings: list[Finding]) -> None:
    """Custom objects (section 11.2) carry the common properties of section 3.2."""
    data = obj.data
    for name in ("spec_version", "created", "modified"):
        if name not in data:
            _add(findings, obj, "TI201", f"missing required property '{name}': a custom object has the common "
                                         "properties of STIX 2.1 section 3.2 (section 11.2)")
    if "spec_version" in data and data["spec_version"] != "2.1":
        _add(findings, obj, "TI211", f"spec_version {data['spec_version']!r} must be '2.1' in STIX 2.1 content (section 3.2)",
             "spec_version")
    for name in ("created", "modified"):
        value = data.get(name)
        if name in data and (type(value) is not str or not TIMESTAMP_RE.match(value) or "." not in value[19:]
                             or len(value) < 24):
            _add(findings, obj, "TI204", f"{name}: {value!r} is not an RFC 3339 UTC timestamp with at least "
                                         "millisecond precision, like 2024-05-01T12:00:00.000Z (STIX 2.1 section 3.2)", name)
    if not re.fullmatch(r"[a-z0-9-]{3,250}", data["type"]) or "--" in data["type"]:
        _add(findings, obj, "TI202", f"type {data['type']!r}: custom type names are 3-250 characters of a-z, 0-9 "
                                     "and single hyphens (STIX 2.1 section 11.2)", "type")


def _check_sco(obj: IntelObject, stix_type: str, findings: list[Finding]) -> None:
    data = obj.data
    identifier = data.get("id")
    contributing = _ID_CONTRIBUTING.get(stix_type)
    if type(identifier) is str and contributing is not None and not any(name in data for name in contributing):
        match = ID_RE.match(identifier)
        if match is not None and match.group(2)[14] != "4":
            _add(findings, obj, "TI244", f"id {identifier}: a {stix_type} without id-contributing properties has a "
                                         "UUIDv4 id (STIX 2.1 section 2.9)", "id")


def _check_extensions(obj: IntelObject, sco: bool, extensions: dict[Any, Any], findings: list[Finding],
                      sdo_or_sro: bool = False) -> None:
    """Each key names an extension-definition (or, on an SCO, a predefined -ext extension), and the
    properties inside each extension are named as every property is (STIX 2.1 sections 3.1, 3.2, 7.3)."""
    for key, entry in extensions.items():
        if type(key) is not str:
            continue
        # Predefined -ext names are SCO extensions (section 6): an SDO's or SRO's key is an
        # extension-definition id. A custom type keeps -ext names (2.0-style custom extensions).
        if not _is_extension_definition_id(key) and (not key.endswith("-ext") or sdo_or_sro):
            if sco:
                _add(findings, obj, "TI245", f"extensions: '{key}' is neither a predefined extension name ending in "
                                             "-ext nor an extension-definition id (STIX 2.1 sections 6, 7.3)",
                     "extensions", key)
            else:
                _add(findings, obj, "TI251", f"extensions: '{key}' is not an extension-definition id "
                                             "(extension-definition--UUID; STIX 2.1 sections 3.2, 7.3)", "extensions", key)
        if type(entry) is not dict:
            continue
        for name in entry:
            if type(name) is str and name != "extension_type" and not _PROPERTY_NAME.fullmatch(name):
                _add(findings, obj, "TI242", f"extensions.{key}: property name {name!r} is not 3 to 250 characters of "
                                             "a-z, 0-9 and _ (STIX 2.1 sections 3.1, 7.3)", "extensions", key, name)


# STIX 2.1 section 3.1: property names are ASCII a-z, 0-9 and _, 3 to 250 characters.
_PROPERTY_NAME = re.compile("[a-z0-9_]{3,250}")


def _is_extension_definition_id(key: str) -> bool:
    """An extension-definition--UUID key in full (section 7.3); a truncated one names nothing."""
    if not key.startswith("extension-definition--"):
        return False
    match = ID_RE.match(key)
    return match is not None and match.group(1) == "extension-definition"


def _check_selectors(obj: IntelObject, findings: list[Finding]) -> None:
    for index, marking in enumerate(obj.data["granular_markings"]):
        selectors = marking.get("selectors") if type(marking) is dict else None
        if type(selectors) is not list:
            continue
        for position, selector in enumerate(selectors):
            if type(selector) is not str:
                continue
            where = ("granular_markings", index, "selectors", position)
            if not _SELECTOR_RE.match(selector):
                _add(findings, obj, "TI246", f"selector {selector!r} is not property names and [N] list indices "
                                             "joined by dots (STIX 2.1 section 7.2.3.1)", *where)
            elif not _selects(obj.data, selector):
                _add(findings, obj, "TI246", f"selector {selector!r} selects nothing in this object; it MUST name "
                                             "a property or list item present (STIX 2.1 section 7.2.3.1)", *where)


def _selects(data: dict[str, Any], selector: str) -> bool:
    current: Any = data
    for step in selector.split("."):
        if step.startswith("["):
            position = int(step[1:-1])
            if type(current) is not list or position >= len(current):
                return False
            current = current[position]
        else:
            if type(current) is not dict or step not in current:
                return False
            current = current[step]
    return True


def _differing_properties(expected: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """The properties in which ``data`` is not the published marking ``expected``; its created
    written with more fraction digits (2022-10-01T00:00:00.000000Z) is the same instant."""
    return sorted(set(expected) ^ set(data) | {
        key for key, value in expected.items() if key in data and data[key] != value
        and not (key == "created" and type(data[key]) is str and timestamp_key(data[key]) == timestamp_key(value))})


def _check_marking_definition(obj: IntelObject, findings: list[Finding]) -> None:
    data = obj.data
    identifier = obj.id
    if identifier in _TLP1_IDS or identifier in _TLP2_IDS:
        expected = BUILTIN_OBJECTS[identifier]
        differing = ", ".join(_differing_properties(expected, data))
        if differing and identifier in _TLP1_IDS:
            _add(findings, obj, "TI247", f"{identifier} is the {expected['name']} marking-definition; it differs from "
                                         f"the specification's in {differing} (STIX 2.1 section 7.2.1.4)")
        elif differing:
            # Not a rule of the specification, which knows TLP 1.0 only: a warning, but one id
            # saying two levels to two consumers is worth one.
            _add(findings, obj, "TI250", f"{identifier} is the TLP 2.0 {expected['name']} marking-definition; it "
                                         f"differs from the one the OASIS CTI TC publishes (cti-stix-common-objects) "
                                         f"in {differing}")
    elif data.get("definition_type") == "tlp":
        _add(findings, obj, "TI247", f"a TLP marking-definition must be one of the four of STIX 2.1 section 7.2.1.4 "
                                     f"(id {identifier} is none of them)", "id")
    if "modified" in data:
        _add(findings, obj, "TI211", "modified must be absent from a marking-definition: marking definitions are never "
                                     "versioned, as that would change the markings of every object using them "
                                     "(STIX 2.1 section 7.2.1)", "modified")
    for path, ref in _own_marking_refs(data):
        if ref == identifier:
            _add(findings, obj, "TI248", f"{identifier} marks itself; marking-definitions MUST NOT refer to "
                                         "themselves (STIX 2.1 section 7.2)", *path)


def _own_marking_refs(data: dict[str, Any]) -> list[tuple[tuple[PathPart, ...], Any]]:
    found: list[tuple[tuple[PathPart, ...], Any]] = []
    refs = data.get("object_marking_refs")
    if type(refs) is list:
        found.extend((("object_marking_refs", index), ref) for index, ref in enumerate(refs))
    granular = data.get("granular_markings")
    if type(granular) is list:
        found.extend((("granular_markings", index, "marking_ref"), item.get("marking_ref"))
                     for index, item in enumerate(granular) if type(item) is dict)
    return found
