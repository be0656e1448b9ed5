"""Relationship rules: which (source type, relationship type, target type) triples are allowed.

The effective table is the built-in STIX 2.1 Appendix B, plus the tables tiops ships
that ``tiops.yaml`` enables under ``relationship_tables`` (``attack``), plus the
repository's ``rules/relationships.yaml``. That file adds to the rest unless it says
``replace_builtin: true``, in which case its triples are the whole table.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from tiops.codes import make_finding
from tiops.config import Config
from tiops.findings import Finding, Location, Severity
from tiops.inputs import InputProblem
from tiops.jsonschemas import tiops_schema_errors
from tiops.load import IntelObject
from tiops.stix import ALL_TYPES
from tiops.validate.references import object_types
from tiops.yamlio import YamlProblem, parse_yaml

RELATIONSHIPS_FILE = "relationships.yaml"
ANY = "*"
BUILTIN_TABLE = "<built-in STIX 2.1 Appendix B>"
# Tables tiops ships besides Appendix B, enabled by name in tiops.yaml (relationship_tables).
SHIPPED_TABLES = {"attack": "relationships-attack.yaml"}

Triple = tuple[str, str, str]


@dataclass(frozen=True)
class RelationshipTable:
    triples: frozenset[Triple]
    file: str
    # Where each triple comes from (the first table that allows it), for `tiops relationships`.
    origins: dict[Triple, str] = field(default_factory=dict, compare=False)
    # The names of the shipped tables (SHIPPED_TABLES) in it, so a finding can name one that is not.
    shipped: frozenset[str] = frozenset()

    def allows(self, source: str, relationship_type: str, target: str) -> bool:
        return any(
            (s, relationship_type, t) in self.triples
            for s in (source, ANY)
            for t in (target, ANY)
        )

    def allowed_types_between(self, source: str, target: str) -> list[str]:
        return sorted({r for s, r, t in self.triples if s in (source, ANY) and t in (target, ANY)})


def load_relationship_table(config: Config | None) -> tuple[RelationshipTable, list[Finding]]:
    """The effective table of the repository (``config`` None: a bundle linted outside any repository, Appendix B only)."""
    tables: list[tuple[str, frozenset[Triple]]] = []
    findings: list[Finding] = []
    replace_builtin = False
    team_file = "rules/relationships.yaml"
    if config is not None:
        path = config.rules_path / RELATIONSHIPS_FILE
        team_file = path.relative_to(config.root).as_posix() if path.is_relative_to(config.root) else path.as_posix()
        if config.files.lexists(os.fspath(path)):
            text = _read_team_table(path, config, team_file, findings)
            if text is not None:
                team, replace_builtin, findings = _parse_table(text, team_file)
                tables.append((team_file, team))
    enabled: tuple[str, ...] = ()
    if not replace_builtin:
        enabled = () if config is None else tuple(config.relationship_tables)
        shipped = [("", BUILTIN_TABLE)] + [(name, f"<built-in relationship_tables: {name}>") for name in enabled]
        for name, display in reversed(shipped):
            tables.insert(0, (display, _shipped_triples(name)))
    origins: dict[Triple, str] = {}
    for display, triples in tables:
        for triple in sorted(triples):
            origins.setdefault(triple, display)
    return RelationshipTable(frozenset(origins), team_file, origins, frozenset(enabled)), findings


@functools.cache
def _shipped_triples(name: str) -> frozenset[Triple]:
    """The triples of a table tiops ships: Appendix B for "", else SHIPPED_TABLES[name]."""
    resource = SHIPPED_TABLES.get(name, RELATIONSHIPS_FILE)
    text = (resources.files("tiops") / "data" / resource).read_text(encoding="utf-8")
    return _parse_table(text, name or BUILTIN_TABLE)[0]


def _shipped_tables_allowing(triple: Triple, enabled: frozenset[str]) -> list[str]:
    """The shipped tables not enabled that would allow ``triple``."""
    source, relationship_type, target = triple
    return [
        name for name in sorted(SHIPPED_TABLES) if name not in enabled and any(
            (s, relationship_type, t) in _shipped_triples(name) for s in (source, ANY) for t in (target, ANY))
    ]


def _read_team_table(path: Path, config: Config, display: str, findings: list[Finding]) -> str | None:
    """The team's table as text, read safely (docs/limits.md); a finding and None when it cannot be.

    The finding blocks compile, so the table used meanwhile (the shipped ones alone) never
    decides what is published.
    """
    try:
        return config.files.read(os.fspath(path)).decode("utf-8")
    except InputProblem as problem:
        findings.append(make_finding(problem.code, problem.message, Location(display, 1, 1)))
    except UnicodeDecodeError as error:
        findings.append(make_finding("TI106", f"not UTF-8 ({error.reason} at byte {error.start})", Location(display, 1, 1)))
    return None


def _parse_table(text: str, display: str) -> tuple[frozenset[Triple], bool, list[Finding]]:
    try:
        data = parse_yaml(text)
    except YamlProblem as problem:
        return frozenset(), False, [
            make_finding(problem.code, problem.message, Location(display, problem.line, problem.column))
        ]
    errors = tiops_schema_errors("relationships", data)
    if errors:
        return frozenset(), False, [
            make_finding("TI402", message, Location(display, path=path)) for path, message in errors
        ]
    entries = data.get("relationships") or []
    # A type misspelt (indicatr) would allow nothing and say nothing: each end is a STIX type, a
    # custom x- type, or * (any).
    unknown = [make_finding("TI402", f"{entry[end]!r} is not a STIX object type (nor x-..., nor *)",
                            Location(display, path=("relationships", index, end)))
               for index, entry in enumerate(entries) for end in ("source", "target")
               if entry[end] != "*" and entry[end] not in ALL_TYPES and not str(entry[end]).startswith("x-")]
    if unknown:
        return frozenset(), False, unknown
    triples = frozenset((e["source"], e["type"], e["target"]) for e in entries)
    return triples, data.get("replace_builtin") is True, []


def check_relationships(objects: list[IntelObject], table: RelationshipTable, *, in_bundle: bool = False,
                        types: dict[str, str] | None = None) -> list[Finding]:
    """Relationships outside the table are errors for the team's own objects (team policy).

    STIX 2.1 section 5.1 only says relationship_type SHOULD be one the spec defines for
    the two types, so in a bundle received from others, and for partner intel written by
    ``tiops import`` (its vocabulary is the partner's), they are warnings. ``types`` is
    :func:`tiops.validate.references.object_types` of ``objects`` when the caller has it.
    """
    severity = Severity.WARNING if in_bundle else None
    types = object_types(objects) if types is None else types
    findings: list[Finding] = []
    for obj in objects:
        if obj.data["type"] != "relationship":
            continue
        data = obj.data
        source_type = types.get(str(data.get("source_ref")))
        target_type = types.get(str(data.get("target_ref")))
        relationship_type = data.get("relationship_type")
        if source_type is None or target_type is None or not isinstance(relationship_type, str):
            continue  # dangling references and missing properties are reported elsewhere
        if not table.allows(source_type, relationship_type, target_type):
            allowed = table.allowed_types_between(source_type, target_type)
            between = (f"the table allows: {', '.join(allowed)}" if allowed
                       else "the table allows no relationship type")
            hint = (
                f"Between {source_type} and {target_type} {between}; or add the triple to {table.file} "
                "('tiops relationships' prints the effective table)."
            )
            shipped = _shipped_tables_allowing((source_type, relationship_type, target_type), table.shipped)
            if shipped:
                hint += (f" The {' and '.join(shipped)} table tiops ships allows it: add 'relationship_tables: "
                         f"[{', '.join(shipped)}]' to tiops.yaml (docs/format.md).")
            findings.append(
                make_finding(
                    "TI400",
                    f"{source_type} --{relationship_type}--> {target_type} is not an allowed relationship",
                    obj.location("relationship_type"),
                    stix_id=obj.id,
                    hint=hint,
                    severity=Severity.WARNING if obj.imported_folder is not None else severity,
                )
            )
    return findings

