"""tiops.memory: shared strings keep the data equal and each object's containers its own,
and the walk that shares them refuses exactly the documents the structure check refuses."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml_rs
from hypothesis import given, settings
from hypothesis import strategies as st

from tiops import limits
from tiops.limits import StructureProblem
from tiops.memory import (
    WRITE_PIECE,
    NotShareable,
    share_strings,
    shared_document,
    write_all,
    write_in_pieces,
)
from tiops.yamlio import YamlProblem, parse_yaml


def _parsed(text: str) -> Any:
    return yaml_rs.loads(text, parse_datetime=False)


INDICATOR = """
type: indicator
spec_version: '2.1'
id: indicator--{n}1c1e0c0-0d66-4b5e-9b4a-2f7f1e3a1a11
name: Indicator {n}
created_by_ref: identity--6c1e0c0e-0d66-4b5e-9b4a-2f7f1e3a1a11
labels: [phishing, c2]
confidence: 80
revoked: false
valid_until: null
kill_chain_phases:
  - {{kill_chain_name: mitre-attack, phase_name: initial-access}}
external_references:
  - {{source_name: vendor, url: 'https://example.org/{n}', hashes: {{SHA-256: abc}}}}
nested: [[a, b], [c]]
"""


def test_shared_data_is_equal_to_what_was_parsed() -> None:
    parsed = _parsed(INDICATOR.format(n=1))
    expected = _parsed(INDICATOR.format(n=1))
    shared = share_strings(parsed)
    assert shared == expected
    assert list(shared) == list(expected)  # key order is kept: it is the order findings and dumps follow
    assert list(shared["external_references"][0]) == list(expected["external_references"][0])


def test_names_and_recurring_values_are_one_object_across_objects() -> None:
    first, second = (share_strings(_parsed(INDICATOR.format(n=n))) for n in (1, 2))
    first_keys = {key: key for key in first}
    for key in second:
        assert key is first_keys[key]  # every property name is one string
    for name in ("type", "spec_version", "created_by_ref"):  # vocabulary, version, reference
        assert second[name] is first[name]
    assert second["labels"][0] is first["labels"][0]
    first_phase, second_phase = first["kill_chain_phases"][0], second["kill_chain_phases"][0]
    assert second_phase["phase_name"] is first_phase["phase_name"]
    assert second["external_references"][0]["source_name"] is first["external_references"][0]["source_name"]


def test_free_text_and_identifiers_are_left_alone() -> None:
    parsed = [_parsed(INDICATOR.format(n=1)) for _ in range(2)]
    first, second = (share_strings(p) for p in parsed)
    # Equal ids in two parses are not merged: ids and names are nearly always distinct,
    # and interning them would only grow the interpreter's table.
    assert first["id"] == second["id"] and first["id"] is not second["id"]
    assert first["name"] == second["name"] and first["name"] is not second["name"]


# --- shared_document: sharing and the structure proof in one walk -------------------------

KEYS = st.one_of(st.sampled_from(["type", "id", "labels", "object_refs", "kill_chain_phases", "x_a", "phase_name"]),
                 st.integers(-2, 2), st.none(), st.booleans())
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.sampled_from(["indicator", "2.1", "identity--1", "a"]))
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4)),
    max_leaves=40,
)


def structure_outcome(value: Any) -> tuple[str, tuple[Any, ...]] | None:
    try:
        if isinstance(value, dict | list):
            limits._walk_structure(value)  # the exact walk check_structure falls back on
    except StructureProblem as problem:
        return problem.code, problem.path
    return None


def nested(depth: int, leaf: Any = "x") -> Any:
    value: Any = leaf
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


@settings(max_examples=400, deadline=None)
@given(VALUES, st.integers(1, 6))
def test_shared_document_refuses_exactly_what_the_structure_check_refuses(value: Any, max_depth: int) -> None:
    expected = copy.deepcopy(value)
    try:
        shared = shared_document(value, max_depth)
    except NotShareable:
        refused = True
    else:
        refused = False
        assert shared == expected
        assert repr(shared) == repr(expected)  # key order too
    # The walk with the same limit: check_structure with MAX_NESTING_DEPTH is the same walk.
    with mock_depth(max_depth):
        assert refused == (structure_outcome(expected) is not None)


class mock_depth:
    """Run tiops.limits' walk with another depth limit (it reads the module constant)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def __enter__(self) -> None:
        self.before = limits.MAX_NESTING_DEPTH
        limits.MAX_NESTING_DEPTH = self.depth

    def __exit__(self, *exc: object) -> None:
        limits.MAX_NESTING_DEPTH = self.before


def test_shared_document_at_the_nesting_limit() -> None:
    for depth in (limits.MAX_NESTING_DEPTH - 1, limits.MAX_NESTING_DEPTH):
        assert shared_document(nested(depth), limits.MAX_NESTING_DEPTH) == nested(depth)
        assert shared_document({"labels": nested(depth - 1)}, limits.MAX_NESTING_DEPTH) == {"labels": nested(depth - 1)}
    for value in (nested(limits.MAX_NESTING_DEPTH + 1), {"labels": nested(limits.MAX_NESTING_DEPTH)},
                  [{"k": [{1: "x"}]}], nested(5000)):
        with pytest.raises(NotShareable):
            shared_document(value, limits.MAX_NESTING_DEPTH)


def test_a_bulk_files_objects_share_names_and_values() -> None:
    bulk = shared_document(_parsed("- " + INDICATOR.format(n=1).strip().replace("\n", "\n  ") + "\n- "
                                   + INDICATOR.format(n=2).strip().replace("\n", "\n  ")), limits.MAX_NESTING_DEPTH)
    first, second = bulk
    assert first == share_strings(_parsed(INDICATOR.format(n=1)))
    for key in second:
        assert key is next(k for k in first if k == key)
    assert second["type"] is first["type"] and second["labels"][1] is first["labels"][1]
    assert second["kill_chain_phases"][0]["phase_name"] is first["kill_chain_phases"][0]["phase_name"]
    assert second["id"] is not first["id"] and second["name"] is not first["name"]


def test_parse_yaml_shared_reads_the_same_data_and_reports_the_same_problems() -> None:
    texts = [INDICATOR.format(n=1), "- a\n- {b: [1, 2]}\n", "1: x\n", "a:\n  - {2: y}\n", "[" * 150 + "]" * 150,
             "labels: [a, {b: [c]}, 3, d]\n", "x: .nan\ny: null\n", "big: 123456789012345678901234567890\n"]
    for text in texts:
        try:
            plain = parse_yaml(text)
        except YamlProblem as problem:
            with pytest.raises(YamlProblem) as shared_problem:
                parse_yaml(text, shared=True)
            assert shared_problem.value == problem
            continue
        shared = parse_yaml(text, shared=True)
        assert repr(shared) == repr(plain)  # repr: NaN is not equal to itself


def test_write_in_pieces_hands_on_every_byte_in_pieces_no_larger_than_the_limit() -> None:
    data = bytes(range(256)) * (3 * WRITE_PIECE // 256 + 7)  # three pieces and a part of one
    pieces: list[bytes] = []
    write_in_pieces(lambda piece: pieces.append(bytes(piece)), data)
    assert b"".join(pieces) == data
    assert [len(piece) for piece in pieces] == [WRITE_PIECE] * 3 + [len(data) - 3 * WRITE_PIECE]


@pytest.mark.parametrize("at", [None, 5])
def test_write_all_follows_a_short_write_with_the_rest_and_never_writes_more_than_a_piece(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at: int | None) -> None:
    data = os.urandom(2 * WRITE_PIECE + 3)
    sizes: list[int] = []
    real_write, real_pwrite = os.write, os.pwrite

    def short_write(descriptor: int, piece: memoryview) -> int:  # as a pipe or a signal may cut it short
        sizes.append(len(piece))
        return real_write(descriptor, piece[:len(piece) // 2 + 1])

    def short_pwrite(descriptor: int, piece: memoryview, offset: int) -> int:
        sizes.append(len(piece))
        return real_pwrite(descriptor, piece[:len(piece) // 2 + 1], offset)

    monkeypatch.setattr(os, "write", short_write)
    monkeypatch.setattr(os, "pwrite", short_pwrite)
    path = tmp_path / "out"
    path.write_bytes(b"12345")
    descriptor = os.open(path, os.O_WRONLY)
    try:
        os.lseek(descriptor, 0, os.SEEK_END)
        write_all(descriptor, data, at)
    finally:
        os.close(descriptor)
    assert path.read_bytes() == b"12345" + data
    assert max(sizes) == WRITE_PIECE and len(sizes) > 3
