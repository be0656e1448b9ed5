"""What renaming a new file over a large old one costs the writer, with and without letting the old
file go on a thread (tiops.outputs.rename_over; docs/performance.md, "Letting go of the file a
rename replaces").

Each round writes a new file of ``--megabytes`` beside a target of the same size, then renames it
over the target, either with ``os.replace`` (the baseline: ext4 frees the old file's blocks in the
rename) or with ``rename_over`` (the old file held open across the rename and closed on a thread).
Timed: the rename call alone, and the rename followed by ``--work-ms`` of CPU work, as a build
has after its bundle's rename (the record, the stat index). The two ways alternate, and each
round pauses first (``--pause``), so the page cache's writeback of one round's file does not fall
into the next one's rename. The figures are medians, as ratios against ``os.replace`` in the
same run.

    python benchmarks/bench_rename_over.py --folder /tmp/rename --megabytes 77 --rounds 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tiops.forkwork import can_fork
from tiops.memory import write_in_pieces
from tiops.outputs import rename_over


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        write_in_pieces(out.write, data)


def _busy(seconds: float) -> None:
    """CPU work for ``seconds`` (what a build does after the rename)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(1000))


def _round(folder: Path, data: bytes, rename: Callable[[Path, Path], None], work: float) -> tuple[float, float]:
    target, new = folder / "bundle.json", folder / ".bundle.json.partial"
    if not target.exists():
        _write(target, data)
    _write(new, data)
    start = time.perf_counter()
    rename(new, target)
    renamed = time.perf_counter()
    _busy(work)
    can_fork()  # waits for the close on its thread, as a build's next fork would
    return renamed - start, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, required=True, help="where the files are written (removed after)")
    parser.add_argument("--megabytes", type=int, default=77, help="size of each file (77: a 100k-object bundle)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--work-ms", type=float, default=100.0, help="CPU work timed after each rename")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds to wait before each round")
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    data = os.urandom(1 << 20) * args.megabytes
    ways: dict[str, Callable[[Path, Path], None]] = {"os.replace": os.replace, "rename_over (tiops)": rename_over}
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    try:
        for _ in range(args.rounds):
            for name, rename in ways.items():
                time.sleep(args.pause)
                figures[name].append(_round(args.folder, data, rename, args.work_ms / 1000))
    finally:
        for leftover in ("bundle.json", ".bundle.json.partial"):
            (args.folder / leftover).unlink(missing_ok=True)
    base_rename = statistics.median(rename for rename, _ in figures["os.replace"])
    base_total = statistics.median(total for _, total in figures["os.replace"])
    print(f"{args.megabytes} MB over {args.megabytes} MB, {args.rounds} round(s), "
          f"{args.work_ms:.0f} ms of work after each rename (medians)")
    print("| way | rename | x os.replace | rename and work | x os.replace |")
    print("|---|---|---|---|---|")
    for name, runs in figures.items():
        rename_time = statistics.median(rename for rename, _ in runs)
        total = statistics.median(total for _, total in runs)
        print(f"| {name} | {rename_time * 1000:.1f} ms | {rename_time / base_rename:.2f}x | "
              f"{total * 1000:.1f} ms | {total / base_total:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
