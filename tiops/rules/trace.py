"""Explain where an object comes from and what the ingestion rules did to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiops.errors import UsageError
from tiops.load import IntelObject, Repo
from tiops.rules.engine import RulesOutcome
from tiops.yamlio import PositionIndex


class _Positions:
    """Line numbers of objects, parsing each file at most once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.indexes: dict[str, PositionIndex | None] = {}

    def line(self, obj: IntelObject) -> int:
        if obj.file not in self.indexes:
            try:
                self.indexes[obj.file] = PositionIndex((self.root / obj.file).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                self.indexes[obj.file] = None
        index = self.indexes[obj.file]
        return index.position(obj.path)[0] if index is not None else 0


def object_trace(obj: IntelObject, outcome: RulesOutcome, positions: _Positions) -> dict[str, Any]:
    """The story of one object as plain data (the JSON form of ``tiops explain``)."""
    return {
        "id": obj.id,
        "type": obj.type,
        "file": obj.file,
        "line": positions.line(obj),
        "source": obj.source,
        "declared_by": obj.declared_by,
        "defaults_files": list(obj.defaults_files),
        "defaulted_properties": list(obj.defaulted_properties),
        "imported_folder": obj.imported_folder,
        "overlay_file": obj.overlay_file,
        "overlaid_properties": list(obj.overlaid_properties),
        "rules": [
            {
                "rule": application.rule,
                "order": application.order,
                "file": application.file,
                "line": application.line,
                "dropped": application.dropped,
                "changes": [{"field": c.field, "before": c.before, "after": c.after} for c in application.changes],
            }
            for application in outcome.applied.get(obj.id, ())
        ],
        "dropped": obj.id in outcome.dropped,
        "dropped_because": outcome.dropped.get(obj.id),
    }


def explain(repo: Repo, outcome: RulesOutcome, stix_id: str) -> dict[str, Any]:
    """The trace of the object with ``stix_id``; a usage error when there is none."""
    for obj in repo.objects:
        if obj.id == stix_id:
            return object_trace(obj, outcome, _Positions(repo.root))
    raise UsageError(f"no object with id {stix_id!r} in the repository")


def all_traces(repo: Repo, outcome: RulesOutcome) -> list[dict[str, Any]]:
    """A trace for every object, sorted by id (``tiops compile --trace``)."""
    positions = _Positions(repo.root)
    return [object_trace(obj, outcome, positions) for obj in sorted(repo.objects, key=lambda o: o.id)]


def render_trace(trace: dict[str, Any]) -> str:
    """The text form of ``tiops explain``."""
    lines = [f"{trace['id']}", f"  from {trace['file']}:{trace['line']}"]
    if trace["declared_by"]:
        lines.append(f"  declared inline by {trace['declared_by']}")
    if trace["source"]:
        lines.append(f"  source: {trace['source']}")
    for defaults_file in trace["defaults_files"]:
        lines.append(f"  defaults from {defaults_file}")
    if trace["defaulted_properties"]:
        lines.append(f"  properties from defaults: {', '.join(trace['defaulted_properties'])}")
    if trace.get("imported_folder"):
        lines.append(f"  partner intel imported into {trace['imported_folder']} (read-only but for the overlay)")
    for other in trace.get("also_imported_by") or ():
        lines.append(f"  also sent by source {other['source']!r} ({other['folder']}); the object lives once, here")
    if trace.get("overlaid_properties"):
        lines.append(f"  properties from overlay {trace['overlay_file']}: {', '.join(trace['overlaid_properties'])}")
    if not trace["rules"]:
        lines.append("  no ingestion rule matched")
    for application in trace["rules"]:
        lines.append(f"  rule {application['rule']!r} (order {application['order']}, {application['file']}:{application['line']})")
        for change in application["changes"]:
            lines.append(f"    {change['field']}: {_show(change['before'])} -> {_show(change['after'])}")
        if application["dropped"]:
            lines.append("    dropped")
    if trace["dropped"] and not any(a["dropped"] for a in trace["rules"]):
        lines.append(f"  dropped: {trace['dropped_because']}")
    lines.append("  result: " + ("dropped" if trace["dropped"] else "in the bundle"))
    return "\n".join(lines) + "\n"


def _show(value: Any) -> str:
    return "(absent)" if value is None else repr(value)
