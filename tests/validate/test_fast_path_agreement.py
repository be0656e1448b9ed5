"""The shortcuts in per-object validation agree with the general code they skip.

Each shortcut either reads a common shape more cheaply or skips work that provably
finds nothing; these tests hold each one to the general form on generated inputs.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tiops.findings import Finding
from tiops.jsonschemas import open_vocabularies
from tiops.load import IntelObject
from tiops.validate import objects
from tiops.validate.patterns import (
    _SIMPLE_PATTERN_RE,
    _comparisons,
    _hash_values_pass,
    _one_hash_comparison,
)

ALGORITHMS = st.sampled_from(["MD5", "SHA-256", "SHA256", "'SHA-1'", "SHA3-512", "md5", "ssdeep", "TLSH", "x_custom", "AND"])
LITERALS = st.one_of(st.text(alphabet="0123456789abcdefABCDEFxyz:/+'\\ ", max_size=70),
                     st.sampled_from(["d41d8cd98f00b204e9800998ecf8427e", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]))


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["file", "artifact", "x509-certificate", "x-custom"]), ALGORITHMS, LITERALS,
       st.sampled_from([" = ", "=", " != ", "  =  ", " = "]), st.sampled_from(["", " ", "\n"]), st.booleans())
def test_the_one_hash_reading_equals_the_general_walk(object_type: str, algorithm: str, literal: str, operator: str,
                                                      space: str, quote: bool) -> None:
    step = f"'{algorithm.strip(chr(39))}'" if quote else algorithm
    pattern = f"[{space}{object_type}:hashes.{step}{operator}'{literal}'{space}]"
    general = _comparisons(pattern)
    one = _one_hash_comparison(pattern)
    if _SIMPLE_PATTERN_RE.fullmatch(pattern) is not None:  # the only patterns the reading is used on
        assert general is not None
        assert one is None or one == general
        for version in ("2.0", "2.1"):
            assert _hash_values_pass(pattern, version) == _general_hash_values_pass(general, version)


def test_the_one_hash_reading_is_used_on_the_common_shapes() -> None:
    for pattern in ["[file:hashes.'SHA-256' = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855']",
                    "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']"]:
        assert _one_hash_comparison(pattern) == _comparisons(pattern) is not None
    assert _one_hash_comparison("[file:hashes.MD5 = 'a' AND file:name = 'b']") is None


def _general_hash_values_pass(comparisons: list[Any], version: str) -> bool:
    from tiops.validate.patterns import _AnyIndex, _hash_value_res

    for steps, literal in comparisons:
        if "hashes" not in steps or isinstance(steps[-1], _AnyIndex):
            continue
        if isinstance(steps[-1], int):
            return False
        value_re = _hash_value_res(version).get(steps[-1].upper().replace("-", "").replace("'", ""))
        if value_re is not None and value_re.match(literal.replace("'", "")) is None:
            return False
    return True


def _general_vocabulary_findings(obj: IntelObject) -> list[tuple[str, str]]:
    """The item-by-item vocabulary loop of _check_properties, without its shortcut."""
    found = []
    for name, (_vocabulary, values) in open_vocabularies(obj.data["type"]).items():
        value = obj.data.get(name)
        candidates = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        for index, item in enumerate(candidates):
            if isinstance(item, str) and item not in values:
                found.append((name, str(index)))
    return found


VOCABULARY_VALUES = st.one_of(st.sampled_from(["malicious-activity", "anomalous-activity", "benign", "made-up", ""]),
                              st.integers(0, 2), st.none(), st.dictionaries(st.just("a"), st.just(1), max_size=1))


@settings(max_examples=300, deadline=None)
@given(st.one_of(VOCABULARY_VALUES, st.lists(VOCABULARY_VALUES, max_size=4)))
def test_the_vocabulary_shortcut_reports_what_the_loop_reports(value: Any) -> None:
    data = {"type": "indicator", "id": "indicator--0f6f9b5e-4c1e-4d8e-9a3b-6a1d2c3b4e5f", "indicator_types": value}
    obj = IntelObject(data=data, file="x.yaml")
    findings: list[Finding] = []
    objects._check_properties(obj, findings)
    assert len([f for f in findings if f.code == "TI209"]) == len(_general_vocabulary_findings(obj))


TIMESTAMPS = st.sampled_from(["2025-01-01T00:00:00Z", "2025-02-30T00:00:00Z", "2024-12-31T23:59:59.5Z", "2026-01-01T00:00:00.000Z",
                              "not a time", None, 5])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["created", "modified", "valid_from", "valid_until", "first_seen", "last_seen",
                                        "start_time", "stop_time", "name"]), TIMESTAMPS, max_size=5))
def test_timestamp_shortcuts_report_what_every_window_reports(properties: dict[str, Any]) -> None:
    data = {"type": "indicator", **properties}
    findings: list[Finding] = []
    objects._check_timestamps(IntelObject(data=data, file="x.yaml"), findings, skip=frozenset())
    windows = [(end, start, strict) for start, end, strict, _section in objects.TIME_WINDOWS]
    expected_order = sum(1 for end, start, strict in windows if data.get(start) is not None and data.get(end) is not None
                         and objects._before(data[end], data[start], strict=strict))
    assert len([f for f in findings if f.code == "TI206"]) == expected_order
