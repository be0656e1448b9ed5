"""The plan/apply benchmark runs end to end on a small repository and prints both ratios."""

from __future__ import annotations

import glob
import re
import subprocess
from collections.abc import Callable

import pytest


def test_bench_plan_apply_prints_the_re_plan_and_apply_ratios(run_benchmark: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    result = run_benchmark("bench_plan_apply.py", "--size", "200", "--repeat", "1", "--stores", "sqlite")
    lines = result.stdout.splitlines()
    assert re.match(r"sqlite +\d+ objects +full compile +[\d.]+s +plan .* re-plan .* executemany +[\d.]+s", lines[0])
    assert int(lines[0].split()[1]) >= 200  # the generated repository, compiled (relationships included)
    assert re.search(r"re-plan / full compile = \d+\.\d\d", lines[1])
    assert re.search(r"apply / executemany += \d+\.\d\d", lines[2])
    assert re.search(r"apply / executemany, CPU = \d+\.\d\d +\([\d.]+s / [\d.]+s", lines[3])
    # The commands themselves, in the same run: a no-change `tiops plan` against `tiops compile --no-cache`.
    assert re.match(r"commands `tiops compile --no-cache` +[\d.]+s CPU +`tiops plan` .* [\d.]+s CPU", lines[-2])
    assert re.search(r"commands re-plan / full compile = \d+\.\d\d", lines[-1])
    assert "round 1 commands: tiops compile --no-cache" in result.stderr


@pytest.mark.skipif(not glob.glob("/usr/lib/postgresql/*/bin/initdb"), reason="PostgreSQL is not installed")
def test_bench_plan_apply_prints_apply_ratios_of_both_stores_in_one_run(
        run_benchmark: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    result = run_benchmark("bench_plan_apply.py", "--size", "200", "--repeat", "1", "--no-commands")
    ratios = re.findall(r"^(\w+) +apply / executemany += \d+\.\d\d", result.stdout, re.M)
    assert ratios == ["sqlite", "postgres"]
