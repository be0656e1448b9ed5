"""How often the host tiops enriches for a URL is the host a browser contacts.

    pip install ada-url
    python benchmarks/agreement_url_hosts.py [--count 60000] [--seed 9] [--show 10]

ada-url is a WHATWG URL parser (the one Node.js uses), the standard browsers follow. Each
case is a generated URL of a special scheme built from pieces that tell the two URL
readings apart (backslashes, user info, ports, brackets, percent-encoding, IPv4 numbers
in hex, octal and fewer than four parts). For each, tiops's value
(``tiops.enrich.values.object_enrich_values`` of a ``url`` SCO) is compared with ada's
host: an IPv4 or IPv6 address as the text tiops locks it under (an IPv4-mapped IPv6
address as its IPv4 address), a name without the root's dot. A name ada reads with a
leading dot (``.evil.example``) is compared without it: tiops reads a leading dot as written
for "the domain and what is under it" (docs/enrich.md), and how many such cases there were is
printed. A host that has no dot (after that) is not a case: tiops looks up only names with a dot.

The figure is the share of cases in agreement; the disagreements are counted by kind
("tiops none": tiops names nothing where ada reads a host; "ada none": the reverse;
"differ": two hosts) and the first ``--show`` of each are listed.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence

PIECES = ["a", "b.com", "evil.example", "\\", "/", "//", "@", ":", "%2f", "%41", "1.2.3.4", "0x08080808",
          "010.8.8.8", "8.2056", ".", ":80", ":70000", "?q", "#f", "user", "x.y", "[::1]", "[2001:db8::1]",
          "[::ffff:1.2.3.4]", "[", "]", "[v1.x]"]
SCHEMES = ["http:", "https:", "HTTP:", "ws:", "ftp:"]
SEPARATORS = ["//", "\\\\", "/", "", "///", "\\/"]


def generated_urls(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(SCHEMES) + rng.choice(SEPARATORS) + "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 5)))
            for _ in range(count)]


def ada_host(url: str) -> str | None:
    import ada_url

    try:
        host = ada_url.parse_url(url)["hostname"]
    except ValueError:
        return None
    if host.startswith("["):
        address = ipaddress.IPv6Address(host[1:-1])
        return str(address.ipv4_mapped or address)
    return host.rstrip(".") or None


def tiops_host(url: str) -> str | None:
    from tiops.enrich.values import object_enrich_values

    values = object_enrich_values({"type": "url", "value": url})
    return values[0][1] if values else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60000)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--show", type=int, default=10)
    args = parser.parse_args(argv)
    try:
        import ada_url  # noqa: F401
    except ImportError:
        print("needs ada-url: pip install ada-url", file=sys.stderr)
        return 2
    kinds: Counter[str] = Counter()
    examples: dict[str, list[tuple[str, str | None, str | None]]] = defaultdict(list)
    cases = leading_dots = 0
    for url in generated_urls(args.count, args.seed):
        ours, theirs = tiops_host(url), ada_host(url)
        if theirs is not None and theirs.startswith("."):
            theirs = theirs.lstrip(".")
            leading_dots += 1
        if theirs is not None and "." not in theirs and ":" not in theirs:
            continue  # a name without a dot: not one tiops looks up
        cases += 1
        if ours == theirs:
            continue
        kind = "tiops none" if ours is None else "ada none" if theirs is None else "differ"
        kinds[kind] += 1
        examples[kind].append((url, ours, theirs))
    agreed = cases - sum(kinds.values())
    print(f"{agreed} of {cases} URLs agree ({100 * agreed / cases:.2f} %); disagreements: {dict(kinds) or 'none'}"
          f" ({leading_dots} of ada's hosts had a leading dot, compared without it)")
    for kind, listed in examples.items():
        print(f"{kind}:")
        for url, ours, theirs in listed[:args.show]:
            print(f"  {url!r}: tiops {ours}, ada {theirs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
