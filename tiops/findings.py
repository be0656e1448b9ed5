"""Findings are data: what validation found, where, and how to fix it.

Validators create findings with a :class:`Location` that may carry only a
JSON-pointer-like ``path`` inside the file; :func:`tiops.locate.resolve_locations`
turns those paths into line and column numbers afterwards, parsing only the
files that have findings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Severity(enum.IntEnum):
    """Ordered so that ``severity >= Severity.WARNING`` reads naturally."""

    INFO = 0
    WARNING = 1
    ERROR = 2

    def __str__(self) -> str:
        return self.name.lower()


PathPart = str | int


@dataclass(frozen=True, order=True)
class Location:
    """A place in a file. ``line``/``column`` are 1-based; 0 means unknown."""

    file: str
    line: int = 0
    column: int = 0
    path: tuple[PathPart, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    location: Location
    hint: str = ""
    stix_id: str | None = None

    def sort_key(self) -> tuple[str, int, int, str, str]:
        loc = self.location
        return (loc.file, loc.line, loc.column, self.code, self.message)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=Finding.sort_key)


def count_by_severity(findings: list[Finding]) -> dict[Severity, int]:
    counts = {severity: 0 for severity in Severity}
    for finding in findings:
        counts[finding.severity] += 1
    return counts


def fails(findings: list[Finding], *, strict: bool = False) -> bool:
    """True when the findings should fail a run (errors, or warnings under --strict)."""
    threshold = Severity.WARNING if strict else Severity.ERROR
    return any(f.severity >= threshold for f in findings)
