"""Measure STIX pattern checking: tiops's ``pattern_errors`` against the reference checker.

    python benchmarks/bench_patterns.py [N] [--seed 1]

Generates N distinct, realistic indicator patterns from ``random.Random(seed)`` (IPv4,
IPv6, domain, URL, e-mail and file-hash observations, about 5% compound), then times,
in the same run and on the same patterns:

- ``tiops.validate.patterns.pattern_errors`` with its cache cleared first, so every
  pattern is checked once for real;
- ``stix2patterns.validator.run_validator`` called directly.

It prints patterns per second for each and their ratio, and fails if the two ever
disagree on a verdict.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stix2patterns.validator import run_validator

from tiops.validate.patterns import clear_pattern_cache, pattern_errors

WORDS = (
    "update", "secure", "login", "cdn", "mail", "portal", "cloud", "files", "static", "api",
    "account", "verify", "office", "support", "download", "invoice", "payment", "news",
)  # fmt: skip
TLDS = ("com", "net", "org", "info", "ru", "cn", "io", "xyz", "top", "biz")
FILE_NAMES = ("invoice.pdf.exe", "setup.exe", "update.dll", "report.docm", "payload.bin")
HASHES = (("MD5", 32), ("'SHA-1'", 40), ("'SHA-256'", 64))


def _ipv4(rng: random.Random) -> str:
    return ".".join(str(rng.randrange(1, 255)) for _ in range(4))


def _ipv6(rng: random.Random) -> str:
    return "2001:db8:" + ":".join(f"{rng.randrange(0x10000):x}" for _ in range(6))


def _domain(rng: random.Random) -> str:
    return f"{rng.choice(WORDS)}-{rng.choice(WORDS)}{rng.randrange(1000)}.{rng.choice(TLDS)}"


def _url(rng: random.Random) -> str:
    path = "/".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 4)))
    return f"https://{_domain(rng)}/{path}?id={rng.randrange(10**6)}"


def _email(rng: random.Random) -> str:
    return f"{rng.choice(WORDS)}.{rng.randrange(10**4)}@{_domain(rng)}"


def _hash_comparison(rng: random.Random) -> str:
    algorithm, length = rng.choice(HASHES)
    return f"file:hashes.{algorithm} = '{rng.getrandbits(length * 4):0{length}x}'"


SIMPLE: tuple[Callable[[random.Random], str], ...] = (
    lambda rng: f"ipv4-addr:value = '{_ipv4(rng)}'",
    lambda rng: f"ipv4-addr:value = '{_ipv4(rng)}/{rng.randrange(16, 33)}'",
    lambda rng: f"ipv6-addr:value = '{_ipv6(rng)}'",
    lambda rng: f"domain-name:value = '{_domain(rng)}'",
    lambda rng: f"url:value = '{_url(rng)}'",
    lambda rng: f"email-addr:value = '{_email(rng)}'",
    _hash_comparison,
)


def _pattern(rng: random.Random) -> str:
    if rng.random() >= 0.05:
        return f"[{rng.choice(SIMPLE)(rng)}]"
    if rng.random() < 0.5:  # one observation, several comparisons
        return f"[{_hash_comparison(rng)} OR file:name = '{rng.choice(FILE_NAMES)}']"
    joiner = rng.choice((" OR ", " AND "))
    return joiner.join(f"[{rng.choice(SIMPLE)(rng)}]" for _ in range(rng.randrange(2, 4)))


def generate_patterns(count: int, seed: int) -> list[str]:
    """``count`` distinct patterns, the same ones for the same seed."""
    rng = random.Random(seed)
    patterns: dict[str, None] = {}
    while len(patterns) < count:
        patterns[_pattern(rng)] = None
    return list(patterns)


def _per_second(check: Callable[[str], bool], patterns: list[str]) -> tuple[float, list[bool]]:
    started = time.perf_counter()
    verdicts = [check(pattern) for pattern in patterns]
    elapsed = time.perf_counter() - started
    return len(patterns) / elapsed, verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time STIX pattern checking.")
    parser.add_argument("count", nargs="?", type=int, default=20_000, help="patterns (20000)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    patterns = generate_patterns(args.count, args.seed)
    clear_pattern_cache()
    tiops_rate, tiops_verdicts = _per_second(lambda p: not pattern_errors(p), patterns)
    reference_rate, reference_verdicts = _per_second(
        lambda p: not run_validator(p, stix_version="2.1"), patterns
    )
    disagreements = sum(a != b for a, b in zip(tiops_verdicts, reference_verdicts, strict=True))

    print(f"patterns:            {len(patterns)} distinct (seed {args.seed})")
    print(f"valid:               {sum(reference_verdicts)}")
    print(f"tiops pattern_errors: {tiops_rate:12,.0f} patterns/s (cache cleared)")
    print(f"stix2patterns:        {reference_rate:12,.0f} patterns/s")
    print(f"speed-up:             {tiops_rate / reference_rate:12,.1f}x")
    if disagreements:
        print(f"verdicts differ on {disagreements} patterns", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
