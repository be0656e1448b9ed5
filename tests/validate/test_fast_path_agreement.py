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
from tiops.observables import lexed_pattern_observables
from tiops.validate import objects
from tiops.validate.patterns import (
    _JOINED_COMPARISONS_RE,
    _ONE_COMPARISON_RE,
    _SIMPLE_PATTERN_RE,
    _comparisons,
    _fast_accepts,
    _hash_values_pass,
    _one_hash_comparison,
    _stix_pattern_errors,
    clear_pattern_cache,
    pattern_errors,
)
from tiops.validate.reference_index import check_listed_references, object_references
from tiops.validate.references import check_references
from tiops.validate.values import check_values
from tiops.values import check_observable_value

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


# --- One comparison, or several joined, of a value or hash with a plain string --------

COMPARISON_TYPES = st.sampled_from(["file", "ipv4-addr", "url", "x-custom", "artifact", "true", "false", "ab", "a-", "x--y"])
COMPARISON_PATHS = st.one_of(st.just("value"), st.builds(lambda algorithm, quote: f"hashes.'{algorithm.strip(chr(39))}'" if quote
                                                          else f"hashes.{algorithm}", ALGORITHMS, st.booleans()))
PLAIN_LITERALS = st.one_of(st.text(alphabet="0123456789abcdefABCDEFxyz:/+ .\n", max_size=70),
                           st.sampled_from(["d41d8cd98f00b204e9800998ecf8427e", "999.1.1.1", "198.51.100.7", "http://a b"]))


@st.composite
def _joined_comparisons(draw: st.DrawFn) -> str:
    parts = [f"{draw(COMPARISON_TYPES)}:{draw(COMPARISON_PATHS)} = '{draw(PLAIN_LITERALS)}'"
             for _ in range(draw(st.integers(1, 3)))]
    joined = parts[0]
    for part in parts[1:]:
        joined += draw(st.sampled_from([" AND ", " OR ", "  OR ", " or "])) + part
    return f"[{joined}]"


@settings(max_examples=400, deadline=None)
@given(_joined_comparisons(), st.sampled_from(["2.1", "2.0", "2.2"]))
def test_the_comparison_shortcut_gives_the_verdict_of_the_general_path(pattern: str, spec_version: str) -> None:
    assert pattern_errors(pattern, "stix", spec_version) == _stix_pattern_errors.__wrapped__(pattern, spec_version)  # type: ignore[attr-defined]


def test_the_comparison_shortcut_is_taken_on_the_common_patterns() -> None:
    clear_pattern_cache()
    for pattern in ["[ipv4-addr:value = '198.51.100.7']", "[file:hashes.'SHA-256' = '" + "a" * 64 + "']",
                    "[file:hashes.MD5 = '" + "b" * 32 + "' OR file:hashes.'SHA-1' = '" + "c" * 40 + "']"]:
        assert _ONE_COMPARISON_RE.fullmatch(pattern) or _JOINED_COMPARISONS_RE.fullmatch(pattern)
        assert _fast_accepts(pattern) and pattern_errors(pattern) == ()
    assert _stix_pattern_errors.cache_info().misses == 0  # the memoised general path was never asked


def _general_pattern_value_findings(obj: IntelObject) -> list[tuple[str, str]]:
    """The lexer's reading of every comparison, as check_values reads patterns it has no shortcut for."""
    found = []
    for observable in lexed_pattern_observables(obj.data["pattern"]):
        if observable.operator in ("=", "!=", "IN", "ISSUBSET", "ISSUPERSET"):
            problem = check_observable_value(observable.object_type, observable.path, observable.value)
            if problem is not None:
                found.append((problem.code, f"pattern: {observable.key}: {problem.reason}"))
    return found


VALUE_PATHS = st.sampled_from(["value", "hashes.MD5", "hashes.'SHA-256'", "hashes.'a.b'", "hashes.''", "name", "mime_type",
                               "name_enc", "cpe", "x_y.z", "from_ref.value"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ipv4-addr", "ipv6-addr", "url", "email-addr", "file", "artifact", "software",
                                            "email-message", "x-custom"]), VALUE_PATHS, PLAIN_LITERALS), min_size=1, max_size=3),
       st.sampled_from([" AND ", " OR "]))
def test_joined_equalities_give_the_value_findings_of_the_lexer(comparisons: list[tuple[str, str, str]], joiner: str) -> None:
    pattern = "[" + joiner.join(f"{kind}:{path} = '{literal}'" for kind, path, literal in comparisons) + "]"
    obj = IntelObject(data={"type": "indicator", "id": "indicator--0f6f9b5e-4c1e-4d8e-9a3b-6a1d2c3b4e5f", "pattern": pattern,
                            "pattern_type": "stix"}, file="x.yaml")
    assert [(f.code, f.message) for f in check_values(obj)] == _general_pattern_value_findings(obj)


# --- References: resolved once per (type, property, id), walked only where they can be --

REFERENCE_VALUES = st.sampled_from([
    "identity--1a2b3c4d-0000-4000-8000-000000000001", "identity--1a2b3c4d-0000-4000-8000-000000000009",
    "malware--1a2b3c4d-0000-4000-8000-000000000002", "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    "x-thing--1a2b3c4d-0000-4000-8000-000000000003", "bad--id", "identity--1a2b", 5, None,
])
NESTABLE = st.recursive(st.one_of(REFERENCE_VALUES, st.sampled_from(["text", "x"])),
                        lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                st.dictionaries(st.sampled_from(["a", "b_ref", "c_refs", "marking_ref", "hashes"]),
                                                                inner, max_size=2)), max_leaves=5)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["created_by_ref", "source_ref", "target_ref", "object_marking_refs",
                                                 "object_refs", "labels", "granular_markings", "x_nested", "extensions",
                                                 "external_references", "name"]),
                                st.one_of(REFERENCE_VALUES, st.lists(REFERENCE_VALUES, max_size=3), NESTABLE), max_size=5),
                min_size=1, max_size=12),
       st.sampled_from(["relationship", "indicator", "observed-data", "x-thing"]))
def test_the_reference_check_reports_what_resolving_every_listed_reference_reports(
        properties: list[dict[str, Any]], stix_type: str) -> None:
    defined = [IntelObject(data={"type": kind, "id": f"{kind}--1a2b3c4d-0000-4000-8000-00000000000{n}"}, file="d.yaml")
               for n, kind in ((1, "identity"), (2, "malware"), (3, "x-thing"))]
    objects_ = defined + [IntelObject(data={"type": stix_type, "id": f"{stix_type}--1a2b3c4d-0000-4000-8000-0000000001{n:02d}", **extra},
                                      file="x.yaml") for n, extra in enumerate(properties)]
    # Every object twice: the second time its ids come from the remembered ones.
    objects_ += objects_[len(defined):]
    listed = [object_references(obj) for obj in objects_]
    assert check_references(objects_) == check_listed_references(objects_, listed)


def test_references_nested_in_lists_are_still_resolved() -> None:
    dangling = "identity--1a2b3c4d-0000-4000-8000-000000000009"
    in_lists = IntelObject(data={"type": "indicator", "id": "indicator--1a2b3c4d-0000-4000-8000-000000000100",
                                 "created_by_ref": dangling, "labels": ["a", {"b_ref": dangling}],
                                 "granular_markings": [{"marking_ref": dangling, "selectors": ["labels"]}]}, file="x.yaml")
    in_mapping = IntelObject(data={"type": "indicator", "id": "indicator--1a2b3c4d-0000-4000-8000-000000000101",
                                   "x_nested": {"c_refs": [dangling]}}, file="x.yaml")
    objects_ = [in_lists, in_mapping, in_lists]
    findings = check_references(objects_)
    assert findings == check_listed_references(objects_, [object_references(obj) for obj in objects_])
    assert {f.location.path for f in findings} == {("created_by_ref",), ("labels", 1, "b_ref"),
                                                   ("granular_markings", 0, "marking_ref"), ("x_nested", "c_refs", 0)}


ORDERED_TIMESTAMPS = st.one_of(TIMESTAMPS, st.sampled_from(["2025-01-01T00:00:00.000Z", "2025-03-01T00:00:00.000Z",
                                                             "2025-02-01T00:00:00Z", "2025-01-01T00:00:00.100Z"]))


@settings(max_examples=300, deadline=None)
@given(ORDERED_TIMESTAMPS, ORDERED_TIMESTAMPS,
       st.sampled_from(["2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00.0001Z", "2024-12-31T23:59:59Z", "2025-02-01T00:00:00Z"]))
def test_the_order_shortcut_reports_what_the_timestamp_keys_report(created: Any, modified: Any, valid_from: str) -> None:
    data = {"type": "indicator", "created": created, "modified": modified, "valid_from": valid_from, "valid_until": modified}
    findings: list[Finding] = []
    objects._check_timestamps(IntelObject(data=data, file="x.yaml"), findings, skip=frozenset())
    assert any(f.code == "TI205" for f in findings) == (
        created is not None and modified is not None and objects._before(modified, created, strict=False))
    assert any(f.code == "TI206" for f in findings) == (modified is not None and objects._before(modified, valid_from, strict=True))
