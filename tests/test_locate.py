"""Findings placed at line and column, and the positions the build cache keeps for the next build."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import tiops.locate as locate
from tiops.buildcache import CACHE_DIR
from tiops.cli import main

ACTOR = "threat-actor--cf618f08-631e-441e-b7a2-b55718f2f176"  # Copper Lantern, in the example intel
IDENTITY = "identity--37b642bc-2a70-4a68-95be-01d34287e426"  # Woodgrove Bank


def _add_unlisted_relationships(root: Path, count: int) -> list[Path]:
    """Relationships the relationship table does not allow (TI400, a repository-wide check), one per file."""
    files = []
    for n in range(count):
        path = root / "intel" / "relationships" / f"odd-{n}.yaml"
        path.write_text(
            "# a relationship the table does not list\n"
            f"type: relationship\nspec_version: '2.1'\nid: relationship--{n:08d}-1111-4111-8111-111111111111\n"
            "created: 2025-03-01T00:00:00.000Z\nmodified: 2025-03-01T00:00:00.000Z\n"
            f"relationship_type: impersonates\nsource_ref: {IDENTITY}\ntarget_ref: {ACTOR}\n", encoding="utf-8")
        files.append(path)
    return files


def _finding_lines(root: Path, *args: str) -> list[str]:
    result = CliRunner().invoke(main, ["-C", str(root), "validate", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return [line for line in result.output.splitlines() if ": warning TI" in line or ": error TI" in line]


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    parsed: list[int] = []
    original = locate.PositionIndex

    def counting(text: str) -> locate.PositionIndex:
        parsed.append(1)
        return original(text)

    monkeypatch.setattr(locate, "PositionIndex", counting)
    return parsed


def test_kept_positions_place_findings_as_parsing_does_and_follow_edits(example_repo: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    files = _add_unlisted_relationships(example_repo, 3)
    uncached = _finding_lines(example_repo, "--no-cache")
    assert sum("TI400" in line for line in uncached) == 3
    assert all(":7:1: " in line for line in uncached if "TI400" in line)  # at relationship_type, below the comment

    parsed = _count_parses(monkeypatch)
    assert _finding_lines(example_repo) == uncached  # the first build through the cache keeps the positions
    assert (example_repo / CACHE_DIR / locate.POSITIONS_RECORD).is_file()
    first = len(parsed)
    assert first >= 3
    assert _finding_lines(example_repo) == uncached
    assert len(parsed) == first  # the next build parses none of them again

    # Two more comment lines in one file move its finding: its bytes changed, so it is parsed again.
    files[1].write_text("# moved\n# down\n" + files[1].read_text(encoding="utf-8"), encoding="utf-8")
    moved = _finding_lines(example_repo)
    assert len(parsed) == first + 1
    assert moved == _finding_lines(example_repo, "--no-cache")
    assert any(f"{files[1].name}:9:1: " in line and "TI400" in line for line in moved)
    # validate FILE takes the same positions.
    named = _finding_lines(example_repo, str(files[2]))
    assert named and all(files[2].name in line for line in named)
    assert named == [line for line in moved if files[2].name in line]


@pytest.mark.parametrize("body", [b"not marshal", None])
def test_a_damaged_or_odd_positions_record_is_not_trusted(example_repo: Path, body: bytes | None) -> None:
    _add_unlisted_relationships(example_repo, 2)
    expected = _finding_lines(example_repo, "--no-cache")
    _finding_lines(example_repo)
    record = example_repo / CACHE_DIR / locate.POSITIONS_RECORD
    if body is not None:
        record.write_bytes(body)
    else:  # well checksummed but holding positions of another shape: what a future tiops might write
        from tiops.buildcache import BuildCache, context_key

        cache = BuildCache.open(example_repo, context_key(example_repo))
        kept = cache.read_record(locate.POSITIONS_RECORD)
        assert kept is not None
        odd = {digest: {path: "line 3" for path in places} for digest, places in kept["files"].items()}
        cache.write_record(locate.POSITIONS_RECORD, {"files": odd})
    assert _finding_lines(example_repo) == expected
    assert _finding_lines(example_repo) == expected


def test_the_record_keeps_the_latest_files_first_up_to_its_limit(example_repo: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locate, "KEPT_FILES", 3)
    files = _add_unlisted_relationships(example_repo, 2)
    _finding_lines(example_repo)
    for n in range(3):  # three edits of one file: three contents placed one after the other
        files[0].write_text(f"# edit {n}\n" + files[0].read_text(encoding="utf-8"), encoding="utf-8")
        _finding_lines(example_repo)
    from tiops.buildcache import BuildCache, context_key

    kept = BuildCache.open(example_repo, context_key(example_repo)).read_record(locate.POSITIONS_RECORD)
    assert kept is not None and len(kept["files"]) == 3
    import hashlib

    digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in files]
    assert set(digests) <= set(kept["files"])  # what the latest build placed is always kept


def test_a_helper_forked_during_a_build_keeps_no_positions(tmp_path: Path) -> None:
    import os
    from typing import Any

    from tiops.findings import Finding, Location, Severity

    class Records:
        def __init__(self) -> None:
            self.written: list[int] = []

        def read_record(self, name: str) -> dict[str, Any] | None:
            return None

        def write_record(self, name: str, body: dict[str, Any]) -> None:
            self.written.append(os.getpid())

    (tmp_path / "a.yaml").write_text("type: tool\nname: x\nlabels: [a, b]\n", encoding="utf-8")
    finding = Finding("TI209", Severity.WARNING, "m", Location("a.yaml", path=("labels", 1)))
    records = Records()
    with locate.kept_positions(records):
        child = os.fork()
        if child == 0:  # a forked helper: places the finding, keeps nothing
            placed = locate.resolve_locations([finding], tmp_path)[0].location
            os._exit(0 if (placed.line, placed.column) == (3, 13) and not records.written else 1)
        _, status = os.waitpid(child, 0)
        placed = locate.resolve_locations([finding], tmp_path)[0].location
    assert os.waitstatus_to_exitcode(status) == 0
    assert (placed.line, placed.column) == (3, 13)
    assert records.written == [os.getpid()]
