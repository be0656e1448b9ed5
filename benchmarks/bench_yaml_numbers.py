"""What the check for numbers YAML 1.2 reads as text (TI116) costs, in one process.

    python benchmarks/bench_yaml_numbers.py REPO_DIR [--rounds 15] [--validate-rounds 7]

REPO_DIR is a repository from generate_repo.py. Prints the best CPU time of:

* the two prefilter searches tiops.yamlio.parse_yaml runs over every text, alone, and how
  many files they send on to the line search;
* parse_yaml of every object file, with the searches as written and with searches that fail
  at once (so no text goes further), alternated round by round;
* load_repo and validate_repo (``tiops validate --no-cache`` without the forked helper), the
  same two ways.

Alternating in one process keeps what other jobs on the machine do out of the difference
better than timing two checkouts' commands one after the other.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from tiops import yamlio
from tiops.load import load_repo
from tiops.validate import validate_repo

_NEVER = re.compile(r"\A\x00")  # fails at the first position: a search that costs nothing


def cpu(action: Callable[[], object]) -> float:
    """CPU time of ``action``, what it returns freed and the garbage collected before and after (untimed)."""
    gc.collect()
    started = time.process_time()
    result = action()
    spent = time.process_time() - started
    del result
    gc.collect()
    return spent


def alternated(rounds: int, action: Callable[[], object]) -> tuple[float, float]:
    """Best CPU of ``action`` with the prefilter searches as written, and with them off, in turns
    (which goes first alternates too)."""
    real = (yamlio._UNDERSCORE_OUTSIDE_A_NAME, yamlio._RADIX_PREFIX_AT_SCALAR_START)
    best = {True: float("inf"), False: float("inf")}
    try:
        for round_ in range(rounds):
            for checked in (True, False) if round_ % 2 == 0 else (False, True):
                searches = real if checked else (_NEVER, _NEVER)
                yamlio._UNDERSCORE_OUTSIDE_A_NAME, yamlio._RADIX_PREFIX_AT_SCALAR_START = searches
                best[checked] = min(best[checked], cpu(action))
    finally:
        yamlio._UNDERSCORE_OUTSIDE_A_NAME, yamlio._RADIX_PREFIX_AT_SCALAR_START = real
    return best[True], best[False]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--validate-rounds", type=int, default=7)
    args = parser.parse_args()
    os.environ["TIOPS_LOAD_FORK"] = "0"
    texts = []
    for directory, _, names in sorted(os.walk(args.repo / "intel")):
        for name in sorted(names):
            if name.endswith(".yaml") and not name.startswith("_"):
                texts.append(Path(directory, name).read_text(encoding="utf-8"))
    megabytes = sum(map(len, texts)) / 1e6
    print(f"{len(texts)} object files, {megabytes:.1f} MB")

    underscore, radix = yamlio._UNDERSCORE_OUTSIDE_A_NAME.search, yamlio._RADIX_PREFIX_AT_SCALAR_START.search
    further = sum(1 for text in texts if underscore(text) is not None or radix(text) is not None)
    searches = min(cpu(lambda: [(underscore(text), radix(text)) for text in texts]) for _ in range(args.rounds))
    print(f"the two searches alone: {searches * 1e3:.1f} ms ({searches / len(texts) * 1e6:.2f} us a file, "
          f"{searches / megabytes * 1e3:.2f} ms a MB); {further} files go on to the line search")

    on, off = alternated(args.rounds, lambda: [yamlio.parse_yaml(text, shared=True) for text in texts])
    print(f"parse_yaml of every file: {on * 1e3:.1f} ms with the check, {off * 1e3:.1f} ms without: "
          f"{(on - off) * 1e3:+.1f} ms ({(on - off) / off * 100:+.1f} %)")

    on, off = alternated(args.validate_rounds, lambda: validate_repo(load_repo(args.repo)))
    print(f"load_repo + validate_repo: {on * 1e3:.1f} ms with the check, {off * 1e3:.1f} ms without: "
          f"{(on - off) * 1e3:+.1f} ms ({(on - off) / off * 100:+.1f} %)")


if __name__ == "__main__":
    main()
