"""The enrichment fields of the condition language: ``enrichment.country``, ``whois.age_days``...

One definition for every place that reads them: ingestion rules
(:mod:`tiops.rules.conditions`, :mod:`tiops.rules.model`), ``tiops query`` and the
report browser (:mod:`tiops.where`, ``static/query.js`` through the report's
catalogue). The results are carried by the STIX 2.1 property-extension (section 7.3)
:data:`ENRICHMENT_EXTENSION_ID` that :mod:`tiops.enrich.attach` puts on objects.

A low module: it imports nothing of tiops but :mod:`tiops.stix`, so a query need not
load the enrichment machinery to name its fields.
"""

from __future__ import annotations

import uuid
from typing import Final

from tiops.stix import TIOPS_NAMESPACE

__all__ = ["BUNDLE_FIELDS", "ENRICHMENT_EXTENSION_ID", "ENRICHMENT_FIELDS", "ENRICHMENT_KINDS",
           "ENRICHMENT_SUBFIELDS", "field_path"]

ENRICHMENT_EXTENSION_ID: Final = f"extension-definition--{uuid.uuid5(TIOPS_NAMESPACE, 'enrichment')}"
# The top-level names ingestion rules and queries read: enrichment.country, whois.registered...
ENRICHMENT_FIELDS: Final = ("enrichment", "whois")
# What the bundle carries of each locked result (tiops.enrich.attach).
BUNDLE_FIELDS: Final = {
    "geo": ("country", "country_code", "region", "city", "asn", "as_organization"),
    "whois": ("registrar", "registered", "expires", "updated", "rdap_status", "registrant_organization",
              "registrant_country", "abuse_email", "network_name", "handle", "network", "country_code", "queried"),
}
# What each top-level field holds, for checking rule files and queries.
ENRICHMENT_SUBFIELDS: Final = {
    "enrichment": frozenset({"value", *BUNDLE_FIELDS["geo"]}),
    "whois": frozenset({"value", "age_days", *BUNDLE_FIELDS["whois"]}),
}
# The value kind of each field that is not free text (tiops.where's kinds): a query
# compares `whois.registered < 2025-01-01` as a moment and refuses `whois.age_days < new`.
# RDAP dates are written as STIX-shaped UTC timestamps by tiops.enrich.rdap.
ENRICHMENT_KINDS: Final = {
    "enrichment": "any", "whois": "any",
    "enrichment.asn": "number", "whois.age_days": "number",
    "whois.registered": "timestamp", "whois.expires": "timestamp", "whois.updated": "timestamp",
}


def field_path(field: str) -> list[str] | None:
    """The data path a field such as ``enrichment.country`` reads, or None for other fields."""
    top, _, rest = field.partition(".")
    if top not in ENRICHMENT_FIELDS:
        return None
    return ["extensions", ENRICHMENT_EXTENSION_ID, top, *(rest.split(".") if rest else [])]
