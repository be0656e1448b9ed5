"""Repository-wide checks: duplicate ids and reference integrity (STIX 2.1 section 3.1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from operator import itemgetter
from typing import Any, Final

import orjson

from tiops.codes import make_finding
from tiops.findings import Finding, PathPart, Severity
from tiops.load import IntelObject
from tiops.stix import (
    ALL_TYPES,
    BUILTIN_REFERENCE_TYPES,
    ID_RE,
    SCO_TYPES,
    SDO_TYPES,
    article,
    describe_allowed,
    id_type,
    reference_rule,
)


def check_duplicate_ids(objects: list[IntelObject], *, in_bundle: bool = False) -> list[Finding]:
    """An id must name one object. A bundle may repeat an object verbatim or carry
    several versions of it (different ``modified``, STIX 2.1 section 3.6); a
    repository holds exactly one definition of each id."""
    first_seen: dict[str, IntelObject] = {}
    findings: list[Finding] = []
    for obj in objects:
        earlier = first_seen.setdefault(obj.id, obj)
        if in_bundle and (earlier.data == obj.data or _are_versions(earlier.data, obj.data)):
            continue
        if earlier is not obj:
            other = f"{earlier.file}" + (f" (item {earlier.path[0]})" if earlier.path else "")
            findings.append(
                make_finding("TI302", f"{obj.id} is also defined in {other}", obj.location("id"), stix_id=obj.id)
            )
    return findings


def _are_versions(first: dict[str, Any], second: dict[str, Any]) -> bool:
    return "modified" in first and "modified" in second and first["modified"] != second["modified"]


def object_types(objects: list[IntelObject]) -> dict[str, str]:
    """Object id -> type, for the repository-wide checks (built once, shared by them)."""
    types: dict[str, str] = {}
    for obj in objects:
        identifier = obj.data.get("id")
        if type(identifier) is str:
            types[identifier] = obj.data["type"]
    return types


def check_references(objects: list[IntelObject], *, in_bundle: bool = False,
                     types: dict[str, str] | None = None) -> list[Finding]:
    """Every *_ref/*_refs must resolve, to a type the property allows.

    In a repository a dangling reference is an error; in a bundle received from
    others it is a warning, since STIX lets a bundle refer to objects it does not carry.
    ``types`` is :func:`object_types` of ``objects`` when the caller already has it.
    """
    resolvable = dict(BUILTIN_REFERENCE_TYPES)
    resolvable.update(object_types(objects) if types is None else types)
    # Ids the schema reports as malformed are told by ID_RE when a reference meets one
    # (most ids are never referred to: matching them all up front costs more).
    checker = _ReferenceChecker(resolvable, None, in_bundle)
    for obj in objects:
        checker.check(obj)
    return checker.findings


class _ReferenceChecker:
    """Resolves every reference of one object after another.

    Most objects hold a handful of top-level references and no nested ones, so the
    walk stays flat there and builds a finding's path only when there is a finding.
    """

    def __init__(self, types: dict[str, str], malformed: set[str] | None, in_bundle: bool) -> None:
        """``malformed``: the ids of ``types`` that are not TYPE--UUID (the schema reports them,
        and a reference to one is not reported twice); None to tell them by ID_RE as met."""
        self.types = types
        self.malformed = malformed
        self.in_bundle = in_bundle
        self.allowed: dict[tuple[str, str], frozenset[str] | None] = {}
        self.findings: list[Finding] = []
        # Object type -> property names in order -> (name, kind, clean values) of those that
        # may hold references. A reference's findings depend only on the object type, the
        # property and the id, so an id that resolved without a finding there is taken from
        # its set the next time: objects of one producer share created_by_ref and markings.
        self._plans: dict[str, dict[tuple[str, ...], _Plan]] = {}
        self._clean: dict[tuple[str, str], set[str]] = {}

    def check(self, obj: IntelObject) -> None:
        data = obj.data
        stix_type = data["type"]
        names = tuple(data)
        # Objects of one producer share their property names: which of them can hold a
        # reference is worked out once per list of names, and only those are visited.
        plans = self._plans.get(stix_type)
        if plans is None:
            plans = self._plans[stix_type] = {}
        plan = plans.get(names)
        if plan is None:
            plan = self._plan(stix_type, names)
            if len(plans) < _KINDS_BY_NAMES_LIMIT:
                plans[names] = plan
        in_order, references, nested_values = plan
        if nested_values is not None and _may_hold_mapping(nested_values(data)):
            self._check_in_order(obj, stix_type, data, in_order)
            return
        # No nested reference: only the _ref and _refs properties, still in their order.
        self._check_in_order(obj, stix_type, data, references)

    def _check_in_order(self, obj: IntelObject, stix_type: str, data: dict[str, Any],
                        plan: tuple[tuple[str, int, set[str]], ...]) -> None:
        for key, kind, clean in plan:
            item = data[key]
            if kind == _REFERENCE:
                if type(item) is not str or item not in clean:
                    self._resolve_once(obj, stix_type, key, item, (key,), clean)
            elif kind == _REFERENCES:
                if type(item) is list and not _all_clean(clean, item):
                    for index, element in enumerate(item):
                        if type(element) is not str or element not in clean:
                            self._resolve_once(obj, stix_type, key, element, (key, index), clean)
            elif type(item) is dict or (type(item) is list and _holds_mapping(item)):
                for path, prop, value in _references({key: item}, ()):
                    self._resolve(obj, stix_type, prop, value, path)

    def _plan(self, stix_type: str, names: tuple[str, ...]) -> _Plan:
        kinds = _KINDS_BY_NAMES.get(names)
        if kinds is None:
            kinds = tuple((key, kind) for key in names if (kind := _kind_of_key(key)) != 0)
            if len(_KINDS_BY_NAMES) < _KINDS_BY_NAMES_LIMIT:
                _KINDS_BY_NAMES[names] = kinds
        in_order = tuple((key, kind, self._clean.setdefault((stix_type, key), set())) for key, kind in kinds)
        nested = [key for key, kind in kinds if kind == _NESTED]
        # The values of the properties that could nest references, read at once: an
        # itemgetter of one name gives the bare value, so a lone name is read twice.
        nested_values = itemgetter(*nested) if len(nested) > 1 else itemgetter(nested[0], nested[0]) if nested else None
        return in_order, tuple(step for step in in_order if step[1] != _NESTED), nested_values

    def _resolve_once(self, obj: IntelObject, stix_type: str, prop: str, value: Any, path: tuple[PathPart, ...],
                      clean: set[str]) -> None:
        before = len(self.findings)
        self._resolve(obj, stix_type, prop, value, path)
        if len(self.findings) == before and type(value) is str:
            clean.add(value)

    def _resolve(self, obj: IntelObject, stix_type: str, prop: str, value: Any, path: tuple[PathPart, ...]) -> None:
        if type(value) is not str:
            return  # the schema reports it
        target_type = self.types.get(value)
        if target_type is None:
            if ID_RE.match(value) is None:
                return  # a malformed id: the schema reports it
            finding = make_finding("TI300", f"{prop} points to {value}, which is not defined", obj.location(*path), stix_id=obj.id)
            self.findings.append(replace(finding, severity=Severity.WARNING) if self.in_bundle else finding)
            # The id's own type prefix still says what it points at (section 2.9): an
            # object_marking_refs entry naming an identity is wrong wherever it resolves.
            target_type = id_type(value)
            allowed = self._allowed(stix_type, prop)
            if allowed is not None and target_type not in allowed and not _custom_where_sdo_allowed(target_type, allowed):
                self.findings.append(self._wrong_type(obj, prop, value, target_type, allowed, path))
            return
        if value in self.malformed if self.malformed is not None else ID_RE.match(value) is None:
            return
        key = (stix_type, prop)
        allowed = self.allowed[key] if key in self.allowed else self._allowed(stix_type, prop)
        if allowed is not None:
            if target_type not in allowed and not _custom_where_sdo_allowed(target_type, allowed):
                self.findings.append(self._wrong_type(obj, prop, value, target_type, allowed, path))
        elif id_type(value) != target_type:
            self.findings.append(make_finding("TI301", f"{prop}: {value} has the prefix of another type than its object ({target_type})",
                                              obj.location(*path), stix_id=obj.id))

    def _allowed(self, stix_type: str, prop: str) -> frozenset[str] | None:
        key = (stix_type, prop)
        if key in self.allowed:
            return self.allowed[key]
        return self.allowed.setdefault(key, reference_rule(stix_type, prop)[1])

    @staticmethod
    def _wrong_type(obj: IntelObject, prop: str, value: str, target_type: str, allowed: frozenset[str],
                    path: tuple[PathPart, ...]) -> Finding:
        expected = describe_allowed(allowed)
        section = _reference_section(obj.data["type"], prop)
        return make_finding("TI301", f"{prop} points to {value}, {article(target_type)} object; it must point to {expected} "
                                     f"(STIX 2.1 section {section})", obj.location(*path), stix_id=obj.id)


# Where the specification says which types a reference may point to: the common
# properties and markings (sections 3.2, 7.2), the SROs (5.1, 5.2), the SDOs with typed
# references (4.11, 4.12, 4.14) and the SCOs, each in its own section of 6.
_REFERENCE_SECTIONS: Final = {"created_by_ref": "3.2", "object_marking_refs": "3.2", "marking_ref": "7.2.3",
                              "source_ref": "5.1", "target_ref": "5.1"}
_TYPE_SECTIONS: Final = {
    "sighting": "5.2", "malware": "4.11", "malware-analysis": "4.12", "observed-data": "4.14",
    "artifact": "6.1", "autonomous-system": "6.2", "directory": "6.3", "domain-name": "6.4", "email-addr": "6.5",
    "email-message": "6.6", "file": "6.7", "ipv4-addr": "6.8", "ipv6-addr": "6.9", "mac-addr": "6.10",
    "mutex": "6.11", "network-traffic": "6.12", "process": "6.13", "software": "6.14", "url": "6.15",
    "user-account": "6.16", "windows-registry-key": "6.17", "x509-certificate": "6.18",
}  # fmt: skip


def _reference_section(stix_type: str, prop: str) -> str:
    return _REFERENCE_SECTIONS.get(prop) or _TYPE_SECTIONS.get(stix_type) or "3.1"


def _custom_where_sdo_allowed(target_type: str, allowed: frozenset[str]) -> bool:
    """Custom object types (section 11.2) stand where SDOs or SCOs may, e.g. as relationship
    ends or in observed-data's object_refs: their type does not say which they are."""
    return target_type not in ALL_TYPES and (allowed >= SDO_TYPES or allowed >= SCO_TYPES)


# Nested values that never hold references; skipping them keeps the walk cheap.
_NO_REFERENCES = frozenset({"external_references", "kill_chain_phases", "hashes"})
_REFERENCE, _REFERENCES, _NESTED, _EXTENSIONS = 1, 2, 3, 4


def _kind_of_key(key: str) -> int:
    """What a property name says about its value: one id, a list of ids, or maybe nested ones."""
    if key.endswith("_ref"):
        return _REFERENCE
    if key.endswith("_refs"):
        return _REFERENCES
    if key == "extensions":
        return _EXTENSIONS  # the predefined extensions' references (section 6), walked as nested ones
    return 0 if key in _NO_REFERENCES else _NESTED


# Property name -> _kind_of_key, filled as names are met (a repository uses few names).
_KEY_KINDS: dict[str, int] = {}

# An object's property names, in order -> (name, kind) of those that may hold references.
_KINDS_BY_NAMES: dict[tuple[str, ...], tuple[tuple[str, int], ...]] = {}
_KINDS_BY_NAMES_LIMIT = 4096


# (every step in property order, the _ref/_refs steps alone, the nested properties' values
# or None without any): see _ReferenceChecker._plan.
_Plan = tuple[tuple[tuple[str, int, set[str]], ...], tuple[tuple[str, int, set[str]], ...],
              "Callable[[dict[str, Any]], tuple[Any, ...]] | None"]


def _all_clean(clean: set[str], items: list[Any]) -> bool:
    """Whether every item of a _refs list is an id already resolved without a finding there."""
    try:
        return clean.issuperset(items)
    except TypeError:  # an unhashable item: the item-by-item loop reports it
        return False


def _may_hold_mapping(values: tuple[Any, ...]) -> bool:
    """False only when no mapping sits anywhere in ``values``: their JSON text has no '{'.

    One serialisation in C costs a fraction of a Python walk over every value and list
    item; a '{' inside a string, or a value JSON cannot hold, only sends the object the
    full way.
    """
    try:
        return b"{" in orjson.dumps(values)
    except (TypeError, orjson.JSONEncodeError):
        return True


def _holds_mapping(items: list[Any]) -> bool:
    """Whether a list holds a mapping, the only place :func:`_references` looks inside a list
    (most lists hold strings: labels, aliases, vocabulary values)."""
    return dict in map(type, items)  # stops at the first mapping, without a Python-level loop


def _references(value: dict[str, Any], path: tuple[PathPart, ...],
                prefix: str = "") -> Iterator[tuple[tuple[PathPart, ...], str, Any]]:
    """(path, property name, id) for every reference, nested ones included (granular markings).

    The properties of the predefined extensions (their keys end in -ext, STIX 2.1 section 6)
    are walked as the specification defines them, named with the extension
    (``archive-ext.contains_refs``); an extension-definition's properties are skipped:
    their extension-definition defines them.
    """
    for key, item in value.items():
        kind = _KEY_KINDS.get(key)
        if kind is None:
            kind = _KEY_KINDS[key] = _kind_of_key(key)
        if kind == _REFERENCE:
            yield (*path, key), prefix + key, item
        elif kind == _REFERENCES:
            if type(item) is list:
                for index, element in enumerate(item):
                    yield (*path, key, index), prefix + key, element
        elif kind == _EXTENSIONS:
            if type(item) is dict and not path:
                for name, body in item.items():
                    if type(name) is str and name.endswith("-ext") and type(body) is dict:
                        yield from _references(body, (*path, key, name), f"{name}.")
        elif kind == _NESTED:
            if type(item) is list:
                for index, element in enumerate(item):
                    if type(element) is dict:
                        yield from _references(element, (*path, key, index), prefix)
            elif type(item) is dict:
                yield from _references(item, (*path, key), prefix)
