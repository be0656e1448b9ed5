"""The apply CPU benchmark runs on a small compiled bundle, writes every object and prints the ratio."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson


def test_bench_apply_cpu_prints_apply_against_executemany(
        run_benchmark: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    objects = [
        {"type": "indicator", "spec_version": "2.1", "id": f"indicator--00000000-0000-4000-8000-{n:012d}",
         "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "name": f"C2 {n}",
         "pattern": f"[ipv4-addr:value = '10.0.0.{n}']", "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z"}
        for n in range(1, 51)
    ]
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(orjson.dumps({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000",
                                     "objects": objects}))
    result = run_benchmark("bench_apply_cpu.py", str(bundle), "--repeat", "2")
    first, ratio = result.stdout.splitlines()
    assert re.match(r"sqlite 50 objects +apply [\d.]+s CPU +executemany [\d.]+s CPU +store \d+ MB +bare table \d+ MB", first)
    assert re.match(r"sqlite apply / executemany, CPU = \d+\.\d\d", ratio)
    assert result.stderr.count("round ") == 2
