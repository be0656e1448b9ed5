"""Loading: what the rest of the pipeline relies on from tiops.load."""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path

from tiops.load import IntelObject, load_repo


def test_with_data_copies_every_other_field() -> None:
    # Give every field a distinct non-default value, so a field with_data forgot shows up.
    values = {f.name: f"value of {f.name}" for f in dataclasses.fields(IntelObject)}
    original = IntelObject(**values)  # type: ignore[arg-type]
    copy = original.with_data({"type": "indicator"})
    assert copy.data == {"type": "indicator"} and original.data == "value of data"
    assert {name: getattr(copy, name) for name in values if name != "data"} == {
        name: value for name, value in values.items() if name != "data"}


def test_windows_line_endings_read_as_text_mode_would(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    intel.mkdir()
    (intel / "actor.yaml").write_bytes(
        b"type: threat-actor\r\nspec_version: '2.1'\r\nid: threat-actor--6c1e0c0e-0d66-4b5e-9b4a-2f7f1e3a1a11\r\n"
        b"name: Copper\r  Lantern\r\ncreated: 2025-01-01T00:00:00.000Z\r\nmodified: 2025-01-01T00:00:00.000Z\r\n"
    )
    repo = load_repo(tmp_path)
    assert repo.findings == []
    [actor] = repo.objects
    assert actor.data["name"] == "Copper Lantern"  # a lone CR is a line break; the plain scalar folds it
    assert actor.data["modified"] == "2025-01-01T00:00:00.000Z"


def test_unreadable_and_empty_files_are_findings(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    intel.mkdir()
    (intel / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    (intel / "empty.yaml").write_bytes(b"")
    repo = load_repo(tmp_path)
    assert sorted((f.code, f.location.file) for f in repo.findings) == [
        ("TI104", "intel/empty.yaml"), ("TI106", "intel/latin1.yaml")]


def test_loading_leaves_the_collector_as_it_found_it(tmp_path: Path) -> None:
    (tmp_path / "intel").mkdir()
    (tmp_path / "intel" / "x.yaml").write_text("type: x-thing\nid: x-thing--6c1e0c0e-0d66-4b5e-9b4a-2f7f1e3a1a11\n")
    assert gc.isenabled()
    load_repo(tmp_path)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        load_repo(tmp_path)
        assert not gc.isenabled()  # a caller's own pause is kept
    finally:
        gc.enable()
    gc.freeze()  # a program's own frozen objects stay frozen
    try:
        frozen = gc.get_freeze_count()
        load_repo(tmp_path)
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_objects_share_strings_and_tuples_but_not_data(tmp_path: Path) -> None:
    feed = tmp_path / "intel" / "feed"
    feed.mkdir(parents=True)
    (feed / "_defaults.yaml").write_text("source: Feed\ndefaults:\n  confidence: 50\n  labels: [bulk]\n")
    indicator = ("type: indicator\nspec_version: '2.1'\nid: indicator--{n}c1e0c0e-0d66-4b5e-9b4a-2f7f1e3a1a11\n"
                 "created: '2025-01-01T00:00:00.000Z'\nmodified: '2025-01-01T00:00:00.000Z'\n"
                 "pattern: \"[ipv4-addr:value = '203.0.113.{n}']\"\npattern_type: stix\nvalid_from: '2025-01-01T00:00:00Z'\n"
                 "external_references: [{{source_name: feed, external_id: '{n}'}}]\n")
    (feed / "one.yaml").write_text(indicator.format(n=1))
    (feed / "bulk.yaml").write_text("- " + indicator.format(n=2).replace("\n", "\n  ").rstrip() + "\n- "
                                    + indicator.format(n=3).replace("\n", "\n  ").rstrip() + "\n")
    repo = load_repo(tmp_path)
    assert repo.findings == []
    objects = sorted(repo.objects, key=lambda obj: obj.id)
    assert [obj.path for obj in objects] == [(), (0,), (1,)]
    one, two, three = objects
    assert two.data["pattern_type"] is one.data["pattern_type"] is three.data["pattern_type"]
    assert next(key for key in two.data if key == "pattern_type") is next(key for key in one.data if key == "pattern_type")
    assert two.defaulted_properties == ("confidence", "labels") and two.defaulted_properties is one.defaulted_properties
    # Each object's data is its own: a rule changing one changes no other.
    two.data["external_references"][0]["source_name"] = "changed"
    two.data["labels"] = ["changed"]
    assert one.data["external_references"][0]["source_name"] == "feed"
    assert three.data["external_references"][0]["source_name"] == "feed"
    assert one.data["labels"] == three.data["labels"] == ["bulk"]
