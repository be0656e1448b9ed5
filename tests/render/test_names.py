"""Names shown to people: partner text cannot drive the terminal that shows it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops.cli import main
from tiops.render.names import FirstNames, NamesOf, names_of, printable

HOSTILE = "Evil \x1b]8;;http://evil.example\x07link\x1b]8;;\x07 \x1b[2J\r over \u202edesrever café"


@pytest.mark.parametrize(("text", "shown"), [
    ("\x1b[31mred", "\\x1b[31mred"), ("a\rb", "a\\x0db"), ("bell\x07", "bell\\x07"), ("\x9b", "\\x9b"),
    ("\u202eabc", "\\u202eabc"), ("\u2066x\u2069", "\\u2066x\\u2069"), ("tab\there", "tab\\x09here"),
    ("café \u2014 \U0001f98a", "café \u2014 \U0001f98a"), ("plain", "plain"),
])
def test_control_characters_are_written_out_not_sent(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_names_for_people_carry_no_terminal_sequence(example_repo: Path) -> None:
    assert names_of([{"id": "malware--1", "name": HOSTILE}])["malware--1"].startswith("Evil \\x1b]8;;")
    (example_repo / "intel" / "malware" / "hostile.yaml").write_text(
        'type: malware\nspec_version: "2.1"\ncreated: 2025-01-01T00:00:00.000Z\nmodified: 2025-01-01T00:00:00.000Z\n'
        f'name: "{HOSTILE.encode("unicode_escape").decode()}"\nis_family: false\n', encoding="utf-8")
    runner = CliRunner()
    for command in (["query", "type = malware"], ["query", "type = malware", "--format", "csv"], ["plan"]):
        result = runner.invoke(main, ["-C", str(example_repo), *command])
        assert result.exit_code == 0, result.output
        assert "Evil \\x1b]8;;http://evil.example" in result.output, command
        assert "\x1b" not in result.output and "\r" not in result.output and "\u202e" not in result.output, command


def test_names_asked_per_id_are_those_of_naming_every_object() -> None:
    # Versions of one id (the last named one counts), a nameless last version, no name at all,
    # a relationship (named by neither), a non-string id and a hostile name.
    objects = [
        {"id": "malware--1", "name": "First"}, {"id": "malware--1", "name": "Second"},
        {"id": "tool--2", "name": "Kept"}, {"id": "tool--2"},
        {"id": "identity--3"},
        {"id": "relationship--4", "relationship_type": "uses"},
        {"id": 5, "name": "not an id"},
        {"id": "malware--6", "name": HOSTILE},
        {"id": "indicator--7", "name": "", "pattern": "[ipv4-addr:value = '203.0.113.7']"},
    ]
    eager = names_of(objects)
    lazy = NamesOf(objects)
    for stix_id in ["malware--1", "tool--2", "identity--3", "relationship--4", "malware--6", "indicator--7",
                    "absent--8"]:
        assert lazy.get(stix_id) == eager.get(stix_id), stix_id
    assert dict(NamesOf(objects)) == eager and len(NamesOf(objects)) == len(eager)
    first = FirstNames({"malware--1": "From the plan"}, lazy)
    assert first["malware--1"] == "From the plan" and first.get("tool--2") == "Kept" and first.get("absent--8") is None
    assert set(first) == set(eager)


def test_a_plan_names_the_objects_its_lines_show_not_every_object(monkeypatch: pytest.MonkeyPatch) -> None:
    from tiops import render
    from tiops.commands.plan_cmd import render_plan
    from tiops.plan import make_plan
    from tiops.stores import StoredVersion, TargetSettings, content_digest

    def malware(number: int) -> dict[str, object]:
        return {"type": "malware", "spec_version": "2.1", "id": f"malware--00000000-0000-4000-8000-{number:012d}",
                "created": "2025-01-01T00:00:00Z", "modified": "2025-01-01T00:00:00Z", "name": f"m{number}",
                "is_family": True}

    others = [malware(number) for number in range(1, 501)]
    uses = {"type": "relationship", "spec_version": "2.1", "id": "relationship--00000000-0000-4000-8000-000000000999",
            "created": "2025-01-01T00:00:00Z", "modified": "2025-01-01T00:00:00Z", "relationship_type": "uses",
            "source_ref": others[0]["id"], "target_ref": others[1]["id"]}
    compiled = [*others, uses]
    manifest = {o["id"]: StoredVersion(modified=o["modified"], digest=content_digest(o)) for o in others}
    plan = make_plan(compiled, manifest, {}, TargetSettings("t", "sqlite"), supports_delete=True, source_commit="abc")
    named: list[object] = []
    real = render.names.object_name
    monkeypatch.setattr(render.names, "object_name", lambda obj: named.append(obj) or real(obj))

    text = render_plan(plan, names=NamesOf(compiled))
    assert f'"m1" uses "m2" {uses["id"]} (create' in text
    assert len(named) <= 3, f"{len(named)} objects named for one plan line"


def test_a_plan_shows_field_values_with_bidirectional_overrides_escaped() -> None:
    from tiops.commands.plan_cmd import render_plan
    from tiops.plan import make_plan
    from tiops.stores import StoredVersion, TargetSettings, content_digest

    stored = {"type": "malware", "spec_version": "2.1", "id": "malware--00000000-0000-4000-8000-000000000001",
              "created": "2025-01-01T00:00:00Z", "modified": "2025-01-01T00:00:00Z", "name": "\u202eRLO name",
              "is_family": True, "description": "\x9b31m C1 escape"}
    compiled = {**stored, "modified": "2025-02-01T00:00:00Z", "name": "\u202eRLO name v2\u2066",
                "description": "\x9b32m C1 escape"}
    manifest = {stored["id"]: StoredVersion(modified=stored["modified"], digest=content_digest(stored))}
    plan = make_plan([compiled], manifest, {stored["id"]: stored}, TargetSettings("t", "sqlite"),
                     supports_delete=True, source_commit="abc")
    text = render_plan(plan)
    assert '~ name: "\\u202eRLO name" -> "\\u202eRLO name v2\\u2066"' in text
    assert '~ description: "\\x9b31m C1 escape" -> "\\x9b32m C1 escape"' in text
    assert not any(character in text for character in "\u202e\u2066\x9b")


def test_a_changed_sco_is_shown_as_unversioned_not_as_a_blank_version_move() -> None:
    from tiops.commands.plan_cmd import render_plan
    from tiops.plan import make_plan
    from tiops.stores import StoredVersion, TargetSettings, content_digest

    # An SCO has no modified or created (STIX 2.1 section 6): its refreshed enrichment is an
    # update whose version cannot move, and the line said "modified  -> " with nothing around it.
    stored = {"type": "ipv4-addr", "spec_version": "2.1", "id": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd",
              "value": "198.51.100.7"}
    compiled = {**stored, "x_note": "refreshed"}
    manifest = {stored["id"]: StoredVersion(modified="", digest=content_digest(stored))}
    plan = make_plan([compiled], manifest, {stored["id"]: stored}, TargetSettings("t", "sqlite"),
                     supports_delete=True, source_commit="abc")
    text = render_plan(plan)
    assert f"{stored['id']} (update, unversioned: replaced in place)" in text
    assert "modified  ->" not in text and "-> )" not in text
    assert '+ x_note: "refreshed"' in text
