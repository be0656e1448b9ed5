"""The compiled view's shortcuts never change an answer: column cuts, the one-pass build, freshness."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_query import OBJECTS

from tiops.query import Query, parse_query, query_fields, select
from tiops.query.sources import _find_newer, _newest
from tiops.query.view import EVERY_FIELD, MemoryView, StoredView, View, bundle_view

EXPRESSIONS = [
    "type = indicator",
    "type = indicator and confidence >= 50",
    "type in [malware, attack-pattern] and name contains lantern",
    "tags = c2 and tlp = amber",
    "indicator_types = malicious-activity and not confidence > 50",
    "observable_type = file and observable ends-with .exe",
    "external_id starts-with t08 and type = attack-pattern",
    "name matches '^(C2|Phish)' and confidence < 100",
    "confidence <= 40 and confidence > 39",
    "source = nobody and type = indicator",
    "type = indicator and observable = 1.2.3.4 and labels = apt",
    "created >= 2025-01-01 and type = identity",
]


def _views(tmp_path: Path) -> list[View]:
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": "bundle--33333333-3333-4333-8333-333333333333",
                                  "objects": OBJECTS}), encoding="utf-8")
    built = bundle_view(bundle, tmp_path / "cache")  # builds and keeps it
    kept = bundle_view(bundle, tmp_path / "cache")
    assert isinstance(kept, StoredView) and not isinstance(built, StoredView)
    return [MemoryView(OBJECTS), built, kept]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_the_column_cut_finds_what_testing_every_row_finds(tmp_path: Path, expression: str) -> None:
    everything = None
    for view in _views(tmp_path):
        query = parse_query(expression, seen=view.property_names)
        fields = query_fields(query)
        full = [row.id for row in select(view.rows(fields), Query(query.condition))]
        candidates = view.candidates(query.condition)
        assert candidates is not None  # every expression here has a test of one column to cut with
        cut = [row.id for row in select(view.rows(fields, only=candidates), Query(query.condition))]
        assert cut == full
        assert everything is None or full == everything  # the same answer from each kind of view
        everything = full
    assert everything or "nobody" in expression  # agreement on an empty answer alone proves little


def test_the_column_cut_is_a_cut(tmp_path: Path) -> None:
    view = _views(tmp_path)[-1]
    query = parse_query("type = indicator and confidence >= 50", seen=view.property_names)
    candidates = view.candidates(query.condition)
    assert candidates is not None and [view.rows([EVERY_FIELD], only=candidates)[0].id] == [OBJECTS[1]["id"]]
    assert view.candidates(parse_query("not type = indicator").condition) is None  # nothing to cut with


def test_the_one_pass_build_keeps_every_property_and_added_field(tmp_path: Path) -> None:
    one_pass = MemoryView(OBJECTS)
    one_pass.fill_columns()
    column_by_column = MemoryView(OBJECTS)
    for name in [*sorted(column_by_column.property_names), "observable", "observable_type", "external_id", "source"]:
        assert one_pass.column(name) == column_by_column.column(name), name


def test_find_and_the_python_walk_agree_on_freshness(tmp_path: Path) -> None:
    intel = tmp_path / "intel" / "deep" / "er"
    intel.mkdir(parents=True)
    (intel / "a.yaml").write_text("a", encoding="utf-8")
    bundle = tmp_path / "bundle.json"
    bundle.write_text("{}", encoding="utf-8")
    past = bundle.stat().st_mtime_ns - 10**9
    for path in (intel / "a.yaml", intel, intel.parent, tmp_path / "intel"):
        os.utime(path, ns=(past, past))
    built = bundle.stat().st_mtime_ns
    assert _find_newer([tmp_path / "intel"], bundle) is False and _newest(tmp_path / "intel") <= built
    # An edit in place: the file's time moves, its folders' do not.
    later = built + 10**9
    os.utime(intel / "a.yaml", ns=(later, later))
    assert _find_newer([tmp_path / "intel"], bundle) is True and _newest(tmp_path / "intel") > built


def test_latest_versions_of_an_ordered_bundle_and_of_any_other_agree() -> None:
    from tiops.query.view import latest_versions

    ordered = sorted(OBJECTS, key=lambda o: (o["type"], o["id"]))
    assert latest_versions(ordered) == ordered  # one version each, in order: taken as it is
    older = {**ordered[2], "name": "Old", "modified": "2024-01-01T00:00:00.000Z"}
    shuffled = [ordered[3], older, *reversed(ordered)]
    assert latest_versions(shuffled) == ordered  # duplicates and disorder: the full reading
    assert latest_versions([*ordered, older]) == ordered
