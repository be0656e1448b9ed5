"""Turn the property paths of findings into line and column numbers.

Only files that have findings are parsed for positions, once each.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tiops.findings import Finding
from tiops.yamlio import PositionIndex


def resolve_locations(findings: list[Finding], root: Path) -> list[Finding]:
    indexes: dict[str, PositionIndex | None] = {}
    resolved: list[Finding] = []
    for finding in findings:
        location = finding.location
        if location.line:
            resolved.append(finding)
            continue
        if location.file not in indexes:
            indexes[location.file] = _index(root, location.file)
        index = indexes[location.file]
        line, column = index.position(location.path) if index else (1, 1)
        resolved.append(replace(finding, location=replace(location, line=line, column=column)))
    return resolved


def _index(root: Path, file: str) -> PositionIndex | None:
    path = Path(file) if Path(file).is_absolute() else root / file
    try:
        return PositionIndex(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
