"""`tiops bump`: set ``modified`` on every object whose content changed against a base revision.

The edit is textual: only the value on each object's ``modified:`` line is
replaced (a line is inserted after ``created:`` when the object has none), so
comments, quoting, key order and everything else in the file stay as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tiops.config import usable_config
from tiops.errors import TiopsError, UsageError
from tiops.gitrepo import head_commit_time
from tiops.revision import CompiledRevision, Provenance, change_base, compile_pair
from tiops.stix import timestamp_key
from tiops.versioning import changed_content, needs_bump
from tiops.yamlio import PositionIndex, read_for_edit, write_edited

_VALUE = re.compile(r"""^(?P<lead>\s*(?:-\s+)?modified\s*:\s*)(?P<quote>["']?)(?P<value>[^"'\s#]*)(?P=quote)""")
_CREATED = re.compile(r"""^(?P<indent>\s*(?:-\s+)?)created\s*:""")


@dataclass(frozen=True)
class Bump:
    id: str
    file: str
    line: int
    before: str | None
    after: str
    # > 0: an inline relationship whose content did not change, pinned to the modified it had
    # (its parent's old one) by a `modified:` key inserted at this column after line -line.
    column: int = 0


def plan_bumps(base: CompiledRevision, head: CompiledRevision, at: str | None = None) -> list[Bump]:
    """The edits that give every changed object a later ``modified`` (nothing is written)."""
    wanted: dict[str, tuple[Provenance, str | None, str]] = {}  # id whose modified: line to edit
    for object_id in sorted(set(base.authored) & set(head.authored)):
        before, after = base.authored[object_id], head.authored[object_id]
        if not needs_bump(before, after):
            continue
        place = head.provenance[object_id]
        if place.imported_folder is not None:
            continue  # partner intel is read-only: its versions are the partner's, never bumped here
        owner = object_id
        # An inline relationship without its own `modified:` inherits its parent's: bump the parent.
        if place.declared_by is not None and not _has_own_modified(head, object_id):
            owner, place = place.declared_by, head.provenance[place.declared_by]
        value = _new_timestamp(str(before.get("modified") or ""), at)
        current = wanted.get(owner)
        if current is None or (timestamp_key(value) or ("",)) > (timestamp_key(current[2]) or ("",)):
            wanted[owner] = (place, _as_str(head.authored[owner].get("modified")), value)
    files: dict[str, tuple[PositionIndex, Any]] = {}  # a bulk file is read and indexed once, not once per bump
    bumps = [_locate(head, object_id, place, old, new, files) for object_id, (place, old, new) in sorted(wanted.items())]
    return sorted([*bumps, *_pins(base, head, set(wanted))], key=lambda b: (b.file, abs(b.line), b.id))


def _pins(base: CompiledRevision, head: CompiledRevision, owners: set[str]) -> list[Bump]:
    """Inline relationships of bumped objects that did not change keep the version they had.

    They inherit `modified` from the object that declares them, so bumping it alone would
    make a new version of every such relationship: noise in diff and plan for relationships
    nobody touched.
    """
    pins = []
    # Only relationships declared inline by a bumped object can be pinned; finding them by the
    # loaded objects spares describing every object of the working tree (tiops.revision.ByObject).
    declared = head.provenance if head.repo is None else {obj.id for obj in head.repo.objects if obj.declared_by in owners}
    for object_id in sorted(declared):
        place = head.provenance[object_id]
        if place.declared_by not in owners or object_id not in base.authored or _has_own_modified(head, object_id):
            continue
        before = base.authored[object_id]
        if changed_content(before, head.authored[object_id]) or not isinstance(before.get("modified"), str):
            continue
        if head.repo is None:
            raise TiopsError("bump edits the working tree only")
        text = (head.repo.root / place.file).read_text(encoding="utf-8")
        line, column = PositionIndex(text).position(place.path)
        if text.splitlines()[line - 1][column - 1:column] == "{":
            continue  # a flow mapping entry ({uses: ...}) cannot take a line; it follows its parent
        pins.append(Bump(object_id, place.file, -line, None, str(before["modified"]), column))
    return pins


def apply_bumps(root: Path, bumps: list[Bump]) -> None:
    """Write ``bumps`` into the files under ``root`` (bottom-up, so earlier line numbers stay right)."""
    by_file: dict[str, list[Bump]] = {}
    for bump in bumps:
        by_file.setdefault(bump.file, []).append(bump)
    for file, edits in sorted(by_file.items()):
        path = root / file
        text, newline = read_for_edit(path)
        lines = text.splitlines(keepends=True)
        # Bottom-up by the line each edit is at: an insertion (a negative line, after line -line) moves
        # every later line down, so none may come before an edit further down the file.
        for bump in sorted(edits, key=lambda b: abs(b.line), reverse=True):
            lines = _edit(lines, bump)
        write_edited(path, "".join(lines), newline)


def bump_repo(root: Path, base_ref: str, at: str | None = None, *, write: bool = True,
              cache: bool = False, note: Callable[[str], None] = lambda _text: None) -> list[Bump]:
    """Bump every object of the working tree at ``root`` that changed against ``base_ref``.

    ``cache``: the working tree is loaded through the build cache and the base's unchanged
    files taken from it (tiops.revision.compile_pair); the bumps are the same. ``note`` is told
    when the change is taken against another revision than ``base_ref`` (tiops.revision.change_base).
    """
    if at is not None and timestamp_key(at) is None:
        raise UsageError(f"--at {at!r} is not a STIX timestamp", hint="Write it like 2025-06-01T12:00:00.000Z.")
    usable_config(root, "bumped")  # with errors it would load as every default: the wrong intel folder
    moment = at if at is not None else head_commit_time(root)
    base = change_base(root, base_ref)
    if base.note is not None:
        note(base.note)
    bumps = plan_bumps(*compile_pair(root, base.revision, None, cache=cache), moment)
    if write:
        apply_bumps(root, bumps)
    return bumps


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _has_own_modified(head: CompiledRevision, object_id: str) -> bool:
    place = head.provenance[object_id]
    parent = head.authored.get(place.declared_by or "", {})
    return head.authored[object_id].get("modified") != parent.get("modified")


def _new_timestamp(base_modified: str, at: str | None) -> str:
    """``at`` when it is later than the base version, else the base ``modified`` plus one millisecond."""
    later = _plus_one_millisecond(base_modified) if timestamp_key(base_modified) else None
    if at is not None and (later is None or (timestamp_key(at) or ("",)) >= (timestamp_key(later) or ("",))):
        return at
    return later or "1970-01-01T00:00:00.000Z"


def _plus_one_millisecond(text: str) -> str:
    whole, _, fraction = text.rstrip("Z").partition(".")
    moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    milliseconds = int((fraction + "000")[:3]) if fraction else 0
    moment += timedelta(milliseconds=milliseconds + 1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _locate(head: CompiledRevision, object_id: str, place: Provenance, old: str | None, new: str,
            files: dict[str, tuple[PositionIndex, Any]] | None = None) -> Bump:
    if head.repo is None:
        raise TiopsError("bump edits the working tree only")
    known = files.get(place.file) if files is not None else None
    if known is None:
        from tiops.yamlio import parse_yaml

        text = (head.repo.root / place.file).read_text(encoding="utf-8")
        known = (PositionIndex(text), parse_yaml(text))
        if files is not None:
            files[place.file] = known
    index, document = known
    if "modified" in _own_keys(document, place):
        line = index.position((*place.path, "modified"))[0]
    else:
        line = -index.position((*place.path, "created"))[0]  # negative: insert after the created: line
    return Bump(object_id, place.file, line, old, new)


def _own_keys(node: Any, place: Provenance) -> set[str]:
    for part in place.path:
        node = node[part]
    return set(node) if isinstance(node, dict) else set()


def _edit(lines: list[str], bump: Bump) -> list[str]:
    if bump.column:
        number = -bump.line - 1
        if not lines[number].endswith("\n"):
            lines[number] += "\n"
        lines.insert(number + 1, f"{' ' * (bump.column - 1)}modified: {bump.after}\n")
        return lines
    if bump.line > 0:
        number = bump.line - 1
        match = _VALUE.match(lines[number])
        if match is None:
            raise TiopsError(f"{bump.file}:{bump.line}: cannot read the modified: line to bump it")
        start, end = match.span("value")
        lines[number] = lines[number][:start] + bump.after + lines[number][end:]
        return lines
    number = -bump.line - 1
    match = _CREATED.match(lines[number])
    if match is None:
        raise TiopsError(f"{bump.file}:{-bump.line}: cannot find the created: line to add modified after it")
    indent = " " * len(match.group("indent"))
    newline = "\n" if lines[number].endswith("\n") else ""
    if not newline:
        lines[number] += "\n"
    lines.insert(number + 1, f"{indent}modified: {bump.after}\n")
    return lines
