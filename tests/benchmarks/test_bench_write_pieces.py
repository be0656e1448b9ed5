"""The write-size and rename benchmarks and the stage timer run end to end as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tiops.memory import WRITE_PIECE


def test_every_piece_size_is_measured_against_the_one_tiops_writes(
        tmp_path: Path, run_benchmark: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    run = run_benchmark("bench_write_pieces.py", "--folder", str(tmp_path), "--megabytes", "3",
                        "--rounds", "1", "--pause", "0")
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ") and "KiB" in line]
    assert [row.split(" | ")[0] for row in rows] == ["| 8192 KiB", "| 4096 KiB", "| 2048 KiB",
                                                     f"| {WRITE_PIECE >> 10} KiB (tiops)", "| 256 KiB",
                                                     "| 64 KiB", "| 16 KiB"]
    assert rows[3].endswith("| 1.00x |")
    assert list(tmp_path.iterdir()) == []  # each file written is removed


def test_the_stage_timer_times_a_one_file_recompile_through_the_cache(example_repo: Path, tmp_path: Path) -> None:
    repo = example_repo
    compile_command = ["-C", str(repo), "compile", "--as-of", "2025-06-01", "-o", str(tmp_path / "bundle.json")]
    subprocess.run([sys.executable, "-m", "tiops", *compile_command], check=True, capture_output=True)
    edited = repo / "intel" / "actors" / "copper-lantern.yaml"
    text = edited.read_text(encoding="utf-8")
    assert "\nname: " in text
    edited.write_text(text.replace("\nname: ", "\nname: Edited ", 1), encoding="utf-8")
    timer = Path(__file__).resolve().parents[2] / "benchmarks" / "stage_times.py"
    run = subprocess.run([sys.executable, str(timer), *compile_command], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert sum(line.startswith("total ") for line in lines) == 1  # the forked helper reports nothing
    stages = {line[:34].strip(): line for line in lines if " s wall " in line}
    assert {"load through the cache", "checks", "splice", "write the bundle and its digests", "build"} <= stages.keys()
    assert "Edited " in (tmp_path / "bundle.json").read_text(encoding="utf-8")


def test_the_rename_benchmark_sets_rename_over_against_os_replace(
        tmp_path: Path, run_benchmark: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    run = run_benchmark("bench_rename_over.py", "--folder", str(tmp_path), "--megabytes", "2",
                        "--rounds", "1", "--pause", "0", "--work-ms", "5")
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ") and " ms |" in line]
    assert [row.split(" | ")[0] for row in rows] == ["| os.replace", "| rename_over (tiops)"]
    assert rows[0].count("| 1.00x |") == 2  # the baseline against itself
    assert (tmp_path / "bundle.json").exists() is False and list(tmp_path.iterdir()) == []
