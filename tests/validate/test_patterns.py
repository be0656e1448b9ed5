"""tiops.validate.patterns: verdicts equal the reference checker's; the fast path is sound."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from stix2patterns.validator import run_validator

from tiops.validate.patterns import _fast_accepts, clear_pattern_cache, pattern_errors

REPO_ROOT = Path(__file__).resolve().parents[2]
PATTERN_CASES = REPO_ROOT.parent / "shared" / "corpora" / "oasis" / "pattern-cases.jsonl"


def _reference_accepts(pattern: str, spec_version: str) -> bool:
    """The reference checker's verdict; its crashes count as rejections."""
    try:
        return not run_validator(pattern, stix_version=spec_version)
    except Exception:
        return False


def _load_pattern_cases() -> list[dict[str, Any]]:
    if not PATTERN_CASES.is_file():
        return []
    with PATTERN_CASES.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


_CASES = _load_pattern_cases()


# --- The OASIS pattern cases -----------------------------------------------------------


@pytest.mark.skipif(not _CASES, reason=f"pattern corpus not found at {PATTERN_CASES}")
@pytest.mark.parametrize("case", _CASES, ids=[str(i) for i in range(len(_CASES))])
def test_verdict_matches_reference_on_oasis_cases(case: dict[str, Any]) -> None:
    errors = pattern_errors(case["pattern"], "stix", case["stix_version"])
    assert (errors == ()) is case["valid"], (case["pattern"], errors, case["errors"])


@pytest.mark.skipif(not _CASES, reason=f"pattern corpus not found at {PATTERN_CASES}")
def test_fast_path_takes_the_common_oasis_cases() -> None:
    # Guards against a fast path that silently stopped accepting anything (still sound,
    # but back to the slow speed).
    accepted = [case for case in _CASES if _fast_accepts(case["pattern"], case["stix_version"])]
    assert len(accepted) >= 40
    assert all(case["valid"] for case in accepted)


# --- Fast path: what it takes, what it must leave to the reference -------------------

COMMON_VALID = [
    "[ipv4-addr:value = '198.51.100.1']",
    "[ipv4-addr:value = '198.51.100.0/24']",
    "[ipv6-addr:value = '2001:db8::1']",
    "[domain-name:value = 'example.com']",
    "[url:value = 'http://example.com/a?b=c&d=\\'e\\'']",
    "[email-addr:value = 'bob@example.com']",
    "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']",
    "[file:hashes.'SHA-256' = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855']",
    "[file:hashes.'SHA-1' = 'da39a3ee5e6b4b0d3255bfef95601890afd80709' OR file:name = 'a.exe']",
    "[file:name = 'a.exe'] AND [process:name != 'b']",
    "[windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\Software\\\\Evil']",
    "[network-traffic:dst_ref.value = '198.51.100.1' AND network-traffic:dst_port = 443]",
    "[email-message:body_multipart[*].body_raw_ref.name MATCHES '^Final.+\\\\.exe$']",
    "[x-acme-sensor:'odd key'[0] LIKE 'abc%']",
    "[file:created = t'2024-01-15T12:30:45.123Z']",
    "[artifact:payload_bin = b'AAAA' OR artifact:mime_type = 'x']",
    "[x509-certificate:serial_number = h'00ff']",
    "[file:is_encrypted = true]",
    "[file:hashes[*] = 'anything']",
    "[file:extensions.'archive-ext'.hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']",
]


@pytest.mark.parametrize("pattern", COMMON_VALID)
def test_fast_path_accepts_common_shapes(pattern: str) -> None:
    assert _fast_accepts(pattern)
    assert _reference_accepts(pattern, "2.1")
    assert pattern_errors(pattern) == ()


LEFT_TO_REFERENCE = [
    "[file:hashes.MD5 = 'not-a-hash']",  # valid syntax, fails the hash check
    "[file:hashes.'sha-256' = 'e3b0']",  # algorithm names are matched case-blind
    "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427\\'e']",
    "[file:hashes[0] = 'x']",  # crashes the reference checker
    "[file:name[-1] = 'x']",  # crashes the reference checker
    "[file:AND = 'x']",  # keyword as a property
    "[file:a.EXISTS = 'x']",  # keyword in 2.1 only
    "[true:name = 'x']",  # true is a literal, not a type
    "[file:name-x = 'x']",  # hyphenated property name
    "[file:name[01] = 'x']",
    "[file:size = 007]",
    "[file:name = 'x'] and [file:name = 'y']",  # keywords are case-sensitive
    "[file:name = 'x\\n']",  # \n is not an allowed escape
    "[file:name = 'x]",
    "file:name = 'x'",
    "[file:created = t'2024-13-01T00:00:00Z']",
    "[file:created = t'2024-01-01T24:00:00Z']",
    "[artifact:payload_bin = b'AAA']",
    "[x:y = h'abc']",
    "[File:name = 'x']",
    "[ab:name = 'x']",  # type names are at least 3 characters
    "[file:name = 'x'] WITHIN 5 SECONDS",  # qualifiers are not fast-path shapes
    "[file:name = 'x'] FOLLOWEDBY [file:name = 'y']",
    "([file:name = 'x'])",
    "",
]


@pytest.mark.parametrize("pattern", LEFT_TO_REFERENCE)
def test_fast_path_leaves_the_rest_to_the_reference(pattern: str) -> None:
    assert not _fast_accepts(pattern)
    assert (pattern_errors(pattern) == ()) is _reference_accepts(pattern, "2.1")


def test_fast_path_only_for_known_versions() -> None:
    assert not _fast_accepts("[file:name = 'x']", "2.2")
    assert pattern_errors("[file:name = 'x']", "stix", "2.2") == ()


def test_exists_is_a_keyword_only_in_2_1() -> None:
    assert pattern_errors("[file:a.EXISTS = 'x']", "stix", "2.0") == ()
    assert pattern_errors("[file:a.EXISTS = 'x']", "stix", "2.1") != ()


# --- Messages --------------------------------------------------------------------------

ANTLR_NOISE = re.compile(
    r"FAIL:|Error found at|<EOF>|<INVALID>|Literal\b|Identifier(?:With|Without)Hyphen"
)

INVALID = [
    "file:size = 1280",
    "[file:size = ]",
    "[file:hashes.MD5 = cead3f77f6cda6ec00f57d76c9a6879f]",
    "[file.size = 1280]",
    "[network-traffic:dst_ref.value ISSUBSET ]",
    "[foo:bar=1] within 2 seconds",
    "[x:created = t'2024-13-01T12:00:00Z']",
    "[file:hashes.'SHA-256' = 'f00']",
    "[a:b = 'x'] WITHIN 5 SECONDS WITHIN 6 SECONDS",
    "[file:hashes[0] = 'x']",
    "",
    "   ",
    "[file:name = 'x'\n AND file:name = ]",
]


@pytest.mark.parametrize("pattern", INVALID)
def test_errors_are_plain_sentences(pattern: str) -> None:
    errors = pattern_errors(pattern)
    assert errors
    for error in errors:
        assert isinstance(error, str)
        assert error.strip() == error and error
        assert not ANTLR_NOISE.search(error), error
    assert len(set(errors)) == len(errors)


def test_error_keeps_the_position_one_based() -> None:
    (error,) = pattern_errors("[file:size = ]")
    assert error.startswith("at character 14: ")
    assert "']'" in error


def test_error_on_a_later_line_gives_line_and_column() -> None:
    (error,) = pattern_errors("[file:name = 'x'\n AND file:name = ]")
    assert error.startswith("at line 2, column 18: ")


def test_missing_brackets_is_explained() -> None:
    errors = pattern_errors("file:size = 1280")
    assert any("square brackets" in error for error in errors)


def test_malformed_timestamp_gets_a_hint() -> None:
    (error,) = pattern_errors("[x:created = t'2024-13-01T12:00:00Z']")
    assert "t'2024-01-15T12:30:45Z'" in error


def test_hash_error_names_value_and_algorithm() -> None:
    assert pattern_errors("[file:hashes.'SHA-256' = 'f00']") == (
        "'f00' is not a valid SHA-256 hash",
    )


def test_reference_crash_becomes_an_error() -> None:
    (error,) = pattern_errors("[file:hashes[0] = 'x']")
    assert "could not be checked" in error


def test_empty_pattern() -> None:
    assert pattern_errors("") == ("the pattern is empty",)


# --- Pattern types, memoising -------------------------------------------------------


@pytest.mark.parametrize(
    "pattern_type", ["snort", "yara", "sigma", "suricata", "pcre", "spl", "eql", "STIX"]
)
def test_other_pattern_types_are_opaque(pattern_type: str) -> None:
    assert pattern_errors("alert tcp any any -> any any (msg:'x';)", pattern_type) == ()
    assert pattern_errors("", pattern_type) == ()


def test_results_are_memoised_and_cache_can_be_cleared() -> None:
    clear_pattern_cache()
    first = pattern_errors("[file:size = ]")
    assert pattern_errors("[file:size = ]") is first
    clear_pattern_cache()
    assert pattern_errors("[file:size = ]") == first


# --- Soundness: whenever the fast path accepts, the reference accepts ----------------

SCO_TYPES = [
    "artifact", "autonomous-system", "directory", "domain-name", "email-addr",
    "email-message", "file", "ipv4-addr", "ipv6-addr", "mac-addr", "mutex",
    "network-traffic", "process", "software", "url", "user-account",
    "windows-registry-key", "x509-certificate", "x-acme-widget",
]  # fmt: skip
NEAR_MISS_TYPES = [
    "File", "ab", "a", "1abc", "true", "false", "AND", "x--y", "a_b", "file-", "-file",
    "x_custom", "EXISTS", "ipv4_addr", "ip v4", "", "filé",
]  # fmt: skip
KEYS = [
    "value", "name", "hashes", "MD5", "SHA1", "SHA256", "SHA3256", "SSDEEP", "MD6",
    "dst_ref", "body_raw_ref", "_x", "x1", "AND", "OR", "EXISTS", "IN", "NOT", "true",
    "false", "in", "name-x", "5a", "é", "LIKEx", "t", "h", "b",
]  # fmt: skip
QUOTED_KEYS = [
    "'SHA-256'", "'sha-256'", "'SHA-1'", "'hashes'", "'MD\\'5'", "'a b'", "''", "'x\\\\'",
    "'unterminated", "'bad\\escape'", "'SHA3-512'", "'WHIRLPOOL'",
]  # fmt: skip
STEPS = ["[0]", "[1]", "[12]", "[01]", "[-1]", "[+1]", "[*]", "[ 0 ]", "[]", ".5", ".", ".."]
OPERATORS = ["=", "!=", "==", "<>", "LIKE", "MATCHES", "like", "IN", ">", "= =", "!", "NOT LIKE"]
SPACES = ["", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\x0b", "\u2028", "/**/"]


def _pattern_strategy(*, noisy: bool) -> st.SearchStrategy[str]:
    """Patterns built from pieces that are each right (``noisy`` False), or usually right
    with near misses mixed in at every choice point (``noisy`` True)."""

    def choose(usual: list[str], unusual: list[str]) -> st.SearchStrategy[str]:
        return st.sampled_from(usual + unusual if noisy else usual)

    spaces = choose(["", " ", "  ", "\t", "\n"], ["\r\n", "\u00a0", "\x0b", "\u2028", "/**/"])
    keyword_spaces = choose([" ", "  ", "\n", "\t "], ["", "\u00a0", "/**/", "\u3000"])
    string_pieces = choose(
        ["a", "Z", "0", ".", "/", ":", "%", " ", "\\'", "\\\\", "é", "-", "_", "\n", "😀"],
        ["'", "\\", "\\n", "\\\\\\", "]", "[", " AND ", "\r", "\x00", "\ud800", "\udfff"],
    )
    hash_like = st.tuples(
        st.sampled_from([30, 31, 32, 33, 40, 56, 64, 96, 128, 129]),
        choose(["", "g", "\n"], ["'", "\\\\", "\\'"]),
    ).map(lambda spec: "'" + "ab01" * (spec[0] // 4) + "c" * (spec[0] % 4) + spec[1] + "'")
    string_literals = st.one_of(
        st.lists(string_pieces, max_size=6).map(lambda parts: "'" + "".join(parts) + "'"),
        hash_like,
        st.sampled_from(
            [
                "'d41d8cd98f00b204e9800998ecf8427e'",
                "'da39a3ee5e6b4b0d3255bfef95601890afd80709'",
                "'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'",
                "'3:abc:def'",
                "''",
            ]
        ),
    )
    integers = st.tuples(
        choose(["", "-"], ["+", "--", "- "]),
        choose(["0", "1", "443", "65535"], ["00", "007", "1_0", ""]),
        choose([""], [".5", ".", "e3"]),
    ).map("".join)
    timestamps = st.tuples(
        choose(["2024", "0000", "1999"], ["202", "20245"]),
        choose(["01", "12", "09"], ["00", "13", "1"]),
        choose(["01", "29", "31", "10"], ["32", "00", "3"]),
        choose(["00", "23", "09", "19"], ["24", "30"]),
        choose(["00", "59"], ["60", "6"]),
        choose(["00", "59", "60"], ["61", "70"]),
        choose(["", ".1", ".123456"], ["."]),
        choose(["Z"], ["", "+00:00", "z"]),
    ).map(lambda p: f"t'{p[0]}-{p[1]}-{p[2]}T{p[3]}:{p[4]}:{p[5]}{p[6]}{p[7]}'")
    other_literals = st.one_of(
        integers,
        choose(["true", "false"], ["True", "TRUE", "tru", "true_"]),
        timestamps,
        choose(["h''", "h'0a'", "h'FFee'"], ["h'0'", "h'0g'", "h'0a0'", "H'0a'"]),
        choose(
            ["b'AAAA'", "b'AA=='", "b'AAA='", "b'AAAAAA=='", "b'a+/9'"],
            ["b''", "b'AAA'", "b'A==='", "b'===='", "b'AA='", "b'A A='"],
        ),
    )
    object_types = choose(SCO_TYPES, NEAR_MISS_TYPES)
    first_steps = choose(["value", "name", "hashes", "dst_ref", "_x", "x1", "'a b'"], KEYS)
    later_steps = choose(
        [".value", ".hashes", ".MD5", ".SHA1", ".'SHA-256'", ".'sha-256'", "[0]", "[*]", ".name"],
        ["." + key for key in KEYS + QUOTED_KEYS] + STEPS,
    )
    paths = st.tuples(first_steps, st.lists(later_steps, max_size=2)).map(
        lambda parts: parts[0] + "".join(parts[1])
    )
    operators = choose(["=", "!=", "LIKE", "MATCHES"], OPERATORS)
    colons = choose([":"], ["::", ".", " :", ""])
    joiners = st.tuples(
        keyword_spaces, choose(["AND", "OR"], ["and", "FOLLOWEDBY", ",", "&&"]), keyword_spaces
    ).map("".join)
    openings = choose(["["], ["", "(", "[["])
    closings = choose(["]"], ["", ")", "]]"])

    @st.composite
    def comparisons(draw: st.DrawFn) -> str:
        operator = draw(operators)
        if operator in {"LIKE", "MATCHES"} or draw(st.booleans()):
            value = draw(string_literals)
        else:
            value = draw(other_literals)
        around = keyword_spaces if operator.isalpha() else spaces
        operator = draw(around) + operator + draw(around)
        return draw(object_types) + draw(colons) + draw(paths) + operator + value

    @st.composite
    def observations(draw: st.DrawFn) -> str:
        body = draw(joiners).join(draw(st.lists(comparisons(), min_size=1, max_size=2)))
        return draw(openings) + draw(spaces) + body + draw(spaces) + draw(closings)

    @st.composite
    def patterns(draw: st.DrawFn) -> str:
        parts = draw(st.lists(observations(), min_size=1, max_size=2))
        return draw(spaces) + draw(joiners).join(parts) + draw(spaces)

    return patterns()


@st.composite
def _one_edit(draw: st.DrawFn, pattern: str) -> str:
    """``pattern`` with one character inserted, replaced or deleted."""
    position = draw(st.integers(0, len(pattern)))
    edit = draw(st.sampled_from(["'", "\\", "[", "]", " ", ".", ":", "", "-", "A", "h", "t"]))
    return pattern[:position] + edit + pattern[position + draw(st.integers(0, 1)) :]


clean_patterns = _pattern_strategy(noisy=False)
near_miss_patterns = st.one_of(
    clean_patterns,
    clean_patterns.flatmap(_one_edit),
    _pattern_strategy(noisy=True),
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=near_miss_patterns, spec_version=st.sampled_from(["2.1", "2.1", "2.0"]))
@example(pattern="[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e\n']", spec_version="2.1")
@example(pattern="[file:x = 'a'] OR [file:hashes.'SHA-256' = 'abc']", spec_version="2.1")
def test_fast_path_is_sound(pattern: str, spec_version: str) -> None:
    if _fast_accepts(pattern, spec_version):
        assert run_validator(pattern, stix_version=spec_version) == [], pattern


@settings(max_examples=1000, deadline=None)
@given(pattern=st.text(alphabet="[]():.'\\= !*-_0aAbefhilnrstxDNOR5\n", max_size=40))
def test_fast_path_is_sound_on_raw_text(pattern: str) -> None:
    if _fast_accepts(pattern):
        assert run_validator(pattern, stix_version="2.1") == [], pattern
