"""Locked enrichment on objects: what ingestion rules see and what the bundle carries.

The results travel as a STIX 2.1 property-extension (section 7.3) defined by the
extension-definition :data:`ENRICHMENT_EXTENSION_ID`, on the indicator or SCO
that names the values, so a consumer such as Microsoft Sentinel shows them beside
the indicator (no separate objects to join). Per object::

    extensions:
      extension-definition--<tiops enrichment>:
        extension_type: property-extension
        enrichment: [{value, country, country_code, region, city, asn, as_organization}]
        whois: [{value, registrar, registered, expires, updated, rdap_status,
                 registrant_organization, registrant_country, abuse_email, age_days, ...}]

Only results that were found travel; how a value was looked up (server, time,
database) stays in the lock (``tiops explain`` shows it). Nothing here reads the network or
the clock: the same lock always gives the same objects.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

# The field vocabulary lives in a low module (queries read it without this one); kept importable here.
from tiops.enrich.fields import BUNDLE_FIELDS as _BUNDLE_FIELDS
from tiops.enrich.fields import (
    ENRICHMENT_EXTENSION_ID,
    ENRICHMENT_FIELDS,
    ENRICHMENT_SUBFIELDS,
    field_path,
)
from tiops.enrich.lock import EnrichmentLock, read_lock_for_build
from tiops.enrich.values import (
    CANONICAL_IPV4,
    PLAIN_CANONICAL,
    PLAIN_URL_HOST,
    SIMPLE_VALUE_PATTERN,
    Kind,
    ends_in_a_number,
    object_enrich_values,
)
from tiops.enrich.values import ENRICHED_OBJECT_TYPES as _ENRICHED_OBJECT_TYPES
from tiops.filesource import FileSource
from tiops.load import IntelObject
from tiops.memory import paused_gc
from tiops.stix import TIOPS_IDENTITY_ID

__all__ = [
    "ENRICHMENT_EXTENSION_ID",
    "ENRICHMENT_EXTENSION_OBJECT",
    "ENRICHMENT_FIELDS",
    "ENRICHMENT_SUBFIELDS",
    "GEO_FIELDS",
    "WHOIS_FIELDS",
    "BundleEnrichment",
    "EnrichmentPlan",
    "LockKeys",
    "LockedEnrichment",
    "attach_enrichment",
    "bundle_form",
    "enrichment_of",
    "field_path",
    "find_plans",
    "is_address_key",
    "moment_of",
    "repository_enrichment",
    "without_enrichment",
]

ENRICHMENT_EXTENSION_OBJECT: Final[dict[str, Any]] = {
    "type": "extension-definition",
    "spec_version": "2.1",
    "id": ENRICHMENT_EXTENSION_ID,
    "created": "2026-01-01T00:00:00.000Z",
    "modified": "2026-01-01T00:00:00.000Z",
    "created_by_ref": TIOPS_IDENTITY_ID,
    "name": "tiops enrichment",
    "description": "GeoLocation, ASN and WHOIS (RDAP) results for the IP addresses, domains and URL hosts an "
    "object names, from the enrichment lock of the repository. Properties: enrichment (list of {value, country, "
    "country_code, region, city, asn, as_organization}) and whois (list of {value, registrar, registered, "
    "expires, updated, rdap_status, registrant_organization, registrant_country, abuse_email, network_name, "
    "handle, network, country_code, queried, age_days}).",
    "schema": "https://json-schema.org/draft/2020-12/schema#tiops-enrichment",
    "version": "1.0.0",
    "extension_types": ["property-extension"],
}


def is_address_key(value: str) -> bool:
    """Whether a (canonical) lock key is an IP address or CIDR block rather than a domain name."""
    return ":" in value or "/" in value or value.replace(".", "").isdigit()


def enrichment_of(data: dict[str, Any]) -> dict[str, Any] | None:
    """The enrichment extension of an object's data, if it has one."""
    extension = (data.get("extensions") or {}).get(ENRICHMENT_EXTENSION_ID)
    return extension if isinstance(extension, dict) else None


def moment_of(text: Any) -> datetime | None:
    """The moment of a UTC timestamp ending in "Z" (None for anything else)."""
    # Timestamps here are validated STIX ones (section 3.2) or written by tiops enrich;
    # fromisoformat reads both ("Z" included) without a regular expression first.
    if text.__class__ is not str or not text.endswith("Z"):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def past_microseconds(text: str) -> str:
    """The digits of a timestamp's fraction of a second past the sixth (trailing zeros dropped), which
    :func:`moment_of` leaves out: datetime stops at microseconds, RFC 3339 and STIX (section 3.2) do not.
    ``text`` is one :func:`moment_of` reads (YYYY-MM-DDTHH:MM:SS[.fraction]Z)."""
    return text[26:-1].rstrip("0") if len(text) > 27 and text[19] == "." else ""


def later_within_a_microsecond(first: str, second: str) -> bool:
    """Whether the digits past the microsecond ``first`` (:func:`past_microseconds`) make a later
    instant than ``second``, within the same microsecond."""
    width = max(len(first), len(second))
    return first.ljust(width, "0") > second.ljust(width, "0")


def days_between(start: datetime, start_text: str, registered: datetime, registered_text: str) -> int:
    """Whole days from ``registered`` to ``start`` (floored, as ``timedelta.days`` floors), exact
    whatever the two timestamps' precision: when the microseconds make a whole number of days,
    the digits past them decide whether the exact span falls just short of it."""
    delta = start - registered
    days = delta.days
    if delta.seconds == 0 and delta.microseconds == 0 and later_within_a_microsecond(
            past_microseconds(registered_text), past_microseconds(start_text)):
        days -= 1
    return days


GEO_FIELDS: Final = frozenset(_BUNDLE_FIELDS["geo"])
WHOIS_FIELDS: Final = frozenset(_BUNDLE_FIELDS["whois"])


# The values an object names that have a result to carry, in the object's order
# (tiops.enrich.values.object_enrich_values), each with its found GeoLocation and RDAP
# results (None: none found): what :meth:`LockedEnrichment.extension` builds from. The
# results are lock entries, or their serialised bundle forms (tiops.enrich.beside).
EnrichmentPlan = tuple[tuple[str, Any, Any], ...]


class BundleEnrichment(Protocol):
    """What the bundle needs of locked enrichment it adds as it writes each object (tiops.compile)."""

    def plans(self, objects: list[IntelObject]) -> list[EnrichmentPlan | None]:
        """For each object, the values :meth:`extension` builds it from (None: no extension)."""

    def extension(self, data: dict[str, Any], plan: EnrichmentPlan) -> Any:
        """The enrichment extension of the object ``data``, as the bundle serialises it."""


def bundle_form(value: str, entry: dict[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    """``{"value": value}`` and the fields of ``entry`` the bundle carries, in the entry's order."""
    if "value" in entry:  # not a lock tiops writes; "value" is the looked-up value, not the entry's
        return {"value": value, **{k: v for k, v in entry.items() if k in fields}}
    item = {"value": value, **entry}
    # The keys to leave out, usually just status and retrieval time: a set difference and a
    # deletion or two cost less than a comprehension over every key.
    for key in entry.keys() - fields:
        del item[key]
    return item


_UNSET: Final[Any] = object()
_IP_TYPES: Final = frozenset({"ipv4-addr", "ipv6-addr"})
# SCO types whose own value is one to enrich (a url names its host: the full reader).
_VALUE_TYPES: Final = frozenset({"ipv4-addr", "ipv6-addr", "domain-name"})


def attach_enrichment(objects: list[IntelObject], lock: EnrichmentLock) -> list[IntelObject]:
    """``objects`` with the locked results of the values each names; the others unchanged.

    Objects are copied on write (the loaded repository stays as authored). The lock's
    values are canonical (tiops.enrich.lock checks it), so a value an object names exactly
    as the lock has it needs no canonicalising (tiops.enrich.values).
    """
    if not len(lock):
        return objects
    with paused_gc():  # tens of thousands of new dicts, no cycles: a collection would only rescan the repository
        result: list[IntelObject] = []
        append = result.append
        for obj, extension in zip(objects, LockedEnrichment(lock).extensions(objects), strict=True):
            if extension is None:
                append(obj)
                continue
            data = obj.data
            existing = data.get("extensions")
            extensions = {**existing, ENRICHMENT_EXTENSION_ID: extension} if existing else {
                ENRICHMENT_EXTENSION_ID: extension}
            append(obj.with_data({**data, "extensions": extensions}))
        return result


def without_enrichment(obj: IntelObject) -> IntelObject:
    """``obj`` without the enrichment extension :func:`attach_enrichment` gave it (itself when it has none)."""
    extensions = obj.data.get("extensions")
    if not isinstance(extensions, dict) or ENRICHMENT_EXTENSION_ID not in extensions:
        return obj
    data = dict(obj.data)
    kept = {name: value for name, value in extensions.items() if name != ENRICHMENT_EXTENSION_ID}
    if kept:
        data["extensions"] = kept
    else:
        del data["extensions"]
    return obj.with_data(data)


# What attaching reads of an object: the values it names (an indicator's pattern, an SCO's
# value), the moment whois age_days counts from, and the extensions it adds to.
ATTACH_READS: Final = frozenset({"type", "pattern", "pattern_type", "value", "valid_from", "created", "extensions"})


class LockedEnrichment:
    """The enrichment extension of each object, computed without copying any object.

    For a build whose ingestion rules neither read enrichment fields nor change what
    attaching reads (:data:`ATTACH_READS`), the bundle adds these extensions as it copies
    each object for its source extension (tiops.compile), which spares a copy of every
    enriched object: the bundle bytes are those of attaching first.

    In two steps, so the bundle can build each extension just before it serialises the
    object: :meth:`plans` finds, for every object, the values with a result to carry (a
    dictionary look-up or two per object, so the bundle knows up front whether it needs
    the extension's definition), and :meth:`extension` builds one object's extension.
    Built as they are written, the extensions of a 100k-object bundle are never all held
    at once: their memory is reused object after object instead of growing by ~80 MB of
    fresh pages, which cost a compile more than building them (docs/performance.md,
    "Enrichment lock: extensions built as the bundle is written"). Nothing is kept per
    value: nearly every value is named by one object.
    """

    def __init__(self, lock: EnrichmentLock) -> None:
        self._geo = lock.geo
        self._whois = lock.whois
        self._known = LockKeys(lock.geo, lock.whois)

    def extensions(self, objects: list[IntelObject]) -> list[dict[str, Any] | None]:
        """The enrichment extension of each object (None: nothing locked for its values)."""
        extension = self.extension
        with paused_gc():
            return [None if plan is None else extension(obj.data, plan)
                    for obj, plan in zip(objects, self.plans(objects), strict=True)]

    def plans(self, objects: list[IntelObject]) -> list[EnrichmentPlan | None]:
        """For each object, the values :meth:`extension` builds it from (None: no extension)."""
        with paused_gc():
            return find_plans(objects, self._known, self._geo, self._whois)

    def extension(self, data: dict[str, Any], plan: EnrichmentPlan) -> dict[str, Any]:
        """The enrichment extension of the object ``data`` (``plan``: from :meth:`plans`)."""
        geo: list[dict[str, Any]] = []
        whois: list[dict[str, Any]] = []
        start: Any = _UNSET
        start_text: Any = None
        for value, geo_entry, whois_entry in plan:
            if geo_entry is not None:
                geo.append(bundle_form(value, geo_entry, GEO_FIELDS))
            if whois_entry is None:
                continue
            item = bundle_form(value, whois_entry, WHOIS_FIELDS)
            # A domain's age only: an IP network's RDAP registration is the block's allocation, and
            # "registered less than 30 days before valid_from" is a test of names (docs/enrich.md).
            registered = None if is_address_key(value) else moment_of(whois_entry.get("registered"))
            if registered is not None:
                # Days from registration to the indicator's valid_from (or the object's created):
                # "registered less than 30 days before valid_from" is a test of one number.
                if start is _UNSET:
                    start_text = data["valid_from"] if "valid_from" in data else data.get("created")
                    start = moment_of(start_text)
                if start is not None:
                    item["age_days"] = days_between(start, start_text, registered, whois_entry["registered"])
            whois.append(item)
        extension: dict[str, Any] = {"extension_type": "property-extension"}
        if geo:
            extension["enrichment"] = geo
        if whois:
            extension["whois"] = whois
        return extension


class LockKeys:
    """Whether the lock has a value, without a set of its keys: the one-value shapes look their
    value up in the sections directly, so only the other shapes ask this (a set of 84k keys
    cost a build 4 MB of fresh memory)."""

    __slots__ = ("_geo", "_whois")

    def __init__(self, geo: Mapping[str, Any], whois: Mapping[str, Any]) -> None:
        self._geo, self._whois = geo, whois

    def __contains__(self, value: object) -> bool:
        return value in self._whois or value in self._geo


def find_plans(objects: list[IntelObject], known: Container[str], geo: Mapping[str, Any],
               whois: Mapping[str, Any], *, forms: bool = False) -> list[EnrichmentPlan | None]:
    """:meth:`LockedEnrichment.plans`. ``forms``: ``geo`` and ``whois`` hold each found result in
    another form (tiops.enrich.beside) and an empty value for each value without one, so what
    was found is told by truth rather than by a status."""
    result: list[EnrichmentPlan | None] = []
    append = result.append
    simple_pattern = SIMPLE_VALUE_PATTERN.fullmatch  # one IP, domain or URL; other shapes take the full reader
    url_host = PLAIN_URL_HOST.match
    canonical_ipv4 = CANONICAL_IPV4
    plain_canonical = PLAIN_CANONICAL
    kind: Kind
    for obj in objects:
        data = obj.data
        stix_type = data.get("type")
        # One value written as the lock writes it, as nearly every indicator and SCO names: what
        # object_enrich_values returns for it, without its calls (it reads every other shape).
        # kind: "ip" for an address or network, which takes a GeoLocation result (values._value_of).
        if stix_type == "indicator":
            pattern = data.get("pattern")
            if pattern.__class__ is not str:
                append(None)
                continue
            simple = simple_pattern(pattern)
            if simple is None:
                if ("ipv4-addr" not in pattern and "ipv6-addr" not in pattern and "domain-name" not in pattern
                        and "url:" not in pattern and "network-traffic:" not in pattern):
                    # names nothing to enrich (values._ENRICHED_TYPES)
                    append(None)
                    continue
                value = None
            elif data.get("pattern_type", "stix") != "stix":
                value = None
            elif (object_type := simple[1]) != "url":
                value, kind = simple[2], "domain" if object_type == "domain-name" else "ip"
                if kind == "domain" and (value[-1:].isdigit() or ":" in value):
                    value = None  # an address where a name goes (values._value_of): the full reader
            elif (host := url_host(simple[2])) is not None:
                # values._url_host: a dotted-decimal host is an address, and a host that ends in a
                # number is one in another form (0x08080808, 8.8.2056), left to the full reader.
                value = host[1].lower()
                if canonical_ipv4(value) is not None:
                    kind = "ip"
                elif ends_in_a_number(value):
                    value = None
                else:
                    kind = "domain"
            else:
                value = None
        elif stix_type in _VALUE_TYPES and (value := data.get("value")).__class__ is str:
            kind = "domain" if stix_type == "domain-name" else "ip"
            if kind == "domain" and (value[-1:].isdigit() or ":" in value):
                value = None  # an address where a name goes (values._value_of): the full reader
        elif stix_type in _ENRICHED_OBJECT_TYPES:
            value = None
        else:
            append(None)
            continue
        if value is not None:
            # A value the lock has as it stands (its keys are canonical) needs no canonicalising;
            # one it does not have may be written otherwise (Example.COM): the full reader then.
            whois_entry = whois.get(value)
            geo_entry = geo.get(value) if kind == "ip" else None
            if whois_entry is not None or geo_entry is not None:
                # Only found results travel: an extension only where one was found.
                if forms:
                    whois_entry = whois_entry or None
                    geo_entry = geo_entry or None
                else:
                    if whois_entry is not None and whois_entry.get("status") != "found":
                        whois_entry = None
                    if geo_entry is not None and geo_entry.get("status") != "found":
                        geo_entry = None
                append(None if whois_entry is None and geo_entry is None else ((value, geo_entry, whois_entry),))
                continue
            if plain_canonical(value) is not None:
                # Written as the lock would write it and not in the lock: nothing to carry. Without
                # this, every value the lock lacks (a private address, one never enriched) took
                # the full reader, about six times the cost of a value the lock has.
                append(None)
                continue
        found = []
        for kind, value in object_enrich_values(data, known):
            if forms:
                geo_entry = (geo.get(value) or None) if kind == "ip" else None
                whois_entry = whois.get(value) or None
            else:
                geo_entry = _found(geo, value) if kind == "ip" else None
                whois_entry = _found(whois, value)
            if geo_entry is not None or whois_entry is not None:
                found.append((value, geo_entry, whois_entry))
        append(tuple(found) if found else None)
    return result


def _found(section: Mapping[str, dict[str, Any]], value: str) -> dict[str, Any] | None:
    """The lock entry of ``value`` if it is a found result (only those travel)."""
    entry = section.get(value)
    return entry if entry is not None and entry.get("status") == "found" else None


def repository_enrichment(intel_path: Path, root: Path, source: FileSource | None = None) -> LockedEnrichment | None:
    """The locked enrichment of the repository's lock as the bundle adds it with no rule reading it (None: no lock)."""
    lock = read_lock_for_build(intel_path, root, source)[0]
    return LockedEnrichment(lock) if len(lock) else None
