"""The cheap proofs in loading agree with the exact checks they let loading skip.

``limits.provably_sound`` lets a clean document skip the Python walk of
``limits._walk_structure``; it must never call a document sound that the walk
refuses. The deep-indentation pre-scan of ``yamlio`` is split into a match at the
start and a search after each newline; it must select exactly the texts the
multi-line ``^`` expression selects.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tiops import yamlio
from tiops.limits import (
    MAX_NESTING_DEPTH,
    StructureProblem,
    _walk_structure,
    check_structure,
    provably_sound,
)

KEYS = st.one_of(st.sampled_from(["type", "id", "a[", "{b", "x"]), st.integers(-3, 3), st.none(), st.booleans(), st.floats(allow_nan=False))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(alphabet="[]{}ab", max_size=6))
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4)),
    max_leaves=40,
)


def nested(depth: int, leaf: Any = "x", width: int = 1) -> Any:
    """A list of ``width`` copies of one value, ``depth`` levels in all (mappings and lists alternating)."""
    value: Any = leaf
    for level in range(depth - 1):
        value = {"k": value} if level % 2 else [value]
    return [value] * width if depth else value


def walk_outcome(value: Any) -> tuple[str, tuple[Any, ...]] | None:
    try:
        _walk_structure(value)
    except StructureProblem as problem:
        return problem.code, problem.path
    return None


def check_outcome(value: Any) -> tuple[str, tuple[Any, ...]] | None:
    try:
        check_structure(value)
    except StructureProblem as problem:
        return problem.code, problem.path
    return None


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_a_value_proved_sound_is_one_the_walk_accepts(value: Any) -> None:
    if isinstance(value, dict | list):
        if provably_sound(value):
            assert walk_outcome(value) is None
        assert check_outcome(value) == walk_outcome(value)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, MAX_NESTING_DEPTH + 5), st.integers(1, 30), st.sampled_from(["x", 1, 2**70, None, "[[[["]))
def test_nesting_near_the_limit_gives_the_walks_answer(depth: int, width: int, leaf: Any) -> None:
    value = nested(depth, leaf, width)
    assert check_outcome(value) == walk_outcome(value)
    if depth > MAX_NESTING_DEPTH:
        assert check_outcome(value) is not None


def test_the_proof_is_used_for_clean_bulk_files_and_bundles() -> None:
    indicator = {"type": "indicator", "kill_chain_phases": [{"kill_chain_name": "k", "phase_name": "p"}]}
    assert provably_sound([indicator] * 500)  # many brackets in all, few per item
    assert provably_sound({"type": "bundle", "objects": [indicator] * 500})
    assert not provably_sound([{1: "x"}])  # orjson refuses the key: not proved, walked
    assert not provably_sound(nested(MAX_NESTING_DEPTH + 1))
    assert orjson.dumps(nested(MAX_NESTING_DEPTH)).count(b"[") + orjson.dumps(nested(MAX_NESTING_DEPTH)).count(b"{") == MAX_NESTING_DEPTH
    assert provably_sound(nested(MAX_NESTING_DEPTH))


MULTILINE_DEEP_INDENT = re.compile(rf"(?m)^[ \t?:-]{{{MAX_NESTING_DEPTH // 2}}}")


def split_deep_indent(text: str) -> bool:
    return bool(yamlio._DEEP_INDENT_AT_START.match(text) or yamlio._DEEP_INDENT_AFTER_NEWLINE.search(text))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, MAX_NESTING_DEPTH), st.text(alphabet=" \t?:-ab", max_size=4)), max_size=6))
def test_the_deep_indent_prescan_selects_what_a_multiline_caret_selects(lines: list[tuple[int, str]]) -> None:
    text = "\n".join(("- " * (count // 2) + " " * (count % 2)) + rest for count, rest in lines)
    assert split_deep_indent(text) == bool(MULTILINE_DEEP_INDENT.search(text))


def test_the_deep_indent_prescan_on_fixed_cases() -> None:
    run = " " * (MAX_NESTING_DEPTH // 2)
    for text, expected in [(run + "a", True), ("a\n" + run, True), ("a" + run, False), ("a\n" + run[1:] + "b", False),
                           ("a\n\n" + "- " * (MAX_NESTING_DEPTH // 4) + "x", True), ("", False)]:
        assert split_deep_indent(text) is expected
        assert bool(MULTILINE_DEEP_INDENT.search(text)) is expected
