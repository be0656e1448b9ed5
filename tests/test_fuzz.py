"""A bounded fuzz run of every input kind (benchmarks/fuzz.py has the long night run).

Repository YAML, bundle JSON, file-system layouts and Sentinel CSV, generated and
mutated by Hypothesis, go through the real commands: no exit 3, no traceback, no
hang, and every failure names where it is. A few dozen cases per kind keep the whole
file under a minute.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings

FUZZ_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz.py"
CASES = {"yaml": 40, "bundle": 60, "layout": 40, "csv": 60}


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tiops_fuzz", FUZZ_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tiops_fuzz"] = module
    spec.loader.exec_module(module)
    return module


fuzz = _load()


@pytest.mark.parametrize("kind", sorted(CASES))
def test_no_input_crashes_hangs_or_fails_without_a_location(kind: str) -> None:
    @settings(max_examples=CASES[kind], deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(fuzz.KINDS[kind]())
    def run(case: object) -> None:
        fuzz.run_case(case, timeout=30)

    run()


@pytest.mark.parametrize("kind", ["bundle", "csv"])
def test_the_seed_input_really_runs_the_commands(kind: str) -> None:
    # A harness whose commands never reach tiops (a wrong path, exit 2) would pass everything.
    if kind == "bundle":
        case = fuzz.Case({"b.json": fuzz.BUNDLE}, [["validate", "b.json", "--format", "json"],
                                                     ["import", "b.json", "--format", "stix", "--source", "Fuzz"]])
    else:
        data = (",".join(fuzz.CSV_COLUMNS) + "\n" + ",".join(f'"{c}"' for c in fuzz.CSV_ROW) + "\n").encode()
        case = fuzz.Case({"feed.csv": data}, [["import", "feed.csv", "--format", "sentinel-csv", "--source", "Fuzz"]], csv=data)
    fuzz.run_case(case)
    assert [result.exit_code for result in fuzz.last_results] == [0] * len(case.commands)
    assert "created 1" in fuzz.last_results[-1].output or "created 2" in fuzz.last_results[-1].output


def test_the_checks_catch_an_internal_error(tmp_path: Path) -> None:
    # The harness itself must fail on exit 3: a bundle item whose type is a list used to crash validate.
    broken = fuzz.Case({"b.json": '[{"type": ["indicator"], "id": "x"}]'}, [["validate", "b.json", "--format", "json"]])
    fuzz.run_case(broken)  # fixed: passes
    with pytest.raises(fuzz.Defect, match="exit 3"):
        fuzz._check(["validate"], _Result(exit_code=3, stdout="tiops: internal error (this is a bug)"))
    with pytest.raises(fuzz.Defect, match="without a location"):
        fuzz._check(["validate"], _Result(exit_code=1, stdout='{"findings": [{"file": "", "line": 0, "column": 0}]}'))


class _Result:
    def __init__(self, exit_code: int, stdout: str) -> None:
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = ""
        self.stderr_bytes = b""
        self.exception = None
