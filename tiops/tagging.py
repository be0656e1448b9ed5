"""`tiops tag add|remove`: change `labels` of many objects by rewriting their files in place.

Files are edited with a round-trip YAML parser so comments, key order and quoting
stay as written; only the `labels` of the matching objects change. Partner intel
(written by `tiops import`) is read-only: its labels are set in the source's
`_overlay.yaml` instead, which a re-import leaves alone (docs/import.md).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tiops.buildcache import load_intel
from tiops.config import usable_config
from tiops.errors import TiopsError, UsageError
from tiops.load import OVERLAY_FILE, IntelObject
from tiops.lookup import object_name
from tiops.render.names import printable
from tiops.rules.conditions import ConditionError, compile_condition
from tiops.stix import SCO_TYPES
from tiops.where import Condition
from tiops.yamlio import (
    ListEdit,
    dump_roundtrip,
    load_roundtrip,
    read_for_edit,
    roundtrip_root,
    set_list_properties,
    write_edited,
)

#: Types other than observables that STIX 2.1 gives no `labels` (section 7.2.1): a tag would make
#: them invalid, and, having no `modified`, a changed one cannot reach a TAXII collection as a new version.
UNLABELLED_TYPES = frozenset({"marking-definition"})


@dataclass(frozen=True)
class TagChange:
    file: str
    stix_id: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    name: str | None = None  # what people call the object (tiops.lookup.object_name)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def tag_objects(root: Path, action: str, tags: list[str], *, condition: Condition | None = None,
                ids: list[str] | None = None, cache: bool = True) -> list[TagChange]:
    """Add or remove ``tags`` on every object matching ``condition`` or listed in ``ids``; return the changes.

    ``cache``: read the intel through the build cache (tiops.buildcache.load_intel).
    """
    if action not in ("add", "remove"):
        raise UsageError(f"unknown tag action {action!r}", hint="Use 'add' or 'remove'.")
    if condition is None and not ids:
        raise UsageError("say which objects to tag with --where EXPR or --id ID")
    for tag in tags:
        # A tag is a STIX label (section 3.2, labels: a list of strings): an empty
        # one, one padded with spaces (another tag than its trimmed self) or one holding a line
        # break or another control character would be kept, silently, in every object it touched.
        if not tag.strip() or tag != tag.strip() or _CONTROL.search(tag):
            raise UsageError(f"{tag!r} is not a tag: tags are non-empty, without spaces around them or "
                             "control characters", hint="For example: tiops tag add --where 'type = indicator' c2")
    try:
        selects = compile_condition(condition) if condition is not None else (lambda obj: False)
    except ConditionError as error:
        raise UsageError(f"--where: {error.message}") from None
    usable_config(root, "tagged")  # with errors it would load as every default: the wrong intel folder
    repo = load_intel(root, cache=cache)
    wanted = set(ids or ())
    selected = [obj for obj in repo.objects if obj.declared_by is None and (obj.id in wanted or selects(obj))]
    unknown = wanted - {obj.id for obj in selected}
    if unknown:
        raise UsageError(f"no object with id {', '.join(sorted(unknown))}")
    observables = sorted(obj.id for obj in selected if obj.id in wanted and obj.type in SCO_TYPES)
    if observables:  # named one by one: a --where that also meets observables tags the others
        raise UsageError(f"{', '.join(observables)}: an observable (SCO) has no labels (STIX 2.1 section 6.1)",
                         hint="Tag the indicator or observed-data that names it instead.")
    markings = sorted(obj.id for obj in selected if obj.id in wanted and obj.type in UNLABELLED_TYPES)
    if markings:
        raise UsageError(f"{', '.join(markings)}: a marking definition has no labels (STIX 2.1 section 7.2.1)",
                         hint="Tag the objects it marks instead.")
    selected = [obj for obj in selected if obj.type not in SCO_TYPES and obj.type not in UNLABELLED_TYPES]
    by_file: dict[str, list[IntelObject]] = defaultdict(list)
    by_overlay: dict[str, list[IntelObject]] = defaultdict(list)
    for obj in selected:
        if obj.imported_folder is not None:
            by_overlay[f"{obj.imported_folder}/{OVERLAY_FILE}"].append(obj)
        else:
            by_file[obj.file].append(obj)
    changes: list[TagChange] = []
    for overlay_file, objects in sorted(by_overlay.items()):
        changes.extend(_retag_overlay(root / overlay_file, overlay_file, objects, action, tags))
    for file, objects in sorted(by_file.items()):
        edits: list[ListEdit] = []
        for obj in objects:
            before, after = _new_labels(obj, action, tags)
            if after != before:
                edits.append((obj.path, "labels", after or None))
                changes.append(TagChange(obj.file, obj.id, tuple(before), tuple(after), object_name(obj.data)))
        if edits:
            # A text edit of the labels alone: the rest of the file keeps its exact bytes.
            path = root / file
            text, newline = read_for_edit(path)
            try:
                edited = set_list_properties(text, edits)
            except ValueError as error:
                raise TiopsError(f"{file}: cannot edit labels in place: {error}",
                                 hint="Write the object as a block mapping (key: value lines).") from None
            write_edited(path, edited, newline)
    return changes


def _new_labels(obj: IntelObject, action: str, tags: list[str]) -> tuple[list[str], list[str]]:
    before = [str(label) for label in obj.data.get("labels") or ()]
    if action == "add":
        return before, before + [tag for tag in tags if tag not in before]
    return before, [label for label in before if label not in tags]


def _retag_overlay(path: Path, overlay_file: str, objects: list[IntelObject], action: str,
                   tags: list[str]) -> list[TagChange]:
    """Set the labels of partner objects in their source's overlay (created when missing)."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    document = load_roundtrip(text if text.strip() else "{}\n")
    overlay = roundtrip_root(document)
    if not isinstance(overlay, dict):
        raise UsageError(f"{overlay_file} is not a mapping of object ids; fix it before tagging")
    changes: list[TagChange] = []
    for obj in objects:
        before, after = _new_labels(obj, action, tags)
        if after == before:
            continue
        entry = overlay.get(obj.id)
        if not isinstance(entry, dict):
            overlay[obj.id] = entry = {}
            name = object_name(obj.data)
            if name and hasattr(overlay, "yaml_add_eol_comment"):
                # The overlay is keyed by id; the name beside it says which object a reviewer is reading.
                # Printable: a partner's name may hold a line break or a terminal's escape sequence.
                overlay.yaml_add_eol_comment(printable(name), obj.id, column=len(obj.id) + 2)
        imported = [str(label) for label in (obj.imported_data or {}).get("labels") or ()]
        if after == imported:
            entry.pop("labels", None)  # back to the partner's own labels: nothing to keep
        else:
            entry["labels"] = after
        if not entry:
            del overlay[obj.id]
        changes.append(TagChange(overlay_file, obj.id, tuple(before), tuple(after), object_name(obj.data)))
    if changes:
        header = "" if text.strip() else (
            "# Local changes to partner intel (labels, valid_until, confidence, revoked), by object id.\n"
            "# 'tiops import' never touches this file; see docs/import.md.\n")
        body = dump_roundtrip(document) if overlay else "{}\n"
        write_edited(path, header + body)
    return changes
