"""Repairs of common real-world defects, applied to imported objects before they are checked.

Each repair keeps the meaning of the object and is reported per object
("repaired: …"); ``tiops import --strict`` applies none and rejects the object
instead. Defects whose fix would be a guess (``modified`` before ``created``, a
pattern that does not parse) are never repaired: those objects are rejected, and
so are the objects that depend on them. docs/import.md lists every repair.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from tiops.jsonschemas import required_properties
from tiops.stix import BUILTIN_OBJECTS, TLP1_MARKINGS, TLP2_MARKINGS, canonical_json

# The spec's reserved TLP marking ids (section 7.2.1.4 for TLP 1.0; TLP 2.0 as published
# by OASIS in cti-stix-common-objects).
RESERVED_TLP_IDS = frozenset(TLP1_MARKINGS.values()) | frozenset(marking_id for marking_id, _ in TLP2_MARKINGS.values())

# Integer-valued properties that feeds write as strings ("95").
_INTEGER_PROPERTIES = frozenset({"confidence", "number_observed", "count", "x_severity"})
# Properties that hold identifiers or URLs: surrounding whitespace is never part of them.
_URL_PROPERTIES = frozenset({"url"})
# Never removed even when empty: identity and version of the object.
_KEPT_WHEN_EMPTY = frozenset({"type", "id", "spec_version", "created", "modified"})
# Timestamp properties (STIX 2.1 section 3.2 and the object sections).
TIMESTAMP_PROPERTIES = frozenset(
    {
        "created", "modified", "valid_from", "valid_until", "first_seen", "last_seen",
        "first_observed", "last_observed", "start_time", "stop_time", "published",
        "object_modified", "submitted", "analysis_started", "analysis_ended",
    }
)  # fmt: skip
# created and modified MUST be precise to the millisecond (section 3.2).
_MILLISECOND_PROPERTIES = frozenset({"created", "modified"})
# RFC 3339 section 5.6 date-time, in any offset and case, with any fraction.
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_STIX_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def normalise_timestamp(text: str, *, milliseconds: bool = False) -> str | None:
    """``text`` as a STIX timestamp (UTC, ``Z``) naming the same instant, or None when it is no RFC 3339 time.

    The fraction keeps every digit given (no instant is rounded away); with
    ``milliseconds`` it is padded to at least three digits, as ``created`` and
    ``modified`` require.
    """
    match = _RFC3339.match(text)
    if match is None:
        return None
    day, clock, fraction, offset = match.groups()
    fraction = fraction or ""
    if offset.upper() != "Z" and offset not in ("+00:00", "-00:00"):
        try:
            moment = datetime.fromisoformat(f"{day}T{clock}{offset}")
        except ValueError:
            return None
        utc = moment.astimezone(UTC)
        day, clock = utc.strftime("%Y-%m-%d"), utc.strftime("%H:%M:%S")
    else:
        try:
            datetime.fromisoformat(f"{day}T{clock}")
        except ValueError:
            return None
    if milliseconds and len(fraction) < 4:
        fraction = (fraction or ".").ljust(4, "0")
    return f"{day}T{clock}{fraction}Z"


def official_marking(data: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The spec's own definition when ``data`` reuses a reserved TLP id with other content, and why.

    Every consumer already knows what a reserved TLP id means, so a marking-definition
    that says something else under it cannot win: the references keep pointing at the
    spec's definition, which is what gets written.
    """
    stix_id = data.get("id")
    if data.get("type") != "marking-definition" or stix_id not in RESERVED_TLP_IDS:
        return None
    official = BUILTIN_OBJECTS[str(stix_id)]
    if canonical_json(data) == canonical_json(official):
        return None
    name = data.get("name")
    # TLP 1.0 is the specification's (section 7.2.1.4); TLP 2.0 the OASIS CTI TC's common objects.
    whose = "the spec's" if stix_id in TLP1_MARKINGS.values() else "the OASIS CTI TC's published"
    return dict(official), (f"{stix_id} is {whose} reserved {official['name']} marking but had other content"
                            f"{f' ({name!r})' if name else ''}; that definition is kept and references "
                            "to it keep working")


# Strings whose empty value breaks a format rule (a language tag, an identifier); free
# text such as an empty description is valid STIX and stays as sent.
_EMPTY_STRING_DEFECTS = frozenset({"lang", "id"})


def repair(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The object with the documented defect repairs (``data`` itself when none applies) and what was repaired.

    Called for objects that fail the STIX 2.1 checks; a repair that does not make the
    object valid is not kept (the object is rejected as sent).
    """
    repairs: list[str] = []
    repaired: dict[str, Any] | None = None
    required: frozenset[str] | None = None
    for key, value in data.items():
        new = value
        if type(value) is str:
            if key in TIMESTAMP_PROPERTIES:
                if _STIX_TIMESTAMP.match(value) is None or (key in _MILLISECOND_PROPERTIES and "." not in value):
                    normalised = normalise_timestamp(value.strip(), milliseconds=key in _MILLISECOND_PROPERTIES)
                    if normalised is not None and normalised != value:
                        new = normalised
                        repairs.append(f"{key}: {value!r} written as {normalised!r} (the same instant, STIX 2.1 section 3.2)")
            elif key == "id" or key.endswith("_ref") or key in _URL_PROPERTIES:
                if value != value.strip():
                    new = value.strip()
                    repairs.append(f"{key}: whitespace around {new!r} removed")
            elif key in _INTEGER_PROPERTIES and value.strip().isdigit():
                new = int(value.strip())
                repairs.append(f"{key}: the string {value!r} written as the number {new}")
        elif type(value) is list:
            if key.endswith("_refs") and any(type(item) is str and item != item.strip() for item in value):
                new = [item.strip() if type(item) is str else item for item in value]
                repairs.append(f"{key}: whitespace around identifiers removed")
            elif key == "external_references":
                new = _repair_references(value, repairs)
        if (new == [] or new == {} or (new == "" and (key in _EMPTY_STRING_DEFECTS or key.endswith("_ref")))) \
                and key not in _KEPT_WHEN_EMPTY:
            if required is None:
                required = required_properties(str(data.get("type")))
            if key not in required:
                repairs.append(f"{key}: empty {'string' if new == '' else 'list' if new == [] else 'mapping'} removed "
                               "(an optional property is omitted rather than empty)")
                new = _REMOVED
        if new is not value:
            if repaired is None:
                repaired = dict(data)
            if new is _REMOVED:
                del repaired[key]
            else:
                repaired[key] = new
    return (data if repaired is None else repaired), repairs


_REMOVED: Any = object()


def _repair_references(references: list[Any], repairs: list[str]) -> list[Any]:
    """external_references with whitespace stripped from URLs and ids, empty optional values dropped."""
    result: list[Any] = []
    changed = False
    for index, entry in enumerate(references):
        if type(entry) is not dict:
            result.append(entry)
            continue
        fixed = entry
        for key in ("url",):
            value = entry.get(key)
            if type(value) is str and value != value.strip() and value.strip():
                if fixed is entry:
                    fixed = dict(entry)
                fixed[key] = value.strip()
                repairs.append(f"external_references.{index}.{key}: whitespace around {value.strip()!r} removed")
        for key in ("url",):
            if fixed.get(key) == "":
                if fixed is entry:
                    fixed = dict(entry)
                del fixed[key]
                repairs.append(f"external_references.{index}.{key}: empty string removed")
        changed = changed or fixed is not entry
        result.append(fixed)
    return result if changed else references


def shift_timestamp(text: str, milliseconds: int) -> str:
    """``text`` (a STIX timestamp) moved by ``milliseconds``, written with millisecond precision."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")) + timedelta(milliseconds=milliseconds)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
