"""`tiops tag add|remove`: change `labels` of many objects by rewriting their files in place.

Files are edited with a round-trip YAML parser so comments, key order and quoting
stay as written; only the `labels` of the matching objects change.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiops.errors import UsageError
from tiops.load import IntelObject, load_repo
from tiops.where import Condition, matches
from tiops.yamlio import dump_roundtrip, load_roundtrip, roundtrip_root


@dataclass(frozen=True)
class TagChange:
    file: str
    stix_id: str
    before: tuple[str, ...]
    after: tuple[str, ...]


def tag_objects(root: Path, action: str, tags: list[str], *, condition: Condition | None = None,
                ids: list[str] | None = None) -> list[TagChange]:
    """Add or remove ``tags`` on every object matching ``condition`` or listed in ``ids``; return the changes."""
    if action not in ("add", "remove"):
        raise UsageError(f"unknown tag action {action!r}", hint="Use 'add' or 'remove'.")
    if condition is None and not ids:
        raise UsageError("say which objects to tag with --where EXPR or --id ID")
    repo = load_repo(root)
    wanted = set(ids or ())
    selected = [obj for obj in repo.objects if obj.declared_by is None
                and (obj.id in wanted or (condition is not None and matches(condition, obj)))]
    unknown = wanted - {obj.id for obj in selected}
    if unknown:
        raise UsageError(f"no object with id {', '.join(sorted(unknown))}")
    by_file: dict[str, list[IntelObject]] = defaultdict(list)
    for obj in selected:
        by_file[obj.file].append(obj)
    changes: list[TagChange] = []
    for file, objects in sorted(by_file.items()):
        path = root / file
        document = load_roundtrip(path.read_text(encoding="utf-8"))
        file_changes = [change for obj in objects if (change := _retag(document, obj, action, tags)) is not None]
        if file_changes:
            path.write_text(dump_roundtrip(document), encoding="utf-8")
            changes.extend(file_changes)
    return changes


def _retag(document: Any, obj: IntelObject, action: str, tags: list[str]) -> TagChange | None:
    node = roundtrip_root(document)
    for part in obj.path:
        node = node[part]
    before = [str(label) for label in obj.data.get("labels") or ()]
    if action == "add":
        after = before + [tag for tag in tags if tag not in before]
    else:
        after = [label for label in before if label not in tags]
    if after == before:
        return None
    if not after:
        del node["labels"]
    elif isinstance(node.get("labels"), list) and "labels" not in obj.defaulted_properties:
        current = node["labels"]
        for label in list(current):
            if label not in after:
                current.remove(label)
        current.extend(tag for tag in after if tag not in current)
    else:
        node["labels"] = after
    return TagChange(obj.file, obj.id, tuple(before), tuple(after))
