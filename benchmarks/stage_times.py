"""Where one tiops command spends its time, stage by stage, in one process.

Runs ``tiops ARGS...`` with a timer around each main stage of a build through the cache (the
warm load, the checks, the cache's save, the splice, the bundle's write, the record; for a
first build, the load through the empty cache, the checks of every object and the compile with
its record) and prints each stage's wall and CPU seconds, calls and minor page faults to stderr.
A one-file recompile (docs/performance.md, "Large writes and the page cache")::

    python benchmarks/stage_times.py -C REPO compile --as-of 2025-06-01 -o bundle.json

Only this process's stages are timed: a save done by a forked helper (a first build's,
docs/performance.md "A first build's cache saved beside its compile") shows as its start only.

Stages nest (``build`` holds the others), so their figures do not add up to the total.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# (module, attribute path, label): the stages of tiops.pipeline's build through the cache.
STAGES = (
    ("tiops.buildcache.store", "BuildCache.open", "open the cache"),
    ("tiops.buildcache.indexed", "changed_files", "lstats, groups checked"),
    ("tiops.buildcache", "load_repo_indexed", "load through the cache"),
    ("tiops.validate", "validate_indexed", "checks"),
    ("tiops.buildcache.store", "BuildCache.save", "save the cache"),
    ("tiops.buildcache", "load_repo_cached", "load through the empty cache"),
    ("tiops.pipeline", "validate_repo", "checks, every object"),
    ("tiops.buildcache.store", "BuildCache.save_beside", "start the save beside"),
    ("tiops.pipeline", "_compile_recorded", "compile, bundle and record"),
    ("tiops.bundlereuse", "spliced", "splice"),
    ("tiops.pipeline", "write_line_runs", "write the bundle and its digests"),
    ("tiops.pipeline", "_keep_record", "write the record"),
    ("tiops.pipeline", "build", "build"),
)


class Timings:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.rows: dict[str, list[float]] = {}

    def wrap(self, module_name: str, attribute: str, label: str) -> None:
        owner: Any = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        function: Callable[..., Any] = getattr(owner, name)

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            try:
                return function(*args, **kwargs)
            finally:
                row = self.rows.setdefault(label, [0.0, 0.0, 0, 0])
                row[0] += time.perf_counter() - wall
                row[1] += time.process_time() - cpu
                row[2] += 1
                row[3] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults

        setattr(owner, name, timed)

    def report(self) -> None:
        print(f"total {time.perf_counter() - self.started:.3f} s", file=sys.stderr)
        for label, (wall, cpu, calls, faults) in self.rows.items():
            print(f"{label:34} {wall:7.3f} s wall {cpu:7.3f} s CPU x{calls:<3} {faults:7d} minor faults", file=sys.stderr)
        sys.stderr.flush()


def main() -> None:
    timings = Timings()
    for module_name, attribute, label in STAGES:
        timings.wrap(module_name, attribute, label)
    # The command line ends the process with os._exit (tiops.memory.end_without_freeing): report first.
    end, this_process = os._exit, os.getpid()

    def report_and_end(code: int) -> None:
        if os.getpid() == this_process:  # not in a forked helper, which ends with os._exit too
            timings.report()
        end(code)

    os._exit = report_and_end  # type: ignore[assignment]
    from tiops.__main__ import main as tiops_main

    sys.argv = ["tiops", *sys.argv[1:]]
    with contextlib.suppress(SystemExit):
        tiops_main()
    timings.report()


if __name__ == "__main__":
    main()
