"""How the size of each write() changes the cost of writing a new file (docs/performance.md,
"Large writes and the page cache").

Writes ``--megabytes`` of random bytes into a new file in a folder, in pieces of each size,
pausing before each write so that freed memory is as a build finds it. Prints each piece size's
wall and system seconds (the best of ``--rounds``) and its ratio to tiops' own piece size
(tiops.memory.WRITE_PIECE), measured in the same run::

    python benchmarks/bench_write_pieces.py --folder /tmp --megabytes 77 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tiops.memory import WRITE_PIECE

PIECES = (8 << 20, 4 << 20, 2 << 20, WRITE_PIECE, 256 << 10, 64 << 10, 16 << 10)


def write_new_file(path: Path, data: bytes, piece: int) -> tuple[float, float]:
    """Wall and system seconds to write ``data`` into a new file at ``path``, ``piece`` bytes per write."""
    view = memoryview(data)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
        started = time.perf_counter()
        for start in range(0, len(view), piece):
            os.write(descriptor, view[start:start + piece])
        wall = time.perf_counter() - started
        system = resource.getrusage(resource.RUSAGE_SELF).ru_stime - before
    finally:
        os.close(descriptor)
        path.unlink()
    return wall, system


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=Path("."), help="where to write (a folder on the file system to measure)")
    parser.add_argument("--megabytes", type=int, default=77, help="how much to write (77: the 100k-object bundle)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pause", type=float, default=3.5,
                        help="seconds to wait before each write (a virtual machine may hand memory freed longer ago back to its host)")
    args = parser.parse_args(argv)
    data = os.urandom(1 << 20) * args.megabytes
    path = args.folder / f".bench-write-pieces.{os.getpid()}"
    best: dict[int, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for piece in PIECES:  # interleaved: each round measures every size once
            time.sleep(args.pause)
            wall, system = write_new_file(path, data, piece)
            if piece not in best or wall < best[piece][0]:
                best[piece] = (wall, system)
    baseline = best[WRITE_PIECE][0]
    print(f"{args.megabytes} MB into a new file in {args.folder}, best of {args.rounds}, after {args.pause} s pauses")
    print("| piece | wall | system | x tiops' piece |")
    print("|---|---|---|---|")
    for piece in PIECES:
        wall, system = best[piece]
        mark = " (tiops)" if piece == WRITE_PIECE else ""
        print(f"| {piece >> 10} KiB{mark} | {wall:.3f} s | {system:.3f} s | {wall / baseline:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
