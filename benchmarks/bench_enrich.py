"""Time offline enrichment and what a large enrichment lock adds to compile.

    python benchmarks/bench_enrich.py [--ips 100000] [--objects 100000] [--repeat 2] [--seed 1] [--databases] [--no-warm]

1. Offline enrichment of ``--ips`` new, random, global IPv4 addresses named by as many
   indicators: read the values from the indicators (``tiops.enrich.values``), open the
   shipped database, look every address up (``tiops.enrich.geo.geo_entries``) and write
   the lock (``tiops.enrich.lock.write_lock``), the work ``tiops enrich --offline``
   does once the intel is loaded. Baseline, same run: the same addresses through
   geoip2fast's own ``lookup`` with nothing else (open excluded). ``--databases``
   also times loading and looking up each data file geoip2fast ships.
2. Compile (load + validate + rules + bundle streamed to a file, as ``tiops compile``
   does) of a generated repository of ``--objects`` objects (benchmarks/generate_repo.py),
   without a lock and with a lock holding a result for every value the repository names
   (geo for every IP, RDAP for every IP and domain), best of ``--repeat``, alternated, in
   the same run: once as ``tiops compile --no-cache`` builds, and once as the default
   ``tiops compile`` builds with its build cache (``.tiops/build-cache/``) warm, after one
   untimed build has filled it. The build cache keeps what loading and the per-object
   checks made of each file; the lock is read, checked and attached at every build.

Wall-clock and this process's CPU time are both printed: on a shared machine the
CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import generate_repo


def random_global_ips(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    found: set[str] = set()
    while len(found) < count:
        address = ipaddress.IPv4Address(rng.getrandbits(32))
        if address.is_global:
            found.add(str(address))
    return sorted(found)


def bench_offline(count: int, seed: int) -> None:
    from tiops.enrich.geo import ShippedDatabase, geo_entries
    from tiops.enrich.lock import EnrichmentLock, write_lock
    from tiops.enrich.values import enrich_values

    ips = random_global_ips(count, seed)
    indicators = [{"type": "indicator", "pattern": f"[ipv4-addr:value = '{ip}']", "pattern_type": "stix"} for ip in ips]
    with tempfile.TemporaryDirectory() as folder:
        cpu = time.process_time()
        start = time.perf_counter()
        values = sorted(value for kind, value in enrich_values(indicators) if kind == "ip")
        extracted = time.perf_counter()
        database = ShippedDatabase.open()
        opened = time.perf_counter()
        lock = EnrichmentLock()
        lock.geo.update(geo_entries(database, values))
        looked_up = time.perf_counter()
        write_lock(Path(folder) / "intel", lock)
        written = time.perf_counter()
        cpu = time.process_time() - cpu
        reader = database._reader
        base_start = time.perf_counter()
        for ip in ips:
            reader.lookup(ip)
        baseline = time.perf_counter() - base_start
    found = sum(1 for e in lock.geo.values() if e["status"] == "found")
    total = written - start
    print(f"offline enrichment of {count} new IPs ({found} found): {total:.2f} s (values from the indicators "
          f"{extracted - start:.2f} s, open {opened - extracted:.2f} s, lookups {looked_up - opened:.2f} s, "
          f"lock write {written - looked_up:.2f} s); CPU {cpu:.2f} s; target < 3 s: {'met' if total < 3 else 'NOT met'}")
    print(f"  baseline geoip2fast lookup() alone: {baseline:.2f} s; enrichment / baseline = {total / baseline:.2f}")


def bench_databases(count: int, seed: int) -> None:
    """Load time and lookup speed of each data file geoip2fast ships, through its own API."""
    import os

    import geoip2fast

    ips = random_global_ips(count, seed)
    folder = os.path.dirname(geoip2fast.__file__)
    for name in ("geoip2fast.dat.gz", "geoip2fast-ipv6.dat.gz", "geoip2fast-asn.dat.gz", "geoip2fast-asn-ipv6.dat.gz"):
        start = time.perf_counter()
        reader = geoip2fast.GeoIP2Fast(geoip2fast_data_file=os.path.join(folder, name))
        loaded = time.perf_counter()
        with_asn = sum(1 for ip in ips if reader.lookup(ip).asn_name)
        looked_up = time.perf_counter()
        print(f"  {name}: load {loaded - start:.2f} s, {count} lookup() {looked_up - loaded:.2f} s, "
              f"{with_asn} with an AS organisation, {os.path.getsize(os.path.join(folder, name)) / 1e6:.1f} MB")


def synthetic_lock(root: Path) -> int:
    """A lock with a found result for every value the repository names; returns its size."""
    from tiops.enrich.lock import EnrichmentLock, write_lock
    from tiops.enrich.values import enrich_values
    from tiops.load import load_repo

    repo = load_repo(root)
    lock = EnrichmentLock()
    lock.meta["geo"] = {"backend": "bench", "database": "synthetic", "date": "2026-01-01"}
    rng = random.Random(3)
    for kind, value in sorted(enrich_values(o.data for o in repo.objects)):
        if kind == "ip":
            lock.geo[value] = {"status": "found", "country": "Exampleland", "country_code": rng.choice(["US", "DE", "NL"]),
                               "asn": rng.randrange(1, 65000), "as_organization": f"AS-{rng.randrange(999)}"}
        lock.whois[value] = {"status": "found", "retrieved": "2026-01-01T00:00:00Z", "registrar": "Example Registrar",
                             "registered": "2024-05-01T00:00:00Z", "expires": "2027-05-01T00:00:00Z",
                             "rdap_status": ["active"], "abuse_email": "abuse@example.net"}
    write_lock(repo.config.intel_path, lock)
    return len(lock)


def time_build(root: Path, *, cache: bool = False) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, bundle bytes) of one build, as `tiops compile` runs it."""
    from tiops import build
    from tiops.enrich import lock
    from tiops.observables import lexed_pattern_observables

    # As in a fresh `tiops compile` process: no lock read and no pattern lexed by a previous build.
    lock._CACHE.clear()
    lexed_pattern_observables.cache_clear()
    target = root.parent / f"{root.name}-bundle.json"
    start, cpu = time.perf_counter(), time.process_time()
    build(root, as_of="2026-01-01", output=target, cache=cache)
    return time.perf_counter() - start, time.process_time() - cpu, target.stat().st_size


def bench_compile(objects: int, repeat: int, seed: int, warm: bool = True) -> None:
    with tempfile.TemporaryDirectory() as folder:
        plain, locked = Path(folder) / "plain", Path(folder) / "locked"
        generate_repo.write_repository(plain, objects, seed)
        shutil.copytree(plain, locked)
        values = synthetic_lock(locked)
        modes = [("tiops compile --no-cache", False)]
        if warm:
            modes.append(("tiops compile, build cache warm", True))
            for root in (plain, locked):
                time_build(root, cache=True)  # fills .tiops/build-cache/
        for label, cache in modes:
            without = with_lock = (float("inf"), float("inf"))
            sizes = (0, 0)
            for _ in range(repeat):  # interleaved, so both see the same machine load
                wall, cpu, plain_size = time_build(plain, cache=cache)
                without = (min(without[0], wall), min(without[1], cpu))
                wall, cpu, locked_size = time_build(locked, cache=cache)
                with_lock = (min(with_lock[0], wall), min(with_lock[1], cpu))
                sizes = (plain_size, locked_size)
            for index, unit in ((0, "wall"), (1, "CPU")):
                ratio = with_lock[index] / without[index]
                print(f"compile of {objects} objects ({label}; {unit}, best of {repeat}): without a lock "
                      f"{without[index]:.2f} s; with a {values}-value lock {with_lock[index]:.2f} s; ratio {ratio:.3f} "
                      f"(target <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'})")
        print(f"  bundle bytes: {sizes[0]} without, {sizes[1]} with ({sizes[1] / sizes[0]:.2f}x)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ips", type=int, default=100_000)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--databases", action="store_true", help="also time each data file geoip2fast ships")
    parser.add_argument("--no-warm", dest="warm", action="store_false",
                        help="time only compiles without the build cache (tiops compile --no-cache)")
    args = parser.parse_args(argv)
    bench_offline(args.ips, args.seed)
    if args.databases:
        bench_databases(args.ips, args.seed)
    if args.objects:
        bench_compile(args.objects, max(1, args.repeat), args.seed, args.warm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
