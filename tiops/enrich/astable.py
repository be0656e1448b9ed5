"""An offline IP-to-AS table: which autonomous system (number and organisation) announces an address.

The shipped GeoLocation database (geoip2fast's GeoLite2 data) names the AS organisation of a
network but not the AS number: its converter replaces GeoLite2's ``autonomous_system_number``
by an index into its list of names. No PyPI package ships an address-to-AS-number table
(pyasn and ip2asn read a file the user builds or downloads), so tiops ships one:
ip-location-db's ``asn`` table (https://github.com/sapics/ip-location-db), which merges
RouteViews' BGP view (IPv4), the five RIRs' delegation files as the NRO publishes them and
DB-IP's IP to ASN Lite, with DB-IP's organisation names. All three are CC BY 4.0; the
attribution is in ``tiops/data/asn/NOTICE`` and docs/enrich.md.

The same CSV files (``asn-ipv4.csv``/``asn-ipv6.csv``, addresses or numbers,
``start,end,asn,organisation``, inclusive ranges) are read here to build the shipped file
(``tools/update_asn_table.py``).

The shipped file is compact and canonical (the same CSV rows give the same bytes)::

    b"tiops-as-table 1\\n"  then one xz stream of:
    a JSON header line            {"name", "date", "v4", "v6", "systems"}
    per family (IPv4, IPv6)       the step from the last range's end to each start, then each
                                  range's length - 1; each as its high, then low, 64 bits
                                  (big-endian uint64 arrays)
    the range's AS, each family   v4 + v6 uint32 indexes into the AS list
    the AS numbers                systems uint32
    the organisations             systems UTF-8 lines

Ranges are stored as steps and lengths because xz packs those small numbers to a third of
the size of the raw boundaries (about 1.8 MB for 515,000 ranges), and they are unpacked
in C loops (array, map, accumulate).
"""

from __future__ import annotations

import csv
import io
import ipaddress
import lzma
import sys
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate, repeat
from operator import add, lshift, or_, sub
from pathlib import Path
from typing import Final

import orjson

from tiops.errors import UsageError

__all__ = ["SHIPPED_TABLE", "AsTable", "is_public_asn", "read_table_csv"]

MAGIC: Final = b"tiops-as-table 1\n"
SHIPPED_TABLE: Final = Path(__file__).resolve().parent.parent / "data" / "asn" / "ip-location-db-asn.bin.xz"
_MAX_ASN: Final = 4294967295

# AS numbers that name no operator on the public Internet; a table built from BGP views carries
# some (leaked private ASes), and a lookup that answered "AS65002" would tell a rule nothing true.
_NOT_PUBLIC: Final = (
    (0, 0),                    # RFC 7607: AS 0 is never an origin
    (23456, 23456),            # RFC 6793 section 9: AS_TRANS
    (64496, 64511),            # RFC 5398: documentation
    (64512, 65534),            # RFC 6996: private use
    (65535, 65535),            # RFC 7300: reserved
    (65536, 65551),            # RFC 5398: documentation
    (65552, 131071),           # IANA: reserved
    (4200000000, 4294967294),  # RFC 6996: private use
    (4294967295, 4294967295),  # RFC 7300: reserved
)


def is_public_asn(number: int) -> bool:
    """Whether an AS number can be a public network's (IANA's special-purpose AS numbers registry)."""
    return 0 <= number <= _MAX_ASN and not any(low <= number <= high for low, high in _NOT_PUBLIC)


@dataclass
class _Ranges:
    """One family's ranges, sorted and disjoint: first and last address, and the AS index of each."""

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    systems: list[int] = field(default_factory=list)


@dataclass
class AsTable:
    """Sorted, disjoint address ranges per IP family, each with the AS that announces it."""

    name: str
    date: str
    numbers: list[int]
    organisations: list[str]
    families: dict[int, _Ranges]

    def find(self, family: int, number: int, last: int | None = None) -> int | None:
        """The index of the AS whose range holds ``number`` (and every address up to ``last``)."""
        ranges = self.families[family]
        index = bisect_right(ranges.starts, number) - 1
        if index < 0 or (number if last is None else last) > ranges.ends[index]:
            return None
        return ranges.systems[index]

    def fields(self, index: int | None) -> dict[str, int | str]:
        """The lock fields of the AS at ``index`` (``asn``, and ``as_organization`` when named)."""
        if index is None:
            return {}
        found: dict[str, int | str] = {"asn": self.numbers[index]}
        if organisation := self.organisations[index]:
            found["as_organization"] = organisation
        return found

    def __len__(self) -> int:
        return sum(len(ranges.starts) for ranges in self.families.values())

    # ---- the shipped file ----

    @classmethod
    def load(cls, path: Path = SHIPPED_TABLE) -> AsTable:
        """Read a table file written by :meth:`encode`."""
        try:
            with open(path, "rb") as handle:
                packed = handle.read()
        except OSError as error:
            raise UsageError(f"cannot read the AS table {path}: {error.strerror or error}",
                             hint="Reinstall tiops: the table ships inside the package.") from None
        try:
            if not packed.startswith(MAGIC):
                raise ValueError("it does not start with the tiops AS table header")
            return cls._decode(lzma.decompress(packed[len(MAGIC):]))
        except (lzma.LZMAError, ValueError, KeyError, TypeError, IndexError, orjson.JSONDecodeError) as error:
            raise UsageError(f"the AS table {path} is damaged: {error}",
                             hint="Reinstall tiops, or rebuild the file with tools/update_asn_table.py.") from None

    @classmethod
    def _decode(cls, raw: bytes) -> AsTable:
        line_end = raw.index(b"\n")
        header = orjson.loads(raw[:line_end])
        view = memoryview(raw)[line_end + 1:]
        counts = {4: int(header["v4"]), 6: int(header["v6"])}
        systems = int(header["systems"])
        offset = 0

        def take(count: int, code: str) -> list[int]:
            nonlocal offset
            values = array(code)
            size = count * values.itemsize
            piece = view[offset:offset + size]
            if len(piece) != size:
                raise ValueError("it is cut short")
            offset += size
            values.frombytes(piece)
            if _LITTLE_ENDIAN:  # the file is big-endian
                values.byteswap()
            return values.tolist()

        families: dict[int, _Ranges] = {}
        for family in (4, 6):
            steps, lengths = (_wide(take(counts[family], "Q"), take(counts[family], "Q")) for _ in range(2))
            # end(i) = end(i-1) + step(i) + length(i), start(i) = end(i) - length(i): C loops only.
            ends = list(accumulate(map(add, steps, lengths), initial=-1))[1:]
            families[family] = _Ranges(list(map(sub, ends, lengths)), ends, [])
        for family in (4, 6):
            families[family].systems = take(counts[family], "I")
        numbers = take(systems, "I")
        organisations = bytes(view[offset:]).decode("utf-8").split("\n") if systems else []
        if len(organisations) != systems:
            raise ValueError(f"it names {len(organisations)} organisations for {systems} AS numbers")
        if any(ranges.systems and max(ranges.systems) >= systems for ranges in families.values()):
            raise ValueError("a range names an AS the table does not list")
        return cls(str(header["name"]), str(header["date"]), numbers, organisations, families)

    def encode(self) -> bytes:
        """The table as a canonical file: :meth:`load` reads it back."""
        header = orjson.dumps({"name": self.name, "date": self.date, "v4": len(self.families[4].starts),
                               "v6": len(self.families[6].starts), "systems": len(self.numbers)},
                              option=orjson.OPT_SORT_KEYS)
        parts = [header, b"\n"]
        for family in (4, 6):
            ranges = self.families[family]
            steps = list(map(sub, ranges.starts, [-1, *ranges.ends[:-1]]))
            for values in (steps, list(map(sub, ranges.ends, ranges.starts))):
                parts += [_packed([value >> 64 for value in values], "Q"), _packed([value & _LOW for value in values], "Q")]
        parts += [_packed(self.families[family].systems, "I") for family in (4, 6)]
        parts += [_packed(self.numbers, "I"), "\n".join(self.organisations).encode("utf-8")]
        # preset 9 | EXTREME: 1.8 MB instead of 2.2 MB at preset 6; unpacking takes the same time.
        return MAGIC + lzma.compress(b"".join(parts), preset=9 | lzma.PRESET_EXTREME)


_LITTLE_ENDIAN: Final = sys.byteorder == "little"
_LOW: Final = (1 << 64) - 1


def _packed(values: list[int], code: str) -> bytes:
    """Big-endian bytes of ``values`` as the array type ``code``: what ``take`` in
    :meth:`AsTable._decode` reads back."""
    packed = array(code, values)
    if _LITTLE_ENDIAN:
        packed.byteswap()
    return packed.tobytes()


def _wide(high: list[int], low: list[int]) -> list[int]:
    """128-bit numbers from their high and low 64 bits (IPv4's high halves are all 0)."""
    if len(high) != len(low):
        raise ValueError("its halves differ in number")
    if not any(high):
        return low
    return list(map(or_, map(lshift, high, repeat(64, len(high))), low))


# ---- ip-location-db's CSV files ----

@dataclass
class TableReport:
    """What reading CSV rows into a table kept and left out, and why."""

    rows: int = 0
    kept: int = 0
    not_public: int = 0
    overlapping: int = 0
    merged: int = 0


def read_table_csv(paths: Iterable[Path], name: str, date: str) -> tuple[AsTable, TableReport]:
    """A table from ip-location-db ``asn`` CSV files (``start,end,asn,organisation``; the start
    and end as addresses or as numbers), IPv4 and IPv6 in any mix of files.

    Rows naming an AS that is not public (:func:`is_public_asn`) are left out. Where two ranges
    overlap, the one that starts first keeps the shared addresses: the table must give one AS
    per address, and the source lists ranges in order of their start. Neighbouring ranges of
    the same AS become one.
    """
    report = TableReport()
    rows: dict[int, list[tuple[int, int, int]]] = {4: [], 6: []}
    organisations: dict[int, str] = {}
    for path in paths:
        # The -num files write both families as plain numbers, one family to a file, named in the file name.
        family = 6 if "ipv6" in path.name else 4 if "ipv4" in path.name else None
        for line, first, last, number, organisation in _csv_rows(path, family):
            report.rows += 1
            if first[0] != last[0] or first[1] > last[1]:
                raise UsageError(f"{path}:{line}: the range {first[1]}-{last[1]} is not a range of one IP family",
                                 hint="Each row is start,end,asn,organisation with start <= end.")
            if not is_public_asn(number):
                report.not_public += 1
                continue
            rows[first[0]].append((first[1], last[1], number))
            # The first name a number has is kept: the same bytes from the same files. The file
            # keeps one name a line, so a line break inside a quoted CSV name becomes a space.
            organisations.setdefault(number, organisation.replace("\r", " ").replace("\n", " "))
    numbers = sorted(organisations)
    index_of = {number: index for index, number in enumerate(numbers)}
    families: dict[int, _Ranges] = {}
    for family, family_rows in rows.items():
        family_rows.sort()
        ranges = _Ranges()
        for start, end, number in family_rows:
            if ranges.ends and start <= ranges.ends[-1]:
                report.overlapping += 1
                start = ranges.ends[-1] + 1
                if start > end:
                    continue
            system = index_of[number]
            if ranges.ends and start == ranges.ends[-1] + 1 and ranges.systems[-1] == system:
                ranges.ends[-1] = end
                report.merged += 1
                continue
            ranges.starts.append(start)
            ranges.ends.append(end)
            ranges.systems.append(system)
        families[family] = ranges
    table = AsTable(name, date, numbers, [organisations[number] for number in numbers], families)
    report.kept = len(table)
    return table, report


def _csv_rows(path: Path, family: int | None) -> Iterator[tuple[int, tuple[int, int], tuple[int, int], int, str]]:
    """(line, (family, start), (family, end), AS number, organisation) of each row of a CSV file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read the AS table {path}: {error}",
                         hint="Name an ip-location-db asn CSV file (asn-ipv4.csv, asn-ipv6-num.csv...).") from None
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row:
            continue
        try:
            start, end, number, organisation = row
            parsed = (_address(start, family), _address(end, family), int(number), organisation)
        except ValueError:
            raise UsageError(f"{path}:{line}: not a row of an AS table: {','.join(row)[:120]!r}",
                             hint="Each row is start,end,asn,organisation (ip-location-db's asn CSV "
                                  "layout).") from None
        yield (line, *parsed)


def _address(text: str, family: int | None) -> tuple[int, int]:
    """(family, integer) of an address written as such or as a number; a number is of the
    file's family, or IPv4 when below 2**32 in a file whose name tells none."""
    if text.isdigit():
        number = int(text)
        if family is None:
            family = 4 if number < 1 << 32 else 6
        if number >= 1 << (32 if family == 4 else 128):
            raise ValueError(f"{number} is no IPv{family} address")
        return family, number
    address = ipaddress.ip_address(text)
    return address.version, int(address)

