"""The build cache's fuzzer (benchmarks/fuzz_build_cache.py) compares like with like: a harness that
finds a difference in every case finds nothing, as one did when the messages began to show paths."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _fuzzer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_build_cache", BENCHMARKS / "fuzz_build_cache.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_build_through_the_cache_and_one_without_it_read_the_same_to_the_fuzzer(example_repo: Path) -> None:
    fuzz = _fuzzer()
    commands = [["compile"], ["validate", "--format", "json"]]
    cached = fuzz.run_commands(example_repo, commands, True, fuzz.BUNDLE)
    again = fuzz.run_commands(example_repo, commands, True, fuzz.BUNDLE)  # the cache warm now
    plain = fuzz.run_commands(example_repo, commands, False, fuzz.REFERENCE_BUNDLE)
    seen = [[(result["exit"], result["text"], result["bundle"], result["crash"]) for result in run]
            for run in (cached, again, plain)]
    assert seen[0] == seen[1] == seen[2]
    assert seen[0][0][0] == 0 and seen[0][0][2] is not None  # a bundle written, and digested
    assert "BUNDLE" in seen[0][0][1] and "RECORD" in seen[0][0][1]  # both paths shown, as the same names


def test_the_fuzzer_still_sees_a_difference(example_repo: Path) -> None:
    fuzz = _fuzzer()
    before = fuzz.run_commands(example_repo, [["compile"]], False, fuzz.REFERENCE_BUNDLE)
    edited = next((example_repo / "intel" / "malware").glob("*.yaml"))
    edited.write_text(edited.read_text(encoding="utf-8").replace("name: ", "name: Renamed ", 1), encoding="utf-8")
    after = fuzz.run_commands(example_repo, [["compile"]], True, fuzz.BUNDLE)
    assert before[0]["bundle"] != after[0]["bundle"]


def test_a_bundle_that_is_a_link_to_dev_zero_is_not_read_by_the_harness(example_repo: Path) -> None:
    """The damage "bundle is a dev-zero": the compile streams its bundle into the device, and the harness
    must not then read the device to digest it (it read forever, and the case timed out)."""
    fuzz = _fuzzer()
    bundle = example_repo / fuzz.BUNDLE
    bundle.parent.mkdir(parents=True, exist_ok=True)
    bundle.symlink_to("/dev/zero")
    # In a forked child the harness kills when it takes too long, as it runs every case.
    status, result = fuzz.forked(lambda: fuzz.run_commands(example_repo, [["compile"]], True, fuzz.BUNDLE), 20)
    assert status == "ok"
    assert result[0]["exit"] == 0 and result[0]["crash"] is None
    assert result[0]["bundle"] is None
