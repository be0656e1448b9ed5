"""tiops/jsontext.py: the names a JSON text gives twice, and the items of its array of objects."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiops import jsontext
from tiops.jsontext import DuplicateKey, duplicate_keys, item_spans


def found(text: str) -> list[DuplicateKey]:
    raw = text.encode()
    return duplicate_keys(raw, orjson.loads(raw))


def test_every_repeated_name_is_found_with_its_path_and_values() -> None:
    assert found('{"a": 1, "b": {"c": 2, "c": 3}, "l": [{"x": 1, "x": 1}]}') == [
        DuplicateKey(("b",), "c", (2, 3)), DuplicateKey(("l", 0), "x", (1, 1))]
    assert found('[{"k": "v", "k": "w", "k": "v"}]') == [DuplicateKey((0,), "k", ("v", "w", "v"))]


def test_a_repeat_inside_a_value_lost_to_a_repeat_is_not_listed_the_kept_ones_are() -> None:
    assert found('{"a": {"q": 1, "q": 2}, "a": {"r": 1, "r": 1}}') == [
        DuplicateKey(("a",), "r", (1, 1)), DuplicateKey((), "a", ({"q": 2}, {"r": 1}))]


def test_values_are_the_same_only_as_json_values() -> None:
    assert DuplicateKey((), "k", ({"a": 1, "b": 2}, {"b": 2, "a": 1})).same
    assert not DuplicateKey((), "k", (1, 1.0)).same
    assert not DuplicateKey((), "k", (True, 1)).same


def test_a_document_without_repeats_is_proved_so_without_a_second_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_second_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parsed a second time")

    monkeypatch.setattr(jsontext.json, "loads", no_second_parse)
    assert found('{"a": "b:c", "d": [{"e": ":"}], "f": "\\"g\\": 1"}') == []


def test_colons_the_proof_cannot_count_send_the_text_to_a_second_parse() -> None:
    # An escaped colon has no byte of its own; an integer beyond 64 bits cannot be written back by orjson.
    assert found('{"a": "\\u003a", "a": "\\u003A"}') == [DuplicateKey((), "a", (":", ":"))]
    raw = b'{"n": 123456789012345678901234567890, "n": 1}'
    assert duplicate_keys(raw, json.loads(raw)) == [DuplicateKey((), "n", (123456789012345678901234567890, 1))]


# JSON texts whose mappings may repeat a name, written by hand: no JSON library writes one.
_KEYS = st.sampled_from(["a", "b", "a:b", ":", "\u00e9"])
_SCALARS = st.one_of(st.integers(-5, 5), st.sampled_from(["", ":", "x\":", "\\u003a"]), st.booleans(), st.none())


def _text(node: Any, escape_colons: bool) -> str:
    if isinstance(node, tuple):  # a mapping, as its (name, value) pairs
        return "{" + ", ".join(f"{_string(key, escape_colons)}: {_text(value, escape_colons)}"
                               for key, value in node) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(_text(item, escape_colons) for item in node) + "]"
    return _string(node, escape_colons) if isinstance(node, str) else json.dumps(node)


def _string(value: str, escape_colons: bool) -> str:
    written = json.dumps(value)
    return written.replace(":", "\\u003a") if escape_colons else written


_TREES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.lists(st.tuples(_KEYS, inner), max_size=4).map(tuple)), max_leaves=12)


def _repeats(node: Any) -> int:
    if isinstance(node, tuple):
        keys = [key for key, _ in node]
        return len(keys) - len(set(keys)) + sum(_repeats(value) for _, value in node)
    if isinstance(node, list):
        return sum(_repeats(item) for item in node)
    return 0


@settings(max_examples=400, deadline=None)
@given(_TREES, st.booleans())
def test_the_proof_never_passes_a_text_that_repeats_a_name(tree: Any, escape_colons: bool) -> None:
    raw = _text(tree, escape_colons).encode()
    value = orjson.loads(raw)
    found_any = bool(duplicate_keys(raw, value))
    if _repeats(tree):  # a repeat inside a lost value comes with the repeat that lost it: one is found
        assert found_any and not jsontext._proved_unique(raw, value)
    else:
        assert not found_any


def test_item_spans_find_each_item_of_the_array_of_objects() -> None:
    def items(text: str) -> list[str] | None:
        raw = text.encode()
        spans = item_spans(raw)
        return None if spans is None else [raw[start:end].decode().strip() for start, end in spans]

    assert items('[1, {"a": [1, 2]}, "x]"]') == ["1", '{"a": [1, 2]}', '"x]"']
    assert items('{"type": "bundle", "x": [9], "objects": [{"a": "]"}, {"b": [[]]}], "id": "x"}') == [
        '{"a": "]"}', '{"b": [[]]}']
    assert items('\ufeff \n[]') == []
    assert items('{"objects": []}') == []
    assert items('{"a": "objects", "b": [1]}') is None  # no array named objects
    assert items('{"type": "indicator"}') is None
    assert items("[1, 2") is None  # never closed
    assert items('"text"') is None
