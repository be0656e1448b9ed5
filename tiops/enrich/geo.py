"""Offline GeoLocation and ASN databases: no network, the same answer for the same file.

Two backends, chosen in tiops.yaml (``enrichment.geo``):

* ``shipped`` (the default): the GeoLite2 country + ASN data that the geoip2fast
  package ships in its wheel (IPv4 and IPv6). It names the AS organisation but not
  the AS number, and has no region or city.
* ``mmdb``: a GeoLite2/GeoIP2 ``.mmdb`` file the team supplies (City or Country,
  optionally a separate ASN database), read with MaxMind's maxminddb reader; it
  gives region, city and the AS number too.

Private and reserved ranges (RFC 6890, Python's ``ipaddress.is_global``) are never
looked up: they are reported as ``private``, with no result and no error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from tiops.enrich.values import parse_ip
from tiops.errors import UsageError

__all__ = ["GeoDatabase", "MmdbDatabase", "ShippedDatabase", "geo_entry", "open_geo_database"]


class GeoDatabase(Protocol):
    """An offline database: its identity for the lock, and one lookup."""

    backend: str
    database: str
    date: str

    def lookup(self, address: str) -> dict[str, Any] | None:
        """The fields found for a global address (country, asn...), or None when it lists none."""
        ...


def geo_entry(database: GeoDatabase, value: str) -> dict[str, Any]:
    """The lock entry for an IP value (an address or a CIDR block, looked up by its first address)."""
    network = parse_ip(value)
    if network is None:
        return {"status": "not-found"}
    if not network.network_address.is_global:
        return {"status": "private"}
    fields = database.lookup(str(network.network_address))
    if not fields:
        return {"status": "not-found"}
    return {"status": "found", **fields}


@dataclass
class ShippedDatabase:
    """The country + ASN database shipped in the geoip2fast wheel."""

    backend: str
    database: str
    date: str
    _reader: Any

    @classmethod
    def open(cls) -> ShippedDatabase:
        import geoip2fast  # imported here: loading the data takes most of a second

        path = os.path.join(os.path.dirname(geoip2fast.__file__), "geoip2fast-asn-ipv6.dat.gz")
        reader = geoip2fast.GeoIP2Fast(geoip2fast_data_file=path)
        # source_info reads like MAXMIND:GeoLite2-CountryASN-IPv4IPv6-en-20240618
        source = str(reader.get_database_info().get("source_info", ""))
        name = source.split(":", 1)[-1]
        stem, _, stamp = name.rpartition("-")
        date = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}" if stamp.isdigit() and len(stamp) == 8 else "unknown"
        version = getattr(geoip2fast, "__version__", "")
        return cls("geoip2fast", f"{stem or name} (geoip2fast {version})".replace(" ()", ""), date, reader)

    def lookup(self, address: str) -> dict[str, Any] | None:
        result = self._reader.lookup(address)
        code = result.country_code
        fields: dict[str, Any] = {}
        if isinstance(code, str) and len(code) == 2 and code != "--":
            fields["country_code"] = code
            fields["country"] = result.country_name
        if result.asn_name:
            fields["as_organization"] = result.asn_name
        return fields or None


@dataclass
class MmdbDatabase:
    """A MaxMind DB file (GeoLite2/GeoIP2 City or Country), and optionally an ASN one."""

    backend: str
    database: str
    date: str
    _readers: tuple[Any, ...]

    @classmethod
    def open(cls, paths: list[Path]) -> MmdbDatabase:
        import maxminddb

        readers = []
        for path in paths:
            try:
                readers.append(maxminddb.open_database(str(path)))
            except (OSError, ValueError, maxminddb.InvalidDatabaseError) as error:
                raise UsageError(f"cannot read the GeoIP database {path}: {error}",
                                 hint="enrichment.geo.database in tiops.yaml names a MaxMind .mmdb file.") from None
        metas = [r.metadata() for r in readers]
        database = " + ".join(str(m.database_type) for m in metas)
        date = max(datetime.fromtimestamp(m.build_epoch, UTC).date().isoformat() for m in metas)
        return cls("mmdb", database, date, tuple(readers))

    def lookup(self, address: str) -> dict[str, Any] | None:
        fields: dict[str, Any] = {}
        for reader in self._readers:
            record = reader.get(address)
            if isinstance(record, dict):
                _mmdb_fields(record, fields)
        return fields or None


def _name(node: Any) -> str | None:
    names = node.get("names") if isinstance(node, dict) else None
    value = names.get("en") if isinstance(names, dict) else None
    return value if isinstance(value, str) else None


def _mmdb_fields(record: dict[str, Any], fields: dict[str, Any]) -> None:
    # GeoIP2 record layout: https://dev.maxmind.com/geoip/docs/databases/city-and-country
    country = record.get("country")
    if isinstance(country, dict) and isinstance(country.get("iso_code"), str):
        fields["country_code"] = country["iso_code"]
        if name := _name(country):
            fields["country"] = name
    subdivisions = record.get("subdivisions")
    if isinstance(subdivisions, list) and subdivisions and (region := _name(subdivisions[0])):
        fields["region"] = region
    if city := _name(record.get("city")):
        fields["city"] = city
    number = record.get("autonomous_system_number")
    if isinstance(number, int) and not isinstance(number, bool):
        fields["asn"] = number
    organisation = record.get("autonomous_system_organization")
    if isinstance(organisation, str):
        fields["as_organization"] = organisation


def open_geo_database(root: Path, settings: dict[str, Any]) -> GeoDatabase:
    """The database tiops.yaml's ``enrichment.geo`` names (the shipped one by default)."""
    backend = settings.get("backend", "shipped")
    if backend == "mmdb":
        names = [settings.get("database"), settings.get("asn_database")]
        paths = [root / str(name) for name in names if name]
        if not paths:
            raise UsageError("enrichment.geo.backend is mmdb but no database file is named",
                             hint="Set enrichment.geo.database to a GeoLite2/GeoIP2 .mmdb file.")
        return MmdbDatabase.open(paths)
    return ShippedDatabase.open()


def is_private(value: str) -> bool:
    """Whether an IP value lies in a private or reserved range (RFC 6890)."""
    network = parse_ip(value)
    return network is not None and not network.network_address.is_global


