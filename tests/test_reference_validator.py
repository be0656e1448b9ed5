"""The session-wide check of compiled bundles (tests/reference_validator.py) sees bundles and can fail."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import reference_validator
from reference_validator import BundleWatch

from tiops.pipeline import build

pytest.importorskip("stix2validator")

_INDICATOR = {
    "type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
    "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z",
    "pattern": "[ipv4-addr:value = '198.51.100.1']", "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z",
}


def _bundle(*objects: dict[str, object]) -> bytes:
    lines = b",\n".join(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) for obj in objects)
    return b'{"id":"bundle--0f3b8a5e-2c1d-5e6f-8a9b-0c1d2e3f4a5b","objects":[\n' + lines + b'\n],"type":"bundle"}\n'


def test_an_object_the_reference_validator_rejects_is_reported_with_its_test() -> None:
    watch = BundleWatch()
    broken = {key: value for key, value in _INDICATOR.items() if key != "pattern_type"}  # required (4.7)
    watch.keep(_bundle(_INDICATOR, {**broken, "id": "indicator--0b6a3a2f-5d8c-4e7b-9f10-2a3b4c5d6e7f"}))
    problems = watch.invalid_objects()
    assert len(problems) == 1
    assert problems[0].startswith("indicator--0b6a3a2f-5d8c-4e7b-9f10-2a3b4c5d6e7f (compiled by tests/")
    assert "pattern_type" in problems[0]


def test_each_object_is_kept_once_however_many_bundles_hold_it() -> None:
    watch = BundleWatch()
    watch.keep(_bundle(_INDICATOR))
    watch.keep(_bundle(_INDICATOR))
    watch.keep(b'{"not": "a bundle"}')
    assert (watch.bundles, len(watch.objects)) == (2, 1)
    assert watch.invalid_objects() == []


def test_bundles_compiled_to_files_and_in_memory_are_seen(example_repo: Path, tmp_path: Path) -> None:
    watch = BundleWatch()
    watch.install()
    try:
        in_memory = build(example_repo, as_of="2025-06-01T00:00:00Z")
        build(example_repo, as_of="2025-06-01T00:00:00Z", output=tmp_path / "bundle.json")
    finally:
        watch.uninstall()
    assert watch.bundles == 2
    assert len(watch.objects) == in_memory.object_count
    assert watch.invalid_objects() == []


def test_by_default_the_first_objects_of_each_shape_are_checked() -> None:
    watch = BundleWatch()
    broken = {key: value for key, value in _INDICATOR.items() if key != "pattern_type"}
    bundles = [{**broken, "id": f"indicator--0b6a3a2f-5d8c-4e7b-9f10-{number:012x}"} for number in range(8)]
    watch.keep(_bundle(*bundles))
    assert len(watch.invalid_objects()) == reference_validator.PER_SHAPE  # one shape: its first objects
    assert len(watch.invalid_objects(every_object=True)) == 8


def test_a_paused_watch_keeps_nothing() -> None:
    watch = BundleWatch()
    with watch.paused():
        watch.keep(_bundle(_INDICATOR))
    assert (watch.bundles, len(watch.objects)) == (0, 0)
    watch.keep(_bundle(_INDICATOR))
    assert (watch.bundles, len(watch.objects)) == (1, 1)
