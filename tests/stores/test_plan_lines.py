"""A plan through the build cache reads its own bundle's lines (tiops.plan.CompiledLines, tiops.pipeline.compiled_lines)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_plan_apply import apply, indicator, plans_with_and_without_cache, write_repo

import tiops.pipeline
from tiops.apply import PLAN_BUNDLE, open_session
from tiops.bundlereuse import RECORD
from tiops.compile import WrittenBundle
from tiops.pipeline import build, compiled_lines
from tiops.plan import BundleDigests, CompiledLines, Plan

DROP_RULE = """\
- name: Drop the sinkholed
  order: 10
  when: {all: [{field: description, op: equals, value: sinkholed}]}
  actions:
    - {drop: true}
"""
# With a drop among the rules, one that moves what relationships point at makes lines depend on other objects.
MOVING_RULE = """\
- name: Point elsewhere
  order: 20
  object_types: [relationship]
  when: {all: [{field: relationship_type, op: equals, value: indicates}]}
  actions:
    - {set: {target_ref: malware--00000000-0000-4000-8000-000000000001}}
"""


def _sqlite(tmp_path: Path) -> dict[str, str]:
    return {"type": "sqlite", "path": str(tmp_path / "store.sqlite")}


def _plans(root: Path) -> tuple[Plan, Plan, Any]:
    """The plan through the cache, the plan without it, and the first session's compiled objects."""
    warm, cold, session, _ = plans_with_and_without_cache(root)
    return warm, cold, session.compiled


def _edit_one(root: Path, count: int, **change: Any) -> None:
    """Every indicator of ``count`` as written, the first with ``change`` (the one-file change of a merged pull request)."""
    write_repo(root, _sqlite(root.parent), [indicator(0, **change), *(indicator(n) for n in range(1, count))])


def test_a_plan_parses_only_the_lines_the_target_does_not_hold(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_repo(tmp_path / "repo", _sqlite(tmp_path), [indicator(n) for n in range(40)])
    apply(root)
    _edit_one(root, 41, description="sinkholed", modified="2025-02-01T00:00:00.000Z")
    parsed: list[str] = []
    line_object = CompiledLines.__getitem__

    def counted(self: CompiledLines, index: Any) -> Any:
        obj = line_object(self, index)
        parsed.append(obj["id"])
        return obj

    monkeypatch.setattr(CompiledLines, "__getitem__", counted)
    session = open_session(root)
    try:
        plan = session.plan()
    finally:
        session.close()
    assert isinstance(session.compiled, CompiledLines)
    assert (plan.counts["update"], plan.counts["create"], plan.counts["unchanged"]) == (1, 1, 40)
    # The updated object and the created one; the 40 others by their digests alone (the record of
    # the build, tiops.apply.recorded_objects, reads none of them either).
    assert sorted(set(parsed)) == sorted({indicator(0)["id"], indicator(40)["id"]})
    monkeypatch.undo()
    warm, cold, compiled = _plans(root)
    assert warm.to_json() == cold.to_json()
    assert BundleDigests.of_lines(compiled) == BundleDigests.of(list(compiled))


def test_the_plan_keeps_a_bundle_of_its_own_and_the_compile_keeps_its(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_repo(tmp_path / "repo", _sqlite(tmp_path), [indicator(n) for n in range(12)])
    dist = root / "dist" / "bundle.json"
    build(root, output=dist, cache=True)
    apply(root)  # the plan's first bundle: every line written
    spliced: list[Path] = []
    write_line_runs = tiops.pipeline.write_line_runs

    def spy(pieces: Any, target: Path, group_digests: bytes, **kwargs: Any) -> WrittenBundle:
        spliced.append(target)
        return write_line_runs(pieces, target, group_digests, **kwargs)

    monkeypatch.setattr(tiops.pipeline, "write_line_runs", spy)
    _edit_one(root, 12, description="moved", modified="2025-03-01T00:00:00.000Z")
    warm, cold, _ = _plans(root)
    assert warm.to_json() == cold.to_json() and warm.counts["update"] == 1
    # The plan took the unchanged lines from its last bundle, not from the compile's...
    assert spliced == [root / PLAN_BUNDLE]
    build(root, output=dist, cache=True)
    # ...and the compile still finds its own record: its one-file recompile splices too.
    assert spliced == [root / PLAN_BUNDLE, dist]
    assert dist.read_bytes() == build(root, output=tmp_path / "uncached.json").bundle_file.read_bytes()  # type: ignore[union-attr]
    assert (root / PLAN_BUNDLE).read_bytes() == dist.read_bytes()  # the same as-of time: the same bundle
    assert (root / ".tiops" / "build-cache" / RECORD).is_file()


@pytest.mark.parametrize("obstacle", ["folder is a file", "bundle replaced", "rules that move pointers"])
def test_a_plan_without_its_lines_builds_the_objects_and_plans_the_same(tmp_path: Path, obstacle: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_repo(tmp_path / "repo", _sqlite(tmp_path), [indicator(n) for n in range(8)])
    apply(root)
    if obstacle == "folder is a file":
        shutil.rmtree(root / PLAN_BUNDLE.parent)
        (root / PLAN_BUNDLE.parent).write_text("not a folder\n", encoding="utf-8")
    elif obstacle == "bundle replaced":  # another plan wrote its own bundle at the same moment
        read_lines = tiops.pipeline._read_lines

        def replaced(bundle: Path, lines: Any) -> Any:
            bundle.write_bytes(bundle.read_bytes().replace(b'"id":"bundle--', b'"id":"bundle--0', 1)[:-1])
            return read_lines(bundle, lines)

        monkeypatch.setattr(tiops.pipeline, "_read_lines", replaced)
    else:
        (root / "rules" / "ingestion").mkdir(parents=True)
        (root / "rules" / "ingestion" / "drop.yaml").write_text(DROP_RULE + MOVING_RULE, encoding="utf-8")
    _edit_one(root, 8, description="sinkholed", modified="2025-02-01T00:00:00.000Z")
    assert compiled_lines(root, root / PLAN_BUNDLE, "test-record") is None
    warm, cold, compiled = _plans(root)
    assert not isinstance(compiled, CompiledLines)
    assert warm.to_json() == cold.to_json()
    expected = (0, 0, 1, 8) if obstacle == "rules that move pointers" else (1, 0, 0, 8)
    assert (warm.counts["update"], warm.counts["create"], warm.counts["revoke"], warm.counts["unchanged"]) == expected


def test_a_plan_with_rules_that_drop_reads_lines_too(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", _sqlite(tmp_path), [indicator(n) for n in range(8)])
    (root / "rules" / "ingestion").mkdir(parents=True)
    (root / "rules" / "ingestion" / "drop.yaml").write_text(DROP_RULE, encoding="utf-8")
    apply(root)
    # Dropped, it is revoked; back, it cannot be versioned again (STIX 2.1 section 3.6): a warning.
    for description, counts in (("sinkholed", (0, 1, 8)), ("C2 address", (0, 0, 8))):
        _edit_one(root, 8, description=description, modified="2025-02-01T00:00:00.000Z")
        warm, cold, compiled = _plans(root)
        assert isinstance(compiled, CompiledLines)
        assert warm.to_json() == cold.to_json()
        assert (warm.counts["update"], warm.counts["revoke"], warm.counts["unchanged"]) == counts
        assert bool(warm.warnings) == (description == "C2 address")
        apply(root)


def test_compiled_lines_read_as_the_objects_they_hold(example_repo: Path, tmp_path: Path) -> None:
    # The example's rules drop objects (and what points at them): their lines are kept all the same.
    lines = compiled_lines(example_repo, tmp_path / "plan" / "bundle.json", "test-record")
    assert lines is not None
    bundle = json.loads((tmp_path / "plan" / "bundle.json").read_bytes())
    assert list(lines) == bundle["objects"] and len(lines) == len(bundle["objects"]) > 10
    assert lines.ids == [obj["id"] for obj in bundle["objects"]]
    assert lines[-1] == bundle["objects"][-1] and lines[2:5] == bundle["objects"][2:5]
    assert lines[3] is lines[3]  # read once, kept: a changed object is asked for by each step of a plan
    with pytest.raises(IndexError):
        lines[len(lines)]
    assert BundleDigests.of_lines(lines) == BundleDigests.of(bundle["objects"])
