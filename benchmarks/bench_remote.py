"""Time `plan` and `apply` of N objects against a TAXII 2.1 collection on medallion.

    python benchmarks/bench_remote.py [--size 10000]

Starts medallion (the OASIS reference TAXII 2.1 server, memory backend) on
127.0.0.1 with an empty collection, then: plan (all creates), apply, plan again
from the same checkout (manifest + local digest cache: no changes), and plan from
a fresh checkout with --fresh-checkout (manifest, then every object read back
once to fill the cache: slow on medallion, whose object reads are quadratic).

    python benchmarks/bench_remote.py --target sentinel [--size 2000] [--window 1]

Starts the Sentinel contract server (tests/sentinel_contract.py: 100 requests per
``--window`` seconds, 429 beyond) and times plan, apply and re-plan with the store
paced to 95% of that rate; reports the request rate achieved and the 429s seen.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_plan_apply import objects, sync_round, timed_plan
from sentinel_contract import TOKEN, SentinelContract
from taxii_server import start_taxii_server

from tiops.apply import apply_plan
from tiops.stores import TargetSettings
from tiops.stores.sentinel import RequestPacer, SentinelStore
from tiops.stores.taxii import TaxiiStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--fresh-checkout", action="store_true", help="also time a plan with an empty digest cache")
    parser.add_argument("--target", choices=["taxii", "sentinel"], default="taxii")
    parser.add_argument("--window", type=float, default=1.0, help="sentinel: seconds per 100 requests on the server")
    args = parser.parse_args()
    if args.target == "sentinel":
        return bench_sentinel(args.size, args.window)
    compiled = objects(args.size)
    settings = TargetSettings("bench", "taxii")
    with tempfile.TemporaryDirectory() as workdir:
        server = start_taxii_server(Path(workdir) / "server")
        try:
            user, password = server.auth
            store = TaxiiStore(server.collection_url, user=user, password=password, root=Path(workdir) / "a",
                               target="bench")
            plan_seconds, apply_seconds, replan_seconds = sync_round(store, compiled, settings)
            store.close()
            cold_seconds: float | None = None
            if not args.fresh_checkout:
                return report(args.size, plan_seconds, apply_seconds, replan_seconds, cold_seconds)
            fresh = TaxiiStore(server.collection_url, user=user, password=password, root=Path(workdir) / "b",
                               target="bench")
            cold, cold_seconds = timed_plan(fresh, compiled, settings)
            assert not cold.has_changes
            fresh.close()
        finally:
            server.stop()
    report(args.size, plan_seconds, apply_seconds, replan_seconds, cold_seconds)


def bench_sentinel(size: int, window: float) -> None:
    compiled = objects(size)
    settings = TargetSettings("bench", "sentinel")
    server = SentinelContract(limit=100, window=window).start()
    rate = 0.95 * 100 * 60 / window
    try:
        with tempfile.TemporaryDirectory() as workdir:
            store = SentinelStore(server.upload_url, server.query_url, token=TOKEN, root=Path(workdir),
                                  target="bench", pacer=RequestPacer(rate))
            plan, plan_seconds = timed_plan(store, compiled, settings)
            before = server.requests
            start = time.perf_counter()
            apply_plan(plan, store, batch_size=settings.batch_size)
            apply_seconds = time.perf_counter() - start
            requests = server.requests - before
            again, replan_seconds = timed_plan(store, compiled, settings)
            assert not again.has_changes
            store.close()
    finally:
        server.stop()
    print(f"sentinel (contract, 100 req/{window:g}s) {size:>7}  plan {plan_seconds:6.2f}s  apply {apply_seconds:6.2f}s"
          f" ({requests} requests, {requests / apply_seconds * 60:,.0f}/min of {100 * 60 / window:,.0f}/min allowed,"
          f" {server.throttled} x 429)  re-plan {replan_seconds:6.2f}s", flush=True)


def report(size: int, plan_seconds: float, apply_seconds: float, replan_seconds: float, cold_seconds: float | None) -> None:
    cold = ("not timed (--fresh-checkout)" if cold_seconds is None
            else f"{cold_seconds:6.2f}s ({cold_seconds / replan_seconds:.0f}x the re-plan)")
    print(f"taxii (medallion) {size:>7}  plan {plan_seconds:6.2f}s  apply {apply_seconds:6.2f}s  "
          f"re-plan {replan_seconds:6.2f}s  re-plan, fresh checkout {cold}", flush=True)


if __name__ == "__main__":
    main()
