"""Relationship rules: which (source type, relationship type, target type) triples are allowed.

The built-in table is STIX 2.1 Appendix B; a repository's ``rules/relationships.yaml``
replaces it (tiops ships that table there too, so teams add their triples to it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources

from tiops.codes import make_finding
from tiops.config import Config
from tiops.findings import Finding, Location, Severity
from tiops.inputs import InputProblem, read_input
from tiops.jsonschemas import tiops_schema_errors
from tiops.load import IntelObject
from tiops.validate.references import object_types
from tiops.yamlio import YamlProblem, parse_yaml

RELATIONSHIPS_FILE = "relationships.yaml"
ANY = "*"


@dataclass(frozen=True)
class RelationshipTable:
    triples: frozenset[tuple[str, str, str]]
    file: str

    def allows(self, source: str, relationship_type: str, target: str) -> bool:
        return any(
            (s, relationship_type, t) in self.triples
            for s in (source, ANY)
            for t in (target, ANY)
        )

    def allowed_types_between(self, source: str, target: str) -> list[str]:
        return sorted({r for s, r, t in self.triples if s in (source, ANY) and t in (target, ANY)})


def load_relationship_table(config: Config | None) -> tuple[RelationshipTable, list[Finding]]:
    """The repository's table, or the built-in one (``config`` None: a bundle being linted)."""
    path = config.rules_path / RELATIONSHIPS_FILE if config else None
    if config and path and os.path.lexists(path):
        display = path.relative_to(config.root).as_posix() if path.is_relative_to(config.root) else path.as_posix()
        try:
            text = read_input(os.fspath(path), root=os.fspath(config.root)).decode("utf-8")
        except InputProblem as problem:
            return RelationshipTable(frozenset(), display), [make_finding(problem.code, problem.message, Location(display, 1, 1))]
        except UnicodeDecodeError as error:
            return RelationshipTable(frozenset(), display), [
                make_finding("TI106", f"not UTF-8 ({error.reason} at byte {error.start})", Location(display, 1, 1))
            ]
        return _parse_table(text, display)
    text = (resources.files("tiops") / "data" / RELATIONSHIPS_FILE).read_text(encoding="utf-8")
    table, _ = _parse_table(text, "<built-in STIX 2.1 Appendix B>")
    return table, []


def _parse_table(text: str, display: str) -> tuple[RelationshipTable, list[Finding]]:
    try:
        data = parse_yaml(text)
    except YamlProblem as problem:
        return RelationshipTable(frozenset(), display), [
            make_finding(problem.code, problem.message, Location(display, problem.line, problem.column))
        ]
    errors = tiops_schema_errors("relationships", data)
    if errors:
        return RelationshipTable(frozenset(), display), [
            make_finding("TI402", message, Location(display, path=path)) for path, message in errors
        ]
    triples = frozenset((e["source"], e["type"], e["target"]) for e in data.get("relationships") or [])
    return RelationshipTable(triples, display), []


def check_relationships(objects: list[IntelObject], table: RelationshipTable, *, in_bundle: bool = False,
                        types: dict[str, str] | None = None) -> list[Finding]:
    """Relationships outside the table are errors in a repository (team policy).

    STIX 2.1 section 5.1 only says relationship_type SHOULD be one the spec defines for
    the two types, so in a bundle received from others they are warnings. ``types`` is
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
            hint = (
                f"Between {source_type} and {target_type} the table allows: {', '.join(allowed)}; "
                f"or add the triple to {table.file if not table.file.startswith('<') else 'rules/relationships.yaml'}."
            )
            findings.append(
                make_finding(
                    "TI400",
                    f"{source_type} --{relationship_type}--> {target_type} is not an allowed relationship",
                    obj.location("relationship_type"),
                    stix_id=obj.id,
                    hint=hint,
                    severity=severity,
                )
            )
    return findings

