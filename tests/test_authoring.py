from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops import load_repo, validate_repo
from tiops.authoring import default_folder_name
from tiops.cli import main
from tiops.findings import Severity
from tiops.yamlio import parse_yaml

TIME = "2025-03-04T10:00:00.000Z"


@pytest.mark.parametrize("stix_type", ["indicator", "malware", "threat-actor", "identity", "attack-pattern", "location"])
def test_new_file_validates_as_written(example_repo: Path, stix_type: str) -> None:
    result = CliRunner().invoke(main, ["-C", str(example_repo), "new", stix_type, "--time", TIME, "--set", "name=Brand new thing"])
    assert result.exit_code == 0, result.output
    written = result.stdout.split()[1]
    data = parse_yaml((example_repo / written).read_text())
    assert (data["type"], data["created"], data["modified"]) == (stix_type, TIME, TIME)
    errors = [f for f in validate_repo(load_repo(example_repo)) if f.severity is Severity.ERROR]
    assert errors == []


def test_new_uses_the_team_folder_set_like_and_relationships(example_repo: Path) -> None:
    runner = CliRunner()
    source = next(o for o in load_repo(example_repo).objects if o.type == "indicator" and "object_marking_refs" in o.data)
    result = runner.invoke(main, ["-C", str(example_repo), "new", "indicator", "--time", TIME, "--like", source.id,
                                  "--set", "name=Evil IP", "--set", "pattern=\"[ipv4-addr:value = '198.51.100.9']\"",
                                  "--set", "confidence=80", "--relationship", f"related-to:{source.id}"])
    assert result.exit_code == 0, result.output
    path = example_repo / "intel/indicators/evil-ip.yaml"
    data = parse_yaml(path.read_text())
    assert data["confidence"] == 80 and data["pattern"] == "[ipv4-addr:value = '198.51.100.9']"
    assert data["object_marking_refs"] == source.data["object_marking_refs"]
    assert data["relationships"] == [{"related-to": source.id}]
    assert "# valid_until:" in path.read_text()
    again = runner.invoke(main, ["-C", str(example_repo), "new", "indicator", "--time", TIME, "--stdout"])
    assert again.exit_code == 0 and again.stdout == runner.invoke(
        main, ["-C", str(example_repo), "new", "indicator", "--time", TIME, "--stdout"]).stdout


def test_new_refuses_unknown_types_and_bad_options(example_repo: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["-C", str(example_repo), "new", "widget"]).exit_code == 2
    assert runner.invoke(main, ["-C", str(example_repo), "new", "indicator", "--relationship", "nonsense"]).exit_code == 2
    assert runner.invoke(main, ["-C", str(example_repo), "new", "report"]).exit_code == 2  # object_refs must be given
    # An integer past the STIX range, even past the 4,300 digits Python writes: refused, not an internal error.
    for value in ("9" * 5000, "[1, 99999999999999999999]"):
        huge = runner.invoke(main, ["-C", str(example_repo), "new", "indicator", "--set", f"x_n={value}", "--stdout"])
        assert huge.exit_code == 2 and "outside the STIX 2.1 integer range" in huge.output, huge.output
    (example_repo / "a-file").write_text("x", encoding="utf-8")
    nowhere = runner.invoke(main, ["-C", str(example_repo), "new", "indicator", "-o", str(example_repo / "a-file" / "i.yaml")])
    assert nowhere.exit_code == 2 and "cannot write the new object" in nowhere.output, nowhere.output


@pytest.mark.parametrize(("stix_type", "folder"), [("malware", "intel/malware"), ("identity", "intel/identities"),
                                                   ("threat-actor", "intel/actors"), ("indicator", "intel/indicators")])
def test_new_writes_to_the_folder_holding_most_of_the_teams_objects(example_repo: Path, stix_type: str, folder: str) -> None:
    # intel/_defaults.yaml sets a source: that must not make every folder count as imported
    result = CliRunner().invoke(main, ["-C", str(example_repo), "new", stix_type, "--time", TIME, "--set", "name=Fresh"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split()[1] == f"{folder}/fresh.yaml"


def test_new_never_writes_into_an_imported_folder(make_repo) -> None:  # type: ignore[no-untyped-def]
    partner = "".join(
        f"- {{type: malware, spec_version: '2.1', id: malware--{i}1111111-1111-4111-8111-111111111111, created: '2024-01-01T00:00:00.000Z', modified: '2024-01-01T00:00:00.000Z', name: m{i}, is_family: true}}\n"
        for i in range(3))
    root = make_repo({"intel/partner/_defaults.yaml": "source: Partner\nimported: true\n", "intel/partner/malware.yaml": partner})
    result = CliRunner().invoke(main, ["-C", str(root), "new", "malware", "--time", TIME, "--set", "name=Ours"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split()[1] == "intel/malware/ours.yaml"
    # Named with -o, an imported folder is refused too: the file would fail as TI705 at once.
    into = CliRunner().invoke(main, ["-C", str(root), "new", "malware", "--time", TIME, "--set", "name=Ours",
                                     "-o", str(root / "intel" / "partner" / "ours.yaml")])
    assert into.exit_code == 2 and "partner intel is read-only" in into.output, into.output
    assert not (root / "intel" / "partner" / "ours.yaml").exists()


def test_new_refuses_a_type_other_than_its_argument(example_repo: Path) -> None:
    result = CliRunner().invoke(main, ["-C", str(example_repo), "new", "indicator", "--set", "type=malware", "--stdout"])
    assert result.exit_code == 2 and "the type is the command's argument" in result.output, result.output


@pytest.mark.parametrize(("stix_type", "folder"), [("identity", "identities"), ("threat-actor", "threat-actors"),
                                                   ("vulnerability", "vulnerabilities"), ("course-of-action", "courses-of-action"),
                                                   ("malware-analysis", "malware-analyses"), ("infrastructure", "infrastructure"),
                                                   ("process", "processes"), ("observed-data", "observed-data")])
def test_default_folder_is_the_spelled_plural(stix_type: str, folder: str) -> None:
    assert default_folder_name(stix_type) == folder


def test_set_values_follow_the_schema(example_repo: Path) -> None:
    pattern = "[ipv4-addr:value = '198.51.100.7']"
    result = CliRunner().invoke(main, ["-C", str(example_repo), "new", "indicator", "--time", TIME, "--stdout",
                                       "--set", f"pattern={pattern}", "--set", "name=80", "--set", "labels=phishing",
                                       "--set", "confidence=70"])
    assert result.exit_code == 0, result.output
    body = result.stdout.split("# Optional properties")[0]
    data = parse_yaml("\n".join(line for line in body.splitlines() if not line.startswith("#")))
    assert data["pattern"] == pattern  # a string, not a YAML list
    assert data["name"] == "80" and data["labels"] == ["phishing"] and data["confidence"] == 70


@pytest.mark.parametrize("setting", ["confidence=high", "confidence=120", "pattern=[ipv4-addr:value = ", "valid_from=yesterday"])
def test_bad_set_values_are_refused_before_writing(example_repo: Path, setting: str) -> None:
    before = sorted(p for p in (example_repo / "intel").rglob("*"))
    result = CliRunner().invoke(main, ["-C", str(example_repo), "new", "indicator", "--time", TIME,
                                       "--set", "name=Never written", "--set", setting])
    assert result.exit_code == 2, result.output
    assert setting.split("=")[0] in result.output and "Traceback" not in result.output
    assert sorted(p for p in (example_repo / "intel").rglob("*")) == before


@pytest.mark.parametrize("setting", ["labels=[_1]", "labels=[a, 1_0]", "x_flags={a: 0b1}"])
def test_a_list_holding_a_yaml_11_number_is_refused_not_kept_as_one_text(example_repo: Path, setting: str) -> None:
    result = CliRunner().invoke(main, ["-C", str(example_repo), "new", "indicator", "--time", TIME, "--stdout",
                                       "--set", "name=Never written", "--set", setting])
    assert result.exit_code == 2, result.output
    assert "YAML 1.2 reads it as the text" in result.output and "Traceback" not in result.output


def test_a_quoted_item_in_a_list_is_text(example_repo: Path) -> None:
    result = CliRunner().invoke(main, ["-C", str(example_repo), "new", "indicator", "--time", TIME, "--stdout",
                                       "--set", "name=Quoted", "--set", "labels=['_1', a_b]"])
    assert result.exit_code == 0, result.output
    body = result.stdout.split("# Optional properties")[0]
    data = parse_yaml("\n".join(line for line in body.splitlines() if not line.startswith("#")))
    assert data["labels"] == ["_1", "a_b"]


def test_relationship_targets_and_triples_are_checked_before_writing(example_repo: Path) -> None:
    runner = CliRunner()
    wickstealer = next(o.id for o in load_repo(example_repo).objects if o.data.get("name") == "WickStealer")
    base = ["-C", str(example_repo), "new", "indicator", "--time", TIME, "--set", "name=Checked"]
    missing = runner.invoke(main, [*base, "--relationship", "indicates:malware--11111111-1111-4111-8111-111111111111"])
    assert missing.exit_code == 2 and "no object with that id" in missing.output
    forbidden = runner.invoke(main, [*base, "--relationship", f"uses:{wickstealer}"])
    assert forbidden.exit_code == 2 and "indicator --uses--> malware" in forbidden.output
    assert not (example_repo / "intel/indicators/checked.yaml").exists()
    assert runner.invoke(main, [*base, "--relationship", f"indicates:{wickstealer}"]).exit_code == 0


def _every_type() -> list[str]:
    from tiops.jsonschemas import stix_validator
    from tiops.stix import ALL_TYPES

    return sorted(t for t in ALL_TYPES if stix_validator(t) is not None)


@pytest.mark.parametrize("stix_type", _every_type())
def test_new_of_any_type_validates_as_written_or_says_what_to_give(make_repo, stix_type: str) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({})
    result = CliRunner().invoke(main, ["-C", str(root), "new", stix_type, "--time", TIME])
    if result.exit_code == 2:  # nothing written, and the message names what the type needs
        assert "--set " in result.stderr or "need" in result.stderr, result.stderr
        assert not any(root.joinpath("intel").rglob("*.yaml"))
        return
    assert result.exit_code == 0, result.output
    errors = [f for f in validate_repo(load_repo(root)) if f.severity is Severity.ERROR]
    assert errors == [], errors


def test_a_new_observable_takes_the_id_every_stix_tool_gives_it(make_repo) -> None:  # type: ignore[no-untyped-def]
    import stix2

    root = make_repo({})
    runner = CliRunner()
    refused = runner.invoke(main, ["-C", str(root), "new", "ipv4-addr", "--time", TIME])
    assert refused.exit_code == 2 and "--set value=..." in refused.stderr
    made = runner.invoke(main, ["-C", str(root), "new", "ipv4-addr", "--time", TIME, "--set", "value=198.51.100.1"])
    assert made.exit_code == 0, made.output
    expected = stix2.IPv4Address(value="198.51.100.1").id  # STIX 2.1 section 2.9, whatever the time
    assert expected in made.stdout
    files = list((root / "intel").rglob("*.yaml"))
    assert [parse_yaml(path.read_text())["id"] for path in files] == [expected]
    assert validate_repo(load_repo(root)) == []


def test_an_object_level_choice_of_properties_is_said_plainly(make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/a.yaml": "type: artifact\nspec_version: '2.1'\nid: artifact--6f437177-6e48-5cf8-9d9e-872a2bddd641\n"
                                      "payload_bin: aGVsbG8=\nurl: https://example.com/a\n"})
    messages = [f.message for f in validate_repo(load_repo(root)) if f.code == "TI200"]
    assert "has payload_bin and url: artifact objects take exactly one of payload_bin or url (STIX 2.1)" in messages
    assert not [m for m in messages if "is valid under" in m or "is not valid under" in m]  # no object dumped whole


def test_set_references_and_relationship_ends_are_checked_before_writing(example_repo: Path) -> None:
    objects = {o.data.get("name"): o for o in load_repo(example_repo).objects}
    malware, technique = objects["WickStealer"].id, objects["Spearphishing Link"].id
    runner = CliRunner()
    refused = runner.invoke(main, ["-C", str(example_repo), "new", "relationship", "--set", f"source_ref={malware}",
                                   "--set", f"target_ref={technique}", "--set", "relationship_type=indicates"])
    assert refused.exit_code == 2 and "malware --indicates--> attack-pattern is not in the relationship table" in refused.stderr
    missing = runner.invoke(main, ["-C", str(example_repo), "new", "sighting", "--set",
                                   "sighting_of_ref=malware--00000000-0000-4000-8000-000000000000"])
    assert missing.exit_code == 2 and "no object with that id in the repository" in missing.stderr
    made = runner.invoke(main, ["-C", str(example_repo), "new", "relationship", "--set", f"source_ref={malware}",
                                "--set", f"target_ref={technique}", "--set", "relationship_type=uses", "--time", TIME])
    assert made.exit_code == 0, made.output
    assert [f for f in validate_repo(load_repo(example_repo)) if f.severity is Severity.ERROR] == []


def test_like_and_relationship_take_names_as_relate_does(example_repo: Path) -> None:
    objects = {o.data.get("name"): o for o in load_repo(example_repo).objects}
    result = CliRunner().invoke(main, ["-C", str(example_repo), "new", "indicator", "--time", TIME, "--stdout",
                                       "--like", "WickStealer C2 203.0.113.47", "--relationship", "indicates:WickStealer"])
    assert result.exit_code == 0, result.output
    data = parse_yaml(result.stdout)
    assert data["relationships"] == [{"indicates": objects["WickStealer"].id}]
    assert data["object_marking_refs"] == objects["WickStealer C2 203.0.113.47"].data["object_marking_refs"]
    unknown = CliRunner().invoke(main, ["-C", str(example_repo), "new", "indicator", "--like", "No Such Thing"])
    assert unknown.exit_code == 2 and "No Such Thing" in unknown.output


def test_file_names_keep_the_letters_of_accented_names() -> None:
    from tiops.authoring import file_stem

    assert file_stem("Schädling Ω") == "schadling"
    assert file_stem("Équipe CTI Ünïcode") == "equipe-cti-unicode"
    assert file_stem("Copper Lantern") == "copper-lantern"


def test_new_refuses_an_id_another_file_already_defines(example_repo: Path) -> None:
    runner = CliRunner()
    options = ["new", "indicator", "--time", TIME, "--set", "name=Twice", "--set",
               "pattern=\"[ipv4-addr:value = '198.51.100.77']\""]
    assert runner.invoke(main, ["-C", str(example_repo), *options]).exit_code == 0
    # The id follows the type, the time and the --set values: following the "already exists" hint
    # (-o) wrote a second file with the same id, and the next validate failed with TI302.
    again = runner.invoke(main, ["-C", str(example_repo), *options, "-o", str(example_repo / "intel" / "other.yaml")])
    assert again.exit_code == 2 and "is already defined in intel/indicators/twice.yaml" in again.output, again.output
    assert not (example_repo / "intel" / "other.yaml").exists()


def test_new_to_standard_output_shows_an_id_another_file_holds(example_repo: Path) -> None:
    runner = CliRunner()
    options = ["new", "indicator", "--time", TIME, "--set", "name=Shown", "--set",
               "pattern=\"[ipv4-addr:value = '198.51.100.78']\""]
    assert runner.invoke(main, ["-C", str(example_repo), *options]).exit_code == 0
    shown = runner.invoke(main, ["-C", str(example_repo), *options, "--stdout"])  # writes no file: no duplicate
    assert shown.exit_code == 0 and "name: Shown" in shown.output, shown.output


@pytest.mark.parametrize("name", ["", "   ", "\t", "'  '", '" "'])
def test_new_refuses_a_blank_name_and_writes_nothing(example_repo: Path, name: str) -> None:
    before = sorted(p for p in (example_repo / "intel").rglob("*"))
    result = CliRunner().invoke(main, ["-C", str(example_repo), "new", "threat-actor", "--time", TIME, "--set", f"name={name}"])
    assert result.exit_code == 2, result.output
    assert "--set name: the name is empty or only blanks" in result.output, result.output
    assert sorted(p for p in (example_repo / "intel").rglob("*")) == before
