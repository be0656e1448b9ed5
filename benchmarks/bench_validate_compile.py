"""Time ``tiops validate`` and ``tiops compile`` on synthetic repositories.

    python benchmarks/bench_validate_compile.py [--sizes 10000,100000] [--repeat 3]
                                                [--baseline-sample 2000] [--seed 1]
                                                [--fork both|off|on|auto]

For each size N a repository of N objects is generated into a temporary folder
(not timed), then:

* validate = ``load_repo`` + ``validate_repo``
* compile  = ``load_repo`` + ``validate_repo`` + ``compile_bundle``

each run with the cyclic garbage collector paused, as ``tiops validate`` and
``tiops compile`` run them (``tiops.memory.paused_gc``), each timed with ``time.perf_counter`` and kept as the best of ``--repeat`` runs.

The baseline is the OASIS reference validator, ``stix2validator.validate_instance``,
run in the same process over a random sample of the same objects (it takes a few
milliseconds per object, so the whole set would take minutes). Its per-object
cost is extrapolated to N. Absolute times depend on the machine; the speed-up
ratio against a baseline measured in the same run is the figure to compare.

A second baseline is the raw YAML parse of the same files: reading every object file
and parsing it with yaml-rs, nothing else, in this process. The last lines print
validate + compile (the compile run: load, checks, bundle) against the 5-second goal
for 100,000 objects, scaled to N, and as a multiple of that raw parse. CPU time counts
child processes too, so work moved to another process cannot hide from the figure.

``--fork`` chooses how loading uses a second core (tiops.load.fork_helper, docs/ci.md):
``off`` and ``on`` set TIOPS_LOAD_FORK=0 and =1 for every run, ``auto`` leaves the choice
to tiops, and ``both`` (the default) alternates off and on within each repeat, so the two
are measured in the same run and printed side by side with their ratio. Loading is given
the per-object check, as ``tiops validate`` and ``tiops compile`` give it.
"""

from __future__ import annotations

import argparse
import functools
import gc
import inspect
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import generate_repo

MIN_REPEAT, MAX_REPEAT = 1, 3
FORK_CHOICES = ("both", "off", "on", "auto")
# TIOPS_LOAD_FORK for each measured mode; None leaves it unset (tiops decides).
FORK_SETTINGS = {"off": "0", "on": "1", "auto": None}
# Validating and compiling 100,000 objects takes at most this long (wall clock).
TARGET_SECONDS_PER_100K = 5.0


@dataclass(frozen=True)
class TiopsApi:
    """The three tiops entry points the benchmark times, and the collector pause around them."""

    load_repo: Callable[[Path], Any]
    validate_repo: Callable[[Any], list[Any]]
    compile_bundle: Callable[[Any], bytes]
    paused_gc: Callable[[], AbstractContextManager[None]]


@dataclass(frozen=True)
class Phases:
    """Seconds spent in each stage of one compile run."""

    load: float
    validate: float
    compile: float

    @property
    def total(self) -> float:
        return self.load + self.validate + self.compile


@dataclass(frozen=True)
class SizeResult:
    objects: int
    fork: str  # "off", "on" or "auto" (FORK_SETTINGS)
    validate_seconds: float
    compile_seconds: float
    phases: Phases
    compile_cpu_seconds: float
    raw_parse_seconds: float
    baseline_sample: int
    baseline_seconds: float
    baseline_invalid: int
    error_findings: int
    warning_findings: int
    bundle_bytes: int

    @property
    def baseline_objects_per_second(self) -> float:
        return self.baseline_sample / self.baseline_seconds

    @property
    def validate_objects_per_second(self) -> float:
        return self.objects / self.validate_seconds

    @property
    def compile_objects_per_second(self) -> float:
        return self.objects / self.compile_seconds

    @property
    def speed_up(self) -> float:
        return self.validate_objects_per_second / self.baseline_objects_per_second


def import_tiops() -> TiopsApi:
    """The tiops API, or a clear exit when it is not installed or incomplete."""
    try:
        from tiops.compile import compile_bundle
        from tiops.load import load_repo
        from tiops.memory import paused_gc
        from tiops.validate import validate_repo
        from tiops.validate.objects import check_object
    except ImportError as error:
        raise SystemExit(
            "benchmark needs tiops.load.load_repo, tiops.validate.validate_repo and "
            f"tiops.compile.compile_bundle, which could not be imported: {error}\n"
            "Run it from the repository root with tiops installed (pip install -e .)."
        ) from error
    if "check" in inspect.signature(load_repo).parameters:  # the per-object check runs while loading
        load = functools.partial(load_repo, check=check_object)
    else:  # a checkout from before it did (a baseline run through PYTHONPATH)
        load = load_repo
    return TiopsApi(load_repo=load, validate_repo=validate_repo, compile_bundle=compile_bundle, paused_gc=paused_gc)


def time_validate(api: TiopsApi, root: Path) -> tuple[float, list[Any]]:
    with api.paused_gc():  # as tiops.validate.validate_paths does for `tiops validate`
        start = time.perf_counter()
        repo = api.load_repo(root)
        findings = api.validate_repo(repo)
        return time.perf_counter() - start, findings


def cpu_seconds() -> float:
    """User + system CPU of this process and of the children it has waited for."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def time_raw_parse(root: Path) -> float:
    """Seconds to read and parse every object file of ``root`` with yaml-rs alone."""
    import yaml_rs

    start = time.perf_counter()
    for directory, subdirs, files in os.walk(root / "intel"):
        subdirs.sort()
        for name in sorted(files):
            if name.endswith((".yaml", ".yml")) and name != "_defaults.yaml":
                with open(os.path.join(directory, name), "rb") as handle:
                    yaml_rs.loads(handle.read().decode("utf-8"), parse_datetime=False)
    return time.perf_counter() - start


def time_compile(api: TiopsApi, root: Path) -> tuple[Phases, bytes]:
    with api.paused_gc():  # as tiops.build does for `tiops compile`
        start = time.perf_counter()
        repo = api.load_repo(root)
        loaded = time.perf_counter()
        api.validate_repo(repo)
        validated = time.perf_counter()
        bundle = api.compile_bundle(repo)
        compiled = time.perf_counter()
    return Phases(loaded - start, validated - loaded, compiled - validated), bundle


def time_baseline(
    objects: Sequence[dict[str, Any]], sample_size: int, seed: int
) -> tuple[int, float, int]:
    """(sample size, seconds, invalid objects) for the reference validator on a sample."""
    from stix2validator import ValidationOptions, validate_instance

    sample = random.Random(seed).sample(list(objects), min(sample_size, len(objects)))
    options = ValidationOptions(version="2.1")
    invalid = 0
    start = time.perf_counter()
    for obj in sample:
        if not validate_instance(obj, options).is_valid:
            invalid += 1
    return len(sample), time.perf_counter() - start, invalid


def severity_counts(findings: Sequence[Any]) -> Counter[str]:
    return Counter(str(getattr(finding, "severity", "unknown")) for finding in findings)


def set_fork(mode: str) -> None:
    """TIOPS_LOAD_FORK as ``mode`` says (FORK_SETTINGS)."""
    setting = FORK_SETTINGS[mode]
    if setting is None:
        os.environ.pop("TIOPS_LOAD_FORK", None)
    else:
        os.environ["TIOPS_LOAD_FORK"] = setting


def bench_size(
    api: TiopsApi, n: int, *, seed: int, repeat: int, baseline_sample: int, bulk_share: float,
    modes: Sequence[str] = ("auto",),
) -> list[SizeResult]:
    """One result per fork mode in ``modes``, the modes alternating within each repeat."""
    validate_runs: dict[str, list[float]] = {mode: [] for mode in modes}
    compile_runs: dict[str, list[tuple[Phases, float]]] = {mode: [] for mode in modes}
    findings: dict[str, list[Any]] = {}
    bundles: dict[str, bytes] = {}
    raw_parse_runs: list[float] = []
    before = os.environ.get("TIOPS_LOAD_FORK")
    try:
        with tempfile.TemporaryDirectory(prefix="tiops-bench-") as temp:
            root = Path(temp)
            intel = generate_repo.write_repository(root, n, seed, bulk_share)
            # The reference validator's sample, taken now: the generated objects are not held
            # while tiops runs (a forked helper would share, and copy, a heap as large as them).
            expanded = list(intel.expanded_objects())
            sample_objects = random.Random(seed).sample(expanded, min(baseline_sample, len(expanded)))
            del intel, expanded
            for _ in range(repeat):
                raw_parse_runs.append(time_raw_parse(root))
                for mode in modes:
                    set_fork(mode)
                    gc.collect()  # what earlier runs left is not carried into this one
                    seconds, findings[mode] = time_validate(api, root)
                    validate_runs[mode].append(seconds)
                    cpu = cpu_seconds()
                    phases, bundles[mode] = time_compile(api, root)
                    compile_runs[mode].append((phases, cpu_seconds() - cpu))
    finally:
        if before is None:
            os.environ.pop("TIOPS_LOAD_FORK", None)
        else:
            os.environ["TIOPS_LOAD_FORK"] = before
    if len(set(bundles.values())) > 1 or len({repr(found) for found in findings.values()}) > 1:
        raise SystemExit(f"the bundles or findings of {', '.join(modes)} differ: loading with a helper changed the output")
    sample, baseline_seconds, invalid = time_baseline(sample_objects, baseline_sample, seed)
    results = []
    for mode in modes:
        counts = severity_counts(findings[mode])
        best_compile, best_compile_cpu = min(compile_runs[mode], key=lambda run: run[0].total)
        results.append(SizeResult(
            objects=n,
            fork=mode,
            validate_seconds=min(validate_runs[mode]),
            compile_seconds=best_compile.total,
            phases=best_compile,
            compile_cpu_seconds=best_compile_cpu,
            raw_parse_seconds=min(raw_parse_runs),
            baseline_sample=sample,
            baseline_seconds=baseline_seconds,
            baseline_invalid=invalid,
            error_findings=counts["error"],
            warning_findings=counts["warning"],
            bundle_bytes=len(bundles[mode]),
        ))
    return results


def format_table(results: Sequence[SizeResult]) -> str:
    header = (
        "objects",
        "helper",
        "validate s",
        "validate obj/s",
        "compile s",
        "compile obj/s",
        "stix2-validator obj/s",
        "speed-up",
    )
    rows = [
        (
            f"{r.objects:,}",
            r.fork,
            f"{r.validate_seconds:.2f}",
            f"{r.validate_objects_per_second:,.0f}",
            f"{r.compile_seconds:.2f}",
            f"{r.compile_objects_per_second:,.0f}",
            f"{r.baseline_objects_per_second:,.0f}",
            f"{r.speed_up:.1f}x",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_notes(results: Sequence[SizeResult]) -> str:
    lines = []
    for r in results:
        p = r.phases
        lines.append(
            f"{r.objects:,} objects, helper {r.fork}: compile time split load {p.load / p.total:.0%}, "
            f"validate {p.validate / p.total:.0%}, compile {p.compile / p.total:.0%}; "
            f"findings: {r.error_findings} errors, {r.warning_findings} warnings; "
            f"bundle {r.bundle_bytes / 1e6:.1f} MB"
        )
        extrapolated = r.baseline_seconds / r.baseline_sample * r.objects
        lines.append(
            f"  stix2-validator: {r.baseline_sample:,}-object sample in {r.baseline_seconds:.2f} s "
            f"({r.baseline_seconds / r.baseline_sample * 1000:.2f} ms/object, "
            f"{r.baseline_invalid} invalid), extrapolated to {extrapolated:.0f} s for {r.objects:,} objects"
        )
    return "\n".join(lines)


def format_target(results: Sequence[SizeResult]) -> str:
    """Validate + compile against the 5 s goal for 100k objects, and against the raw YAML parse."""
    lines = []
    by_size: dict[int, dict[str, SizeResult]] = {}
    for r in results:
        target = TARGET_SECONDS_PER_100K * r.objects / 100_000
        lines.append(
            f"{r.objects:,} objects, helper {r.fork}: validate + compile {r.compile_seconds:.2f} s "
            f"({r.compile_cpu_seconds:.2f} s CPU, the helper's included), "
            f"{r.compile_seconds / target:.2f}x the goal of {target:.1f} s; "
            f"raw YAML parse of the same files {r.raw_parse_seconds:.2f} s, "
            f"validate + compile = {r.compile_seconds / r.raw_parse_seconds:.2f}x it"
        )
        by_size.setdefault(r.objects, {})[r.fork] = r
    for objects, modes in by_size.items():
        if "off" in modes and "on" in modes:
            off, on = modes["off"], modes["on"]
            lines.append(
                f"{objects:,} objects, helper on / off (same run): validate + compile wall "
                f"{on.compile_seconds / off.compile_seconds:.2f}x, CPU {on.compile_cpu_seconds / off.compile_cpu_seconds:.2f}x; "
                f"validate wall {on.validate_seconds / off.validate_seconds:.2f}x"
            )
    return "\n".join(lines)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"sizes must be comma-separated integers: {text!r}"
        ) from error
    if not sizes or min(sizes) < generate_repo.MIN_OBJECTS:
        raise argparse.ArgumentTypeError(f"every size must be at least {generate_repo.MIN_OBJECTS}")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark tiops validate and compile against stix2-validator."
    )
    parser.add_argument(
        "--sizes", type=parse_sizes, default=[10_000, 100_000], help="comma-separated object counts"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        choices=range(MIN_REPEAT, MAX_REPEAT + 1),
        help="best of this many runs",
    )
    parser.add_argument(
        "--baseline-sample", type=int, default=2000, help="objects given to stix2-validator"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bulk-share", type=float, default=0.5)
    parser.add_argument(
        "--fork", choices=FORK_CHOICES, default="both",
        help="loading with a forked helper: off, on, as tiops decides (auto), or off and on alternating (both)",
    )
    args = parser.parse_args(argv)
    if args.baseline_sample < 1:
        parser.error("--baseline-sample must be at least 1")

    api = import_tiops()
    results = []
    for n in args.sizes:
        print(f"benchmarking {n:,} objects ...", file=sys.stderr, flush=True)
        results.extend(
            bench_size(
                api,
                n,
                seed=args.seed,
                repeat=args.repeat,
                baseline_sample=args.baseline_sample,
                bulk_share=args.bulk_share,
                modes=("off", "on") if args.fork == "both" else (args.fork,),
            )
        )
    print(format_table(results))
    print()
    print(format_notes(results))
    print()
    print(format_target(results))
    print()
    print(
        "Times are the best of the runs; the stix2-validator figure is measured on a sample "
        "in the same run and extrapolated per object. Compare ratios, not absolute times."
    )
    if any(r.error_findings for r in results):
        print("warning: tiops reported errors on the generated repository", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
