from __future__ import annotations

import pytest

from tiops.stix import derive_relationship_id, derive_sco_id, derive_sdo_id, timestamp_key


@pytest.mark.parametrize("text", ["2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:00:00", "2024-1-01T00:00:00Z"])
def test_timestamp_key_rejects_unreal_or_malformed_times(text: str) -> None:
    assert timestamp_key(text) is None


def test_timestamp_key_orders_any_precision_exactly() -> None:
    ordered = [
        "2024-01-01T10:00:00Z",
        "2024-01-01T10:00:00.000001Z",
        "2024-01-01T10:00:00.1Z",
        "2024-01-01T10:00:00.11Z",
        "2024-01-01T10:00:00.9999999999Z",
        "2024-01-01T10:00:01.000Z",
        "2024-02-29T23:59:60.5Z",  # a leap second (RFC 3339) sorts after :59
    ]
    keys = [timestamp_key(text) for text in ordered]
    assert all(key is not None for key in keys)
    assert keys == sorted(keys)  # type: ignore[type-var]
    assert timestamp_key("2024-01-01T10:00:00.100Z") == timestamp_key("2024-01-01T10:00:00.1Z")


def test_sco_ids_are_the_ones_every_stix_tool_computes() -> None:
    import stix2

    # STIX 2.1 section 2.9: UUIDv5 of the id-contributing properties in the STIX namespace.
    assert derive_sco_id({"type": "ipv4-addr", "value": "198.51.100.3"}) == stix2.IPv4Address(value="198.51.100.3").id
    assert derive_sco_id({"type": "domain-name", "value": "example.net"}) == stix2.DomainName(value="example.net").id
    # No contributing properties: hashed whole rather than a random UUIDv4, so builds repeat.
    process = {"type": "process", "pid": 42}
    assert derive_sco_id(process) == derive_sco_id(dict(process))
    # ...and stamped as version 4, the form section 2.9 asks for without such properties.
    assert derive_sco_id(process)[len("process--") :][14] == "4"
    assert derive_sco_id({"type": "process", "pid": 43}) != derive_sco_id(process)


def test_derived_ids_depend_only_on_identifying_properties() -> None:
    first = derive_sdo_id("malware", {"name": "Lantern", "description": "a"})
    second = derive_sdo_id("malware", {"name": "Lantern", "description": "b"})
    assert first == second and first is not None and first.startswith("malware--")
    assert derive_sdo_id("malware", {"description": "no name"}) is None
    assert derive_relationship_id("a--1", "uses", "b--2") != derive_relationship_id("b--2", "uses", "a--1")
