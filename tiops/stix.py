"""Facts from the STIX 2.1 specification that tiops needs in code.

Section numbers refer to STIX Version 2.1, OASIS Standard, 10 June 2021.
"""

from __future__ import annotations

import functools
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

SDO_TYPES = frozenset(
    {
        "attack-pattern", "campaign", "course-of-action", "grouping", "identity", "incident",
        "indicator", "infrastructure", "intrusion-set", "location", "malware", "malware-analysis",
        "note", "observed-data", "opinion", "report", "threat-actor", "tool", "vulnerability",
    }
)  # fmt: skip
SRO_TYPES = frozenset({"relationship", "sighting"})
SCO_TYPES = frozenset(
    {
        "artifact", "autonomous-system", "directory", "domain-name", "email-addr", "email-message",
        "file", "ipv4-addr", "ipv6-addr", "mac-addr", "mutex", "network-traffic", "process",
        "software", "url", "user-account", "windows-registry-key", "x509-certificate",
    }
)  # fmt: skip
META_TYPES = frozenset({"marking-definition", "extension-definition", "language-content"})
ALL_TYPES = SDO_TYPES | SRO_TYPES | SCO_TYPES | META_TYPES
# The section of STIX 2.1 that defines each type: what a finding about an object cites.
SPEC_SECTIONS: Final = {
    "attack-pattern": "4.1", "campaign": "4.2", "course-of-action": "4.3", "grouping": "4.4", "identity": "4.5",
    "incident": "4.6", "indicator": "4.7", "infrastructure": "4.8", "intrusion-set": "4.9", "location": "4.10",
    "malware": "4.11", "malware-analysis": "4.12", "note": "4.13", "observed-data": "4.14", "opinion": "4.15",
    "report": "4.16", "threat-actor": "4.17", "tool": "4.18", "vulnerability": "4.19",
    "relationship": "5.1", "sighting": "5.2",
    "artifact": "6.1", "autonomous-system": "6.2", "directory": "6.3", "domain-name": "6.4", "email-addr": "6.5",
    "email-message": "6.6", "file": "6.7", "ipv4-addr": "6.8", "ipv6-addr": "6.9", "mac-addr": "6.10",
    "mutex": "6.11", "network-traffic": "6.12", "process": "6.13", "software": "6.14", "url": "6.15",
    "user-account": "6.16", "windows-registry-key": "6.17", "x509-certificate": "6.18",
    "language-content": "7.1", "marking-definition": "7.2", "extension-definition": "7.3",
}  # fmt: skip

# Section 2.9: identifiers are TYPE--UUID (RFC 4122).
ID_RE = re.compile(
    r"^([a-z][a-z0-9-]*[a-z0-9])--([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)
# Section 3.2 / 2.16: timestamps are RFC 3339 in UTC with a "Z".
TIMESTAMP_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):([0-5]\d):([0-5]\d|60)(\.\d+)?Z$")

# Section 2.9: the namespace for deterministic SCO identifiers.
STIX_SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
# tiops' own namespace for the ids it derives for SDOs, SROs and inline relationships.
TIOPS_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:tiops:stix-identifiers")


def object_category(stix_type: str) -> str:
    if stix_type in SDO_TYPES:
        return "sdo"
    if stix_type in SRO_TYPES:
        return "sro"
    if stix_type in SCO_TYPES:
        return "sco"
    if stix_type in META_TYPES:
        return stix_type
    return "custom"


def requires_created_modified(stix_type: str) -> bool:
    """SDOs and SROs MUST have created and modified (section 3.2); SCOs have neither."""
    return stix_type in SDO_TYPES or stix_type in SRO_TYPES or stix_type in {
        "extension-definition", "language-content"
    } or (stix_type not in ALL_TYPES and stix_type.startswith("x-"))


# --- Timestamps ----------------------------------------------------------------------


# The first and last moments a STIX timestamp can write (section 3.2: RFC 3339, whose years
# have four digits).
EARLIEST_MOMENT: Final = datetime.min.replace(tzinfo=UTC)
LATEST_MOMENT: Final = datetime.max.replace(tzinfo=UTC)


def shifted(moment: datetime, duration: timedelta) -> datetime:
    """``moment + duration``, held to the moments a STIX timestamp can write: a valid_until
    extended past the end of year 9999 stops there rather than overflowing."""
    try:
        return moment + duration
    except OverflowError:
        return LATEST_MOMENT if duration > timedelta(0) else EARLIEST_MOMENT


def timestamp_key(text: str) -> tuple[str, str] | None:
    """A sortable key for a STIX timestamp, or None when it is not a real date and time.

    The key is the text up to the seconds plus the fraction digits without trailing
    zeros: comparing those strings orders timestamps exactly, at any precision STIX
    allows, without building datetime objects (this runs for every timestamp of every
    object).
    """
    match = TIMESTAMP_RE.match(text)
    if match is None or not is_real_day(text):
        return None
    fraction = match.group(7)
    return text[:19], fraction[1:].rstrip("0") if fraction else ""


def is_real_day(text: str) -> bool:
    """Whether the text starts with YYYY-MM-DD naming a real day (TIMESTAMP_RE bounds the rest).

    Remembered per day: a repository's timestamps fall on far fewer days than there
    are objects, and this runs for every timestamp of every object.
    """
    day = text[:10]
    known = REAL_DAYS.get(day)
    if known is None:
        try:
            datetime(int(day[:4]), int(day[5:7]), int(day[8:10]))
            known = True
        except ValueError:
            known = False
        if len(REAL_DAYS) < _REAL_DAYS_LIMIT:
            REAL_DAYS[day] = known
    return known


# RFC 3339 section 5.7 and its Appendix D: second 60 only "at the end of months in which a
# leap second occurs". The days whose last second IERS doubled (all at 23:59:60 UTC).
LEAP_SECOND_DAYS: frozenset[str] = frozenset({
    "1972-06-30", "1972-12-31", "1973-12-31", "1974-12-31", "1975-12-31", "1976-12-31", "1977-12-31",
    "1978-12-31", "1979-12-31", "1981-06-30", "1982-06-30", "1983-06-30", "1985-06-30", "1987-12-31",
    "1989-12-31", "1990-12-31", "1992-06-30", "1993-06-30", "1994-06-30", "1995-12-31", "1997-06-30",
    "1998-12-31", "2005-12-31", "2008-12-31", "2012-06-30", "2015-06-30", "2016-12-31",
})  # fmt: skip
# IERS Bulletin C announces each leap second six months ahead: up to this day the table is
# complete (none since 2016); after it, any 30 June or 31 December may still get one.
LEAP_SECONDS_KNOWN_UNTIL = "2025-12-31"


def is_real_second(text: str) -> bool:
    """Whether the second of a timestamp (TIMESTAMP_RE's shape) existed: 0 to 59 always, 60
    only as a leap second, at 23:59:60 of a day in LEAP_SECOND_DAYS or of a 30 June or
    31 December later than the table knows (RFC 3339 section 5.7)."""
    if text[17:19] != "60":
        return True
    day = text[:10]
    if text[11:19] != "23:59:60":
        return False
    return day in LEAP_SECOND_DAYS or (day > LEAP_SECONDS_KNOWN_UNTIL and day[5:] in ("06-30", "12-31"))


# YYYY-MM-DD -> whether it is a real day, as is_real_day found; the per-object checks
# read it directly for the days already met (a call per timestamp costs more than the lookup).
REAL_DAYS: dict[str, bool] = {}
_REAL_DAYS_LIMIT = 100_000


# Pairs of (earlier, later) properties whose order is a MUST rule; `strict` means
# the later one must be strictly greater (section 4.7 valid_until; others allow equality).
TIME_WINDOWS: tuple[tuple[str, str, bool, str], ...] = (
    ("valid_from", "valid_until", True, "section 4.7"),
    ("first_seen", "last_seen", False, "sections 4.2, 4.8, 4.9, 4.11, 4.17, 5.2"),
    ("first_observed", "last_observed", False, "section 4.14"),
    ("start_time", "stop_time", True, "section 5.1"),
    ("start", "end", False, "section 6.12"),
)


# --- References (section 3.2, 4.x, 5.x, 6.x) ----------------------------------------

_ANY = None  # any object type
_SDO_SCO = SDO_TYPES | SCO_TYPES
_IP_OR_DOMAIN = frozenset({"ipv4-addr", "ipv6-addr", "mac-addr", "domain-name"})

# (object type or "*", property) -> allowed target types (None: any type).
REFERENCE_RULES: dict[tuple[str, str], frozenset[str] | None] = {
    ("*", "created_by_ref"): frozenset({"identity"}),
    ("*", "object_marking_refs"): frozenset({"marking-definition"}),
    ("*", "marking_ref"): frozenset({"marking-definition"}),
    ("relationship", "source_ref"): _SDO_SCO,
    ("relationship", "target_ref"): _SDO_SCO,
    ("sighting", "sighting_of_ref"): SDO_TYPES,
    ("sighting", "observed_data_refs"): frozenset({"observed-data"}),
    ("sighting", "where_sighted_refs"): frozenset({"identity", "location"}),
    ("observed-data", "object_refs"): SCO_TYPES | SRO_TYPES,
    ("report", "object_refs"): _ANY,
    ("grouping", "object_refs"): _ANY,
    ("note", "object_refs"): _ANY,
    ("opinion", "object_refs"): _ANY,
    ("language-content", "object_ref"): _ANY,
    ("malware", "sample_refs"): frozenset({"file", "artifact"}),
    ("malware", "operating_system_refs"): frozenset({"software"}),
    ("malware-analysis", "host_vm_ref"): frozenset({"software"}),
    ("malware-analysis", "operating_system_ref"): frozenset({"software"}),
    ("malware-analysis", "installed_software_refs"): frozenset({"software"}),
    ("malware-analysis", "analysis_sco_refs"): SCO_TYPES,
    ("malware-analysis", "sample_ref"): frozenset({"file", "artifact", "network-traffic"}),
    ("email-message", "from_ref"): frozenset({"email-addr"}),
    ("email-message", "sender_ref"): frozenset({"email-addr"}),
    ("email-message", "to_refs"): frozenset({"email-addr"}),
    ("email-message", "cc_refs"): frozenset({"email-addr"}),
    ("email-message", "bcc_refs"): frozenset({"email-addr"}),
    ("email-message", "raw_email_ref"): frozenset({"artifact"}),
    ("email-addr", "belongs_to_ref"): frozenset({"user-account"}),
    ("file", "parent_directory_ref"): frozenset({"directory"}),
    ("file", "contains_refs"): SCO_TYPES,
    ("file", "content_ref"): frozenset({"artifact"}),
    ("directory", "contains_refs"): frozenset({"file", "directory"}),
    ("domain-name", "resolves_to_refs"): frozenset({"ipv4-addr", "ipv6-addr", "domain-name"}),
    ("ipv4-addr", "resolves_to_refs"): frozenset({"mac-addr"}),
    ("ipv4-addr", "belongs_to_refs"): frozenset({"autonomous-system"}),
    ("ipv6-addr", "resolves_to_refs"): frozenset({"mac-addr"}),
    ("ipv6-addr", "belongs_to_refs"): frozenset({"autonomous-system"}),
    ("network-traffic", "src_ref"): _IP_OR_DOMAIN,
    ("network-traffic", "dst_ref"): _IP_OR_DOMAIN,
    ("network-traffic", "src_payload_ref"): frozenset({"artifact"}),
    ("network-traffic", "dst_payload_ref"): frozenset({"artifact"}),
    ("network-traffic", "encapsulates_refs"): frozenset({"network-traffic"}),
    ("network-traffic", "encapsulated_by_ref"): frozenset({"network-traffic"}),
    ("process", "opened_connection_refs"): frozenset({"network-traffic"}),
    ("process", "creator_user_ref"): frozenset({"user-account"}),
    ("process", "image_ref"): frozenset({"file"}),
    ("process", "parent_ref"): frozenset({"process"}),
    ("process", "child_refs"): frozenset({"process"}),
    ("windows-registry-key", "creator_user_ref"): frozenset({"user-account"}),
    ("email-message", "body_raw_ref"): frozenset({"artifact", "file"}),  # body_multipart (6.6)
    # Inside the predefined extensions (section 6), named with the extension.
    ("file", "archive-ext.contains_refs"): frozenset({"file", "directory"}),
    ("network-traffic", "http-request-ext.message_body_data_ref"): frozenset({"artifact"}),
    ("process", "windows-service-ext.service_dll_refs"): frozenset({"file"}),
}


def describe_allowed(allowed: frozenset[str]) -> str:
    """The types a reference may point to, in words: four at most by name, else by category."""
    if len(allowed) <= 4:
        return ", ".join(sorted(allowed))
    named = {SDO_TYPES: "an SDO", SCO_TYPES: "an SCO", SDO_TYPES | SCO_TYPES: "an SDO or an SCO",
             SCO_TYPES | SRO_TYPES: "an SCO or an SRO (relationship, sighting)"}
    return named.get(allowed, "one of " + ", ".join(sorted(allowed)))


def article(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


@functools.lru_cache(maxsize=4096)
def reference_rule(stix_type: str, prop: str) -> tuple[bool, frozenset[str] | None]:
    """Whether ``prop`` is a reference on ``stix_type``, and which target types it allows."""
    for key in ((stix_type, prop), ("*", prop)):
        if key in REFERENCE_RULES:
            return True, REFERENCE_RULES[key]
    # Section 3.1: any property ending in _ref/_refs holds identifiers, custom ones included.
    return prop.endswith(("_ref", "_refs")), _ANY


def id_type(identifier: str) -> str:
    return identifier.split("--", 1)[0]


# --- Built-in objects -----------------------------------------------------------------

TLP2_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_MARKINGS: dict[str, tuple[str, str]] = {
    # TLP 2.0 markings as published in cti-stix-common-objects (level -> id, name).
    "clear": ("marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487", "TLP:CLEAR"),
    "green": ("marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb", "TLP:GREEN"),
    "amber": ("marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421", "TLP:AMBER"),
    "amber+strict": ("marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003", "TLP:AMBER+STRICT"),
    "red": ("marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1", "TLP:RED"),
}
# Section 7.2.1.4: the four TLP 1.0 marking definitions every STIX consumer knows.
TLP1_MARKINGS: dict[str, str] = {
    "white": "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    "green": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    "amber": "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    "red": "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}
_TLP2_IDENTITY = "identity--b3bca3c2-1f3d-4b54-b44f-dac42c3a8f01"


def _builtin_objects() -> dict[str, dict[str, Any]]:
    objects: dict[str, dict[str, Any]] = {}
    for level, (marking_id, name) in TLP2_MARKINGS.items():
        objects[marking_id] = {
            "type": "marking-definition",
            "spec_version": "2.1",
            "id": marking_id,
            "created": "2022-10-01T00:00:00.000Z",
            "name": name,
            "extensions": {TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": level}},
        }
    for level, marking_id in TLP1_MARKINGS.items():
        objects[marking_id] = {
            "type": "marking-definition",
            "spec_version": "2.1",
            "id": marking_id,
            "created": "2017-01-20T00:00:00.000Z",
            "definition_type": "tlp",
            "name": f"TLP:{level.upper()}",
            "definition": {"tlp": level},
        }
    objects[TLP2_EXTENSION_ID] = {
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": TLP2_EXTENSION_ID,
        "created": "2022-10-01T00:00:00.000Z",
        "modified": "2022-10-01T00:00:00.000Z",
        "created_by_ref": _TLP2_IDENTITY,
        "name": "TLP 2.0",
        "description": "This defines TLP 2.0 as a STIX extension",
        "schema": "https://github.com/oasis-open/cti-stix-common-objects/tree/master/extension-definition-specifications/tlp-2.0",
        "version": "1.0.0",
        "extension_types": ["property-extension"],
    }
    return objects


BUILTIN_OBJECTS = _builtin_objects()
# The TLP marking definitions (1.0, section 7.2.1.4, and 2.0): objects whose every property
# is fixed, so nothing may be added to them (no folder default, no source system).
BUILTIN_MARKING_IDS = frozenset(i for i, o in BUILTIN_OBJECTS.items() if o["type"] == "marking-definition")
# What a reference to a built-in object resolves to, by id, and to the one object the
# built-ins name without tiops carrying it: CISA's identity, the creator of the TLP 2.0
# extension-definition OASIS publishes (its created_by_ref). A bundle tiops writes names it
# as published; tiops does not write another party's identity object in its place.
TLP2_CREATOR_ID = _TLP2_IDENTITY
BUILTIN_REFERENCE_TYPES: dict[str, str] = {
    **{identifier: str(obj["type"]) for identifier, obj in BUILTIN_OBJECTS.items()}, TLP2_CREATOR_ID: "identity"}
# Objects a built-in marking pulls into a bundle with it.
BUILTIN_DEPENDENCIES: dict[str, tuple[str, ...]] = {
    marking_id: (TLP2_EXTENSION_ID,) for marking_id, _ in TLP2_MARKINGS.values()
}


def tlp_level(marking_refs: list[Any] | None) -> str | None:
    """The TLP level named by an object's markings (TLP 2.0 names; TLP 1.0 white reads as clear).

    When an object carries several TLP markings, TLP 2.0 ones win, then the order of
    TLP2_MARKINGS and TLP1_MARKINGS.
    """
    if not marking_refs:
        return None
    best: tuple[int, str] | None = None
    for ref in marking_refs:
        ranked = _TLP_RANKS.get(ref) if ref.__class__ is str else None
        if ranked is not None and (best is None or ranked < best):
            best = ranked
    return None if best is None else best[1]


# Marking id -> (precedence, level): one lookup per marking instead of a scan per level.
_TLP_RANKS: dict[str, tuple[int, str]] = {}
for _rank, (_level, (_marking_id, _)) in enumerate(TLP2_MARKINGS.items()):
    _TLP_RANKS.setdefault(_marking_id, (_rank, _level))
for _rank, (_level, _marking_id) in enumerate(TLP1_MARKINGS.items(), start=len(TLP2_MARKINGS)):
    _TLP_RANKS.setdefault(_marking_id, (_rank, "clear" if _level == "white" else _level))


# --- Deterministic identifiers ---------------------------------------------------------

# Properties that identify an SDO/SRO well enough for tiops to derive its id when the
# author omitted it. (SCOs use the spec's own id-contributing properties, section 2.9.)
IDENTIFYING_PROPERTIES: dict[str, tuple[str, ...]] = {
    "indicator": ("pattern",),
    "relationship": ("source_ref", "relationship_type", "target_ref"),
    "sighting": ("sighting_of_ref", "where_sighted_refs", "first_seen"),
    "note": ("content", "object_refs"),
    "opinion": ("opinion", "explanation", "object_refs"),
    "observed-data": ("first_observed", "last_observed", "object_refs"),
    "report": ("name", "published"),
    "location": ("name", "region", "country", "administrative_area", "city", "latitude", "longitude"),
    "marking-definition": ("name", "definition_type", "definition"),
    "language-content": ("object_ref", "object_modified", "contents"),
}
DEFAULT_IDENTIFYING_PROPERTIES = ("name",)


def canonical_json(value: Any) -> bytes:
    """RFC 8785-style canonical JSON for identifiers and digests: sorted keys, no spaces."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def derive_sdo_id(stix_type: str, obj: dict[str, Any]) -> str | None:
    """A UUIDv5 id from the type and identifying properties, or None when none is present."""
    names = IDENTIFYING_PROPERTIES.get(stix_type, DEFAULT_IDENTIFYING_PROPERTIES)
    values = {name: obj[name] for name in names if name in obj}
    if not values:
        return None
    seed = canonical_json({"type": stix_type, **values}).decode()
    return f"{stix_type}--{uuid.uuid5(TIOPS_NAMESPACE, seed)}"


def derive_relationship_id(source_ref: str, relationship_type: str, target_ref: str) -> str:
    seed = f"{source_ref}|{relationship_type}|{target_ref}"
    return f"relationship--{uuid.uuid5(TIOPS_NAMESPACE, seed)}"


def derive_sco_id(obj: dict[str, Any]) -> str:
    """Section 2.9: SCO ids are UUIDv5 of the id-contributing properties; stix2 implements it.

    For SCOs without contributing properties the spec asks for a UUIDv4 (a process,
    always); tiops hashes the whole object instead so that builds stay reproducible, and
    stamps the hash as version 4 so the id has the form section 2.9 requires (TI244).
    """
    import stix2

    try:
        parsed = stix2.parse({k: v for k, v in obj.items() if k != "id"}, allow_custom=True, version="2.1")
        derived = str(parsed["id"])
    except Exception:
        derived = ""
    stix_type = str(obj.get("type"))
    if derived and uuid.UUID(derived.split("--", 1)[1]).version == 5:
        return derived
    hashed = uuid.uuid5(STIX_SCO_NAMESPACE, canonical_json(obj).decode())
    if derived:  # stix2 made a random UUIDv4: no id-contributing property is present
        hashed = uuid.UUID(bytes=hashed.bytes, version=4)
    return f"{stix_type}--{hashed}"


# --- The source system extension ---------------------------------------------------------

SOURCE_EXTENSION_ID = f"extension-definition--{uuid.uuid5(TIOPS_NAMESPACE, 'source-system')}"
TIOPS_IDENTITY_ID = f"identity--{uuid.uuid5(TIOPS_NAMESPACE, 'tiops')}"
SOURCE_EXTENSION_OBJECTS: tuple[dict[str, Any], ...] = (
    {
        "type": "identity",
        "spec_version": "2.1",
        "id": TIOPS_IDENTITY_ID,
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "name": "tiops",
        "identity_class": "system",
        "description": "The tiops threat-intelligence-as-code compiler.",
    },
    {
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": SOURCE_EXTENSION_ID,
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "created_by_ref": TIOPS_IDENTITY_ID,
        "name": "tiops source system",
        "description": "The source system an object came from, like the Source column of "
        "Microsoft Sentinel's threat intelligence. Property: source_system (string).",
        "schema": "https://json-schema.org/draft/2020-12/schema#tiops-source-system",
        "version": "1.0.0",
        "extension_types": ["property-extension"],
    },
)


def source_of(obj: dict[str, Any]) -> str | None:
    extension = (obj.get("extensions") or {}).get(SOURCE_EXTENSION_ID)
    if isinstance(extension, dict):
        value = extension.get("source_system")
        return value if isinstance(value, str) else None
    return None
