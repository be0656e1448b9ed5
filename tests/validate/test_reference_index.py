"""Listed references: a build that keeps lists for some objects only reports what the full walk reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tiops.load import IntelObject, load_repo
from tiops.validate import reference_index
from tiops.validate.reference_index import (
    ListedReference,
    check_listed_references,
    malformed_ids,
    object_references,
)
from tiops.validate.references import (
    _NESTED,
    _REFERENCE,
    _REFERENCES,
    _holds_mapping,
    _kind_of_key,
    _references,
    check_references,
)

VALUES = st.sampled_from([
    "identity--1a2b3c4d-0000-4000-8000-000000000001", "identity--1a2b3c4d-0000-4000-8000-000000000009",
    "malware--1a2b3c4d-0000-4000-8000-000000000002", "x-thing--1a2b3c4d-0000-4000-8000-000000000003",
    "bad--id", 5, None,
])
NESTED = st.recursive(st.one_of(VALUES, st.just("text")),
                      lambda inner: st.one_of(st.lists(inner, max_size=3),
                                              st.dictionaries(st.sampled_from(["a", "b_ref", "c_refs", "hashes"]), inner,
                                                              max_size=2)), max_leaves=5)
PROPERTIES = st.dictionaries(st.sampled_from(["created_by_ref", "source_ref", "object_refs", "object_marking_refs",
                                              "labels", "granular_markings", "x_nested", "external_references"]),
                             st.one_of(VALUES, st.lists(VALUES, max_size=3), NESTED), max_size=5)


def _object_references_walked(obj: IntelObject) -> list[ListedReference]:
    """What object_references must list: every property visited, none skipped by a plan."""
    found: list[ListedReference] = []
    for key, item in obj.data.items():
        kind = _kind_of_key(key)
        if kind == _REFERENCE:
            found.append((key, item, (key,)))
        elif kind == _REFERENCES:
            if type(item) is list:
                found.extend((key, element, (key, index)) for index, element in enumerate(item))
        elif kind == _NESTED and (type(item) is dict or (type(item) is list and _holds_mapping(item))):
            found.extend((prop, value, path) for path, prop, value in _references({key: item}, ()))
    return found


def _objects(properties: list[dict[str, Any]], stix_type: str) -> list[IntelObject]:
    defined = [IntelObject(data={"type": kind, "id": f"{kind}--1a2b3c4d-0000-4000-8000-00000000000{n}"}, file="d.yaml")
               for n, kind in ((1, "identity"), (2, "malware"), (3, "x-thing"))]
    return defined + [IntelObject(data={"type": stix_type, "id": f"{stix_type}--1a2b3c4d-0000-4000-8000-0000000001{n:02d}",
                                        **extra}, file="x.yaml") for n, extra in enumerate(properties)]


@settings(max_examples=150, deadline=None)
@given(st.lists(PROPERTIES, min_size=1, max_size=10), st.sampled_from(["relationship", "indicator", "x-thing"]),
       st.lists(st.booleans(), min_size=13, max_size=13))
def test_objects_without_a_kept_list_are_walked_to_the_same_findings(properties: list[dict[str, Any]], stix_type: str,
                                                                      kept: list[bool]) -> None:
    objects = _objects(properties, stix_type)
    # What a build through the cache passes: lists for files taken from the cache, None for files parsed now.
    listed = [object_references(obj) if keep else None for obj, keep in zip(objects, kept, strict=False)]
    malformed = set(malformed_ids(objects))
    assert check_listed_references(objects, listed, malformed=malformed) == check_references(objects)


def test_long_reference_lists_list_every_item_at_its_index() -> None:
    count = reference_index._SHARED_INDEXES + 5
    dangling = [f"indicator--1a2b3c4d-0000-4000-8000-{n:012d}" for n in range(count)]
    for size in (3, count):  # shared paths, and a list longer than the shared ones
        report = IntelObject(data={"type": "report", "id": "report--1a2b3c4d-0000-4000-8000-000000000001",
                                   "object_refs": dangling[:size]}, file="r.yaml")
        listed = object_references(report)
        assert listed == [("object_refs", ref, ("object_refs", index)) for index, ref in enumerate(dangling[:size])]
        findings = check_listed_references([report], [listed])
        assert [f.location.path for f in findings] == [("object_refs", index) for index in range(size)]
        assert findings == check_references([report])


@settings(max_examples=300, deadline=None)
@given(st.lists(PROPERTIES, min_size=1, max_size=6), st.sampled_from(["relationship", "indicator", "x-thing"]))
def test_listing_by_plan_gives_what_visiting_every_property_gives(properties: list[dict[str, Any]],
                                                                   stix_type: str) -> None:
    # Objects with the same property names share a plan: the second of each pair takes the
    # plan its first made, whatever its values (a mapping in one, strings in the other).
    for obj in _objects(properties + list(reversed(properties)), stix_type):
        listed = object_references(obj)
        assert listed == _object_references_walked(obj)


def test_listing_by_plan_over_the_example_repository(example_repo: Path) -> None:
    objects = load_repo(example_repo).objects
    listed = [object_references(obj) for obj in objects]
    assert sum(map(len, listed)) > 20
    assert listed == [_object_references_walked(obj) for obj in objects]
