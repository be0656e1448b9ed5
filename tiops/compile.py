"""Compile stage: a validated repository becomes one deterministic STIX 2.1 bundle.

Determinism rules: canonical JSON (sorted keys, no insignificant spaces, UTF-8),
objects sorted by (type, id), one object per line so bundles diff well in git,
a bundle id derived from the content, and nothing taken from the clock, the
checkout path or hash seeds.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import orjson

from tiops.findings import Finding, Severity
from tiops.load import IntelObject, Repo
from tiops.rules import RulesOutcome, apply_repo_rules
from tiops.stix import (
    BUILTIN_DEPENDENCIES,
    BUILTIN_OBJECTS,
    SOURCE_EXTENSION_ID,
    SOURCE_EXTENSION_OBJECTS,
    TIOPS_NAMESPACE,
)

_JSON_OPTIONS = orjson.OPT_SORT_KEYS


def compiled_objects(repo: Repo, *, rules: RulesOutcome | None = None) -> list[dict[str, Any]]:
    """The objects of the bundle, sorted, built-ins and the source extension included.

    Ingestion rules (tiops.rules) are applied first; pass ``rules`` when they already ran.
    """
    survivors = (rules if rules is not None else apply_repo_rules(repo)[0]).objects
    objects = [_with_source(obj) for obj in survivors]
    present = {obj["id"] for obj in objects}
    extra: dict[str, dict[str, Any]] = {}
    if any(obj.source for obj in survivors):
        extra.update({o["id"]: o for o in SOURCE_EXTENSION_OBJECTS if o["id"] not in present})
    for marking_id in _referenced_builtins(objects, present):
        extra[marking_id] = BUILTIN_OBJECTS[marking_id]
        for dependency in BUILTIN_DEPENDENCIES.get(marking_id, ()):
            if dependency not in present:
                extra[dependency] = BUILTIN_OBJECTS[dependency]
    objects.extend(extra.values())
    objects.sort(key=lambda o: (o["type"], o["id"]))
    return objects


def serialize_bundle(objects: list[dict[str, Any]]) -> bytes:
    """Canonical bundle bytes: one object per line, bundle id a UUIDv5 of the content."""
    lines = [orjson.dumps(obj, option=_JSON_OPTIONS) for obj in objects]
    digest = hashlib.sha256(b"\n".join(lines)).hexdigest()
    bundle_id = f"bundle--{uuid.uuid5(TIOPS_NAMESPACE, digest)}"
    head = b'{"id":"' + bundle_id.encode() + b'","objects":[\n'
    return head + b",\n".join(lines) + b'\n],"type":"bundle"}\n'


def compile_bundle(repo: Repo) -> bytes:
    """The bundle bytes of an already validated repository."""
    return serialize_bundle(compiled_objects(repo))


def blocking_errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.ERROR]


def _with_source(obj: IntelObject) -> dict[str, Any]:
    if not obj.source:
        return obj.data
    data = dict(obj.data)
    extensions = dict(data.get("extensions") or {})
    # STIX 2.1 section 7.3: a property-extension adds properties under extensions.<id>.
    extensions[SOURCE_EXTENSION_ID] = {"extension_type": "property-extension", "source_system": obj.source}
    data["extensions"] = extensions
    return data


def _referenced_builtins(objects: list[dict[str, Any]], present: set[str]) -> list[str]:
    found: set[str] = set()
    for obj in objects:
        for marking_id in obj.get("object_marking_refs") or ():
            if marking_id in BUILTIN_OBJECTS and marking_id not in present:
                found.add(marking_id)
        for granular in obj.get("granular_markings") or ():
            marking_id = granular.get("marking_ref") if isinstance(granular, dict) else None
            if marking_id in BUILTIN_OBJECTS and marking_id not in present:
                found.add(marking_id)
    return sorted(found)
