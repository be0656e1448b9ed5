"""The effective relationship table: Appendix B, shipped tables, team additions; partner triples warn."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from tiops import load_repo, validate_repo
from tiops.cli import main
from tiops.config import load_config
from tiops.findings import Severity
from tiops.validate.relationships import load_relationship_table

ACTOR = """type: threat-actor
spec_version: "2.1"
id: threat-actor--11111111-1111-4111-8111-111111111111
created: 2024-01-01T00:00:00.000Z
modified: 2024-01-01T00:00:00.000Z
name: Actor
relationships:
  - impersonates: identity--22222222-2222-4222-8222-222222222222
  - {hosts: identity--22222222-2222-4222-8222-222222222222}
"""
IDENTITY = """type: identity
spec_version: "2.1"
id: identity--22222222-2222-4222-8222-222222222222
created: 2024-01-01T00:00:00.000Z
modified: 2024-01-01T00:00:00.000Z
name: Victim
"""
ATTACK_SUB = ("attack-pattern", "subtechnique-of", "attack-pattern")


def _ti400(root: Path) -> list[tuple[str, Severity, str]]:
    return [(f.message, f.severity, f.hint) for f in validate_repo(load_repo(root)) if f.code == "TI400"]


def test_a_team_file_adds_to_appendix_b(make_repo: Callable[[dict[str, str]], Path]) -> None:
    root = make_repo({"intel/actor.yaml": ACTOR, "intel/identity.yaml": IDENTITY,
                      "rules/relationships.yaml": "relationships:\n  - {source: threat-actor, type: hosts, target: identity}\n"})
    assert _ti400(root) == []  # impersonates comes from Appendix B, hosts from the team file
    table, findings = load_relationship_table(load_config(root)[0])
    assert findings == [] and table.origins[("threat-actor", "hosts", "identity")] == "rules/relationships.yaml"
    assert table.origins[("threat-actor", "impersonates", "identity")] == "<built-in STIX 2.1 Appendix B>"


def test_replace_builtin_makes_the_team_file_the_whole_table(make_repo: Callable[[dict[str, str]], Path]) -> None:
    root = make_repo({"intel/actor.yaml": ACTOR, "intel/identity.yaml": IDENTITY,
                      "rules/relationships.yaml": "replace_builtin: true\nrelationships:\n"
                                                  "  - {source: threat-actor, type: hosts, target: identity}\n"})
    ((message, severity, hint),) = _ti400(root)
    assert "impersonates" in message and severity is Severity.ERROR
    assert "the table allows: hosts;" in hint


def test_hint_says_when_nothing_is_allowed_between_two_types(make_repo: Callable[[dict[str, str]], Path]) -> None:
    root = make_repo({"intel/actor.yaml": ACTOR.replace("identity--2", "x-thing--2").replace("  - impersonates", "  - uses"),
                      "intel/thing.yaml": IDENTITY.replace("identity", "x-thing"),
                      "rules/relationships.yaml": "replace_builtin: true\nrelationships: []\n"})
    hints = {hint for _, _, hint in _ti400(root)}
    assert hints == {"Between threat-actor and x-thing the table allows no relationship type; or add the triple to "
                     "rules/relationships.yaml ('tiops relationships' prints the effective table)."}


def test_attack_table_is_one_line_of_tiops_yaml(make_repo: Callable[[dict[str, str]], Path]) -> None:
    root = make_repo({"intel/.keep": ""})
    table, _ = load_relationship_table(load_config(root)[0])
    assert not table.allows(*ATTACK_SUB)
    (root / "tiops.yaml").write_text("relationship_tables: [attack]\n")
    table, _ = load_relationship_table(load_config(root)[0])
    assert table.allows(*ATTACK_SUB) and table.allows("malware", "revoked-by", "tool")
    assert table.allows("tool", "uses", "attack-pattern") and table.allows("indicator", "indicates", "malware")
    (root / "tiops.yaml").write_text("relationship_tables: [nonsense]\n")
    assert [f.code for f in load_config(root)[1]] == ["TI110"]


def test_partner_triples_are_warnings_and_own_triples_errors(make_repo: Callable[[dict[str, str]], Path]) -> None:
    root = make_repo({"intel/own/actor.yaml": ACTOR, "intel/own/identity.yaml": IDENTITY,
                      "intel/partner/_defaults.yaml": "source: Partner\nimported: true\n",
                      "intel/partner/_imported.json": '{"objects": {}}',
                      "intel/partner/relationship/r.yaml": """type: relationship
spec_version: "2.1"
id: relationship--33333333-3333-4333-8333-333333333333
created: 2024-01-01T00:00:00.000Z
modified: 2024-01-01T00:00:00.000Z
relationship_type: hosts
source_ref: threat-actor--11111111-1111-4111-8111-111111111111
target_ref: identity--22222222-2222-4222-8222-222222222222
"""})
    by_file = {f.location.file: f.severity for f in validate_repo(load_repo(root)) if f.code == "TI400"}
    assert by_file == {"intel/own/actor.yaml": Severity.ERROR, "intel/partner/relationship/r.yaml": Severity.WARNING}


def test_relationships_command_prints_the_effective_table(make_repo: Callable[[dict[str, str]], Path]) -> None:
    root = make_repo({"tiops.yaml": "relationship_tables: [attack]\n",
                      "rules/relationships.yaml": "relationships:\n  - {source: threat-actor, type: hosts, target: identity}\n"})
    result = CliRunner().invoke(main, ["-C", str(root), "relationships"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == "relationships:"
    assert '  - {source: "attack-pattern", type: subtechnique-of, target: "attack-pattern"}  # <built-in relationship_tables: attack>' in lines
    assert '  - {source: "threat-actor", type: hosts, target: "identity"}  # rules/relationships.yaml' in lines
    assert '  - {source: "*", type: related-to, target: "*"}  # <built-in STIX 2.1 Appendix B>' in lines
    # the output is a valid relationships.yaml holding the same table
    (root / "rules/relationships.yaml").write_text("replace_builtin: true\n" + result.output)
    (root / "tiops.yaml").unlink()
    again = CliRunner().invoke(main, ["-C", str(root), "relationships"])
    assert len(again.output.splitlines()) == len(lines)
    (root / "rules/relationships.yaml").write_text("relationships:\n  - {source: 1}\n")
    broken = CliRunner().invoke(main, ["-C", str(root), "relationships"])
    assert broken.exit_code == 1 and "TI402" in broken.stderr


def test_a_misspelt_type_in_the_team_table_is_a_finding_at_its_line(make_repo) -> None:  # type: ignore[no-untyped-def]
    from tiops.config import Config
    from tiops.locate import resolve_locations
    from tiops.validate.relationships import load_relationship_table

    root = make_repo({"rules/relationships.yaml": "relationships:\n  - {source: indicatr, type: indicates, target: malware}\n"
                                                  "  - {source: x-acme-thing, type: uses, target: '*'}\n"})
    _table, findings = load_relationship_table(Config(root=root))
    located = resolve_locations(findings, root)
    assert [(f.code, f.location.line) for f in located] == [("TI402", 2)] and "'indicatr'" in located[0].message


def test_the_relationships_command_shows_table_findings_at_their_line(make_repo) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from tiops.cli import main

    root = make_repo({"rules/relationships.yaml": "relationships:\n  - {source: indicatr, type: indicates, target: malware}\n"})
    result = CliRunner().invoke(main, ["-C", str(root), "relationships"])
    assert "rules/relationships.yaml:2:" in result.output and "TI402" in result.output, result.output
