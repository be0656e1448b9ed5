"""The commands that read the intel to edit or explain it (tag, relate, new, explain, enrich) go
through the build cache, on real repositories in temporary folders.

The cache must change only the time they take: what they read is what ``load_repo`` reads,
including files they edited themselves a moment before, and every output equals the
output with ``--no-cache``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tiops.buildcache import CACHE_DIR, load_intel
from tiops.cli import main
from tiops.load import IntelObject, Repo, load_repo
from tiops.locate import resolve_locations

ACTOR = "threat-actor--cf618f08-631e-441e-b7a2-b55718f2f176"  # Copper Lantern, in the example intel


def _described(repo: Repo) -> tuple[list[tuple[Any, ...]], list[Any]]:
    def one(obj: IntelObject) -> tuple[Any, ...]:
        return (obj.id, obj.file, tuple(obj.path), obj.data, obj.source, obj.defaults_files,
                obj.defaulted_properties, obj.declared_by, obj.imported_folder)

    # Findings read from the cache carry their line and column already; resolved, they are the same.
    return [one(obj) for obj in repo.objects], resolve_locations(repo.findings, repo.root)


def _tiops(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-C", str(root), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_load_intel_reads_what_load_repo_reads_cold_warm_and_after_edits(example_repo: Path) -> None:
    plain = _described(load_repo(example_repo))
    assert plain[0]
    assert _described(load_intel(example_repo)) == plain  # cold: writes the cache
    assert (example_repo / CACHE_DIR).is_dir()
    assert _described(load_intel(example_repo)) == plain  # warm
    assert _described(load_intel(example_repo, cache=False)) == plain

    edited = example_repo / "intel" / "actors" / "copper-lantern.yaml"
    edited.write_text(edited.read_text(encoding="utf-8").replace("name: ", "name: Renamed ", 1), encoding="utf-8")
    (example_repo / "intel" / "added.yaml").write_text(
        "type: tool\nspec_version: '2.1'\nid: tool--6e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b\n"
        "created: 2025-03-01T00:00:00.000Z\nmodified: 2025-03-01T00:00:00.000Z\nname: Rclone\n")
    after = _described(load_repo(example_repo))
    assert after != plain
    assert _described(load_intel(example_repo)) == after


def test_tag_and_relate_run_twice_through_the_cache_see_their_own_edits(example_repo: Path) -> None:
    _tiops(example_repo, "validate")  # a warm cache, as after any build
    code, first = _tiops(example_repo, "tag", "add", "reviewed", "--where", "type = indicator")
    assert code == 0
    summary = next(line for line in first.splitlines() if "object(s) changed" in line)
    assert int(summary.split()[0]) > 0  # (a note on stderr may follow: the team's objects need a bump)
    # The files the first run rewrote are read again, not taken from the cache: nothing left to tag.
    assert _tiops(example_repo, "tag", "add", "reviewed", "--where", "type = indicator") == (
        0, "0 object(s) changed in 0 file(s)\n")
    code, added = _tiops(example_repo, "relate", "Brass Wick", "targets", "Financial Services Sector",
                         "--time", "2025-03-04T10:00:00.000Z")
    assert code == 0 and "  + " in added
    code, again = _tiops(example_repo, "relate", "Brass Wick", "targets", "Financial Services Sector",
                         "--time", "2025-03-04T10:00:00.000Z")
    assert code == 0 and "  = " in again and "  + " not in again


def test_explain_and_new_give_the_output_of_no_cache(example_repo: Path) -> None:
    _tiops(example_repo, "validate")
    for args in (["explain", ACTOR], ["explain", "Copper Lantern", "--format", "json"],
                 ["new", "indicator", "--like", ACTOR, "--time", "2025-03-04T10:00:00.000Z", "--stdout"]):
        assert _tiops(example_repo, *args) == _tiops(example_repo, *args, "--no-cache")
    # An edit since the last build shows at once.
    actor = example_repo / "intel" / "actors" / "copper-lantern.yaml"
    actor.write_text(actor.read_text(encoding="utf-8").replace("name: ", "name: Renamed ", 1), encoding="utf-8")
    explained = _tiops(example_repo, "explain", ACTOR)
    assert "Renamed Copper Lantern" in explained[1]
    assert explained == _tiops(example_repo, "explain", ACTOR, "--no-cache")
