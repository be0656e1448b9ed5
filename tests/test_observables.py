"""The observable model: pattern comparisons and SCO values, unescaped (STIX 2.1 sections 6, 9)."""

from __future__ import annotations

import pytest

from tiops.observables import (
    Observable,
    object_observables,
    pattern_observables,
    unescape_string_literal,
)


def values(pattern: str) -> list[tuple[str, str, str]]:
    return [(o.key, o.path, o.value) for o in pattern_observables(pattern)]


def test_simple_equality() -> None:
    assert values("[ipv4-addr:value = '198.51.100.1']") == [("ipv4-addr:value", "value", "198.51.100.1")]


def test_every_value_of_an_or_pattern_is_kept() -> None:
    pattern = "[domain-name:value = 'a.example'] OR [domain-name:value = 'b.example' OR url:value = 'http://c.example/']"
    assert [v for _, _, v in values(pattern)] == ["a.example", "b.example", "http://c.example/"]


def test_escapes_are_removed() -> None:
    pattern = r"[file:name = 'C:\\Windows\\evil.exe' AND email-message:subject = 'it\'s here']"
    assert [v for _, _, v in values(pattern)] == ["C:\\Windows\\evil.exe", "it's here"]


def test_quoted_hash_keys_are_unquoted_in_path_but_kept_in_key() -> None:
    sha = "a" * 64
    (obs,) = pattern_observables(f"[file:hashes.'SHA-256' = '{sha}']")
    assert (obs.object_type, obs.path, obs.key, obs.value) == ("file", "hashes.SHA-256", "file:hashes.'SHA-256'", sha)


def test_nested_paths_and_indexes() -> None:
    (obs,) = pattern_observables("[network-traffic:src_ref.value = '10.0.0.1']")
    assert obs.path == "src_ref.value"
    (obs,) = pattern_observables("[email-message:to_refs[*].value = 'a@example.com']")
    assert obs.path == "to_refs[*].value"


def test_in_lists_and_operators() -> None:
    found = pattern_observables("[ipv4-addr:value IN ('1.1.1.1', '2.2.2.2')] AND [url:value LIKE '%evil%']")
    assert [(o.operator, o.value, o.is_equality) for o in found] == [
        ("IN", "1.1.1.1", True), ("IN", "2.2.2.2", True), ("LIKE", "%evil%", False)
    ]


def test_not_and_non_string_literals() -> None:
    found = pattern_observables(
        "[ipv4-addr:value NOT = '1.2.3.4' AND file:size > 10 AND file:created = t'2020-01-01T00:00:00Z'] "
        "WITHIN 5 SECONDS"
    )
    assert [(o.value, o.negated) for o in found] == [("1.2.3.4", True)]


def test_string_literal_that_looks_like_a_path_is_not_a_comparison() -> None:
    assert values("[url:value = 'http://x:80/a']") == [("url:value", "value", "http://x:80/a")]


@pytest.mark.parametrize("text", ["", "not a pattern", "[", "[ipv4-addr:value =", "'unterminated"])
def test_broken_text_finds_nothing_and_does_not_raise(text: str) -> None:
    assert pattern_observables(text) == ()


def test_unescape() -> None:
    assert unescape_string_literal(r"'a\'b\\c'") == "a'b\\c"


def test_object_observables_for_indicators_and_scos() -> None:
    indicator = {"type": "indicator", "pattern_type": "stix", "pattern": "[ipv4-addr:value = '203.0.113.9']"}
    assert [o.value for o in object_observables(indicator)] == ["203.0.113.9"]
    assert object_observables({**indicator, "pattern_type": "sigma"}) == ()
    file_sco = {"type": "file", "id": "file--x", "name": "a.exe", "hashes": {"MD5": "0" * 32}}
    assert object_observables(file_sco) == (
        Observable("file", "name", "file:name", "a.exe"),
        Observable("file", "hashes.MD5", "file:hashes.'MD5'", "0" * 32),
    )
    assert [o.value for o in object_observables({"type": "domain-name", "value": "x.example"})] == ["x.example"]
    assert object_observables({"type": "malware", "name": "x"}) == ()


SIMPLE_SHAPES = [
    "[ipv4-addr:value = '198.51.100.1']",
    "[ipv4-addr:value = '198.51.100.0/24']",
    "[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']",
    "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']",
    "[file:hashes.'a.b' = 'dotted key']",
    "[url:value = 'https://example.com/a?b=c&d=[e]']",
    "[x-custom-type:x_prop = '']",
    # Shapes the quick reader leaves to the lexer; the answer must be the same either way.
    "[file:name = 'C:\\\\evil.exe']",
    "[file:name = 'o\\'neil']",
    "[ipv4-addr:value='198.51.100.1']",
    "[ipv4-addr:value != '198.51.100.1']",
    "[file:hashes.MD5 = 'a' OR file:hashes.'SHA-256' = 'b']",
    "[network-traffic:src_ref.value = '10.0.0.1']",
    "[file:extensions.'windows-pebinary-ext'.sections[*].name = 'text']",
]


@pytest.mark.parametrize("pattern", SIMPLE_SHAPES)
def test_the_quick_reader_of_one_comparison_agrees_with_the_lexer(pattern: str) -> None:
    from tiops.observables import lexed_pattern_observables

    assert pattern_observables(pattern) == lexed_pattern_observables(pattern)
    assert pattern_observables(pattern)  # each shape names something, so agreement is not of two empties


def test_the_quick_reader_agrees_with_the_lexer_on_real_patterns() -> None:
    import json
    from pathlib import Path

    from tiops.observables import lexed_pattern_observables

    cases = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "oasis" / "pattern-cases.jsonl"
    if not cases.is_file():
        pytest.skip("../shared/corpora is absent")
    patterns = [json.loads(line)["pattern"] for line in cases.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(patterns) > 100
    for pattern in patterns:
        assert pattern_observables(pattern) == lexed_pattern_observables(pattern), pattern


def _pairs_from_observables(pattern: str) -> list[tuple[str, str]]:
    return list(dict.fromkeys((o.key, o.value) for o in pattern_observables(pattern) if o.is_equality))


@pytest.mark.parametrize("pattern", [
    *SIMPLE_SHAPES,
    "[ipv4-addr:value = '203.0.113.45'] OR [ipv4-addr:value = '203.0.113.45']",  # the same pair once
    "[ipv4-addr:value IN ('198.51.100.1', '198.51.100.2')]",
    "[ipv4-addr:value NOT = '198.51.100.1' AND domain-name:value = 'a.example']",
    "[file:name LIKE '%.exe']",
])
def test_equality_pairs_are_the_equal_observables_once_each(pattern: str) -> None:
    from tiops.observables import equality_pairs

    assert equality_pairs(pattern) == _pairs_from_observables(pattern)


def test_equality_pairs_agree_on_real_patterns() -> None:
    import json
    from pathlib import Path

    from tiops.observables import equality_pairs

    cases = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "oasis" / "pattern-cases.jsonl"
    if not cases.is_file():
        pytest.skip("../shared/corpora is absent")
    patterns = [json.loads(line)["pattern"] for line in cases.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert sum(1 for pattern in patterns if equality_pairs(pattern)) > 50
    for pattern in patterns:
        assert equality_pairs(pattern) == _pairs_from_observables(pattern), pattern


def test_a_comparison_of_what_an_object_is_names_no_observed_value() -> None:
    from tiops.observables import equality_pairs, pattern_observables

    # [network-traffic:dst_ref.type = 'ipv4-addr'] became a Sentinel row whose value was "ipv4-addr".
    for pattern in ("[network-traffic:dst_ref.type = 'ipv4-addr']", "[network-traffic:src_ref.id = 'ipv4-addr--x']",
                    "[ipv4-addr:spec_version = '2.1']"):
        assert pattern_observables(pattern) == () and equality_pairs(pattern) == [], pattern
    both = "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '198.51.100.7']"
    assert equality_pairs(both) == [("network-traffic:dst_ref.value", "198.51.100.7")]
    assert equality_pairs("[file:hashes.'SHA-256' = 'aa']") == [("file:hashes.'SHA-256'", "aa")]


def test_a_type_or_id_that_is_a_value_is_kept() -> None:
    # Only a reference's (or the object's own) type/id says what an object is; an extension's
    # property or a dictionary key of that name is an observed value.
    assert [o.value for o in pattern_observables("[file:extensions.'x-acme-ext'.type = 'packer']")] == ["packer"]
    assert [o.value for o in pattern_observables(
        "[network-traffic:extensions.'http-request-ext'.request_header.'id' = 'z' OR ipv4-addr:value = '1.2.3.4']")] == ["z", "1.2.3.4"]
    assert pattern_observables("[domain-name:resolves_to_refs[*].type = 'ipv4-addr']") == ()
