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

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

# The field vocabulary lives in a low module (queries read it without this one); kept importable here.
from tiops.enrich.fields import BUNDLE_FIELDS as _BUNDLE_FIELDS
from tiops.enrich.fields import (
    ENRICHMENT_EXTENSION_ID,
    ENRICHMENT_FIELDS,
    ENRICHMENT_SUBFIELDS,
    field_path,
)
from tiops.enrich.lock import EnrichmentLock
from tiops.enrich.values import ENRICHED_OBJECT_TYPES as _ENRICHED_OBJECT_TYPES
from tiops.enrich.values import PLAIN_URL_HOST, SIMPLE_VALUE_PATTERN, object_enrich_values
from tiops.load import IntelObject
from tiops.memory import paused_gc
from tiops.stix import TIOPS_IDENTITY_ID

__all__ = [
    "ENRICHMENT_EXTENSION_ID",
    "ENRICHMENT_EXTENSION_OBJECT",
    "ENRICHMENT_FIELDS",
    "ENRICHMENT_SUBFIELDS",
    "LockedEnrichment",
    "attach_enrichment",
    "enrichment_of",
    "field_path",
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


def enrichment_of(data: dict[str, Any]) -> dict[str, Any] | None:
    """The enrichment extension of an object's data, if it has one."""
    extension = (data.get("extensions") or {}).get(ENRICHMENT_EXTENSION_ID)
    return extension if isinstance(extension, dict) else None


def _moment(text: Any) -> datetime | None:
    # Timestamps here are validated STIX ones (section 3.2) or written by tiops enrich;
    # fromisoformat reads both ("Z" included) without a regular expression first.
    if text.__class__ is not str or not text.endswith("Z"):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


_GEO_FIELDS: Final = frozenset(_BUNDLE_FIELDS["geo"])
_WHOIS_FIELDS: Final = frozenset(_BUNDLE_FIELDS["whois"])


class _BundleEntries:
    """The bundle form of each locked result, built once per value however many objects name it.

    Compile attaches every result of a lock, so this is the cost a lock adds to a build
    (docs/enrich.md, Speed): each value's bundle form is made once, from the lock entry's
    own keys, and an object's extension is assembled from those shared dictionaries.
    """

    def __init__(self, lock: EnrichmentLock) -> None:
        self.lock = lock
        self.geo: dict[str, dict[str, Any] | None] = {}
        self.whois: dict[str, tuple[dict[str, Any], datetime | None] | None] = {}
        self.moments: dict[str, datetime | None] = {}

    def geo_entry(self, value: str) -> dict[str, Any] | None:
        entry = self.lock.geo.get(value)
        found = None if entry is None or entry.get("status") != "found" else _bundle_form(value, entry, _GEO_FIELDS)
        self.geo[value] = found
        return found

    def whois_entry(self, value: str) -> tuple[dict[str, Any], datetime | None] | None:
        entry = self.lock.whois.get(value)
        found = None if entry is None or entry.get("status") != "found" else (
            _bundle_form(value, entry, _WHOIS_FIELDS), _moment(entry.get("registered")))
        self.whois[value] = found
        return found

    def extension(self, data: dict[str, Any], values: Iterable[tuple[str, str]]) -> dict[str, Any] | None:
        geo: list[dict[str, Any]] = []
        whois: list[dict[str, Any]] = []
        geo_cache, whois_cache = self.geo, self.whois
        start: Any = _UNSET
        for kind, value in values:
            if kind == "ip":
                found = geo_cache.get(value, _UNSET)
                if found is _UNSET:
                    found = self.geo_entry(value)
                if found is not None:
                    geo.append(found)
            registration = whois_cache.get(value, _UNSET)
            if registration is _UNSET:
                registration = self.whois_entry(value)
            if registration is None:
                continue
            item, registered = registration
            if registered is not None:
                # Days from registration to the indicator's valid_from (or the object's created):
                # "registered less than 30 days before valid_from" is a test of one number.
                if start is _UNSET:
                    start = self.moment(data["valid_from"] if "valid_from" in data else data.get("created"))
                if start is not None:
                    item = {**item, "age_days": (start - registered).days}
            whois.append(item)
        if not geo and not whois:
            return None
        extension: dict[str, Any] = {"extension_type": "property-extension"}
        if geo:
            extension["enrichment"] = geo
        if whois:
            extension["whois"] = whois
        return extension

    def one_value(self, data: dict[str, Any], kind: str, value: str) -> dict[str, Any] | None:
        """:meth:`extension` for one value, the usual case, without its lists and loop."""
        geo = None
        if kind == "ip":
            geo = self.geo.get(value, _UNSET)
            if geo is _UNSET:
                geo = self.geo_entry(value)
        registration = self.whois.get(value, _UNSET)
        if registration is _UNSET:
            registration = self.whois_entry(value)
        if registration is None:
            return None if geo is None else {"extension_type": "property-extension", "enrichment": [geo]}
        item, registered = registration
        if registered is not None:
            start = self.moment(data["valid_from"] if "valid_from" in data else data.get("created"))
            if start is not None:
                item = {**item, "age_days": (start - registered).days}
        if geo is None:
            return {"extension_type": "property-extension", "whois": [item]}
        return {"extension_type": "property-extension", "enrichment": [geo], "whois": [item]}

    def moment(self, text: Any) -> datetime | None:
        """:func:`_moment`, remembered: objects of one feed share their valid_from often."""
        if text.__class__ is not str:
            return None
        found = self.moments.get(text, _UNSET)
        if found is _UNSET:
            found = self.moments[text] = _moment(text)
        return found  # type: ignore[no-any-return]


def _bundle_form(value: str, entry: dict[str, Any], fields: frozenset[str]) -> dict[str, Any]:
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


# What attaching reads of an object: the values it names (an indicator's pattern, an SCO's
# value), the moment whois age_days counts from, and the extensions it adds to.
ATTACH_READS: Final = frozenset({"type", "pattern", "pattern_type", "value", "valid_from", "created", "extensions"})


class LockedEnrichment:
    """The enrichment extension of each object, computed without copying any object.

    For a build whose ingestion rules neither read enrichment fields nor change what
    attaching reads (:data:`ATTACH_READS`), the bundle adds these extensions as it copies
    each object for its source extension (tiops.compile), which spares a copy of every
    enriched object: the bundle bytes are those of attaching first.
    """

    def __init__(self, lock: EnrichmentLock) -> None:
        self._entries = _BundleEntries(lock)
        self._known = lock.geo.keys() | lock.whois.keys()

    def extensions(self, objects: list[IntelObject]) -> list[dict[str, Any] | None]:
        """The enrichment extension of each object (None: nothing locked for its values)."""
        with paused_gc():
            return _extensions(objects, self._entries, self._known)


def _extensions(objects: list[IntelObject], entries: _BundleEntries, known: set[str]) -> list[dict[str, Any] | None]:
    result: list[dict[str, Any] | None] = []
    append = result.append
    extension_of = entries.extension
    geo_forms, whois_forms, moments = entries.geo, entries.whois, entries.moments
    geo_entry, whois_entry = entries.geo_entry, entries.whois_entry
    simple_pattern = SIMPLE_VALUE_PATTERN.fullmatch  # one IP, domain or URL; other shapes take the full reader
    url_host = PLAIN_URL_HOST.match
    unset = _UNSET
    for obj in objects:
        data = obj.data
        stix_type = data.get("type")
        # One value written as the lock writes it, as nearly every indicator and SCO names: what
        # object_enrich_values returns for it, without its calls (it reads every other shape).
        # is_ip: whether the value takes a GeoLocation result (tiops.enrich.values._value_of).
        if stix_type == "indicator":
            pattern = data.get("pattern")
            if pattern.__class__ is not str:
                append(None)
                continue
            simple = simple_pattern(pattern)
            if simple is None:
                if ("ipv4-addr" not in pattern and "ipv6-addr" not in pattern and "domain-name" not in pattern
                        and "url:" not in pattern):  # names nothing to enrich (values._ENRICHED_TYPES)
                    append(None)
                    continue
                value = None
            elif data.get("pattern_type", "stix") != "stix":
                value = None
            elif (value := simple[2]) in known and (object_type := simple[1]) != "url":
                is_ip = object_type != "domain-name"
            elif simple[1] == "url" and (host := url_host(value)) is not None and (value := host[1].lower()) in known:
                # values._url_host: a host of digits and dots is an address, any other a name
                is_ip = value.replace(".", "").isdigit()
            else:
                value = None
        elif stix_type in _VALUE_TYPES and (value := data.get("value")).__class__ is str and value in known:
            is_ip = stix_type != "domain-name"
        elif stix_type in _ENRICHED_OBJECT_TYPES:
            value = None
        else:
            append(None)
            continue
        if value is None:
            values = object_enrich_values(data, known)
            append(extension_of(data, values) if values else None)
            continue
        # BundleEntries.extension for one value, without its lists and loop.
        geo = None
        if is_ip:
            geo = geo_forms.get(value, unset)
            if geo is unset:
                geo = geo_entry(value)
        registration = whois_forms.get(value, unset)
        if registration is unset:
            registration = whois_entry(value)
        if registration is None:
            append(None if geo is None else {"extension_type": "property-extension", "enrichment": [geo]})
            continue
        item, registered = registration
        if registered is not None:
            # Days from registration to the indicator's valid_from (or the object's created).
            text = data["valid_from"] if "valid_from" in data else data.get("created")
            start = moments.get(text, unset) if text.__class__ is str else None
            if start is unset:
                start = moments[text] = _moment(text)
            if start is not None:
                item = {**item, "age_days": (start - registered).days}
        if geo is None:
            append({"extension_type": "property-extension", "whois": [item]})
        else:
            append({"extension_type": "property-extension", "enrichment": [geo], "whois": [item]})
    return result
