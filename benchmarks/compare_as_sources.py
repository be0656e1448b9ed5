"""How the shipped AS table agrees with geoip2fast's AS organisations, on random addresses.

    python benchmarks/compare_as_sources.py [--addresses 100000] [--seed 1] [--examples 10]

Not a timing: a check of the data tiops ships (docs/enrich.md, Where the shipped AS number
comes from). Random global IPv4 addresses (private and reserved ranges left out, as
``tiops enrich`` leaves them) are looked up in geoip2fast's IPv4 + IPv6 ASN file (GeoLite2,
AS organisation only, counted only when the network it names holds the address) and in tiops' AS table (``tiops.enrich.astable``, AS number and
organisation). Each address is counted once: both name an AS and the names read alike
(the first word of geoip2fast's name is in the table's), both name one and they differ,
only one names one, or neither. Examples of differing names follow.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import re
import socket
from collections import Counter

from tiops.enrich.astable import AsTable
from tiops.enrich.geo import is_private


def _alike(geoip2fast_name: str, table_name: str) -> bool:
    words = re.findall(r"[a-z0-9]+", geoip2fast_name.lower())
    return bool(words) and words[0] in re.sub(r"[^a-z0-9]+", "", table_name.lower())


def _holds(network: object, address: str) -> bool:
    try:
        return isinstance(network, str) and ipaddress.ip_address(address) in ipaddress.ip_network(network)
    except ValueError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--addresses", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--examples", type=int, default=10)
    args = parser.parse_args()

    import geoip2fast

    reader = geoip2fast.GeoIP2Fast(geoip2fast_data_file=os.path.join(
        os.path.dirname(geoip2fast.__file__), "geoip2fast-asn-ipv6.dat.gz"))
    source = reader.get_database_info().get("source_info", "?")
    table = AsTable.load()
    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    examples: list[str] = []
    looked_up = 0
    while looked_up < args.addresses:
        address = socket.inet_ntoa(rng.getrandbits(32).to_bytes(4, "big"))
        if is_private(address):
            continue
        looked_up += 1
        answer = reader.lookup(address)
        # geoip2fast 1.2's lookup() with its IPv6 data can name a neighbouring network's AS
        # (docs/enrich.md): its name counts only when the network it names holds the address.
        theirs = answer.asn_name if answer.asn_name and _holds(answer.asn_cidr, address) else None
        ours = table.fields(table.find(4, int.from_bytes(socket.inet_aton(address), "big")))
        name = str(ours.get("as_organization", "")) if ours else None
        if theirs and ours:
            alike = _alike(theirs, name or "")
            counts["both name an AS, alike" if alike else "both name an AS, names differ"] += 1
            if not alike and len(examples) < args.examples:
                examples.append(f"  {address}: {theirs!r} / AS{ours['asn']} {name!r}")
        else:
            counts["only the AS table names one" if ours else "only geoip2fast names one" if theirs else "neither"] += 1
    print(f"{looked_up} random global IPv4 addresses (seed {args.seed}); geoip2fast: {source}; AS table: "
          f"{table.name}, {table.date}")
    print("| addresses | count | share |\n| --- | --- | --- |")
    for label in ("both name an AS, alike", "both name an AS, names differ", "only the AS table names one",
                  "only geoip2fast names one", "neither"):
        print(f"| {label} | {counts[label]:,} | {counts[label] / looked_up:.1%} |")
    if examples:
        print("names that differ (geoip2fast / AS table):")
        print("\n".join(examples))


if __name__ == "__main__":
    main()
