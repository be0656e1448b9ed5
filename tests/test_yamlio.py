from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
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
# --- Numbers yaml-rs reads where YAML 1.2 reads text (TI116) -------------------------------------

# A plain scalar and what yaml-rs reads it as when nothing refuses it; None: refused as TI116, for
# yaml-rs reads a number where the YAML 1.2 core schema (section 10.3.2) reads text.
SPELLINGS: list[tuple[str, object]] = [
    ("1_000", None), ("1_0.5", None), ("1__0", None), ("_1", None), ("1_", None), ("1_e3", None), ("1e_3", None),
    ("0b101", None), ("-0b101", None), ("+0b101", None), ("0B1", None), ("0X1F", None), ("0O17", None),
    ("+0x1F", None), ("-0x1F", None), ("+0o17", None), ("-0o17", None),
    ("0x_1F", None), ("0xa_b", None), ("0o1_7", None), ("0b1_0", None),
    # One number to both: YAML 1.2's hexadecimal and octal, and a leading zero is decimal (017 is 17, not 15 as in 1.1).
    ("0x1F", 31), ("0o17", 15), ("017", 17), ("-017", -17), ("+12", 12), (".5", 0.5), ("-.5", -0.5), ("5.", 5.0),
    ("1e3", 1000.0), ("+1.5e+3", 1500.0),
    # Text to both: no sexagesimal numbers (YAML 1.1 read 1:20 as 80), no radix without digits.
    ("1:20", "1:20"), ("-1:20", "-1:20"), ("190:20:30.15", "190:20:30.15"), ("0x", "0x"), ("0b102", "0b102"),
    ("0o18", "0o18"), ("_", "_"), ("report_2024", "report_2024"), ("SHA_256", "SHA_256"),
]
# Where a plain scalar stands: a value, in a flow list, in a flow mapping, as a key, a block list item with a comment.
PLACES = ["x_v: {}\n", "x_v: [a, {}, b]\n", "x_v: {{k: {}}}\n", "{}: v\n", "x_v:\n  - {} # a comment\n"]


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize(("spelling", "read"), SPELLINGS)
def test_a_number_yaml_12_reads_as_text_is_refused_where_it_stands(spelling: str, read: object, place: str) -> None:
    text = place.format(spelling)
    if read is None:
        with pytest.raises(YamlProblem) as raised:
            parse_yaml(text)
        at = text.index(spelling)
        column = at - text.rfind("\n", 0, at)
        assert (raised.value.code, raised.value.line, raised.value.column) == ("TI116", text.count("\n", 0, at) + 1, column)
        assert f"'{spelling}'" in raised.value.message and "YAML 1.2" in raised.value.message
    elif place.startswith("{}") and not isinstance(read, str):
        with pytest.raises(YamlProblem) as raised:
            parse_yaml(text)
        assert raised.value.code == "TI113"  # a number as a key, as before
    else:
        data = parse_yaml(text)
        value = next(iter(data)) if place.startswith("{}") else data["x_v"]
        value = value[1] if isinstance(value, list) and len(value) == 3 else value
        value = value[0] if isinstance(value, list) else value
        value = value["k"] if isinstance(value, dict) else value
        assert value == read and type(value) is type(read)


@pytest.mark.parametrize("text", [
    "x_v: '1_000'\n", 'x_v: "0b101"\n', "x_v: |\n  1_000\n", "x_v: >-\n  +0x1F\n", "# 1_000 0b1\nx_v: a\n",
    "x_v: a 1_000\n", "x_v: 1_000\n  and more\n", "x_v: 1_000,5\n", "x_v: !!str 1_000\n", "x_v: ! 0b1\n",
    "x_v: [1_0b]\n", "x_v: report_0b1\n", "id: indicator--0b1e0c0e-0d66-4b5e-9b4a-2f7f1e3a1a11\n",
])
def test_numbers_in_quotes_block_scalars_comments_or_longer_text_are_left_alone(text: str) -> None:
    assert isinstance(parse_yaml(text), dict)


def test_the_finding_says_both_readings_and_counts_the_others() -> None:
    with pytest.raises(YamlProblem) as raised:
        parse_yaml("type: x-thing\nx_count: 1_000\nx_flags: [0b101, 2, +0x1F]\n")
    problem = raised.value
    assert (problem.code, problem.line, problem.column) == ("TI116", 2, 10)
    assert problem.message.startswith("1_000 is read as the number 1000, but YAML 1.2 reads it as the text '1_000' "
                                      "(core schema, section 10.3.2): quote it ('1_000') if it is text; if it is a "
                                      "number, write 1000")
    assert problem.message.endswith("(2 more such values in this file)")


@pytest.mark.parametrize(("text", "column"), [("x_v: !!int 1_000\n", 6), ("x_v: [!!float '1_0.5']\n", 7)])
def test_a_number_tag_does_not_make_a_yaml_11_spelling_a_yaml_12_number(text: str, column: int) -> None:
    with pytest.raises(YamlProblem) as raised:
        parse_yaml(text)
    assert (raised.value.code, raised.value.line, raised.value.column) == ("TI116", 1, column)
    assert "YAML 1.2 spells no" in raised.value.message


def test_a_text_libyaml_cannot_read_has_its_numbers_found_all_the_same() -> None:
    # yaml-rs reads a tab after "-"; libyaml, which tells plain scalars from others, does not.
    with pytest.raises(YamlProblem) as raised:
        parse_yaml("- 1_000\n-\tb\n")
    assert (raised.value.code, raised.value.line, raised.value.column) == ("TI116", 1, 3)


@pytest.mark.parametrize("text", [
    "description: builds 2021_1, 2022_2\nx_ips: [::1, 10.0.0.1]\n",  # libyaml cannot read [::1]
    "x_ips: [::ffff:0b01]\n", "x_v: {a: ::1_0}\n",
])
def test_a_text_libyaml_cannot_read_keeps_number_like_words_inside_longer_text(text: str) -> None:
    # yaml-rs reads these words as part of a longer string: nothing is refused, nothing changes.
    import yaml_rs

    assert parse_yaml(text) == yaml_rs.loads(text, parse_datetime=False)


def test_a_text_libyaml_cannot_read_is_refused_at_the_plain_number_only() -> None:
    with pytest.raises(YamlProblem) as raised:
        parse_yaml("description: builds 2021_1\nx_ips: [::1, 1_0]\n")
    assert (raised.value.code, raised.value.line, raised.value.column) == ("TI116", 2, 14)
    assert "more such" not in raised.value.message


# The YAML 1.2 core schema's numbers (section 10.3.2), written out here again to check tiops.yamlio's against.
_CORE_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_CORE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")
_NUMBER_CHARACTERS = "0123456789_+-.xXoObBeEaAf"


def _yaml_rs_reads_a_number_yaml_12_does_not(spelling: str) -> bool:
    import yaml_rs

    value = yaml_rs.loads(f"[{spelling}]", parse_datetime=False)[0]
    return type(value) in (int, float) and not (_CORE_INT.fullmatch(spelling) or _CORE_FLOAT.fullmatch(spelling))


def _flow_item(spelling: str) -> bool:
    import yaml_rs

    try:
        yaml_rs.loads(f"[{spelling}]\n", parse_datetime=False)
        yaml_rs.loads(f"k: {spelling}\n", parse_datetime=False)
    except ValueError:
        return False
    return True


@settings(max_examples=600, deadline=None)
@given(st.text(_NUMBER_CHARACTERS, min_size=1, max_size=8).filter(_flow_item))
def test_the_spelling_check_agrees_with_yaml_rs_and_the_core_schema(spelling: str) -> None:
    from tiops import yamlio

    assert yamlio._is_ambiguous_number(spelling) == _yaml_rs_reads_a_number_yaml_12_does_not(spelling)


_SPELLING = st.one_of(
    st.text(_NUMBER_CHARACTERS, min_size=1, max_size=7),
    st.builds(lambda sign, radix, digits: sign + radix + digits, st.sampled_from(["", "+", "-"]),
              st.sampled_from(["", "0b", "0B", "0x", "0X", "0o", "0O"]), st.text("01_7aF.e", min_size=1, max_size=5)),
).filter(_flow_item)
# (template, whether the scalar there is plain): what the prefilter and the line search must not miss, and what they must leave.
_PLACED = [("k{i}: {s}\n", True), ("k{i}: [a, {s}]\n", True), ("k{i}: {{a: {s}}}\n", True), ("k{i}:\n  - {s}\n", True),
           ("k{i}: {s} # c\n", True), ("k{i}: [\n  {s}\n  ]\n", True), ("k{i}: &a{i} {s}\n", True), ("{s}: k{i}\n", True),
           ("k{i}: '{s}'\n", False), ("k{i}: |\n  {s}\n", False), ("# {s}\nk{i}: 1\n", False), ("k{i}: x {s}\n", False),
           ("k{i}: {s}\n  y\n", False), ("k{i}: x_{s}\n", False)]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(_SPELLING, st.sampled_from(_PLACED)), min_size=1, max_size=4))
def test_every_plain_number_yaml_12_reads_as_text_is_found_and_nothing_else(placed: list[tuple[str, tuple[str, bool]]]) -> None:
    text = "".join(template.format(i=i, s=spelling) for i, (spelling, (template, _)) in enumerate(placed))
    expected = next((spelling for spelling, (_, plain) in placed if plain and _yaml_rs_reads_a_number_yaml_12_does_not(spelling)), None)
    try:
        parse_yaml(text)
        problem = None
    except YamlProblem as raised:
        problem = raised
    assume(problem is None or problem.code != "TI101")  # two keys of one value (0x1F and 31): yaml-rs stops first
    if expected is None:
        assert problem is None or problem.code != "TI116", (text, problem)
    else:
        assert problem is not None and problem.code == "TI116" and problem.message.startswith(f"{expected} "), (text, problem)


def test_list_edits_quote_an_item_yaml_rs_would_read_as_a_number() -> None:
    from tiops.yamlio import set_list_properties

    text = set_list_properties("type: x\nlabels: [a]\n", [((), "labels", ["_1", "1_0", "_x", "b"])])
    assert text == 'type: x\nlabels: ["_1", "1_0", _x, b]\n'
    assert parse_yaml(text)["labels"] == ["_1", "1_0", "_x", "b"]
