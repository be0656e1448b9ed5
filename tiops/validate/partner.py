"""Partner-source protection: imported intel is read-only except through its overlay.

`tiops import` writes ``_imported.json`` beside the source's ``_defaults.yaml``: a
SHA-256 digest of each object as imported and a short digest of each of its
properties. An imported file whose content no longer matches was edited by hand:
every changed property is reported. As in Microsoft Sentinel, only tags (``labels``),
expiration (``valid_until``), ``confidence`` and ``revoked`` of partner intel may change
locally, and those changes belong in ``_overlay.yaml`` so a re-import never loses them
(docs/import.md).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import orjson

from tiops.codes import make_finding
from tiops.filesource import FileSource
from tiops.findings import Finding, Location
from tiops.inputs import InputProblem
from tiops.load import OVERLAY_FILE, OVERLAY_PROPERTIES, IntelObject, Repo, overlay_value_problem
from tiops.stix import canonical_json

LOCK_FILE = "_imported.json"
# Hex characters. The object digest (full SHA-256) is what detects an edit; the short
# property digests only name the changed properties, so 32 bits keep the file small.
FIELD_DIGEST_LENGTH = 8


def object_digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(data)).hexdigest()


def field_digests(data: dict[str, Any]) -> dict[str, str]:
    """A short digest of each property's value, so a changed property can be named."""
    return {name: hashlib.sha256(canonical_json(value)).hexdigest()[:FIELD_DIGEST_LENGTH]
            for name, value in sorted(data.items())}


def is_partner_object(obj: IntelObject) -> bool:
    """Whether the edit check compares ``obj`` with its import lock (inline relationships go with their object)."""
    return obj.imported_folder is not None and obj.declared_by is None and obj.imported_data is not None


class PartnerFolder(NamedTuple):
    """An imported source folder's partner objects, read only where the edit check needs them
    (tiops.validate.indexed keeps each object's digest in its file's index)."""

    ids: list[str]  # of each partner object (the overlay check names unknown ones)
    # The lock's id -> digest mapping in; the objects whose digest it does not hold out (at least those).
    objects_not_in: Callable[[dict[str, Any]], list[IntelObject]]


#: Reads a partner folder's lock: (its content, or {} with the finding that says why not).
LockReader = Callable[[FileSource, str], tuple[dict[str, Any], "Finding | None"]]


def check_partner_objects(repo: Repo, held: dict[str, PartnerFolder] | None = None,
                          read: LockReader | None = None) -> list[Finding]:
    """TI700-TI705 over every imported source folder of ``repo``.

    ``held``: each folder's partner objects; only those whose digest the folder's lock does
    not hold are read and checked (default: every one of ``repo.objects``, checked as it is).
    ``read``: how a folder's lock is read (default :func:`read_lock`); one that keeps parsed locks
    (tiops.buildcache.partnerlocks) may leave out their ``fields``, which are then read when an
    object was edited, to name what changed.
    """
    read = read or read_lock
    if repo.is_bundle:
        return []
    if held is None:
        by_folder: dict[str, list[IntelObject]] = {}
        for obj in repo.objects:
            if is_partner_object(obj):
                by_folder.setdefault(obj.imported_folder or "", []).append(obj)
        held = {folder: PartnerFolder([obj.id for obj in objects], _every(objects))
                for folder, objects in by_folder.items()}
    findings: list[Finding] = []
    for folder in sorted(set(held) | set(repo.overlays)):
        partner = held.get(folder)
        lock, lock_finding = read(repo.config.files, folder)
        if lock_finding is not None:
            findings.append(lock_finding)
        elif partner is not None:
            edited = partner.objects_not_in(lock["objects"])
            if edited and "fields" not in lock:
                whole, unread = read_lock(repo.config.files, folder)
                lock = lock if unread is not None else whole
            findings.extend(_check_edits(edited, lock))
            findings.extend(_deleted(folder, lock, partner.ids, repo.config.files))
        findings.extend(_check_overlay(folder, repo.overlays.get(folder, {}), set(partner.ids) if partner else set()))
    return findings


def _deleted(folder: str, lock: dict[str, Any], present: Iterable[str], files: FileSource) -> list[Finding]:
    """TI706, once per folder: objects its lock says were imported into it and no file holds any more.
    Deleting a file of partner intel drops the object from every build without a word otherwise.

    An object whose file is there but cannot be read (a syntax error) is not gone: that file's own
    finding says what is wrong with it. Import writes each object at ``<folder>/<type>/<uuid>.yaml``.
    """
    missing = set(lock["objects"]) - set(present)
    gone = sorted(identifier for identifier in missing
                  if not files.lexists(os.fspath(files.root / folder / identifier.partition("--")[0]
                                                 / f"{identifier.partition('--')[2]}.yaml")))
    if not gone:
        return []
    shown = ", ".join(gone[:5]) + (f" and {len(gone) - 5} more" if len(gone) > 5 else "")
    return [make_finding("TI706", f"{len(gone)} object(s) imported into {folder} are gone from it: {shown}",
                         Location(f"{folder}/{LOCK_FILE}", path=("objects", gone[0])), stix_id=gone[0])]


def _every(objects: list[IntelObject]) -> Callable[[dict[str, Any]], list[IntelObject]]:
    """Every object, whatever the lock holds: the edit check compares each one's digest itself."""
    return lambda _lock: objects


def read_lock(files: FileSource, folder: str) -> tuple[dict[str, Any], Finding | None]:
    """The lock (``_imported.json``) of the partner folder ``folder``, or {} and the finding that says why not."""
    relative = f"{folder}/{LOCK_FILE}"
    path = os.fspath(files.root / relative)
    try:
        data = orjson.loads(files.read(path))
    except InputProblem as problem:
        if not files.lexists(path):
            return {}, make_finding("TI705", f"{relative} is missing: the imported objects cannot be checked for edits",
                                    Location(f"{folder}/_defaults.yaml", 1, 1),
                                    hint="Re-run 'tiops import' for this source; it writes the file.")
        return {}, make_finding(problem.code, problem.message, Location(relative, 1, 1))
    except FileNotFoundError:
        return {}, make_finding("TI705", f"{relative} is missing: the imported objects cannot be checked for edits",
                                Location(f"{folder}/_defaults.yaml", 1, 1),
                                hint="Re-run 'tiops import' for this source; it writes the file.")
    except (OSError, orjson.JSONDecodeError) as error:
        return {}, make_finding("TI705", f"{relative} cannot be read: {error}", Location(relative, 1, 1),
                                hint="Re-run 'tiops import' for this source; it rewrites the file.")
    if not isinstance(data, dict) or not isinstance(data.get("objects"), dict):
        return {}, make_finding("TI705", f"{relative} has no 'objects' mapping", Location(relative, 1, 1),
                                hint="Re-run 'tiops import' for this source; it rewrites the file.")
    return data, None


def _check_edits(objects: Iterable[IntelObject], lock: dict[str, Any]) -> list[Finding]:
    digests: dict[str, Any] = lock["objects"]
    all_fields = lock.get("fields")
    fields_by_id: dict[str, Any] = all_fields if isinstance(all_fields, dict) else {}
    findings: list[Finding] = []
    for obj in objects:
        content = obj.imported_data or {}
        expected = digests.get(obj.id)
        if expected is None:
            findings.append(make_finding(
                "TI705", f"{obj.id} is in an imported source folder but was not imported", obj.location("id"),
                stix_id=obj.id,
                hint="Objects written by hand belong in a folder of their own, outside the imported source's folder.",
            ))
            continue
        if object_digest(content) == expected:
            continue
        before = fields_by_id.get(obj.id)
        if not isinstance(before, dict):
            findings.append(make_finding("TI700", f"{obj.id} differs from the version imported", obj.location(),
                                         stix_id=obj.id))
            continue
        now = field_digests(content)
        changed = [name for name in sorted(set(before) | set(now)) if before.get(name) != now.get(name)]
        if not changed:  # two values with the same short digest: the edit is still found, unnamed
            findings.append(make_finding("TI700", f"{obj.id} differs from the version imported", obj.location(),
                                         stix_id=obj.id))
        for name in changed:
            change = "added" if name not in before else "removed" if name not in now else "changed"
            location = obj.location(name) if name in now else obj.location()
            if name in OVERLAY_PROPERTIES:
                findings.append(make_finding(
                    "TI701", f"'{name}' of partner object {obj.id} was {change} in the imported file",
                    location, stix_id=obj.id,
                    hint=f"Restore the imported value and set '{name}' under {obj.id} in "
                         f"{obj.imported_folder}/{OVERLAY_FILE}, where a re-import keeps it.",
                ))
            else:
                findings.append(make_finding(
                    "TI700", f"'{name}' of partner object {obj.id} was {change}: imported intel is read-only "
                             f"except {', '.join(OVERLAY_PROPERTIES)}",
                    location, stix_id=obj.id,
                ))
    return findings


def _check_overlay(folder: str, overlay: dict[str, Any], known_ids: set[str]) -> list[Finding]:
    file = f"{folder}/{OVERLAY_FILE}"
    findings: list[Finding] = []
    for stix_id, entry in overlay.items():
        if str(stix_id) not in known_ids:
            findings.append(make_finding("TI702", f"the overlay names {stix_id}, which is not imported in {folder}",
                                         Location(file, path=(str(stix_id),)), stix_id=str(stix_id)))
            continue
        if not isinstance(entry, dict):
            findings.append(make_finding("TI704", f"the overlay of {stix_id} must be a mapping of properties",
                                         Location(file, path=(str(stix_id),)), stix_id=str(stix_id)))
            continue
        for name, value in entry.items():
            where = Location(file, path=(str(stix_id), str(name)))
            if name not in OVERLAY_PROPERTIES:
                findings.append(make_finding(
                    "TI703", f"'{name}' cannot be overlaid: partner intel is read-only except "
                             f"{', '.join(OVERLAY_PROPERTIES)}", where, stix_id=str(stix_id)))
                continue
            problem = overlay_value_problem(str(name), value)
            if problem is not None:
                findings.append(make_finding("TI704", f"'{name}' of {stix_id}: {problem}", where, stix_id=str(stix_id)))
    return findings
