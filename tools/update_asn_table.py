"""Rebuild the AS table tiops ships (tiops/data/asn/ip-location-db-asn.bin.xz) from ip-location-db.

ip-location-db publishes its ``asn`` table (RouteViews + the RIRs via the NRO + DB-IP IP to
ASN Lite, CC BY 4.0) as CSV files; fetch them, then point this script at the folder:

    npm pack @ip-location-db/asn && tar xzf ip-location-db-asn-*.tgz
    python tools/update_asn_table.py package --date 2026-06-17

``--date`` is the day the data was built (the package version's digits:
2.3.2026061719 is 2026-06-17). The same files give the same bytes. The script prints what
it kept and left out; review the change in the pull request as any other data.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tiops.enrich.astable import SHIPPED_TABLE, AsTable, read_table_csv
from tiops.errors import TiopsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the unpacked package: asn-ipv4-num.csv and asn-ipv6-num.csv "
                                                   "(or asn-ipv4.csv and asn-ipv6.csv)")
    parser.add_argument("--date", required=True, help="the day the data was built, YYYY-MM-DD")
    parser.add_argument("--version", help="the package version (read from package.json when omitted)")
    parser.add_argument("--output", type=Path, default=SHIPPED_TABLE)
    args = parser.parse_args(argv)
    version = args.version
    if version is None and (args.folder / "package.json").is_file():
        version = json.loads((args.folder / "package.json").read_text())["version"]
    files = [args.folder / f"asn-ipv{family}{suffix}.csv" for family in (4, 6) for suffix in ("-num", "")]
    chosen = [next(path for path in files[index:index + 2] if path.is_file()) for index in (0, 2)
              if any(path.is_file() for path in files[index:index + 2])]
    if len(chosen) != 2:
        print(f"error: {args.folder} holds no asn-ipv4 and asn-ipv6 CSV pair", file=sys.stderr)
        return 2
    name = f"ip-location-db asn {version or 'unknown version'} (RouteViews, NRO, DB-IP)"
    try:
        table, report = read_table_csv(chosen, name, args.date)
    except TiopsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    encoded = table.encode()
    args.output.write_bytes(encoded)
    check = AsTable.load(args.output)
    if check.families[4].starts != table.families[4].starts or check.numbers != table.numbers:
        print("error: the written table does not read back the same", file=sys.stderr)
        return 1
    print(f"{args.output}: {len(encoded):,} bytes; {report.rows:,} rows read, {report.kept:,} ranges kept "
          f"({len(table.families[4].starts):,} IPv4, {len(table.families[6].starts):,} IPv6), "
          f"{len(table.numbers):,} AS; left out: {report.not_public} rows of a non-public AS, "
          f"{report.overlapping} overlapping; {report.merged} joined to their neighbour")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
