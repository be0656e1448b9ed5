"""tiops.yamlemit writes what PyYAML writes, or declines; what it writes reads back as the value."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tiops.importers.write import ordered
from tiops.yamlemit import block_yaml
from tiops.yamlio import YamlProblem, dump_yaml, parse_yaml

DATA = Path(__file__).resolve().parent / "data" / "importers"


def _pyyaml(value: Any) -> str:
    text: str = yaml.dump(value, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True,
                          default_flow_style=False, width=1_000_000)
    return text


def _reads_back(text: str, value: Any) -> bool:
    try:
        return bool(parse_yaml(text) == value)
    except YamlProblem:
        return False


def _assert_same_or_declined(value: dict[str, Any]) -> bool:
    fast = block_yaml(value)
    if fast is None:
        return False
    assert fast == _pyyaml(value)
    assert parse_yaml(fast) == value
    return True


def test_the_writer_test_objects_match_pyyaml_and_the_plain_ones_take_the_fast_path() -> None:
    objects = orjson.loads((DATA / "writer.json").read_bytes())["objects"]
    handled = [_assert_same_or_declined(ordered(obj)) for obj in objects]
    # identity and indicator are plain shapes; the SCO has a float, the note separators.
    assert handled == [True, True, False, False]


@pytest.mark.parametrize("value", [
    {"a": 1.5},  # floats follow PyYAML's own repr rules
    {"a": "x\u2028y"},  # a line separator is a line break to libyaml
    {"a": "\ud800"},  # a lone surrogate
    {"a": 2**60},  # beyond the STIX integer range
    {"a": "1e5"},  # plain for PyYAML, a float for YAML 1.2
    {"k" * 129: 1},  # written as "? key"
    {"a": (1, 2)},
    {1: "non-string key"},
])
def test_declines_what_it_does_not_write_exactly(value: dict[Any, Any]) -> None:
    assert block_yaml(value) is None


def test_declines_a_list_that_appears_twice() -> None:
    shared = ["x"]
    value = {"a": shared, "b": shared}
    assert block_yaml(value) is None
    assert "&id001" in _pyyaml(value)  # PyYAML writes an anchor, which the fast path does not


def test_declines_deep_nesting() -> None:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(60):
        value = {"n": value}
    assert block_yaml(value) is None


def test_dump_yaml_falls_back_to_pyyaml_and_to_json() -> None:
    assert dump_yaml({"a": 1.5}) == "a: 1.5\n"
    assert dump_yaml({"a": "1e5"}) == '{\n  "a": "1e5"\n}\n'  # YAML 1.2 would read 1e5 as a float


# Characters that decide styles: indicators, quotes, spaces and breaks, YAML 1.1 words, escapes.
_PIECES = ["a", "Z", "0", "1", ".", "-", "+", "_", ":", "#", "?", "'", '"', "\\", ",", "[", "]", "{", "}", "&", "*",
           "!", "|", ">", "%", "@", "`", "=", "<", "~", " ", "  ", "\n", "\n\n", "\t", "\r", "\x00", "\x7f", "\x85",
           "\xa0", "é", "中", "\ufeff", "\U0001F600", "yes", "No", "null", "true", "0x", "0o", "1e5", ".inf",
           "2024-01-01", "12:30", "---", "...", "<<"]


def _strings(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 6))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(2))
def test_generated_strings_in_every_position_match_pyyaml(seed: int) -> None:
    handled = 0
    strings = _strings(800, seed)
    for text in strings:
        for value in ({"k": text}, {"k": [text]}, {"k": [{"a": 1, "b": text}]}, {"k": [[text, {"m": {"n": text}}]]},
                      {"k": {"l": [text]}}):
            handled += _assert_same_or_declined(value)
    assert handled > len(strings) * 5 * 0.6  # most generated strings take the fast path


@pytest.mark.parametrize("seed", range(2))
def test_generated_keys_match_pyyaml(seed: int) -> None:
    for text in _strings(800, seed):
        if text and "\n" not in text:
            _assert_same_or_declined({text: "v", "after": [text]})


def test_fast_output_always_reads_back_where_pyyaml_output_does_not() -> None:
    # Whatever the fast path writes, the slower check in dump_yaml would have accepted.
    for text in _strings(2000, 99):
        fast = block_yaml({"k": text})
        if fast is not None:
            assert _reads_back(fast, {"k": text})


def test_every_corpora_object_matches_pyyaml(corpora: Path) -> None:
    handled = total = 0
    for path in sorted(corpora.rglob("*.json")):
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue
        items = data.get("objects", [data]) if isinstance(data, dict) else data
        # Every fifth object: PyYAML's side of the comparison is the slow part.
        for obj in items[::5] if isinstance(items, list) else []:
            if isinstance(obj, dict) and "id" in obj:
                total += 1
                handled += _assert_same_or_declined(ordered(obj))
    assert total > 5_000 and handled > total * 0.99
