"""STIX 2.1 extensions (section 7.3): types and properties an extension-definition defines.

An object names the extensions it uses as keys of its ``extensions`` dictionary; for
an extension-definition the key is the definition's id and the value says how the
extension is used (``extension_type``):

* ``new-sdo``, ``new-sco``, ``new-sro``: the object's own type is defined by the
  extension. It is checked against the common properties of its kind (section 3.2
  for SDOs and SROs, 6.1 for SCOs) instead of being an unknown type (TI202).
* ``property-extension``: the extension's properties sit inside the dictionary entry.
* ``toplevel-property-extension``: the extension's properties sit at the top level
  of the object; the entry holds only ``extension_type``.

Every such key must name an extension-definition in the repository (or one tiops
knows, the TLP 2.0 definition), whose ``extension_types`` includes the use (TI212,
TI213); an object of an extension-defined type that lacks a common property of its
kind is TI214.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tiops.codes import make_finding
from tiops.findings import Finding, Severity
from tiops.jsonschemas import common_properties_validator, stix_validator
from tiops.load import IntelObject
from tiops.stix import BUILTIN_OBJECTS, SOURCE_EXTENSION_OBJECTS

EXTENSION_DEFINITION_PREFIX = "extension-definition--"
NEW_TYPE_KINDS = {"new-sdo": "sdo", "new-sco": "sco", "new-sro": "sro"}
EXTENSION_TYPES = frozenset({*NEW_TYPE_KINDS, "property-extension", "toplevel-property-extension"})
_KNOWN_DEFINITIONS: dict[str, dict[str, Any]] = {
    identifier: data for identifier, data in BUILTIN_OBJECTS.items() if data["type"] == "extension-definition"
} | {str(data["id"]): data for data in SOURCE_EXTENSION_OBJECTS if data["type"] == "extension-definition"}


def extension_entries(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """(definition id, entry) for every extension of ``data`` that an extension-definition defines."""
    extensions = data.get("extensions")
    if type(extensions) is not dict:
        return []
    return [(key, value) for key, value in extensions.items()
            if type(key) is str and key.startswith(EXTENSION_DEFINITION_PREFIX)]


def declared_kind(data: dict[str, Any]) -> str | None:
    """"sdo", "sco" or "sro" when the object's type comes from an extension (new-sdo, ...), else None."""
    for _, entry in extension_entries(data):
        if type(entry) is dict:
            kind = NEW_TYPE_KINDS.get(entry.get("extension_type"))  # type: ignore[arg-type]
            if kind is not None:
                return kind
    return None


def check_extension_object(obj: IntelObject, kind: str) -> list[Finding]:
    """TI214 for each common property of ``kind`` the object lacks or writes wrongly."""
    findings: list[Finding] = []
    seen: set[str] = set()
    for error in common_properties_validator(kind).iter_errors(obj.data):
        path = tuple(error.instance_path)
        where = ".".join(str(part) for part in path)
        message = f"{where}: {error.message}" if where else str(error.message)
        if path in (("created",), ("modified",)) and list(error.schema_path)[-1:] == ["pattern"]:
            # The schema's pattern says it in a regular expression; the rule is section 3.2's.
            message = (f"{where}: {error.instance!r} is not an RFC 3339 UTC timestamp precise to the millisecond, "
                       "like 2024-05-01T12:00:00.000Z (STIX 2.1 section 3.2)")
        if message in seen:
            continue
        seen.add(message)
        findings.append(make_finding(
            "TI214", f"{obj.data['type']} is a new {kind.upper()} type (extension-definition, STIX 2.1 section 7.3): "
                     f"{message}", obj.location(*path), stix_id=obj.id))
    return findings


def check_extensions(objects: list[IntelObject], *, in_bundle: bool = False) -> list[Finding]:
    """TI212 and TI213 over every object's extensions, against the extension-definitions present.

    In a bundle received from others an undefined extension is a warning (a bundle may
    refer to objects it does not carry), as dangling references are.
    """
    definitions = dict(_KNOWN_DEFINITIONS)
    for obj in objects:
        if obj.data.get("type") == "extension-definition" and type(obj.data.get("id")) is str:
            definitions[obj.data["id"]] = obj.data
    findings: list[Finding] = []
    for obj in objects:
        if "extensions" not in obj.data:
            continue
        for key, entry in extension_entries(obj.data):
            where = obj.location("extensions", key)
            definition = definitions.get(key)
            if definition is None:
                finding = make_finding("TI212", f"extensions names {key}, which is not an extension-definition in the "
                                                "repository", where, stix_id=obj.id)
                findings.append(replace(finding, severity=Severity.WARNING) if in_bundle else finding)
                continue
            use = entry.get("extension_type") if type(entry) is dict else None
            if use is None:
                continue  # a plain property-extension entry may leave extension_type out
            allowed = definition.get("extension_types")
            if use not in EXTENSION_TYPES and stix_validator(str(obj.data.get("type"))) is not None:
                continue  # not an extension type at all: the object's schema says so (TI200), once
            if use not in EXTENSION_TYPES or (isinstance(allowed, list) and use not in allowed):
                findings.append(make_finding(
                    "TI213", f"extensions.{key}.extension_type is {use!r}, but the definition "
                             f"{definition.get('name', key)!r} allows {', '.join(map(str, allowed or [])) or 'nothing'}",
                    obj.location("extensions", key, "extension_type"), stix_id=obj.id))
    return findings


def toplevel_extension_properties(objects: list[IntelObject]) -> set[tuple[str, str]]:
    """(object id, property) for the top-level properties a toplevel-property-extension defines on each object.

    The definition lists them in ``extension_properties`` (section 7.3); they are not
    unknown properties (TI208) of the object that uses the extension.
    """
    definitions = {str(obj.data["id"]): obj.data for obj in objects if obj.data.get("type") == "extension-definition"}
    found: set[tuple[str, str]] = set()
    for obj in objects:
        if "extensions" not in obj.data:
            continue
        for key, entry in extension_entries(obj.data):
            if type(entry) is dict and entry.get("extension_type") == "toplevel-property-extension":
                names = (definitions.get(key) or {}).get("extension_properties")
                if isinstance(names, list):
                    found.update((obj.id, str(name)) for name in names if name in obj.data)
    return found
