"""Turn the property paths of findings into line and column numbers.

Only files that have findings are parsed for positions, once each.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from tiops.filesource import FileSource, WorkingTree
from tiops.findings import Finding
from tiops.inputs import InputProblem
from tiops.yamlio import PositionIndex


def resolve_locations(findings: list[Finding], root: Path, source: FileSource | None = None) -> list[Finding]:
    """``findings`` with line and column from their path, read from ``source`` (default the working tree)."""
    files = source if source is not None else WorkingTree(root)
    indexes: dict[str, PositionIndex | None] = {}
    resolved: list[Finding] = []
    for finding in findings:
        location = finding.location
        if location.line:
            resolved.append(finding)
            continue
        if location.file not in indexes:
            indexes[location.file] = _index(files, location.file)
        index = indexes[location.file]
        line, column = index.position(location.path) if index else (1, 1)
        resolved.append(replace(finding, location=replace(location, line=line, column=column)))
    return resolved


def _index(files: FileSource, file: str) -> PositionIndex | None:
    path = Path(file) if Path(file).is_absolute() else files.root / file
    try:
        text = files.read(os.fspath(path)).decode("utf-8")
    except (InputProblem, UnicodeDecodeError):
        return None
    # Line endings normalised as text mode would (and as the load stage does).
    return PositionIndex(text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text)
