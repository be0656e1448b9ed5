"""attach_enrichment reads the common one-value shapes without the pattern lexer: same values as the full reading."""

from __future__ import annotations

from typing import Any

from tiops.enrich.attach import attach_enrichment, enrichment_of
from tiops.enrich.lock import EnrichmentLock
from tiops.enrich.values import object_enrich_values
from tiops.load import IntelObject

GEO = {"status": "found", "country": "Exampleland", "country_code": "EX", "asn": 64500, "as_organization": "EXAMPLE"}
WHOIS = {"status": "found", "retrieved": "2026-01-01T00:00:00Z", "registrar": "Example Registrar",
         "registered": "2025-12-01T00:00:00Z"}


def _object(number: int, **data: Any) -> IntelObject:
    return IntelObject({"id": f"x--{number}", "created": "2026-01-01T00:00:00.000Z", **data}, "intel/x.yaml", 1, [])


def test_every_shape_gets_the_values_the_full_reading_finds() -> None:
    lock = EnrichmentLock()
    for ip in ("198.51.100.7", "2001:db8::1", "203.0.113.0/24"):
        lock.geo[ip] = dict(GEO)
        lock.whois[ip] = dict(WHOIS)
    for name in ("example.com", "198.51.100.8"):
        lock.whois[name] = dict(WHOIS)
    lock.geo["198.51.100.8"] = dict(GEO)
    objects = [
        _object(1, type="indicator", pattern="[ipv4-addr:value = '198.51.100.7']", pattern_type="stix"),
        _object(2, type="indicator", pattern="[ipv6-addr:value = '2001:DB8::1']", pattern_type="stix"),
        _object(3, type="indicator", pattern="[ipv4-addr:value = '203.0.113.9/24']", pattern_type="stix"),
        _object(4, type="indicator", pattern="[domain-name:value = 'example.com']", pattern_type="sigma"),
        _object(5, type="indicator", pattern="[url:value = 'https://example.com/a'] OR [ipv4-addr:value = '198.51.100.7']",
                pattern_type="stix"),
        _object(6, type="ipv4-addr", value="198.51.100.7"),
        _object(7, type="domain-name", value="198.51.100.8"),  # an address where a name goes: the address
        _object(8, type="domain-name", value="Example.COM."),
        _object(9, type="url", value="http://198.51.100.7/x"),
        _object(10, type="indicator", pattern="[domain-name:value = 'example.com']", pattern_type="stix",
                valid_from="2025-12-11T00:00:00Z"),
        # 198.51.100.7 in the other forms a browser reads a URL's host in (WHATWG URL, IPv4 parser):
        # the shortcut's host is not the value, so the full reading must be taken.
        *(_object(11 + number, type="indicator", pattern=f"[url:value = 'http://{host}/x']", pattern_type="stix")
          for number, host in enumerate(["0xc6336407", "3325256711", "198.51.25607", "0306.51.100.7",
                                         "198.51.100.07", "198.51.100.7."])),
        _object(17, type="indicator", pattern="[url:value = 'http://198.51.100.09/x']", pattern_type="stix"),
        _object(18, type="indicator", pattern="[domain-name:value = '198.51.100.7']", pattern_type="stix"),
        _object(19, type="domain-name", value="2001:db8::1"),
        _object(20, type="domain-name", value="example.123"),
    ]
    attached = attach_enrichment(objects, lock)
    for before, after in zip(objects, attached, strict=True):
        expected = object_enrich_values(before.data)
        extension = enrichment_of(after.data) or {}
        whois = [item["value"] for item in extension.get("whois", [])]
        geo = [item["value"] for item in extension.get("enrichment", [])]
        assert whois == [value for _, value in expected], before.id
        assert geo == [value for kind, value in expected if kind == "ip"], before.id
        assert "extensions" not in before.data  # the loaded objects stay as authored
    assert enrichment_of(attached[6].data)["whois"] == [  # type: ignore[index]
        {"value": "198.51.100.8", "registrar": "Example Registrar", "registered": "2025-12-01T00:00:00Z"}]  # a network: no age
    assert [item["value"] for item in enrichment_of(attached[6].data)["enrichment"]] == ["198.51.100.8"]  # type: ignore[index]
    assert enrichment_of(attached[9].data)["whois"][0]["age_days"] == 10  # type: ignore[index]
    for obj in attached[10:16]:
        assert [item["value"] for item in enrichment_of(obj.data)["enrichment"]] == ["198.51.100.7"], obj.id  # type: ignore[index]
    assert enrichment_of(attached[16].data) is None  # "09" is no octal number: no host, nothing attached
    # An address where a name goes is the address (the same lock entry as the address itself);
    # "example.123" names nothing (no top-level domain is all digits).
    assert [item["value"] for item in enrichment_of(attached[17].data)["enrichment"]] == ["198.51.100.7"]  # type: ignore[index]
    assert [item["value"] for item in enrichment_of(attached[18].data)["enrichment"]] == ["2001:db8::1"]  # type: ignore[index]
    assert enrichment_of(attached[19].data) is None


def _reference_extension(data: dict[str, Any], lock: EnrichmentLock) -> dict[str, Any] | None:
    """The extension as docs/enrich.md describes it, from the full reading of the object's values."""
    from datetime import datetime

    from tiops.enrich.fields import BUNDLE_FIELDS

    geo, whois = [], []
    for kind, value in object_enrich_values(data):
        entry = lock.geo.get(value)
        if kind == "ip" and entry is not None and entry["status"] == "found":
            geo.append({"value": value, **{k: v for k, v in entry.items() if k in BUNDLE_FIELDS["geo"]}})
        entry = lock.whois.get(value)
        if entry is not None and entry["status"] == "found":
            item = {"value": value, **{k: v for k, v in entry.items() if k in BUNDLE_FIELDS["whois"]}}
            if "registered" in entry and kind == "domain":  # a domain's age; a network has none
                start = datetime.fromisoformat(data.get("valid_from") or data["created"])
                item["age_days"] = (start - datetime.fromisoformat(entry["registered"])).days
            whois.append(item)
    if not geo and not whois:
        return None
    return {"extension_type": "property-extension", **({"enrichment": geo} if geo else {}),
            **({"whois": whois} if whois else {})}


def test_extensions_planned_first_and_built_later_are_those_of_the_full_reading() -> None:
    from tiops.enrich.attach import LockedEnrichment

    lock = EnrichmentLock()
    lock.geo.update({"198.51.100.7": dict(GEO), "198.51.100.9": {"status": "private"},
                     "203.0.113.0/24": dict(GEO), "2001:db8::1": {"status": "not-found"}})
    lock.whois.update({"198.51.100.7": dict(WHOIS), "198.51.100.9": dict(WHOIS), "example.com": dict(WHOIS),
                       "old.example": {**WHOIS, "registered": "2019-01-01T00:00:00Z", "server": "https://rdap.example/"},
                       "gone.example": {"status": "not-found", "retrieved": "2026-01-01T00:00:00Z"},
                       "2001:db8::1": {"status": "failed", "retrieved": "2026-01-01T00:00:00Z"}})
    shapes = [
        {"type": "indicator", "pattern": "[ipv4-addr:value = '198.51.100.7']"},  # geo and whois
        {"type": "indicator", "pattern": "[ipv4-addr:value = '198.51.100.9']", "valid_from": "2026-02-01T00:00:00Z"},
        {"type": "indicator", "pattern": "[ipv6-addr:value = '2001:db8::1']"},  # nothing found: no extension
        {"type": "indicator", "pattern": "[domain-name:value = 'gone.example']"},
        {"type": "indicator", "pattern": "[domain-name:value = 'old.example']", "pattern_type": "stix"},
        {"type": "indicator", "pattern": "[url:value = 'http://198.51.100.7:8080/a']"},  # an address as URL host
        {"type": "indicator", "pattern": "[url:value = 'https://EXAMPLE.com/x?y']"},
        {"type": "indicator", "pattern": "[url:value = 'https://user@example.com/']"},  # not the plain URL shape
        {"type": "indicator", "pattern": "[ipv4-addr:value = '203.0.113.77/24']"},  # a network, not canonical
        {"type": "indicator", "pattern": "[ipv4-addr:value = '198.51.100.7'] AND [domain-name:value = 'example.com'] "
                                         "AND [domain-name:value = 'gone.example']"},
        {"type": "indicator", "pattern": "[ipv4-addr:value = '198.51.100.7']", "pattern_type": "sigma"},
        {"type": "indicator", "pattern": "[file:name = 'a.exe']"},
        {"type": "indicator", "pattern": 5},
        {"type": "ipv4-addr", "value": "198.51.100.7"},
        {"type": "domain-name", "value": "example.com"},
        {"type": "domain-name", "value": "Example.COM."},
        {"type": "url", "value": "http://example.com/"},
        {"type": "ipv4-addr", "value": 7},
        {"type": "malware", "name": "198.51.100.7"},
        # Values the lock lacks as written: canonical ones have nothing; others are found once canonical.
        {"type": "indicator", "pattern": "[ipv4-addr:value = '192.0.2.200']"},
        {"type": "indicator", "pattern": "[domain-name:value = 'absent.example']"},
        {"type": "indicator", "pattern": "[url:value = 'http://absent.example/x']"},
        {"type": "ipv4-addr", "value": "1.2.3"},
        {"type": "indicator", "pattern": "[domain-name:value = 'Example.com']"},
        {"type": "indicator", "pattern": "[domain-name:value = 'bücher.example']"},
        {"type": "indicator", "pattern": "[url:value = 'http://example.com./a']"},
        {"type": "domain-name", "value": "XN--BCHER-KVA.example"},
        {"type": "indicator", "pattern": "[network-traffic:dst_ref.value = '198.51.100.7']"},  # through a reference
    ]
    lock.whois["xn--bcher-kva.example"] = dict(WHOIS)
    objects = [_object(number, **shape) for number, shape in enumerate(shapes)]
    enrichment = LockedEnrichment(lock)
    plans = enrichment.plans(objects)
    for obj, plan in zip(objects, plans, strict=True):
        expected = _reference_extension(obj.data, lock)
        assert (plan is None) == (expected is None), obj.data
        if plan is not None:
            assert enrichment.extension(obj.data, plan) == expected, obj.data
    assert enrichment.extensions(objects) == [_reference_extension(o.data, lock) for o in objects]
    assert sum(plan is not None for plan in plans) == 17


def test_age_days_counts_whole_days_exactly_past_the_microsecond() -> None:
    # Registered a tenth of a microsecond after midnight, 30 days before valid_from: 29 whole days,
    # 23:59:59.9999999. datetime keeps microseconds only, so the digits past them decide.
    lock = EnrichmentLock()
    registered = {"nano.example": "2025-02-02T00:00:00.0000001Z", "half.example": "2025-02-02T00:00:00.5Z",
                  "whole.example": "2025-02-02T00:00:00Z"}
    for value, moment in registered.items():
        lock.whois[value] = {**WHOIS, "registered": moment}
    starts = {"2025-03-04T00:00:00Z": {"nano.example": 29, "half.example": 29, "whole.example": 30},
              "2025-03-04T00:00:00.00000005Z": {"nano.example": 29, "whole.example": 30},
              "2025-03-04T00:00:00.0000001Z": {"nano.example": 30},
              "2025-03-04T00:00:00.5Z": {"half.example": 30},
              "2025-01-03T00:00:00Z": {"nano.example": -31, "whole.example": -30}}
    objects, expected = [], []
    for start, ages in starts.items():
        for value, age in ages.items():
            objects.append(_object(len(objects), type="indicator", pattern=f"[domain-name:value = '{value}']",
                                   pattern_type="stix", valid_from=start))
            expected.append(age)
    attached = attach_enrichment(objects, lock)
    assert [enrichment_of(obj.data)["whois"][0]["age_days"] for obj in attached] == expected  # type: ignore[index]
