"""References to what ingestion rules dropped (TI514), the same on every build route."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops.cli import main
from tiops.pipeline import build

FABRIKAM = "identity--3b241a2b-0f6e-45f2-8247-30783a977105"  # every object's created_by_ref (intel/_defaults.yaml)
DROP_IDENTITY = """\
- name: Drop our identity
  order: 90
  when: {all: [{field: name, op: equals, value: Fabrikam CTI}]}
  actions: [{drop: true}]
"""


def _warnings(root: Path, *, cache: bool) -> list[tuple[str, str, int | None, str | None, str]]:
    result = build(root, as_of="2025-06-01", cache=cache, output=root / "dist" / "bundle.json")
    return [(f.code, f.location.file, f.location.line, f.stix_id, f.message) for f in result.findings if f.code == "TI514"]


def test_a_reference_to_a_dropped_object_is_a_warning_on_every_route(example_repo: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import tiops.pipeline

    spliced: list[int] = []  # the warm builds that took the previous bundle's lines
    through_indexes = tiops.pipeline._dropped_references_indexed
    monkeypatch.setattr(tiops.pipeline, "_dropped_references_indexed",
                        lambda *args: spliced.append(1) or through_indexes(*args))
    (example_repo / "rules" / "ingestion" / "drop-identity.yaml").write_text(DROP_IDENTITY, encoding="utf-8")
    uncached = _warnings(example_repo, cache=False)
    assert uncached and all(FABRIKAM in message for *_, message in uncached)
    assert all(stix_id != FABRIKAM for _, _, _, stix_id, _ in uncached)  # the dropped object itself says nothing
    assert all(line for _, _, line, _, _ in uncached)  # each at its place, not at the file as a whole
    assert _warnings(example_repo, cache=True) == uncached  # a first build, writing the cache
    assert _warnings(example_repo, cache=True) == uncached  # a warm build, lines of the previous bundle reused
    assert len(spliced) == 1
    # One file changed, read again; the others' references come from their indexes.
    actor = example_repo / "intel" / "actors" / "copper-lantern.yaml"
    actor.write_text(actor.read_text(encoding="utf-8") + "x_analyst_note: seen again\n", encoding="utf-8")
    stamp = time.time() - 10
    os.utime(actor, (stamp, stamp))
    changed = _warnings(example_repo, cache=True)
    assert changed == _warnings(example_repo, cache=False)
    assert [w for w in changed if w[1] == "intel/actors/copper-lantern.yaml"]
    assert len(spliced) == 2


def test_compile_shows_what_the_rules_left_dangling(example_repo: Path) -> None:
    result = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "--as-of", "2025-06-01"])
    assert result.exit_code == 0 and "TI514" not in result.output  # the example's own drops leave nothing dangling
    (example_repo / "rules" / "ingestion" / "drop-identity.yaml").write_text(DROP_IDENTITY, encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "--as-of", "2025-06-01"])
    assert result.exit_code == 0
    assert f"warning TI514 reference-to-dropped: created_by_ref names {FABRIKAM}, which an ingestion rule dropped" \
        in result.stderr
    shown = result.stderr.count("warning TI514")
    assert shown > 0 and f"{shown} warning(s))" in result.stdout  # the example has no other warning


def _references_to(value: object, target: str) -> int:
    """How many *_ref / *_refs values anywhere in ``value`` name ``target``."""
    if isinstance(value, dict):
        return sum((item == target or (isinstance(item, list) and item.count(target)))
                   if key.endswith(("_ref", "_refs")) else _references_to(item, target) for key, item in value.items())
    if isinstance(value, list):
        return sum(_references_to(item, target) for item in value)
    return 0


def test_references_past_the_first_ten_to_one_dropped_object_are_one_finding(example_repo: Path) -> None:
    import json

    from tiops.rules.dropped import LISTED_PER_TARGET

    build(example_repo, as_of="2025-06-01", cache=False, output=example_repo / "dist" / "bundle.json")
    objects = json.loads((example_repo / "dist" / "bundle.json").read_text(encoding="utf-8"))["objects"]
    named = sum(_references_to(obj, FABRIKAM) for obj in objects if obj["id"] != FABRIKAM)
    assert named > LISTED_PER_TARGET + 1
    (example_repo / "rules" / "ingestion" / "drop-identity.yaml").write_text(DROP_IDENTITY, encoding="utf-8")
    for cache in (False, True, True):
        warnings = _warnings(example_repo, cache=cache)
        listed = [w for w in warnings if w[3] is not None]
        summary = [w for w in warnings if w[3] is None]
        assert len(listed) == LISTED_PER_TARGET and len(summary) == 1
        assert f"{FABRIKAM}, which an ingestion rule dropped, is named by {named - LISTED_PER_TARGET} more references in" \
            in summary[0][4]
