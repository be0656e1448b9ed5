"""Importers: turn someone else's intel (Sentinel CSV, STIX bundles) into repository files.

Each importer is a plain function registered in :data:`IMPORTERS` (no discovery). It
only parses: it returns candidate objects and the rows or items it had to reject,
with every reason. Checking candidates against STIX 2.1 and writing files is shared
(:mod:`tiops.importers.write`), so every format gets the same summary, modes and
error report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Candidate:
    """One object an importer produced, with where it came from in the input."""

    position: str  # "row 7" or "index 12": what a user finds in their file
    data: dict[str, Any]
    # False when the input has no real versions (CSV rows): a changed row with the same
    # 'modified' then updates the file instead of being a conflict.
    versioned: bool = True
    # Repairs the parser already made (a STIX 2.0 object in a mixed bundle upgraded to 2.1).
    repairs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rejection:
    position: str
    reasons: tuple[str, ...]
    stix_id: str | None = None
    name: str | None = None  # the object's name, shown beside its id
    # Set when the object itself was fine but refers to a rejected or missing object:
    # it is rejected with it so the repository keeps validating ("depends on rejected X").
    depends_on: str | None = None
    # How many rows or items of the input this rejection stands for: a CSV header that
    # cannot be read rejects every row under it, an empty file none.
    rows: int = 1


@dataclass(frozen=True)
class Repair:
    """A defect import fixed in one object (docs/import.md lists the repairs)."""

    position: str
    stix_id: str
    description: str
    name: str | None = None  # the object's name, shown beside its id


@dataclass
class ParsedInput:
    candidates: list[Candidate] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. the STIX 2.0 upgrade report
    total: int = 0


# parse(raw bytes, source name) -> candidates and rejections
Importer = Callable[[bytes, str], ParsedInput]


def _registry() -> dict[str, Importer]:
    from tiops.importers import sentinel_csv, stix

    return {"sentinel-csv": sentinel_csv.parse, "stix": stix.parse}


IMPORT_FORMATS = ("sentinel-csv", "stix")


def importer_for(name: str) -> Importer:
    from tiops.errors import UsageError

    registry = _registry()
    if name not in registry:
        raise UsageError(f"unknown import format {name!r}", hint=f"Use one of: {', '.join(sorted(registry))}.")
    return registry[name]
