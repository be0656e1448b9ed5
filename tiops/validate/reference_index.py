"""References as an index: each object's references listed once, resolved against the whole repository later.

Listing an object's references walks every property of it; resolving them needs only
the list and the repository's id -> type map. The build cache (tiops.buildcache) keeps
the lists of unchanged files, so a one-file change walks one file's objects and the
repository-wide check resolves every listed reference in one pass. The findings are
those of :func:`tiops.validate.references.check_references`, in the same order
(tests/buildcache/test_buildcache.py compares them over random edits).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from tiops.findings import Finding, PathPart
from tiops.load import IntelObject
from tiops.stix import BUILTIN_OBJECTS, BUILTIN_REFERENCE_TYPES, ID_RE
from tiops.validate.references import (
    _KINDS_BY_NAMES,
    _KINDS_BY_NAMES_LIMIT,
    _NESTED,
    _REFERENCE,
    _REFERENCES,
    _holds_mapping,
    _kind_of_key,
    _may_hold_mapping,
    _ReferenceChecker,
    _references,
    object_types,
)

# (property, value, path inside the object) of one reference, in the order check_references visits them.
ListedReference = tuple[str, Any, tuple[PathPart, ...]]


def object_references(obj: IntelObject) -> list[ListedReference]:
    """Every reference of ``obj``, walked as check_references walks it.

    The paths of top-level references are shared tuples, one per name and index, so an
    entry of the build cache holds each path once (marshal writes a shared object once).
    Only the properties that can hold a reference are visited: which those are is worked
    out once per list of property names (objects of one producer share theirs), and the
    properties that could nest one are walked only when their values hold a mapping at all
    (one serialisation in C, as :class:`tiops.validate.references._ReferenceChecker` tells).
    A first build lists every
    object's references; the same as visiting every property
    (tests/validate/test_reference_index.py compares the two).
    """
    data = obj.data
    names = tuple(data)
    plan = _LISTING_PLANS.get(names)
    if plan is None:
        plan = _listing_plan(names)
    steps, references_only, nested_values = plan
    if nested_values is not None and not _may_hold_mapping(nested_values(data)):
        steps = references_only  # no mapping anywhere below: the nested properties list nothing
    found: list[ListedReference] = []
    for key, kind in steps:
        item = data[key]
        if kind == _REFERENCE:
            path = _KEY_PATHS.get(key)
            if path is None:
                path = _KEY_PATHS[key] = (key,)
            found.append((key, item, path))
        elif kind == _REFERENCES:
            if type(item) is list:
                if len(item) > _SHARED_INDEXES:  # a long list (a report's object_refs): paths of its own
                    found.extend((key, element, (key, index)) for index, element in enumerate(item))
                    continue
                paths = _INDEX_PATHS.get(key)
                if paths is None:
                    paths = _INDEX_PATHS[key] = []
                if len(paths) < len(item):
                    paths.extend((key, index) for index in range(len(paths), len(item)))
                found.extend(zip([key] * len(item), item, paths, strict=False))  # paths may be longer
        elif type(item) is dict or (type(item) is list and _holds_mapping(item)):
            # A list reaches a reference only through a mapping in it (labels, aliases: never).
            found.extend((prop, value, path) for path, prop, value in _references({key: item}, ()))
    return found


# (the properties that may hold references, in order, with their kind; the same without the
# nested ones; the nested ones' values read at once, or None without any): see object_references.
_ListingPlan = tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...],
                     "Callable[[dict[str, Any]], tuple[Any, ...]] | None"]
# Property names in order -> listing plan, bounded as the checker's own plans are.
_LISTING_PLANS: dict[tuple[str, ...], _ListingPlan] = {}


def _listing_plan(names: tuple[str, ...]) -> _ListingPlan:
    kinds = _KINDS_BY_NAMES.get(names)
    if kinds is None:
        kinds = tuple((key, kind) for key in names if (kind := _kind_of_key(key)) != 0)
    nested = [key for key, kind in kinds if kind == _NESTED]
    # An itemgetter of one name gives the bare value, so a lone name is read twice (a tuple).
    nested_values = itemgetter(*nested) if len(nested) > 1 else itemgetter(nested[0], nested[0]) if nested else None
    plan = (kinds, tuple(step for step in kinds if step[1] != _NESTED), nested_values)
    if len(_LISTING_PLANS) < _KINDS_BY_NAMES_LIMIT:
        _LISTING_PLANS[names] = plan
    return plan


# Shared paths of top-level references: (name,) and (name, index) (see object_references).
_KEY_PATHS: dict[str, tuple[PathPart, ...]] = {}
_INDEX_PATHS: dict[str, list[tuple[PathPart, ...]]] = {}
_SHARED_INDEXES = 1024  # kept for the first indexes of each name only: memory held for good stays small


def malformed_ids(objects: list[IntelObject]) -> list[str]:
    """The ids of ``objects`` that are not TYPE--UUID (the schema reports them; references to them are not)."""
    return [identifier for obj in objects
            if type(identifier := obj.data.get("id")) is str and ID_RE.match(identifier) is None]


def check_listed_references(objects: list[IntelObject], listed: Sequence[list[ListedReference] | None], *,
                            types: dict[str, str] | None = None, malformed: set[str] | None = None) -> list[Finding]:
    """check_references for a repository whose objects' references are already listed (``listed[i]`` for ``objects[i]``).

    ``malformed``: :func:`malformed_ids` of all of ``objects``, when the caller kept them.
    ``listed[i]`` None: object i is walked here (what check_references does), for objects
    whose list was not kept (a build's freshly parsed files: tiops.buildcache).
    """
    resolvable = dict(BUILTIN_REFERENCE_TYPES)
    resolvable.update(object_types(objects) if types is None else types)
    if malformed is None:
        malformed = {identifier for identifier in resolvable if ID_RE.match(identifier) is None}
    else:
        malformed = malformed | {identifier for identifier in BUILTIN_OBJECTS if ID_RE.match(identifier) is None}
    checker = _ReferenceChecker(resolvable, malformed, False)
    resolve = checker._resolve
    for obj, references in zip(objects, listed, strict=True):
        if references is None:
            checker.check(obj)
        elif references:
            stix_type = obj.data["type"]
            for prop, value, path in references:
                resolve(obj, stix_type, prop, value, path)
    return checker.findings
