"""A bundle written again from kept lines has the id of the same bundle written the full way, and
digests again only the line groups a change touched (tiops.bundlereuse._splice, tiops.compile.bundle_id_of)."""

from __future__ import annotations

import array
from pathlib import Path
from typing import Any

import pytest

from tiops import bundlereuse
from tiops.compile import LineGroups, bundle_id_of, line_group, line_groups, write_bundle

STAMP = "2025-01-01T00:00:00.000Z"


def _identity(prefix: str, number: int) -> dict[str, Any]:
    # Ids chosen to fall in a few groups ("identity--0a", "--0b", ...) of several lines each.
    return {"type": "identity", "spec_version": "2.1", "id": f"identity--{prefix}{number:06d}-0000-4000-8000-000000000000",
            "created": STAMP, "modified": STAMP, "name": f"{prefix} {number}"}


def _indicator(prefix: str, number: int) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{prefix}{number:06d}-0000-4000-8000-000000000000",
            "created": STAMP, "modified": STAMP, "pattern": f"[ipv4-addr:value = '198.51.100.{number}']",
            "pattern_type": "stix", "valid_from": STAMP}


def _key(obj: dict[str, Any]) -> str:
    return f"{obj['type']}\0{obj['id']}"


def _ordered(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(objects, key=lambda obj: (obj["type"], obj["id"]))


OLD = _ordered([*(_identity(prefix, n) for prefix in ("0a", "0b", "0c") for n in range(4)),
                *(_indicator(prefix, n) for prefix in ("3f", "40") for n in range(3))])


def _changed(name: str) -> tuple[set[str], list[dict[str, Any]]]:
    """The keys a change removes and the objects it adds."""
    renamed = {**_identity("0b", 2), "name": "renamed"}
    return {
        "a middle line of a group changed": ({_key(renamed)}, [renamed]),
        "a middle line of a group removed": ({_key(_identity("0b", 1))}, []),
        "a group's every line removed": ({_key(_identity("0c", n)) for n in range(4)}, []),
        "the first group's first line removed": ({_key(_identity("0a", 0))}, []),
        "a line added to a group": (set(), [_identity("0b", 9)]),
        "a new group first": (set(), [_identity("00", 1)]),
        "a new group between two": (set(), [_identity("0b", 5), _indicator("3g", 0)]),
        "a new type last": (set(), [{**_identity("ff", 0), "type": "x-last", "id": "x-last--ff000000-0000-4000-8000-000000000000"}]),
        "the last group's last line removed and one added to it": ({_key(_indicator("40", 2))}, [_indicator("40", 7)]),
        "a line removed and put back unchanged": ({_key(_identity("0a", 3))}, [_identity("0a", 3)]),
        "every line removed": ({_key(obj) for obj in OLD}, []),
    }[name]


CHANGES = ["a middle line of a group changed", "a middle line of a group removed", "a group's every line removed",
           "the first group's first line removed", "a line added to a group", "a new group first",
           "a new group between two", "a new type last", "the last group's last line removed and one added to it",
           "a line removed and put back unchanged", "every line removed"]


@pytest.mark.parametrize("change", CHANGES)
def test_a_spliced_bundle_has_the_full_ways_id_groups_and_digests(change: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    old_path = tmp_path / "old.json"
    keys = [_key(obj) for obj in OLD]
    starts = array.array("q")
    groups = line_groups(keys, in_key_order=True)
    written = write_bundle(OLD, old_path, line_starts=starts, groups=groups)
    assert len(groups.names) == 5 and len(written.group_digests) == 5 * 32  # several lines a group

    removed, added_objects = _changed(change)
    new_objects = _ordered([obj for obj in OLD if _key(obj) not in removed] + added_objects)
    added = sorted(((_key(obj), obj) for obj in added_objects), key=lambda item: item[0])
    digested: list[tuple[int, int]] = []
    real = bundlereuse.run_lines_digest

    def counted(pieces: Any, piece_lines: Any, first: int, stop: int) -> bytes:
        digested.append((first, stop))
        return real(pieces, piece_lines, first, stop)

    monkeypatch.setattr(bundlereuse, "run_lines_digest", counted)
    made = bundlereuse._splice(old_path.read_bytes(), keys, starts.tolist(), removed, added,
                               entries=None,  # type: ignore[arg-type]  # handed through, unread
                               extras=[], old_groups=(groups.names, written.group_digests))
    assert made is not None

    full = write_bundle(new_objects, tmp_path / "full.json")
    new_groups = line_groups([_key(obj) for obj in new_objects], in_key_order=True)
    assert (bundle_id_of(made.group_digests), made.group_names, made.group_digests) == (
        full.bundle_id, new_groups.names, full.group_digests)
    # Only the groups a removed or added line falls in, and which still hold a line, were digested again, once each.
    touched = {line_group(key) for key in removed | {key for key, _ in added}}.intersection(new_groups.names)
    assert sorted(digested) == sorted(_run_of(new_groups, len(new_objects), name) for name in touched)
    if new_objects:
        assert len(digested) < len(new_groups.names)


def _run_of(groups: LineGroups, count: int, name: str) -> tuple[int, int]:
    at = groups.names.index(name)
    return groups.starts[at], groups.starts[at + 1] if at + 1 < len(groups.starts) else count


def test_a_record_whose_groups_are_not_a_records_is_not_used() -> None:
    loaded = bundlereuse._loaded_groups
    assert loaded("a\nb\n", b"x" * 64) == (["a", "b"], b"x" * 64)
    assert loaded("a\nb\n", b"x" * 63) is None  # a digest short
    assert loaded("b\na\n", b"x" * 64) is None  # groups out of order
    assert loaded("a\na\n", b"x" * 64) is None  # a group twice
    assert loaded("a\nb\n", "x" * 64) is None  # digests not bytes
    assert loaded(None, b"") is None
    assert loaded("", b"") == ([], b"")


def test_a_records_groups_must_fit_its_lines_at_both_ends() -> None:
    fit = bundlereuse._groups_fit
    keys = ["identity\0identity--0a1", "identity\0identity--0a2", "identity\0identity--0b2"]
    assert fit(["identity\0identity--0a", "identity\0identity--0b"], keys)
    assert not fit([], keys)  # the groups of some other lines
    assert not fit(["identity\0identity--0a"], keys)  # the last line's group missing
    assert not fit(["identity\0identity--0b"], keys)  # the first's
    assert not fit(["identity\0identity--0a", "identity\0identity--0a5", "identity\0identity--0b", "x"], keys[:2])
    assert fit([], [])
