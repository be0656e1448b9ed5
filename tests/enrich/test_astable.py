"""The AS table: ip-location-db's CSV rows in, one AS per address out, the same bytes each time."""

from __future__ import annotations

import ipaddress
import lzma
import subprocess
import sys
from pathlib import Path

import pytest

from tiops.enrich.astable import MAGIC, SHIPPED_TABLE, AsTable, is_public_asn, read_table_csv
from tiops.errors import UsageError

REPO = Path(__file__).resolve().parents[2]

IPV4_CSV = """\
1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc."
8.8.4.0,8.8.4.255,15169,Google LLC
8.8.8.0,8.8.8.255,15169,Google LLC
8.8.9.0,8.8.9.255,15169,Google LLC
23.0.0.0,23.0.0.255,65002,AS65002
30.0.0.0,30.0.255.255,749,United States Department of Defense (DoD)
30.0.128.0,30.1.0.255,721,DoD Network Information Center
255.255.255.0,255.255.255.255,64999,a private AS at the very end
"""
IPV6_NUM_CSV = """\
{start},{end},15169,Google LLC
{start2},{end2},4294967295,reserved
""".format(start=int(ipaddress.ip_address("2001:4860::")), end=int(ipaddress.ip_address("2001:4860:ffff:ffff:ffff:ffff:ffff:ffff")),
           start2=int(ipaddress.ip_address("2a00::")), end2=int(ipaddress.ip_address("2a00::ffff")))


def find(table: AsTable, address: str, last: str | None = None) -> dict[str, int | str]:
    parsed = ipaddress.ip_address(address)
    return table.fields(table.find(parsed.version, int(parsed), None if last is None else int(ipaddress.ip_address(last))))


@pytest.fixture
def csv_files(tmp_path: Path) -> list[Path]:
    (tmp_path / "asn-ipv4.csv").write_text(IPV4_CSV, encoding="utf-8")
    (tmp_path / "asn-ipv6-num.csv").write_text(IPV6_NUM_CSV, encoding="utf-8")
    return [tmp_path / "asn-ipv4.csv", tmp_path / "asn-ipv6-num.csv"]


def test_csv_rows_become_one_as_per_address(csv_files: list[Path]) -> None:
    table, report = read_table_csv(csv_files, "test table", "2026-06-17")
    assert find(table, "8.8.8.8") == {"asn": 15169, "as_organization": "Google LLC"}
    assert find(table, "1.0.0.0") == find(table, "1.0.0.255") == {"asn": 13335, "as_organization": "Cloudflare, Inc."}
    assert find(table, "1.0.1.0") == {} and find(table, "0.255.255.255") == {}
    assert find(table, "2001:4860:4860::8888") == {"asn": 15169, "as_organization": "Google LLC"}  # the -num file, IPv6
    # Non-public AS numbers (RFC 6996 private use, RFC 7300 reserved) are left out, never answered.
    assert find(table, "23.0.0.1") == {} and find(table, "255.255.255.255") == {} and find(table, "2a00::1") == {}
    assert report.not_public == 3
    # Overlapping ranges: the earlier keeps the shared addresses, the later keeps the rest.
    assert find(table, "30.0.200.1")["asn"] == 749 and find(table, "30.1.0.1")["asn"] == 721
    assert report.overlapping == 1
    # 8.8.8.0/24 and 8.8.9.0/24 are one range of AS15169 now; 8.8.4.0/24 stays apart (a gap).
    assert report.merged == 1 and len(table.families[4].starts) == 5
    # A block: its AS when one range holds all of it.
    assert find(table, "8.8.8.0", "8.8.9.255")["asn"] == 15169
    assert find(table, "8.8.4.0", "8.8.9.255") == {}
    assert is_public_asn(15169) and not is_public_asn(0) and not is_public_asn(23456) and not is_public_asn(4200000001)


def test_a_line_break_in_a_quoted_name_does_not_break_the_file(tmp_path: Path) -> None:
    (tmp_path / "asn-ipv4.csv").write_text('9.9.9.0,9.9.9.255,19281,"Quad9\nFoundation"\n', encoding="utf-8")
    table = read_table_csv([tmp_path / "asn-ipv4.csv"], "t", "2026-01-01")[0]
    (tmp_path / "table.bin.xz").write_bytes(table.encode())
    assert find(AsTable.load(tmp_path / "table.bin.xz"), "9.9.9.9") == {"asn": 19281, "as_organization": "Quad9 Foundation"}


def test_a_table_reads_back_the_same_and_writes_the_same_bytes(csv_files: list[Path], tmp_path: Path) -> None:
    table, _ = read_table_csv(csv_files, "test table", "2026-06-17")
    encoded = table.encode()
    assert encoded.startswith(MAGIC)
    assert read_table_csv(csv_files, "test table", "2026-06-17")[0].encode() == encoded
    (tmp_path / "table.bin.xz").write_bytes(encoded)
    loaded = AsTable.load(tmp_path / "table.bin.xz")
    assert (loaded.name, loaded.date, loaded.numbers, loaded.organisations) == \
        (table.name, table.date, table.numbers, table.organisations)
    assert loaded.families == table.families
    # The full IPv6 range of numbers survives the 64-bit halves.
    assert loaded.families[6].ends[0] == int(ipaddress.ip_address("2001:4860:ffff:ffff:ffff:ffff:ffff:ffff"))


def test_a_damaged_or_missing_table_is_a_clear_error(csv_files: list[Path], tmp_path: Path) -> None:
    table = read_table_csv(csv_files, "test table", "2026-06-17")[0]
    encoded = table.encode()
    raw = lzma.decompress(encoded[len(MAGIC):])
    miscounted = raw.replace(b'"systems":%d' % len(table.numbers), b'"systems":9')
    assert miscounted != raw
    damaged = {"cut.bin.xz": encoded[: len(encoded) // 2], "foreign.bin.xz": b"PK\x03\x04" + encoded,
               "short.bin.xz": MAGIC + lzma.compress(raw[:-40]),
               "count.bin.xz": MAGIC + lzma.compress(miscounted)}
    for name, content in damaged.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UsageError, match="is damaged") as raised:
            AsTable.load(tmp_path / name)
        assert name in str(raised.value)
    with pytest.raises(UsageError, match="cannot read the AS table"):
        AsTable.load(tmp_path / "missing.bin.xz")


def test_a_row_that_is_not_an_as_range_is_refused_with_its_line(tmp_path: Path) -> None:
    for text, why in (("1.0.0.0,1.0.0.255,13335\n", "not a row"), ("1.0.0.9,1.0.0.1,13335,x\n", "not a range"),
                      ("1.0.0.0,2001::,13335,x\n", "not a range"), ("1.0.0.0,1.0.0.255,AS13335,x\n", "not a row")):
        (tmp_path / "asn-ipv4.csv").write_text("8.8.8.0,8.8.8.255,15169,Google LLC\n" + text, encoding="utf-8")
        with pytest.raises(UsageError, match=f"asn-ipv4.csv:2: .*{why}"):
            read_table_csv([tmp_path / "asn-ipv4.csv"], "t", "2026-01-01")


def test_the_shipped_table_knows_well_known_networks() -> None:
    table = AsTable.load()
    assert table.name.startswith("ip-location-db asn ") and table.date[:2] == "20"
    assert find(table, "8.8.8.8") == {"asn": 15169, "as_organization": "Google LLC"}
    assert find(table, "1.1.1.1")["asn"] == 13335
    assert find(table, "9.9.9.9")["asn"] == 19281  # Quad9
    assert find(table, "2606:4700:4700::1111")["asn"] == 13335
    assert find(table, "10.1.2.3") == {}  # private space is announced by nobody
    assert len(table.families[4].starts) > 300_000 and len(table.families[6].starts) > 50_000
    assert all(is_public_asn(number) for number in table.numbers)


def test_the_update_script_rebuilds_a_table_from_a_folder(csv_files: list[Path], tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"version": "2.3.2026061719"}', encoding="utf-8")
    output = tmp_path / "out.bin.xz"
    run = subprocess.run([sys.executable, str(REPO / "tools" / "update_asn_table.py"), str(tmp_path), "--date",
                          "2026-06-17", "--output", str(output)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "3 rows of a non-public AS, 1 overlapping" in run.stdout
    loaded = AsTable.load(output)
    assert loaded.name == "ip-location-db asn 2.3.2026061719 (RouteViews, NRO, DB-IP)"
    assert find(loaded, "8.8.8.8")["asn"] == 15169
    assert SHIPPED_TABLE.is_file()
