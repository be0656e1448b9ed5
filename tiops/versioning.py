"""STIX versioning rules between a base revision and a change (`tiops validate --base REF`).

STIX 2.1 section 3.6 (Versioning): a new version of an object keeps its ``id`` (and
so its type) and its ``created``, and has a later ``modified``; a revoked object
stays revoked. A consumer that holds the old version ignores a "new" one whose
``modified`` is not later, so a content change without a bump is lost downstream.

The content compared is what the authors wrote (``_defaults.yaml`` merged in),
before ingestion rules: rules are part of the build, not of the object's version.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tiops.codes import make_finding
from tiops.findings import Finding, Location, Severity, sort_findings
from tiops.locate import resolve_locations
from tiops.revision import CompiledRevision, change_base, compile_pair
from tiops.stix import SCO_TYPES, timestamp_key

_VERSION_ONLY = frozenset({"modified"})


def changed_content(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """True when two versions differ in anything but ``modified``."""
    if before is after:  # a file unchanged between the revisions loads to the very same data (tiops.revision)
        return False
    return {k: v for k, v in before.items() if k not in _VERSION_ONLY} != {
        k: v for k, v in after.items() if k not in _VERSION_ONLY
    }


def is_later(after: Any, before: Any) -> bool:
    if not isinstance(after, str):
        return False
    if not isinstance(before, str):
        return True
    after_key, before_key = timestamp_key(after), timestamp_key(before)
    return after_key is not None and before_key is not None and after_key > before_key


def needs_bump(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """The object changed but its ``modified`` did not move forward."""
    if after.get("type") in SCO_TYPES:
        return False  # cyber observables are not versioned (STIX 2.1 section 6)
    return changed_content(before, after) and not is_later(after.get("modified"), before.get("modified"))


def check_versions(base: CompiledRevision, head: CompiledRevision, *, deleted_severity: Severity = Severity.WARNING) -> list[Finding]:
    """Findings TI800-TI804 for ``head`` against ``base``; locations point into ``head``'s files."""
    findings: list[Finding] = []
    old, new = base.authored, head.authored
    renamed = _renamed(base, head)
    for object_id in sorted(set(old) & set(new)):
        before, after = old[object_id], new[object_id]
        if before is after:  # an unchanged file: the same data on both sides, nothing to check
            continue
        where = head.provenance[object_id]
        location = Location(where.file, path=where.path)
        created_changed = before.get("created") != after.get("created")
        if created_changed:
            findings.append(make_finding(
                "TI802", f"created changed from {before.get('created')!r} to {after.get('created')!r}",
                Location(where.file, path=(*where.path, "created")), stix_id=object_id))
        if before.get("revoked") is True and after.get("revoked") is not True:
            findings.append(make_finding(
                "TI804", "the object was revoked in the base revision and is not any more",
                Location(where.file, path=(*where.path, "revoked")) if "revoked" in after else location, stix_id=object_id))
        if not created_changed and needs_bump(before, after):  # one finding per mistake
            fields = sorted(k for k in set(before) | set(after) if k != "modified" and before.get(k) != after.get(k))
            findings.append(make_finding(
                "TI800",
                f"{', '.join(fields)} changed but modified stays {after.get('modified')!r} "
                f"(base: {before.get('modified')!r})",
                Location(where.file, path=(*where.path, "modified")), stix_id=object_id))
    findings.extend(_overlay_unrevoked(base, head))
    for object_id in sorted(set(old) - set(new)):
        before = old[object_id]
        if before.get("type") in SCO_TYPES or before.get("revoked") is True:
            continue
        where = base.provenance[object_id]
        if object_id in renamed:
            new_id = renamed[object_id]
            at = head.provenance[new_id]
            findings.append(make_finding(
                "TI801", f"the object at this place was {object_id} in the base revision and is now {new_id}",
                Location(at.file, path=(*at.path, "id")), stix_id=new_id))
        elif where.declared_by is None:  # inline relationships go with the object that declares them
            findings.append(make_finding(
                "TI803", f"{object_id} ({before.get('name') or before.get('type')}) was deleted from {where.file}; "
                "revoke it instead", Location(where.file, 1, 1), stix_id=object_id, severity=deleted_severity))
    return findings


def _overlay_unrevoked(base: CompiledRevision, head: CompiledRevision) -> list[Finding]:
    """TI804 for partner objects revoked by their overlay in the base and not any more.

    The overlay is compared as a build effect (it is not in ``authored``), so this looks
    at the compiled objects, where ``revoked: true`` from an overlay shows.
    """
    revoked_before = {obj["id"] for obj in base.objects if obj.get("revoked") is True}
    findings: list[Finding] = []
    for obj in head.objects:
        object_id = obj["id"]
        if object_id not in revoked_before or obj.get("revoked") is True:
            continue
        place = head.provenance.get(object_id)
        if (place is not None
                and place.imported_folder is not None and base.authored.get(object_id, {}).get("revoked") is not True):
            findings.append(make_finding(
                "TI804", "the object was revoked by its overlay in the base revision and is not any more",
                Location(place.overlay_file or place.file, path=(object_id, "revoked") if place.overlay_file else ()),
                stix_id=object_id))
    return findings


def versioning_findings(root: Path, base_ref: str, deleted_severity: Severity = Severity.WARNING, *,
                        cache: bool = False, note: Callable[[str], None] = lambda _text: None) -> list[Finding]:
    """Check the working tree at ``root`` against git revision ``base_ref`` (``cache``: through the build cache).

    ``note`` is told when the change is checked against another revision (tiops.revision.change_base).
    """
    choice = change_base(root, base_ref)
    if choice.note is not None:
        note(choice.note)
    base, head = compile_pair(root, choice.revision, None, cache=cache)
    return sort_findings(resolve_locations(check_versions(base, head, deleted_severity=deleted_severity), root))


def _renamed(base: CompiledRevision, head: CompiledRevision) -> dict[str, str]:
    """Base ids whose place (file and position in it) now holds an object with another id."""
    # Only the places of objects on one side alone are described (tiops.revision.ByObject).
    gone = [object_id for object_id in base.provenance if object_id not in head.provenance]
    if not gone:
        return {}
    by_place = {(p.file, p.path): object_id for object_id in head.provenance
                if object_id not in base.provenance and (p := head.provenance[object_id]).declared_by is None}
    found: dict[str, str] = {}
    for object_id in gone:
        place = base.provenance[object_id]
        other = by_place.get((place.file, place.path)) if place.declared_by is None else None
        if other is not None:
            found[object_id] = other
    return found
