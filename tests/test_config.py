"""tiops.yaml: commands that act on its settings refuse it while it has an error."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops.cli import main

INDICATOR = """type: indicator
spec_version: "2.1"
id: indicator--00000000-0000-4000-8000-000000000001
created: 2025-03-01T00:00:00.000Z
modified: 2025-03-01T00:00:00.000Z
pattern: "[ipv4-addr:value = '8.8.8.8']"
pattern_type: stix
valid_from: 2025-03-04T00:00:00Z
"""
BUNDLE = ('{"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", "objects": [{"type": "indicator",'
          ' "spec_version": "2.1", "id": "indicator--00000000-0000-4000-8000-000000000002", "created":'
          ' "2025-03-01T00:00:00.000Z", "modified": "2025-03-01T00:00:00.000Z", "pattern":'
          ' "[ipv4-addr:value = \'1.1.1.1\']", "pattern_type": "stix", "valid_from": "2025-03-04T00:00:00Z"}]}')


def _repo_with_a_config_error(tmp_path: Path) -> Path:
    """A repository whose intel lives in threat-intel/, with a key tiops.yaml does not accept."""
    root = tmp_path / "repo"
    (root / "threat-intel").mkdir(parents=True)
    (root / "threat-intel" / "a.yaml").write_text(INDICATOR, encoding="utf-8")
    (root / "tiops.yaml").write_text("intel: threat-intel\ncolour: blue\n", encoding="utf-8")
    return root


@pytest.mark.parametrize(("command", "doing"), [
    (["import", "{bundle}", "--source", "Partner"], "imported"),
    (["tag", "add", "--where", "type = indicator", "reviewed"], "tagged"),
    (["enrich", "--offline"], "looked up"),
    (["test"], "tested"),
])
def test_a_command_acting_on_the_settings_refuses_a_tiops_yaml_with_errors(tmp_path: Path, command: list[str],
                                                                             doing: str) -> None:
    # With an error tiops.yaml loads as every default: these wrote into intel/ instead of the
    # folder named, or asked the public RDAP servers instead of the one named.
    root = _repo_with_a_config_error(tmp_path)
    (tmp_path / "bundle.json").write_text(BUNDLE, encoding="utf-8")
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    args = [arg.replace("{bundle}", str(tmp_path / "bundle.json")) for arg in command]
    result = CliRunner().invoke(main, ["-C", str(root), *args])
    assert result.exit_code == 1, result.output
    assert "tiops.yaml: colour: unknown key 'colour' (known: default_target" in result.output
    assert f"nothing was {doing}" in result.output
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before  # nothing written anywhere

    (root / "tiops.yaml").write_text("intel: threat-intel\n", encoding="utf-8")  # fixed: it runs, in its folder
    assert CliRunner().invoke(main, ["-C", str(root), *args]).exit_code == 0
    assert not (root / "intel").exists()


@pytest.mark.parametrize(("command", "doing"), [
    (["new", "indicator"], "written"),
    (["relate", "indicator--00000000-0000-4000-8000-000000000001", "indicates",
      "indicator--00000000-0000-4000-8000-000000000001"], "related"),
    (["bump", "--base", "HEAD"], "bumped"),
])
def test_commands_that_edit_intel_files_refuse_a_tiops_yaml_with_errors(tmp_path: Path, command: list[str],
                                                                        doing: str) -> None:
    root = _repo_with_a_config_error(tmp_path)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    result = CliRunner().invoke(main, ["-C", str(root), *command])
    assert result.exit_code == 1, result.output
    assert "colour: unknown key 'colour'" in result.output and f"nothing was {doing}" in result.output
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(("key", "value"), [("intel", "/etc"), ("intel", "../elsewhere"), ("rules", "/etc"),
                                            ("intel", "intel/../../elsewhere")])
def test_intel_and_rules_folders_outside_the_repository_are_refused(tmp_path: Path, key: str, value: str) -> None:
    # A pull request editing tiops.yaml could otherwise make the checking machine read its
    # files (their findings quoting them into a public log).
    from tiops.config import load_config

    root = tmp_path / "repo"
    (root / "intel").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.yaml").write_text("token: s3cr3t-value\n", encoding="utf-8")
    (root / "tiops.yaml").write_text(f"{key}: '{value}'\n", encoding="utf-8")
    findings = load_config(root)[1]
    assert [(f.code, f.location.path) for f in findings] == [("TI110", (key,))]
    assert "outside the repository" in findings[0].message
    result = CliRunner().invoke(main, ["-C", str(root), "validate"])
    assert result.exit_code == 1 and "s3cr3t" not in result.output and "secret.yaml" not in result.output
    (root / "tiops.yaml").write_text(f"{key}: 'sub/../{key}'\n", encoding="utf-8")  # inside, however written
    assert load_config(root)[1] == []


@pytest.mark.parametrize("key", ["intel", "rules"])
@pytest.mark.parametrize("link", ["folder", "parent"])
def test_a_folder_leading_out_of_the_repository_through_a_symbolic_link_is_refused_and_not_read(
        tmp_path: Path, key: str, link: str) -> None:
    # git keeps symbolic links: a pull request can commit intel (or a folder on its path) as one.
    from tiops.config import load_config

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / key).mkdir(parents=True)
    (elsewhere / key / "secret.yaml").write_text("type: malware\nid: bad\nname: s3cr3t-value\n", encoding="utf-8")
    root = tmp_path / "repo"
    root.mkdir()
    if link == "folder":
        (root / key).symlink_to(elsewhere / key, target_is_directory=True)
        (root / "tiops.yaml").write_text(f"{key}: {key}\n", encoding="utf-8")
    else:
        (root / "sub").symlink_to(elsewhere, target_is_directory=True)
        (root / "tiops.yaml").write_text(f"{key}: sub/{key}\n", encoding="utf-8")
    (root / "intel").mkdir(exist_ok=True)
    findings = load_config(root)[1]
    assert [(f.code, f.location.path) for f in findings] == [("TI110", (key,))]
    assert "symbolic link" in findings[0].message and str(elsewhere) not in findings[0].message
    for arguments in (["validate"], ["validate", f"{key}/secret.yaml" if link == "folder" else f"sub/{key}/secret.yaml"],
                      ["compile", "-o", str(tmp_path / "out.json")]):
        result = CliRunner().invoke(main, ["-C", str(root), *arguments])
        assert result.exit_code == 1, (arguments, result.output)
        assert "TI110" in result.output and "s3cr3t" not in result.output and "TI201" not in result.output
    assert not (tmp_path / "out.json").exists()


def test_a_folder_linked_inside_the_repository_is_read(tmp_path: Path) -> None:
    from tiops.config import load_config

    root = tmp_path / "repo"
    (root / "data" / "intel").mkdir(parents=True)
    (root / "intel").symlink_to(root / "data" / "intel", target_is_directory=True)
    (root / "tiops.yaml").write_text("intel: intel\n", encoding="utf-8")
    assert load_config(root)[1] == []


def test_an_unknown_key_is_placed_at_itself_with_a_did_you_mean(make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"tiops.yaml": "intel: intel\noutput: dist\nvalidaton: {strict: true}\nvalidation:\n  stirct: true\n",
                      "intel/_defaults.yaml": "source: Team\ndefautls:\n  confidence: 50\n"})
    result = CliRunner().invoke(main, ["-C", str(root), "validate"])
    assert "tiops.yaml:3:1: error TI110 config-invalid: validaton: unknown key 'validaton'; did you mean 'validation'?" \
        in result.output
    assert "tiops.yaml:5:3: error TI110 config-invalid: validation.stirct: unknown key 'stirct'; did you mean 'strict'?" \
        in result.output
    assert "intel/_defaults.yaml:2:1: error TI111 defaults-invalid: defautls: unknown key 'defautls'; did you mean " \
           "'defaults'?" in result.output


def test_a_repository_named_by_a_relative_path_keeps_its_folders_inside(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tiops.config import load_config

    root = tmp_path / "repo"
    (root / "intel").mkdir(parents=True)
    (root / "tiops.yaml").write_text("intel: intel\nrules: rules\n", encoding="utf-8")
    monkeypatch.chdir(root)
    assert load_config(Path("."))[1] == []  # library callers pass the folder as they have it
    (root / "tiops.yaml").write_text("intel: ../elsewhere\n", encoding="utf-8")
    assert [f.code for f in load_config(Path("."))[1]] == ["TI110"]


@pytest.mark.parametrize(("written", "shown"), [(".nan", ".nan"), (".inf", ".inf"), ("-.inf", "-.inf")])
def test_a_nan_or_infinite_number_is_named_as_written_not_as_null(make_repo, written: str,  # type: ignore[no-untyped-def]
                                                                    shown: str) -> None:
    # The schema validator reads NaN and infinity as null and said "null is not of type number".
    root = make_repo({"tiops.yaml": f"enrichment:\n  rdap:\n    requests_per_minute: {written}\n"})
    result = CliRunner().invoke(main, ["-C", str(root), "validate"])
    assert result.exit_code == 1
    assert (f"tiops.yaml:3:5: error TI110 config-invalid: enrichment.rdap.requests_per_minute: {shown} is not a "
            "number tiops can use (NaN and infinity are not JSON numbers)") in result.output
    assert "null" not in result.output


@pytest.mark.parametrize(("command", "doing"), [
    (["explain", "indicator--00000000-0000-4000-8000-000000000001"], "explained"),
    (["diff", "HEAD"], "compared"),
])
def test_commands_that_read_the_working_tree_refuse_a_tiops_yaml_with_errors(tmp_path: Path, command: list[str],
                                                                            doing: str) -> None:
    # explain read the repository as if tiops.yaml held all defaults (another intel folder) and exited 0.
    root = _repo_with_a_config_error(tmp_path)
    result = CliRunner().invoke(main, ["-C", str(root), *command])
    assert result.exit_code == 1, result.output
    assert "colour: unknown key 'colour'" in result.output and f"nothing was {doing}" in result.output


@pytest.mark.parametrize(("config", "shown"), [
    ("intel: .tiops/intel\n", "intel: '.tiops/intel' is inside .tiops/, which holds tiops' own state"),
    ("rules: .git/rules\n", "rules: '.git/rules' is inside .git/, which holds git's own data"),
    ("intel: ./.tiops\n", "intel: './.tiops' is inside .tiops/"),
    ("intel: .TIOPS/intel\n", "intel: '.TIOPS/intel' is inside .tiops/"),  # one folder where case is ignored
])
def test_intel_or_rules_kept_in_a_state_folder_is_refused(make_repo, config: str,  # type: ignore[no-untyped-def]
                                                          shown: str) -> None:
    """A plan's check for change leaves .git/ and .tiops/ out (tiops.lastbuild): intel there never reached a store."""
    root = make_repo({"tiops.yaml": config})
    result = CliRunner().invoke(main, ["-C", str(root), "validate"])
    assert result.exit_code == 1
    assert "error TI110 config-invalid: " + shown in result.output


@pytest.mark.parametrize(("path", "refused"), [
    ("intel", True),  # the intel folder itself: a plan's check for change left the whole folder out
    (".", True),
    ("rules", True),
    ("intel/store.sqlite", False),  # a file among the intel that is not YAML: never read as intel
    (".tiops/archive.sqlite", False),
])
def test_a_sqlite_target_naming_a_folder_the_build_reads_is_refused(make_repo, path: str,  # type: ignore[no-untyped-def]
                                                                    refused: bool) -> None:
    root = make_repo({"tiops.yaml": f"targets:\n  archive:\n    type: sqlite\n    path: {path}\n"})
    result = CliRunner().invoke(main, ["-C", str(root), "validate"])
    message = f"error TI110 config-invalid: targets.archive.path: '{path}' names a folder a build reads"
    assert (message in result.output) is refused
    assert (result.exit_code == 1) is refused
