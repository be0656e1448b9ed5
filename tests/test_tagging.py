from __future__ import annotations

import difflib
from pathlib import Path

from tiops.load import load_repo
from tiops.tagging import tag_objects
from tiops.where import parse_where


def _snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted((root / "intel").rglob("*.yaml"))}


def test_tagging_changes_only_the_labels_of_matching_objects(example_repo: Path) -> None:
    before = _snapshot(example_repo)
    changes = tag_objects(example_repo, "add", ["reviewed"], condition=parse_where("type = indicator and confidence >= 80"))
    assert changes
    after = _snapshot(example_repo)
    for name in before:
        diff = [line for line in difflib.unified_diff(before[name].splitlines(), after[name].splitlines(), lineterm="", n=0)
                if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        if name not in {change.file for change in changes}:
            assert diff == [], name
            continue
        # Every line that changed is a labels line or a new "- reviewed" item: comments,
        # quoting, timestamps and the other objects of the file keep their exact bytes.
        assert diff and all("labels" in line or line.strip() in {"+- reviewed", "+  - reviewed"} or "reviewed" in line for line in diff), diff
        assert all(line.startswith("+") or "labels" in line for line in diff), diff
    tagged = {o.id for o in load_repo(example_repo).objects if "reviewed" in (o.data.get("labels") or [])}
    assert tagged == {change.stix_id for change in changes}


def test_untagging_removes_the_label_again(example_repo: Path) -> None:
    before = _snapshot(example_repo)
    condition = parse_where("type = indicator and confidence >= 80")
    tag_objects(example_repo, "add", ["reviewed"], condition=condition)
    tag_objects(example_repo, "remove", ["reviewed"], condition=condition)
    assert _snapshot(example_repo) == before


def test_a_tag_that_is_no_label_changes_nothing(example_repo: Path) -> None:
    import pytest

    from tiops.errors import UsageError

    before = {p: p.read_bytes() for p in (example_repo / "intel").rglob("*.yaml")}
    for tag in ["", "  ", " c2", "c2 ", "a\nb", "tab\there", "nul\x00"]:
        with pytest.raises(UsageError, match="is not a tag"):
            tag_objects(example_repo, "add", ["reviewed", tag], condition=parse_where("type = indicator"))
    assert {p: p.read_bytes() for p in (example_repo / "intel").rglob("*.yaml")} == before
    assert tag_objects(example_repo, "add", ["tlp:amber"], condition=parse_where("type = indicator"))
