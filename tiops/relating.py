"""`tiops relate`: add or remove relationships from one object to many, as text edits.

Relationships from the team's own objects are inline `relationships:` entries in the
source object's file, edited as text the way `tiops tag` edits labels (the rest of the
file keeps its bytes). Partner intel written by `tiops import` is read-only, so a
relationship from a partner object is a standalone relationship file in the team's
relationships folder instead. Every triple and every target is checked before
anything is written (STIX 2.1 section 5.1, Appendix B).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiops.authoring import file_stem, team_folder
from tiops.buildcache import load_intel
from tiops.config import usable_config
from tiops.errors import TiopsError, UsageError
from tiops.load import INLINE_RELATIONSHIPS_KEY, IntelObject, Repo
from tiops.lookup import find_object, object_name
from tiops.outputs import create_whole
from tiops.stix import derive_relationship_id, timestamp_key
from tiops.validate.relationships import load_relationship_table
from tiops.yamlio import (
    MappingEntry,
    append_mapping_items,
    dump_yaml,
    read_for_edit,
    remove_list_items,
    write_edited,
)

# Section 5.1: relationship_type is lowercase a-z, 0-9 and hyphens.
_RELATIONSHIP_TYPE = re.compile(r"^[a-z0-9-]+$")
# Objects that cannot be the source or target of a relationship (sections 5, 7).
_NOT_RELATABLE = frozenset({"relationship", "sighting", "marking-definition", "language-content", "extension-definition"})


@dataclass(frozen=True)
class RelationshipEdit:
    """One relationship added, removed or left as it was, and the file that holds it."""

    action: str  # "add", "remove" or "unchanged"
    file: str
    relationship_type: str
    source_id: str
    source_name: str | None
    target_id: str
    target_name: str | None
    note: str = ""


def relate(root: Path, source: str, relationship_type: str, targets: list[str], *, time: str,
           description: str | None = None, remove: bool = False, cache: bool = True) -> list[RelationshipEdit]:
    """Add (or with ``remove`` take away) SOURCE --TYPE--> TARGET for every target; return the edits.

    ``cache``: read the intel through the build cache (tiops.buildcache.load_intel).
    """
    if not targets:
        raise UsageError("give at least one TARGET")
    if not remove and timestamp_key(time) is None:
        raise UsageError(f"--time {time!r} is not a timestamp like 2025-03-04T10:00:00.000Z",
                         hint="It becomes the relationship's created and modified (STIX 2.1 section 3.2).")
    if not _RELATIONSHIP_TYPE.match(relationship_type):
        raise UsageError(f"{relationship_type!r} is not a relationship type",
                         hint="Relationship types are lowercase words joined by hyphens, e.g. uses, indicates, attributed-to.")
    if remove and description is not None:
        raise UsageError("--description goes with adding relationships, not with --remove")
    usable_config(root, "related")  # with errors it would load as every default: the wrong intel folder
    repo = load_intel(root, cache=cache)
    relatable = [obj for obj in repo.objects if obj.declared_by is None and obj.type not in _NOT_RELATABLE]
    source_obj = find_object(repo, source, role="SOURCE", candidates=relatable)
    target_objs: list[IntelObject] = []
    for text in targets:
        found = find_object(repo, text, role="TARGET", candidates=relatable)
        if found.id not in {t.id for t in target_objs}:
            target_objs.append(found)
    if remove:
        return _remove(root, repo, source_obj, relationship_type, target_objs)
    _check_triples(repo, source_obj, relationship_type, target_objs)
    return _add(root, repo, source_obj, relationship_type, target_objs, description, time)


def _check_triples(repo: Repo, source: IntelObject, relationship_type: str, targets: list[IntelObject]) -> None:
    table, findings = load_relationship_table(repo.config)
    broken = [f for f in findings if f.severity.name == "ERROR"]
    if broken:
        raise TiopsError(f"{table.file} has errors; fix them first (tiops validate)")
    refused = []
    for target in targets:
        if not table.allows(source.type, relationship_type, target.type):
            allowed = table.allowed_types_between(source.type, target.type)
            refused.append(f"{source.type} --{relationship_type}--> {target.type} ({_shown(target)}); "
                           f"allowed: {', '.join(allowed) or 'none'}")
    if refused:
        raise UsageError("not allowed by the relationship table, nothing written: " + "; ".join(refused),
                         hint=f"Use an allowed type, or add the triple to the team's table ({table.file}).")


def _add(root: Path, repo: Repo, source: IntelObject, relationship_type: str, targets: list[IntelObject],
         description: str | None, time: str) -> list[RelationshipEdit]:
    existing = _existing(repo)
    edits: list[RelationshipEdit] = []
    new_targets: list[IntelObject] = []
    for target in targets:
        holder = existing.get((source.id, relationship_type, target.id))
        if holder is not None:
            edits.append(_edit("unchanged", holder.file, relationship_type, source, target, "already there"))
        else:
            new_targets.append(target)
    if not new_targets:
        return edits
    if source.imported_folder is None:
        entries: list[MappingEntry] = []
        for target in new_targets:
            entry = [(relationship_type, target.id)]
            if description is not None:
                entry.append(("description", description))
            entries.append(entry)
        path = root / source.file
        original, newline = read_for_edit(path)
        try:
            text = append_mapping_items(original, source.path, INLINE_RELATIONSHIPS_KEY, entries)
        except ValueError as error:
            raise TiopsError(f"{source.file}: cannot add relationships in place: {error}",
                             hint="Write the object as a block mapping and 'relationships:' as a block list.") from None
        write_edited(path, text, newline)
        edits.extend(_edit("add", source.file, relationship_type, source, t) for t in new_targets)
        return edits
    # Partner intel is read-only: a standalone relationship file in the team's folder.
    folder = team_folder(root, repo, "relationship")
    planned: list[tuple[Path, str]] = []
    for target in new_targets:
        file = _free_name(folder, source, relationship_type, target, {p for p, _ in planned})
        planned.append((file, _standalone(source, relationship_type, target, description, time)))
    created: list[Path] = []
    try:
        for file, text in planned:
            file.parent.mkdir(parents=True, exist_ok=True)
            create_whole(file, text.encode("utf-8"))  # never a file cut short, which validate would read
            created.append(file)
    except OSError as error:
        # All or none: the files this call made go again, so running it once more makes them all.
        for made in created:
            made.unlink(missing_ok=True)
        raise TiopsError(f"cannot write {file.relative_to(root).as_posix()}: {error.strerror or error}; "
                         "no relationship was added",
                         hint="Check that the folder is writable and the disk has room, then run the command "
                              "again.") from None
    for (file, _), target in zip(planned, new_targets, strict=True):
        edits.append(_edit("add", file.relative_to(root).as_posix(), relationship_type, source, target,
                           "standalone file: the source is read-only partner intel"))
    return edits


def _remove(root: Path, repo: Repo, source: IntelObject, relationship_type: str,
            targets: list[IntelObject]) -> list[RelationshipEdit]:
    by_key = _existing(repo)
    inline: dict[tuple[str, tuple[Any, ...]], list[int]] = defaultdict(list)
    deleted: list[str] = []
    edits: list[RelationshipEdit] = []
    problems: list[str] = []
    for target in targets:
        found = by_key.get((source.id, relationship_type, target.id))
        if found is None:
            problems.append(f"{_shown(source)} has no '{relationship_type}' relationship to {_shown(target)}")
        elif found.imported_folder is not None:
            problems.append(f"{found.id} is partner intel in {found.file}, which is read-only "
                            f"(revoke it with 'revoked: true' in {found.imported_folder}/_overlay.yaml)")
        elif found.declared_by is not None:
            inline[(found.file, tuple(found.path[:-2]))].append(int(found.path[-1]))
            edits.append(_edit("remove", found.file, relationship_type, source, target))
        elif found.path == ():
            deleted.append(found.file)
            edits.append(_edit("remove", found.file, relationship_type, source, target, "file deleted"))
        else:
            problems.append(f"{found.id} is one of several objects in {found.file}; remove it there by hand")
    if problems:
        raise UsageError("nothing removed: " + "; ".join(problems))
    changed: dict[str, str] = {}
    newlines: dict[str, str] = {}
    for (file, path), indexes in inline.items():
        if file not in changed:
            changed[file], newlines[file] = read_for_edit(root / file)
        try:
            changed[file] = remove_list_items(changed[file], path, INLINE_RELATIONSHIPS_KEY, indexes)
        except ValueError as error:
            raise TiopsError(f"{file}: cannot remove relationships in place: {error}") from None
    for file, text in changed.items():
        write_edited(root / file, text, newlines[file])
    for file in deleted:
        (root / file).unlink()
    return edits


def _existing(repo: Repo) -> dict[tuple[str, str, str], IntelObject]:
    found: dict[tuple[str, str, str], IntelObject] = {}
    for obj in repo.objects:
        if obj.type == "relationship" and obj.data.get("revoked") is not True:
            key = (str(obj.data.get("source_ref")), str(obj.data.get("relationship_type")), str(obj.data.get("target_ref")))
            found.setdefault(key, obj)
    return found


def _standalone(source: IntelObject, relationship_type: str, target: IntelObject, description: str | None,
                time: str) -> str:
    data: dict[str, Any] = {
        "type": "relationship",
        "spec_version": "2.1",
        "id": derive_relationship_id(source.id, relationship_type, target.id),
        "created": time,
        "modified": time,
        "relationship_type": relationship_type,
        "source_ref": source.id,
        "target_ref": target.id,
    }
    if description is not None:
        data["description"] = description
    header = (f"# {_shown(source)} {relationship_type} {_shown(target)}.\n"
              f"# The source is partner intel ({source.file}), which is read-only, so the relationship lives here.\n")
    return header + dump_yaml(data)


def _free_name(folder: Path, source: IntelObject, relationship_type: str, target: IntelObject, taken: set[Path]) -> Path:
    stem = "-".join(part for part in (file_stem(object_name(source.data) or source.id.partition("--")[2][:8]),
                                      relationship_type,
                                      file_stem(object_name(target.data) or target.id.partition("--")[2][:8])) if part)
    candidate = folder / f"{stem}.yaml"
    if candidate.exists() or candidate in taken:
        candidate = folder / f"{stem}-{derive_relationship_id(source.id, relationship_type, target.id)[14:22]}.yaml"
    return candidate


def _edit(action: str, file: str, relationship_type: str, source: IntelObject, target: IntelObject,
          note: str = "") -> RelationshipEdit:
    return RelationshipEdit(action, file, relationship_type, source.id, object_name(source.data), target.id,
                            object_name(target.data), note)


def _shown(obj: IntelObject) -> str:
    name = object_name(obj.data)
    return f"{name} ({obj.id})" if name else obj.id
