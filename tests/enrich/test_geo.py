"""The offline GeoLocation/ASN databases: the shipped one and a MaxMind .mmdb."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from pathlib import Path

import maxminddb
import pytest

from enrich.helpers import write_mmdb
from tiops.enrich.geo import MmdbDatabase, ShippedDatabase, geo_entry, open_geo_database
from tiops.errors import UsageError


@pytest.fixture(scope="module")
def shipped() -> ShippedDatabase:
    return ShippedDatabase.open()


def test_shipped_database_knows_well_known_addresses(shipped: ShippedDatabase) -> None:
    google = geo_entry(shipped, "8.8.8.8")
    assert google["status"] == "found"
    assert (google["country_code"], google["country"]) == ("US", "United States")
    # AS15169, number and organisation from one row of the shipped AS table
    assert (google["asn"], google["as_organization"]) == (15169, "Google LLC")
    cloudflare = geo_entry(shipped, "1.1.1.1")
    assert (cloudflare["country_code"], cloudflare["asn"], cloudflare["as_organization"]) == \
        ("AU", 13335, "Cloudflare, Inc.")
    google6 = geo_entry(shipped, "2001:4860:4860::8888")  # IPv6 too
    assert (google6["country_code"], google6["asn"]) == ("US", 15169)
    assert geo_entry(shipped, "8.8.8.0/24")["country_code"] == "US"  # a CIDR block inside one network


def test_a_cidr_block_carries_only_what_holds_for_all_of_it(shipped: ShippedDatabase) -> None:
    # 8.8.0.0/15 is one country network of the data, the AS range is 8.8.8.0/24: the block is all
    # in the US, but not all Google's.
    assert geo_entry(shipped, "8.8.0.0/15") == {"status": "found", "country_code": "US", "country": "United States"}
    assert geo_entry(shipped, "8.8.8.0/24")["asn"] == 15169
    assert "asn" not in geo_entry(shipped, "8.8.8.0/23")
    assert geo_entry(shipped, "2001:4860:4860::/48")["asn"] == 15169
    # A /8 covers networks of many countries and AS: its first address (Cloudflare in AU) speaks for none.
    assert geo_entry(shipped, "1.0.0.0/24")["country_code"] == "AU"
    assert geo_entry(shipped, "1.0.0.0/8") == {"status": "not-found"}
    assert geo_entry(shipped, "0.0.0.0/0") == {"status": "not-found"}
    assert geo_entry(shipped, "::/0") == {"status": "not-found"}
    # Reserved: a block wholly inside one range is private; one reaching into public space is not.
    assert geo_entry(shipped, "10.0.0.0/8") == {"status": "private"}
    assert geo_entry(shipped, "10.128.0.0/9") == {"status": "private"}
    assert geo_entry(shipped, "10.0.0.0/7") == {"status": "not-found"}
    assert geo_entry(shipped, "192.0.0.0/8") == {"status": "not-found"}  # holds 192.168.0.0/16 and public space
    assert geo_entry(shipped, "fc00::/7") == {"status": "private"}


def test_geoip2fast_own_lookup_gives_blocks_the_same_answers(shipped: ShippedDatabase) -> None:
    plain = ShippedDatabase(shipped.backend, shipped.database, shipped.date, shipped._reader, shipped._as_table, None)
    for value in ("8.8.8.0/24", "8.8.0.0/15", "1.0.0.0/8", "2001:4860:4860::/48", "10.0.0.0/7"):
        assert geo_entry(plain, value) == geo_entry(shipped, value), value


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.1", "172.16.5.5", "127.0.0.1", "100.64.0.1",
                                     "192.0.2.1", "198.51.100.7", "203.0.113.45", "169.254.1.1", "::1",
                                     "fe80::1", "2001:db8::1", "fc00::1", "10.0.0.0/8", "0.0.0.0",
                                     "3fff::1", "3fff:fff::/32", "::808:808", "::808:800/120"])
def test_private_and_reserved_ranges_give_no_result_and_no_error(shipped: ShippedDatabase, address: str) -> None:
    assert geo_entry(shipped, address) == {"status": "private"}


def test_database_identity_names_the_data_and_its_date(shipped: ShippedDatabase) -> None:
    assert shipped.backend == "shipped"
    # Both sources, each with its date: a new AS table alone changes the identity.
    country, table = shipped.database.split(" + ")
    assert country.startswith("GeoLite2-Country-IPv4IPv6") and "(geoip2fast 1." in country
    assert table.startswith("ip-location-db asn ") and "RouteViews" in table
    dates = shipped.date.split(" + ")
    assert len(dates) == 2 and all(len(d) == 10 and d[4] == "-" and d[:2] == "20" for d in dates)


@pytest.fixture
def mmdb_files(tmp_path: Path) -> tuple[Path, Path]:
    city, asn = tmp_path / "GeoLite2-City.mmdb", tmp_path / "GeoLite2-ASN.mmdb"
    write_mmdb(city, "GeoLite2-City", {"8.8.8.0/24": {
        "country": {"iso_code": "US", "names": {"en": "United States"}},
        "subdivisions": [{"iso_code": "CA", "names": {"en": "California"}}],
        "city": {"names": {"en": "Mountain View"}}}})
    write_mmdb(asn, "GeoLite2-ASN", {"8.8.8.0/24": {"autonomous_system_number": 15169,
                                                     "autonomous_system_organization": "GOOGLE"}})
    return city, asn


def test_mmdb_backend_reads_a_user_supplied_geolite2_file(tmp_path: Path, mmdb_files: tuple[Path, Path]) -> None:
    database = open_geo_database(tmp_path, {"backend": "mmdb", "database": mmdb_files[0].name,
                                            "asn_database": mmdb_files[1].name})
    assert isinstance(database, MmdbDatabase)
    assert database.database == "GeoLite2-City + GeoLite2-ASN"
    assert database.date == max(
        datetime.fromtimestamp(maxminddb.open_database(str(p)).metadata().build_epoch, UTC).date().isoformat()
        for p in mmdb_files)
    assert geo_entry(database, "8.8.8.8") == {
        "status": "found", "country_code": "US", "country": "United States", "region": "California",
        "city": "Mountain View", "asn": 15169, "as_organization": "GOOGLE"}
    assert geo_entry(database, "9.9.9.9") == {"status": "not-found"}
    assert geo_entry(database, "10.0.0.1") == {"status": "private"}
    # A block inside the file's network gets its record; one wider than it gets none.
    assert geo_entry(database, "8.8.8.128/25") == geo_entry(database, "8.8.8.8")
    assert geo_entry(database, "8.8.0.0/16") == {"status": "not-found"}
    assert geo_entry(database, "8.8.8.0/23") == {"status": "not-found"}  # its first address is in it, the rest not


def test_mmdb_backend_with_a_missing_or_broken_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the GeoIP database"):
        open_geo_database(tmp_path, {"backend": "mmdb", "database": "missing.mmdb"})
    (tmp_path / "broken.mmdb").write_bytes(b"not a database")
    with pytest.raises(UsageError, match="cannot read the GeoIP database"):
        open_geo_database(tmp_path, {"backend": "mmdb", "database": "broken.mmdb"})
    with pytest.raises(UsageError, match="no database file"):
        open_geo_database(tmp_path, {"backend": "mmdb"})


def test_flattened_tables_agree_with_geoip2fast_own_lookup(shipped: ShippedDatabase) -> None:
    import random
    import socket

    rng = random.Random(5)
    addresses = [socket.inet_ntoa(rng.getrandbits(32).to_bytes(4, "big")) for _ in range(3000)]
    addresses += [socket.inet_ntop(socket.AF_INET6, bytes([0x20, rng.randrange(0, 4)]) + rng.randbytes(14))
                  for _ in range(1000)]
    assert shipped._tables is not None
    compared = 0
    for address in addresses:
        entry = geo_entry(shipped, address)
        if entry["status"] == "private":
            continue
        own = shipped._reader.lookup(address)
        expected = {}
        if len(own.country_code) == 2 and own.country_code != "--":
            expected.update(country_code=own.country_code, country=own.country_name)
        # The AS comes from the AS table, whichever way the country was read.
        parsed = ipaddress.ip_address(address)
        expected.update(shipped._as_table.fields(shipped._as_table.find(parsed.version, int(parsed))))
        assert {k: v for k, v in entry.items() if k != "status"} == expected, address
        compared += 1
    assert compared > 3000


def test_many_values_at_once_agree_with_one_at_a_time(shipped: ShippedDatabase) -> None:
    import random
    import socket

    from tiops.enrich.geo import geo_entries

    rng = random.Random(11)
    values = [socket.inet_ntoa(rng.getrandbits(32).to_bytes(4, "big")) for _ in range(5000)]
    values += ["8.8.8.8", "10.1.2.3", "8.8.8.0/24", "2001:4860:4860::8888", "::1", "1.2.3", "999.1.1.1", "fe80::1"]
    at_once = dict(geo_entries(shipped, values))
    assert at_once == {value: geo_entry(shipped, value) for value in values}
    assert {entry["status"] for entry in at_once.values()} == {"found", "private", "not-found"}
    at_once["8.8.8.8"]["country"] = "changed"  # each entry is its own dictionary
    assert dict(geo_entries(shipped, ["8.8.4.4"]))["8.8.4.4"]["country"] == "United States"


def test_a_database_damaged_past_its_header_is_a_clear_error(tmp_path: Path, mmdb_files: tuple[Path, Path]) -> None:
    city = mmdb_files[0]
    data = bytearray(city.read_bytes())
    metadata = maxminddb.open_database(str(city)).metadata()
    # MaxMind DB format 2.0: the search tree, 16 zero bytes, then the data section up to the metadata marker.
    start = metadata.node_count * metadata.record_size // 4 + 16
    end = data.rindex(b"\xab\xcd\xefMaxMind.com")
    data[start:end] = b"\xff" * (end - start)
    city.write_bytes(bytes(data))
    database = open_geo_database(tmp_path, {"backend": "mmdb", "database": city.name})  # the header still reads
    assert geo_entry(database, "1.1.1.1") == {"status": "not-found"}  # an address the tree does not hold reads no data
    with pytest.raises(UsageError, match=r"the GeoIP database .*GeoLite2-City\.mmdb is damaged") as raised:
        geo_entry(database, "8.8.8.8")
    assert raised.value.hint is not None and "Download the .mmdb file again" in raised.value.hint


def test_an_ipv4_only_database_knows_no_ipv6_address_and_is_not_damaged(tmp_path: Path) -> None:
    # A Country file built for IPv4 only (ip_version 4): maxminddb raises for an IPv6 address, which
    # the run read as a damaged file and stopped; the file simply holds no IPv6 network.
    write_mmdb(tmp_path / "v4.mmdb", "GeoLite2-Country", {"8.8.8.0/24": {
        "country": {"iso_code": "US", "names": {"en": "United States"}}}}, ip_version=4)
    write_mmdb(tmp_path / "asn.mmdb", "GeoLite2-ASN", {"2001:4860::/32": {
        "autonomous_system_number": 15169, "autonomous_system_organization": "GOOGLE"}})
    database = open_geo_database(tmp_path, {"backend": "mmdb", "database": "v4.mmdb"})
    assert geo_entry(database, "8.8.8.8")["country_code"] == "US"
    assert geo_entry(database, "2001:4860::8888") == {"status": "not-found"}
    assert geo_entry(database, "2001:4860::/48") == {"status": "not-found"}
    both = open_geo_database(tmp_path, {"backend": "mmdb", "database": "v4.mmdb", "asn_database": "asn.mmdb"})
    assert geo_entry(both, "2001:4860::8888") == {"status": "found", "asn": 15169, "as_organization": "GOOGLE"}


def test_a_geoip2_enterprise_file_gives_the_as_it_keeps_in_its_traits(tmp_path: Path) -> None:
    write_mmdb(tmp_path / "GeoIP2-Enterprise.mmdb", "GeoIP2-Enterprise", {"8.8.8.0/24": {
        "country": {"iso_code": "US", "names": {"en": "United States"}},
        "city": {"names": {"en": "Mountain View"}},
        "traits": {"autonomous_system_number": 15169, "autonomous_system_organization": "GOOGLE",
                   "isp": "Google", "organization": "Google"}}})
    database = open_geo_database(tmp_path, {"backend": "mmdb", "database": "GeoIP2-Enterprise.mmdb"})
    assert geo_entry(database, "8.8.8.8") == {
        "status": "found", "country_code": "US", "country": "United States", "city": "Mountain View",
        "asn": 15169, "as_organization": "GOOGLE"}


def test_the_identity_changes_when_either_file_changes_date(tmp_path: Path) -> None:
    # MaxMind dates the City and ASN files apart: with the newest date alone, an ASN file replaced
    # by a newer one still older than the City file left the identity, and the lock, as they were.
    city = {"8.8.8.0/24": {"country": {"iso_code": "US", "names": {"en": "United States"}}}}
    write_mmdb(tmp_path / "city.mmdb", "GeoLite2-City", city, built=datetime(2024, 6, 18, tzinfo=UTC))
    identities = []
    for day in (1, 11):
        write_mmdb(tmp_path / "asn.mmdb", "GeoLite2-ASN", {"8.8.8.0/24": {"autonomous_system_number": day}},
                    built=datetime(2024, 6, day, tzinfo=UTC))
        database = open_geo_database(tmp_path, {"backend": "mmdb", "database": "city.mmdb",
                                                "asn_database": "asn.mmdb"})
        identities.append((database.database, database.date))
    assert identities == [("GeoLite2-City + GeoLite2-ASN", "2024-06-18 + 2024-06-01"),
                          ("GeoLite2-City + GeoLite2-ASN", "2024-06-18 + 2024-06-11")]
    write_mmdb(tmp_path / "asn.mmdb", "GeoLite2-ASN", {}, built=datetime(2024, 6, 18, 9, tzinfo=UTC))
    same_day = open_geo_database(tmp_path, {"backend": "mmdb", "database": "city.mmdb", "asn_database": "asn.mmdb"})
    assert same_day.date == "2024-06-18"  # one date when both files are of one day, as MaxMind releases them


def test_a_folder_named_as_a_database_is_named_by_its_key(tmp_path: Path, mmdb_files: tuple[Path, Path]) -> None:
    (tmp_path / "GeoLite2-ASN").mkdir()  # an unpacked archive's folder, named instead of the file in it
    with pytest.raises(UsageError, match="GeoLite2-ASN: it is a folder, not a file") as raised:
        open_geo_database(tmp_path, {"backend": "mmdb", "database": mmdb_files[0].name, "asn_database": "GeoLite2-ASN"})
    assert raised.value.hint is not None and raised.value.hint.startswith("enrichment.geo.asn_database in tiops.yaml")


def test_a_file_in_another_layout_than_geoip2_is_refused_by_its_database_type(tmp_path: Path) -> None:
    # IPinfo's files keep the country as a string and the AS as "AS15169"; an Anonymous-IP file holds
    # no location at all. Read as GeoIP2 they gave no field, and every value was locked not-found quietly.
    write_mmdb(tmp_path / "ipinfo_lite.mmdb", "ipinfo ipinfo_lite.mmdb", {"8.8.8.0/24": {
        "country": "United States", "country_code": "US", "continent": "North America", "asn": "AS15169",
        "as_name": "Google LLC", "as_domain": "google.com"}})
    write_mmdb(tmp_path / "anonymous.mmdb", "GeoIP2-Anonymous-IP", {"8.8.8.0/24": {"is_anonymous": True}})
    write_mmdb(tmp_path / "GeoLite2-Country.mmdb", "GeoLite2-Country", {"8.8.8.0/24": {
        "country": {"iso_code": "US", "names": {"en": "United States"}}}})
    with pytest.raises(UsageError, match=r"ipinfo_lite\.mmdb \(database_type 'ipinfo ipinfo_lite\.mmdb'\) is not in "
                                         r"the GeoIP2 layout tiops reads: its records hold as_domain, as_name, asn") as raised:
        open_geo_database(tmp_path, {"backend": "mmdb", "database": "GeoLite2-Country.mmdb",
                                     "asn_database": "ipinfo_lite.mmdb"})
    assert raised.value.hint is not None and raised.value.hint.startswith("enrichment.geo.asn_database in tiops.yaml")
    with pytest.raises(UsageError, match=r"'GeoIP2-Anonymous-IP'\) is not in the GeoIP2 layout .* is_anonymous"):
        open_geo_database(tmp_path, {"backend": "mmdb", "database": "anonymous.mmdb"})
    write_mmdb(tmp_path / "codes.mmdb", "Custom-Country", {"8.8.8.0/24": "US"})  # records that are no map
    with pytest.raises(UsageError, match=r"'Custom-Country'\) is not in the GeoIP2 layout .* hold str values"):
        open_geo_database(tmp_path, {"backend": "mmdb", "database": "codes.mmdb"})


def test_files_in_the_geoip2_layout_from_other_vendors_and_networks_without_a_country_are_read(tmp_path: Path) -> None:
    # DB-IP's lite files are built in the GeoIP2 layout (more keys, more languages); a GeoLite2 network
    # may carry only its continent and registered country, which says nothing tiops reads but is GeoIP2.
    write_mmdb(tmp_path / "dbip-city-lite.mmdb", "DBIP-City-Lite", {
        "1.0.0.0/24": {"continent": {"code": "OC", "names": {"en": "Oceania"}},
                       "registered_country": {"iso_code": "AU", "names": {"en": "Australia"}}},
        "8.8.8.0/24": {"city": {"names": {"en": "Mountain View", "de": "Mountain View"}},
                       "continent": {"code": "NA", "names": {"en": "North America"}},
                       "country": {"iso_code": "US", "is_in_european_union": False,
                                   "names": {"en": "United States", "de": "Vereinigte Staaten"}},
                       "location": {"latitude": 37.4, "longitude": -122.1},
                       "subdivisions": [{"names": {"en": "California"}}]}})
    write_mmdb(tmp_path / "dbip-asn-lite.mmdb", "DBIP-ASN-Lite (compat=GeoLite2-ASN)", {"8.8.8.0/24": {
        "autonomous_system_number": 15169, "autonomous_system_organization": "Google LLC"}})
    database = open_geo_database(tmp_path, {"backend": "mmdb", "database": "dbip-city-lite.mmdb",
                                            "asn_database": "dbip-asn-lite.mmdb"})
    assert database.database == "DBIP-City-Lite + DBIP-ASN-Lite (compat=GeoLite2-ASN)"
    assert geo_entry(database, "8.8.8.8") == {
        "status": "found", "country_code": "US", "country": "United States", "region": "California",
        "city": "Mountain View", "asn": 15169, "as_organization": "Google LLC"}
    assert geo_entry(database, "1.0.0.1") == {"status": "not-found"}  # a registered country is not a location


def test_the_ipv4_tree_of_a_mmdb_file_does_not_answer_for_ipv4_compatible_addresses(
        tmp_path: Path, mmdb_files: tuple[Path, Path], shipped: ShippedDatabase) -> None:
    # A MaxMind DB file keeps its IPv4 networks at ::/96 (MaxMind DB format 2.0): maxminddb answered
    # ::808:808, a deprecated IPv4-compatible address in IETF-reserved space (RFC 4291 section
    # 2.5.5.1), with 8.8.8.8's country, city and AS, where the shipped database found nothing.
    database = open_geo_database(tmp_path, {"backend": "mmdb", "database": mmdb_files[0].name,
                                            "asn_database": mmdb_files[1].name})
    for value in ("::808:808", "::808:800/120"):
        assert geo_entry(database, value) == geo_entry(shipped, value) == {"status": "private"}, value
    assert geo_entry(database, "8.8.8.8")["asn"] == 15169
    assert geo_entry(shipped, "3fff:0:0:1::/64") == {"status": "private"}  # RFC 9637 documentation block
    assert geo_entry(shipped, "3ffe:ffff::/32") != {"status": "private"}  # just below it: public space
