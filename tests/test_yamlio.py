from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiops.yamlio import PositionIndex, YamlProblem, parse_yaml


def test_yaml_12_keeps_country_codes_and_timestamps_as_text() -> None:
    data = parse_yaml("country: NO\nflag: on\nanswer: no\nseen: 2024-05-01T12:00:00.000Z\nday: 2024-05-01\n")
    assert data == {"country": "NO", "flag": "on", "answer": "no", "seen": "2024-05-01T12:00:00.000Z", "day": "2024-05-01"}


def test_duplicate_key_is_reported_at_the_second_key() -> None:
    with pytest.raises(YamlProblem) as caught:
        parse_yaml("type: indicator\nname: a\nname: b\n")
    assert (caught.value.code, caught.value.line, caught.value.column) == ("TI101", 3, 1)


def test_unsafe_tag_is_refused_with_its_position() -> None:
    with pytest.raises(YamlProblem) as caught:
        parse_yaml("type: indicator\nname: !!python/object/apply:os.system ['id']\n")
    assert caught.value.code == "TI102"
    assert caught.value.line == 2


def test_alias_bomb_is_refused() -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for depth, name in enumerate("bcdefghi"):
        previous = "abcdefghi"[depth]
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    with pytest.raises(YamlProblem) as caught:
        parse_yaml("\n".join(levels) + "\n")
    assert caught.value.code == "TI103"


def test_syntax_error_has_line_and_column() -> None:
    with pytest.raises(YamlProblem) as caught:
        parse_yaml("type: indicator\nlabels: [a,\nname: x\n")
    assert caught.value.code == "TI100"
    assert caught.value.line == 3


def test_several_documents_are_refused() -> None:
    with pytest.raises(YamlProblem) as caught:
        parse_yaml("type: indicator\n---\ntype: malware\n")
    assert caught.value.code == "TI105"


def test_position_index_finds_keys_and_list_items() -> None:
    text = "- type: indicator\n  labels:\n    - a\n    - b\n- type: malware\n  name: x\n"
    index = PositionIndex(text)
    assert index.position((0, "labels", 1)) == (4, 7)
    assert index.position((1, "name")) == (6, 3)
    # A missing property resolves to the deepest part that exists: where the fix goes.
    assert index.position((1, "created")) == (5, 3)


def test_what_an_alias_holds_is_placed_at_the_alias_not_at_its_anchor() -> None:
    text = ("- type: indicator\n  indicator_types: &types [bogus, other]\n  labels: &one [x]\n"
            "- type: indicator\n  indicator_types: *types\n  labels: [*one]\n  name: &n x\n  description: *n\n")
    index = PositionIndex(text)
    assert index.position((0, "indicator_types", 1)) == (2, 35)  # the anchor's own place
    assert index.position((1, "indicator_types", 1)) == (5, 20)  # the alias, where the second object names it
    assert index.position((1, "indicator_types")) == (5, 3)  # the key itself is this object's
    assert index.position((1, "labels", 0, 0)) == (6, 12)
    assert index.position((1, "description")) == (8, 3) and index.position((1, "name")) == (7, 3)


@pytest.mark.parametrize(("text", "line"), [
    ("type: indicator\nname: x\n\tpattern: y\n", 3),  # yaml-rs reports the scalar started on line 2
    ("type: indicator\nlabels:\n\t- a\n", 3),
    ("type: indicator\nlabels:\n  - a\n \t- b\n", 4),
    ("type: malware\ndescription: |\n  line one\n\tline two\n", 4),  # yaml-rs: "did not find expected key"
])
def test_a_tab_in_indentation_is_reported_where_the_tab_is(text: str, line: int) -> None:
    with pytest.raises(YamlProblem) as caught:
        parse_yaml(text)
    assert caught.value.code == "TI100" and "tab" in caught.value.message
    assert (caught.value.line, caught.value.column) == (line, text.split("\n")[line - 1].index("\t") + 1)


@pytest.mark.parametrize("text", ["name: !custom value\n", "labels: !!set {a: null}\n", "- !!binary aGVsbG8=\n"])
def test_tags_outside_the_core_schema_are_refused(text: str) -> None:
    with pytest.raises(YamlProblem) as caught:
        parse_yaml(text)
    assert caught.value.code == "TI102"


def test_core_schema_tags_and_exclamation_marks_in_text_are_fine() -> None:
    assert parse_yaml("a: !!str 5\nb: 'Alert!'\nc: Wow! such intel\n") == {"a": "5", "b": "Alert!", "c": "Wow! such intel"}


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["---", "...", "\n", " ", "  " * 13, "\t", "-", "- ", "?", ":", ".", "a", "b: c", "\r"]),
                max_size=40).map("".join))
def test_the_one_newline_search_finds_every_text_the_marker_and_depth_tests_would(text: str) -> None:
    from tiops import yamlio

    marker = ("---" in text or "..." in text) and yamlio._MARKER.search(text) is not None
    deep = bool(yamlio._DEEP_INDENT_AT_START.match(text) or yamlio._DEEP_INDENT_AFTER_NEWLINE.search(text))
    cleared = not (yamlio._MARKER_OR_DEEP_AFTER_NEWLINE.search(text) or text.startswith(yamlio._MARKERS)
                   or yamlio._DEEP_INDENT_AT_START.match(text))
    assert not (cleared and (marker or deep))


def test_a_document_marker_after_a_deep_line_is_still_refused() -> None:
    with pytest.raises(YamlProblem) as caught:
        parse_yaml("a: 1\n---\nb: 2\n")
    assert caught.value.code == "TI105"
    nested = "".join(f"{'  ' * depth}k:\n" for depth in range(120)) + "  " * 120 + "v: 1\n"
    with pytest.raises(YamlProblem) as caught:
        parse_yaml(nested)
    assert caught.value.code == "TI112"


@pytest.mark.parametrize(("text", "code", "line"), [
    # The tag check's parser (libyaml) refused the whole text at a control character or stopped at a
    # line separator, so a tag after one went unchecked and yaml-rs dropped it without a word.
    ("name: a\x1bb\nx_w: !!python/object/apply:os.system [ls]\n", "TI100", 1),
    ("name: \"a\u2028b\"\nx_w: !!python/object/apply:os.system [ls]\n", "TI102", 2),
    ("name: a\u2029b\nx_b: !!binary aGVsbG8=\n", "TI102", 2),
    ("labels: !!set {a, b}\n", "TI102", 1),  # was an internal error in validate
    ("name: a\x7f\n", "TI100", 1),
])
def test_a_tag_or_a_control_character_is_refused_wherever_it_is(text: str, code: str, line: int) -> None:
    with pytest.raises(YamlProblem) as raised:
        parse_yaml(text)
    assert (raised.value.code, raised.value.line) == (code, line), raised.value


def test_characters_yaml_allows_are_read_as_written() -> None:
    text = "name: \"caf\u00e9 \u00a0 \u2028 \u0085 tab\\t\"\nx_v: 'single \u00e9'\n"
    assert parse_yaml(text) == {"name": "caf\u00e9 \u00a0 \u2028 \u0085 tab\t", "x_v": "single \u00e9"}


def test_a_duplicate_key_is_placed_at_the_second_one_even_when_it_reads_as_a_date() -> None:
    text = "type: note\nx_dates:\n  2025-01-01: a\n  \"2025-01-01\": b\n"
    with pytest.raises(YamlProblem) as raised:
        parse_yaml(text)
    assert (raised.value.code, raised.value.line, raised.value.column) == ("TI101", 4, 3)


def test_an_edited_file_of_mode_0666_keeps_it(tmp_path: Path) -> None:
    import os
    import stat

    from tiops.yamlio import read_for_edit, write_edited

    path = tmp_path / "shared.yaml"
    path.write_bytes(b"type: malware\r\nname: old\r\n")
    os.chmod(path, 0o666)  # a mode the file is created with anyway: it still passes through no umask
    previous = os.umask(0o022)
    try:
        text, newline = read_for_edit(path)
        write_edited(path, text.replace("old", "new"), newline)
    finally:
        os.umask(previous)
    assert path.read_bytes() == b"type: malware\r\nname: new\r\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666
    assert [p.name for p in tmp_path.iterdir()] == ["shared.yaml"]
