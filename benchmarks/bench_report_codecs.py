"""Time the codecs a report's data files could be packed with, on a site's own data.

    python benchmarks/bench_report_codecs.py SITE

SITE is a folder written by ``tiops report``. Its data files are inflated back to JSON,
then packed again by each codec the browser can inflate from ``file://``
(``DecompressionStream`` reads the zlib and gzip formats only) whose Python package is
installed: zlib (the standard library), libdeflate (``deflate``, what tiops uses),
ISA-L (``isal``) and zlib-ng (``zlib-ng``). For each: CPU time (best of three), the
packed size and the size in base64 as the data files hold it; every output is checked
to inflate to the same JSON.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

# (label, module, function name, level): each function gives the zlib format (RFC 1950).
CODECS = [("zlib", "zlib", "compress", 1), ("libdeflate", "deflate", "zlib_compress", 1),
          ("libdeflate", "deflate", "zlib_compress", 4), ("libdeflate", "deflate", "zlib_compress", 6),
          ("ISA-L", "isal.isal_zlib", "compress", 1), ("zlib-ng", "zlib_ng.zlib_ng", "compress", 1)]


def payloads(site: Path) -> list[bytes]:
    files = [*sorted((site / "data" / "objects").glob("*.js")), site / "data" / "index.js"]
    return [zlib.decompress(base64.b64decode(path.read_bytes().split(b'"')[-2])) for path in files]


def measure(data: list[bytes], pack: Callable[[bytes], bytes]) -> tuple[float, int, int]:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        packed = [bytes(pack(item)) for item in data]
        best = min(best, time.process_time() - start)
    assert all(zlib.decompress(out) == item for out, item in zip(packed, data, strict=True))
    return best, sum(map(len, packed)), sum(len(base64.b64encode(out)) for out in packed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path)
    args = parser.parse_args(argv)
    data = payloads(args.site)
    print(f"{len(data)} data files, {sum(map(len, data)) / 1e6:.1f} MB of JSON")
    print(f"{'codec':12} {'level':>5} {'CPU s':>7} {'packed MB':>10} {'base64 MB':>10}")
    for label, module_name, function, level in CODECS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            print(f"{label:12} {level:5} (not installed)")
            continue
        compress = getattr(module, function)
        seconds, size, encoded = measure(data, lambda item, c=compress, n=level: c(item, n))
        print(f"{label:12} {level:5} {seconds:7.2f} {size / 1e6:10.1f} {encoded / 1e6:10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
