"""A file's index made in one pass over its objects is the index made from its listed references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tiops.load import IntelObject, load_repo
from tiops.validate.indexed import index_file, index_objects
from tiops.validate.reference_index import malformed_ids, object_references

IDS = st.sampled_from([
    "identity--1a2b3c4d-0000-4000-8000-000000000001", "malware--1a2b3c4d-0000-4000-8000-000000000002",
    "bad--id", "line\nbreak--1a2b3c4d-0000-4000-8000-000000000003", 5, None,
])
NESTED = st.recursive(st.one_of(IDS, st.just("text")),
                      lambda inner: st.one_of(st.lists(inner, max_size=3),
                                              st.dictionaries(st.sampled_from(["a", "marking_ref", "c_refs"]), inner,
                                                              max_size=2)), max_leaves=5)
PROPERTIES = st.dictionaries(
    st.sampled_from(["created_by_ref", "source_ref", "target_ref", "sighting_of_ref", "object_ref", "object_refs",
                     "object_marking_refs", "relationship_type", "labels", "granular_markings", "extensions",
                     "x_nested"]),
    st.one_of(IDS, st.lists(IDS, max_size=3), NESTED), max_size=6)
OBJECT = st.tuples(st.sampled_from(["relationship", "sighting", "language-content", "indicator", "extension-definition"]),
                   st.one_of(IDS, st.just("indicator--1a2b3c4d-0000-4000-8000-000000000004")), PROPERTIES,
                   st.sampled_from([None, "partners/acme"]))


def _separately(objects: list[IntelObject]) -> tuple[list[Any], tuple[Any, ...]]:
    references = [object_references(obj) for obj in objects]
    return references, tuple(index_file(objects, [], [], references, malformed_ids(objects)))


def _object(stix_type: str, identifier: Any, properties: dict[str, Any], imported: str | None) -> IntelObject:
    data = {"type": stix_type, **({} if identifier is None else {"id": identifier}), **properties}
    return IntelObject(data=data, file="x.yaml", imported_folder=imported)


@settings(max_examples=200, deadline=None)
@given(st.lists(OBJECT, max_size=6))
def test_one_pass_gives_the_references_and_index_of_separate_passes(drawn: list[Any]) -> None:
    objects = [_object(*values) for values in drawn]
    references, index = index_objects(objects, [], [])
    assert (references, tuple(index)) == _separately(objects)


def test_one_pass_over_the_example_repository(example_repo: Path) -> None:
    repo = load_repo(example_repo)
    by_file: dict[str, list[IntelObject]] = {}
    for obj in repo.objects:
        by_file.setdefault(obj.file, []).append(obj)
    assert len(by_file) > 5
    for objects in by_file.values():
        references, index = index_objects(objects, [], [])
        assert (references, tuple(index)) == _separately(objects)
    relationships = [obj for obj in repo.objects if obj.data["type"] == "relationship"]
    assert relationships and index_objects(relationships, [], [])[1].relationships


_POOL_TYPES = ["identity", "indicator", "malware", "marking-definition", "x-custom"]
_POOL_IDS = [f"{prefix}--{n:08d}-0000-4000-8000-000000000000" for prefix in _POOL_TYPES for n in range(3)]


@given(types=st.dictionaries(st.sampled_from(_POOL_IDS), st.sampled_from(_POOL_TYPES), max_size=12),
       malformed=st.sets(st.sampled_from(_POOL_IDS), max_size=3),
       targets=st.lists(st.tuples(st.sampled_from(["indicator", "relationship", "malware", "note"]),
                                  st.sampled_from(["created_by_ref", "object_marking_refs", "source_ref",
                                                   "target_ref", "object_refs", "x_custom_ref"]),
                                  st.sampled_from([*_POOL_IDS, "not-an-id", "identity--bad"])), max_size=30))
@example(types={_POOL_IDS[3]: "indicator", _POOL_IDS[0]: "indicator"}, malformed=set(),  # an identity-- id of an indicator
         targets=[("note", "object_refs", _POOL_IDS[3]), ("note", "object_refs", _POOL_IDS[0])])
@settings(max_examples=200, deadline=None)
def test_reference_verdicts_keyed_by_type_agree_with_each_references_own(
        types: dict[str, str], malformed: set[str], targets: list[tuple[str, str, str]]) -> None:
    """unclean_files judges a resolving reference once per (referring type, property, resolved type, id
    prefix), not once per id: the verdict of every reference must be the one check_references' code
    gives that reference alone (an id whose object's type is not its prefix's included)."""
    from tiops.validate.indexed import _ReferenceVerdicts

    shared = _ReferenceVerdicts(types, malformed)
    for target in targets:
        assert shared.clean(target) == _ReferenceVerdicts(types, malformed)._judged(*target), target
