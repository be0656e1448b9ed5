"""Repository-wide checks: duplicate ids and reference integrity (STIX 2.1 section 3.1)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from tiops.codes import make_finding
from tiops.findings import Finding, PathPart, Severity
from tiops.load import IntelObject
from tiops.stix import ALL_TYPES, BUILTIN_OBJECTS, ID_RE, SDO_TYPES, id_type, reference_rule


def check_duplicate_ids(objects: list[IntelObject], *, in_bundle: bool = False) -> list[Finding]:
    """An id must name one object. A bundle may repeat an object verbatim or carry
    several versions of it (different ``modified``, STIX 2.1 section 3.6); a
    repository holds exactly one definition of each id."""
    first_seen: dict[str, IntelObject] = {}
    findings: list[Finding] = []
    for obj in objects:
        earlier = first_seen.setdefault(obj.id, obj)
        if in_bundle and (earlier.data == obj.data or _are_versions(earlier.data, obj.data)):
            continue
        if earlier is not obj:
            other = f"{earlier.file}" + (f" (item {earlier.path[0]})" if earlier.path else "")
            findings.append(
                make_finding("TI302", f"{obj.id} is also defined in {other}", obj.location("id"), stix_id=obj.id)
            )
    return findings


def _are_versions(first: dict[str, Any], second: dict[str, Any]) -> bool:
    return "modified" in first and "modified" in second and first["modified"] != second["modified"]


def check_references(objects: list[IntelObject], *, in_bundle: bool = False) -> list[Finding]:
    """Every *_ref/*_refs must resolve, to a type the property allows.

    In a repository a dangling reference is an error; in a bundle received from
    others it is a warning, since STIX lets a bundle refer to objects it does not carry.
    """
    types = {obj.id: obj.type for obj in objects}
    types.update({identifier: obj["type"] for identifier, obj in BUILTIN_OBJECTS.items()})
    findings: list[Finding] = []
    for obj in objects:
        for path, prop, value in _references(obj.data, ()):
            is_reference, allowed = reference_rule(obj.type, prop)
            if not is_reference or not isinstance(value, str) or not ID_RE.match(value):
                continue  # not a reference, or a malformed id the schema already reports
            target_type = types.get(value)
            if target_type is None:
                finding = make_finding("TI300", f"{prop} points to {value}, which is not defined", obj.location(*path), stix_id=obj.id)
                findings.append(replace(finding, severity=Severity.WARNING) if in_bundle else finding)
            elif allowed is not None and target_type not in allowed and not _custom_where_sdo_allowed(target_type, allowed):
                expected = ", ".join(sorted(allowed)) if len(allowed) <= 4 else "another type"
                findings.append(
                    make_finding("TI301", f"{prop} points to {value}, a {target_type} object; it must point to {expected}", obj.location(*path), stix_id=obj.id)
                )
            elif allowed is None and id_type(value) != target_type:
                findings.append(make_finding("TI301", f"{prop}: {value} has the prefix of another type than its object ({target_type})", obj.location(*path), stix_id=obj.id))
    return findings


def _custom_where_sdo_allowed(target_type: str, allowed: frozenset[str]) -> bool:
    """Custom object types (section 11.2) stand where SDOs may, e.g. as relationship ends."""
    return target_type not in ALL_TYPES and allowed >= SDO_TYPES


# Nested values that never hold references; skipping them keeps the walk cheap.
_NO_REFERENCES = frozenset({"external_references", "kill_chain_phases", "hashes", "extensions"})


def _references(value: dict[str, Any], path: tuple[PathPart, ...]) -> Iterator[tuple[tuple[PathPart, ...], str, Any]]:
    """(path, property name, id) for every reference, nested ones included (granular markings).

    Extension properties are skipped: their extension-definition defines them.
    """
    for key, item in value.items():
        if key.endswith("_ref"):
            yield (*path, key), key, item
        elif key.endswith("_refs"):
            if type(item) is list:
                for index, element in enumerate(item):
                    yield (*path, key, index), key, element
        elif key in _NO_REFERENCES:
            continue
        elif type(item) is list:
            for index, element in enumerate(item):
                if type(element) is dict:
                    yield from _references(element, (*path, key, index))
        elif type(item) is dict:
            yield from _references(item, (*path, key))
