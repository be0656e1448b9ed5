"""The enrichment benchmark runs end to end on small sizes and prints both figures."""

from __future__ import annotations

import subprocess
from collections.abc import Callable


def test_bench_enrich_prints_the_offline_and_compile_figures(run_benchmark: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    lines = run_benchmark("bench_enrich.py", "--ips", "300", "--objects", "200", "--repeat", "1",
                          "--modes", "no-cache,first,warm").stdout.splitlines()
    assert lines[0].startswith("offline enrichment of 300 new IPs (")
    assert "enrichment / baseline = " in lines[1]
    compile_lines = [line for line in lines if line.startswith("compile of 200 objects")]
    assert len(compile_lines) == 6 and all("-value lock" in line and "ratio" in line for line in compile_lines)
    assert [line.split("(")[1].split(";")[0] for line in compile_lines] == [
        "tiops compile --no-cache", "tiops compile --no-cache", "tiops compile, no build cache yet",
        "tiops compile, no build cache yet", "tiops compile, build cache warm", "tiops compile, build cache warm"]
    assert [line.split("; ")[1].split(",")[0] for line in compile_lines] == ["CPU", "wall"] * 3
    bytes_line = next(line for line in lines if line.startswith("  bundle bytes: "))
    without, with_lock = (int(part.split()[0]) for part in bytes_line.removeprefix("  bundle bytes: ").split(", "))
    assert with_lock > without  # the lock's results travel in the bundle
    values = int(compile_lines[0].split("with a ")[1].split("-value")[0])
    assert values > 50  # the lock holds a result for the values the generated intel names


def test_the_as_sources_are_compared_on_random_addresses(
        run_benchmark: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    run = run_benchmark("compare_as_sources.py", "--addresses", "400", "--examples", "2")
    rows = {line.split(" | ")[0][2:]: int(line.split(" | ")[1].replace(",", ""))
            for line in run.stdout.splitlines() if line.startswith("| ") and "---" not in line and "count" not in line}
    assert sum(rows.values()) == 400
    assert rows["both name an AS, alike"] > 100  # two sources of the same routing data mostly agree
    assert "ip-location-db asn" in run.stdout and "GeoLite2-CountryASN" in run.stdout
