"""Objects that cannot be imported without another one: they go with it.

An import leaves a repository that validates. So an object whose reference
(``*_ref``, ``*_refs``, granular markings, or an ``extensions`` key naming an
extension-definition, STIX 2.1 section 7.3) points at an object that was rejected,
or that is neither in the input nor in the repository, is rejected too, with the
reason "depends on rejected X". Rejection spreads until nothing dangles: a
relationship to an object that depends on a rejected one goes as well.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from tiops.importers import Candidate, Rejection
from tiops.inputs import InputProblem, read_input
from tiops.lookup import object_name
from tiops.stix import (
    ALL_TYPES,
    BUILTIN_REFERENCE_TYPES,
    ID_RE,
    SDO_TYPES,
    SOURCE_EXTENSION_OBJECTS,
    article,
    describe_allowed,
    id_type,
    reference_rule,
)

LOCK_FILE = "_imported.json"
EXTENSION_DEFINITION_PREFIX = "extension-definition--"
# Nested values that never hold references (the same walk as tiops.validate.references).
_NO_REFERENCES = frozenset({"external_references", "kill_chain_phases", "hashes", "extensions"})
_ALWAYS_KNOWN = frozenset(BUILTIN_REFERENCE_TYPES) | frozenset(str(o["id"]) for o in SOURCE_EXTENSION_OBJECTS)


def references_of(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(property, id) for every reference the object makes, extension-definitions included."""
    for key, value in data.items():
        if key.endswith("_ref"):
            if type(value) is str:
                yield key, value
        elif key.endswith("_refs"):
            if type(value) is list:
                for item in value:
                    if type(item) is str:
                        yield key, item
        elif key == "extensions":
            if type(value) is dict:
                for name in value:
                    if type(name) is str and name.startswith(EXTENSION_DEFINITION_PREFIX):
                        yield "extensions", name
        elif key not in _NO_REFERENCES and (type(value) is list or type(value) is dict):
            for item in value if type(value) is list else [value]:
                if type(item) is dict:
                    yield from references_of(item)


def read_lock(path: str) -> Any:
    """A source's ``_imported.json`` as parsed JSON, or None when it cannot be read.

    Read through :func:`tiops.inputs.read_input` like every input: a pipe or a device in
    its place must not hang an import (validate reports it as TI108).
    """
    try:
        return orjson.loads(read_input(path))
    except (InputProblem, orjson.JSONDecodeError):
        return None


def _locks(intel: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(folder, parsed lock) of every readable ``_imported.json`` under ``intel``, in a stable order."""
    for directory, subdirs, filenames in os.walk(intel):
        subdirs.sort()
        if LOCK_FILE in filenames:
            data = read_lock(os.path.join(directory, LOCK_FILE))
            if isinstance(data, dict):
                yield directory, data


def imported_ids(intel: str) -> dict[str, str]:
    """Object id -> the imported source folder holding it, from every ``_imported.json`` under ``intel``.

    Reading the lock files is far cheaper than loading the repository, and they list
    exactly the objects of partner folders.
    """
    found: dict[str, str] = {}
    for directory, data in _locks(intel):
        objects = data.get("objects")
        if isinstance(objects, dict):
            for identifier in objects:
                found.setdefault(identifier, directory)
    return found


def sharing_sources(intel: str, root: str, stix_id: str) -> list[dict[str, str]]:
    """The other sources that also sent ``stix_id`` ({source, folder}), from the ``shared`` map of each lock file.

    The object lives once, in the folder of the source that brought it first (its owner).
    """
    found: list[dict[str, str]] = []
    for directory, data in _locks(intel):
        shared = data.get("shared")
        if isinstance(shared, dict) and stix_id in shared:
            found.append({"source": str(data.get("source")), "folder": os.path.relpath(directory, root).replace(os.sep, "/")})
    return found


def reject_dependents(
    accepted: dict[str, Candidate],
    rejected: dict[str, str],
    known: Callable[[set[str]], set[str]],
) -> list[Rejection]:
    """Reject (and remove from ``accepted``) every object that dangles or points at a wrong type.

    ``rejected`` maps ids rejected from the input to a short reason; ``known`` is given
    the ids that neither the input nor the built-in objects hold and returns those
    the repository has.
    """
    references = {identifier: list(references_of(candidate.data)) for identifier, candidate in accepted.items()}
    # A malformed id is the object's own defect (the schema reports it), not a dependency.
    outside = {target for refs in references.values() for _, target in refs
               if target not in accepted and target not in _ALWAYS_KNOWN and ID_RE.match(target)}
    in_repository = known(outside) if outside else set()
    result: list[Rejection] = []
    referrers: dict[str, list[str]] = {}
    removed: list[str] = []
    # (type, property, target type) -> allowed; a bundle repeats a handful of combinations.
    allowed_types: dict[tuple[str, str, str], bool] = {}
    for identifier, refs in references.items():
        if not refs:
            continue
        candidate = accepted[identifier]
        stix_type = str(candidate.data.get("type"))
        reasons: list[str] = []
        depends_on: str | None = None
        own_defect = False
        for prop, target in refs:
            referrers.setdefault(target, []).append(identifier)
            if target not in outside or target in in_repository:
                key = (stix_type, prop, target.partition("--")[0])
                fine = allowed_types.get(key)
                if fine is None:
                    fine = allowed_types[key] = _wrong_type(stix_type, prop, target) is None
                if not fine:
                    reasons.append(str(_wrong_type(stix_type, prop, target)))
                continue
            if ID_RE.match(target) and (wrong := _wrong_type(stix_type, prop, target)) is not None:
                reasons.append(wrong)  # the id says its type: a defect of this object's own, whatever the target
                own_defect = True
            reasons.append(_missing(prop, target, rejected))
            depends_on = depends_on or target
        if reasons:
            result.append(Rejection(candidate.position, tuple(reasons), identifier, object_name(candidate.data),
                                    depends_on=None if own_defect else depends_on))
            removed.append(identifier)
    for identifier in removed:
        del accepted[identifier]
    # Whatever pointed at a removed object goes too, until nothing dangles (unless the
    # repository already holds a version of the removed object).
    still_there = known(set(removed)) if removed else set()
    while removed:
        gone = removed.pop()
        if gone in still_there:
            continue
        for referrer in referrers.get(gone, ()):
            if referrer not in accepted:
                continue
            candidate = accepted.pop(referrer)
            result.append(Rejection(candidate.position, (f"depends on rejected {gone}",), referrer,
                                    object_name(candidate.data), depends_on=gone))
            removed.append(referrer)
            if known({referrer}):
                still_there.add(referrer)
    return result


def reference_reasons(objects: list[dict[str, Any]], present: set[str], rejected: dict[str, str],
                      known: Callable[[set[str]], set[str]]) -> list[list[str]]:
    """For objects already rejected for defects of their own, what their references would add.

    Every reason is reported at once (docs/import.md), so fixing one does not reveal the next
    on the following import. ``present``: the ids that are imported; ``rejected``: rejected ids
    with a short reason; ``known`` as for :func:`reject_dependents`. A malformed id is left
    to the object's own schema finding.
    """
    references = [[(prop, target) for prop, target in references_of(data) if ID_RE.match(target)] for data in objects]
    outside = {target for refs in references for _, target in refs
               if target not in present and target not in _ALWAYS_KNOWN and target not in rejected}
    in_repository = known(outside) if outside else set()
    result: list[list[str]] = []
    for data, refs in zip(objects, references, strict=True):
        stix_type = str(data.get("type"))
        reasons: list[str] = []
        for prop, target in refs:
            if (wrong := _wrong_type(stix_type, prop, target)) is not None:
                reasons.append(wrong)
            if target not in present and target not in _ALWAYS_KNOWN and target not in in_repository:
                reasons.append(_missing(prop, target, rejected))
        result.append(reasons)
    return result


def _missing(prop: str, target: str, rejected: dict[str, str]) -> str:
    """Why a reference to ``target``, which nothing imported or in the repository is, cannot stand."""
    if target in rejected:
        return f"depends on rejected {target} ({prop}): {rejected[target]}"
    return f"{prop} refers to {target}, which is neither in the input nor in the repository"


def _wrong_type(stix_type: str, prop: str, target: str) -> str | None:
    if prop == "extensions":
        return None
    allowed = reference_rule(stix_type, prop)[1]
    target_type = id_type(target)
    if allowed is None or target_type in allowed:
        return None
    if target_type not in ALL_TYPES and allowed >= SDO_TYPES:
        return None  # custom and extension-defined types stand where SDOs may (section 11.2)
    expected = describe_allowed(allowed)
    return f"{prop} points to {target}, {article(target_type)} object; it must point to {expected}"
