"""tiops.validate.shapes: what is worked out once per list of property names gives the
findings the checks give without it, and a number-free shape is one the schema keeps free
of numbers STIX cannot hold."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tiops.codes import make_finding
from tiops.findings import Finding
from tiops.jsonschemas import known_properties, open_vocabularies, stix_validator
from tiops.limits import STIX_INTEGER_MAX, number_problems
from tiops.load import IntelObject
from tiops.validate import objects, rules21, values
from tiops.validate.objects import check_object
from tiops.validate.shapes import TIMESTAMP_PROPERTIES, number_free_property, shape_of

TYPES = ["indicator", "relationship", "malware", "identity", "location", "sighting", "observed-data", "file",
         "ipv4-addr", "marking-definition", "language-content", "network-traffic"]

# Values of every kind a YAML file can give, with the numbers STIX cannot hold among them.
SCALARS = st.one_of(
    st.sampled_from(["2025-01-01T00:00:00.000Z", "2025-02-30T00:00:00Z", "2024-02-29T12:00:00Z", "2023-01-01T00:00:00.000Z",
                     "malicious-activity", "made-up", "en", "not a tag!", "stix", "identity--1a2b3c4d-0000-4000-8000-000000000000",
                     "x", ""]),
    st.sampled_from([0, 50, 100, 101, -1, 2**53, -(2**53), 2**60, 1.5, math.nan, math.inf, -math.inf, True, None]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.sampled_from(["a", "x_b", "when", "c_ref"]), inner, max_size=2)),
                      max_leaves=6)
TIMESTAMPS = st.sampled_from(["2025-01-01T00:00:00.000Z", "2025-02-30T00:00:00Z", "2025-11-31T10:00:00.000Z",
                              "2024-12-31T23:59:59.5Z", "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00Z", "soon", None, 5])
NAMES = st.sampled_from(["created", "modified", "valid_from", "valid_until", "first_seen", "last_seen", "first_observed",
                         "last_observed", "start_time", "stop_time", "published", "confidence", "labels", "lang", "name",
                         "indicator_types", "malware_types", "pattern_type", "identity_class", "sectors", "count",
                         "latitude", "extensions", "x_custom", "x_when", "severity", "Bad", "ab", "granular_markings",
                         "external_references", "value", "number_observed", "src_port", "revoked"])


def _objects() -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        stix_type = draw(st.sampled_from(TYPES))
        data: dict[str, Any] = {"type": stix_type, "spec_version": "2.1",
                                "id": f"{stix_type}--1a2b3c4d-0000-4000-8000-000000000000"}
        # Known properties often, so that schema-valid objects are common.
        known = sorted(known_properties(stix_type) - {"type", "spec_version", "id"})
        for name in draw(st.lists(st.one_of(NAMES, st.sampled_from(known)), max_size=7, unique=True)):
            data[name] = draw(VALUES)
        data.update(draw(st.dictionaries(st.sampled_from(sorted(TIMESTAMP_PROPERTIES)), TIMESTAMPS, max_size=4)))
        return data
    return build()


def _properties_without_shape(obj: IntelObject) -> list[Finding]:
    """The property-name and vocabulary checks of _check_properties written over the object itself."""
    data, stix_type = obj.data, obj.data["type"]
    known = known_properties(stix_type)
    findings = [make_finding("TI208", f"'{name}' is not a property of {stix_type} objects", obj.location(name), stix_id=obj.id)
                for name in data if name not in known and not name.startswith("x_") and name != "extensions"
                and name not in rules21.RESERVED_PROPERTIES]
    for name, (vocabulary, suggested) in open_vocabularies(stix_type).items():
        value = data.get(name)
        for index, item in enumerate(value if isinstance(value, list) else [value] if isinstance(value, str) else []):
            if isinstance(item, str) and item not in suggested:
                at = obj.location(name, index) if isinstance(value, list) else obj.location(name)
                findings.append(make_finding("TI209", f"{name}: '{item}' is not in the {vocabulary} vocabulary", at,
                                             stix_id=obj.id, hint=f"Suggested values: {', '.join(sorted(suggested))}."))
    return findings


@settings(max_examples=400, deadline=None)
@given(_objects())
def test_the_checks_with_a_shape_report_what_they_report_without(data: dict[str, Any]) -> None:
    obj = IntelObject(data=data, file="x.yaml")
    shape = shape_of(data["type"], data)
    with_shape: list[Finding] = []
    objects._check_properties(obj, with_shape, shape)
    assert with_shape == _properties_without_shape(obj)
    for skip in (frozenset(), frozenset(data)):
        with_shape, without = [], []
        objects._check_timestamps(obj, with_shape, skip=skip, shape=shape)
        objects._check_timestamps(obj, without, skip=skip)
        assert with_shape == without
    assert rules21.check_rules(obj, shape) == rules21.check_rules(obj)
    assert values.check_values(obj, shape=shape) == values.check_values(obj)


@settings(max_examples=600, deadline=None)
@given(_objects())
def test_a_schema_valid_object_of_a_number_free_shape_holds_no_unholdable_number(data: dict[str, Any]) -> None:
    validator = stix_validator(data["type"])
    try:
        valid = validator.is_valid(data)
    except (ValueError, OverflowError):  # what the schema library cannot take, check_object does not get past either
        return
    if valid and shape_of(data["type"], data).number_free:
        assert list(number_problems(data)) == []


def test_check_object_still_reports_unholdable_numbers_where_the_shape_is_not_number_free() -> None:
    data = {"type": "indicator", "spec_version": "2.1", "id": "indicator--1a2b3c4d-0000-4000-8000-000000000000",
            "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", "pattern": "[url:value = 'http://a']",
            "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z", "x_score": STIX_INTEGER_MAX + 1}
    assert not shape_of("indicator", data).number_free
    assert [f.code for f in check_object(IntelObject(data=data, file="x.yaml"))] == ["TI220"]
    data["confidence"] = math.nan  # invalid for the schema: the numbers are walked whatever the shape
    del data["x_score"]
    assert shape_of("indicator", data).number_free
    assert "TI220" in [f.code for f in check_object(IntelObject(data=data, file="x.yaml"))]


def test_number_free_properties_are_the_ones_the_schema_bounds() -> None:
    assert number_free_property("indicator", "pattern")  # a string
    assert number_free_property("indicator", "labels")  # a list of strings, from the common SDO properties
    assert number_free_property("indicator", "confidence")  # an integer from 0 to 100
    assert number_free_property("indicator", "created")  # a timestamp, by $ref
    assert not number_free_property("location", "latitude")  # a number: NaN is one
    assert not number_free_property("file", "size")  # an integer without an upper bound
    assert not number_free_property("indicator", "external_references")  # objects open to any property
    assert not number_free_property("indicator", "x_custom")


def test_a_schema_finding_names_the_section_of_its_type() -> None:
    """TI200's hint was 'see the STIX 2.1 specification section for this object type', naming none."""
    indicator = {"type": "indicator", "spec_version": "2.1", "id": "indicator--1a2b3c4d-0000-4000-8000-000000000000",
                 "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z",
                 "pattern": "[ipv4-addr:value = '198.51.100.1']", "pattern_type": "stix",
                 "valid_from": "2025-01-01T00:00:00Z", "name": ["not", "a", "string"]}
    found = [f for f in check_object(IntelObject(data=indicator, file="x.yaml")) if f.code == "TI200"]
    assert found and all("(STIX 2.1 section 4.7, indicator)" in f.message for f in found), found
    assert found[0].hint and "section it names" in found[0].hint and "tiops import" in found[0].hint
