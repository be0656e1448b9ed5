"""`tiops init`: a new repository that validates, compiles and tests at once, and never overwrites a file."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml
from click.testing import CliRunner
from test_ci_recipes import check_invocation, run_lines, tiops_invocations

from tiops import __version__
from tiops.cli import main


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_new_repository_validates_compiles_and_tests(tmp_path: Path) -> None:
    code, output = invoke("-C", str(tmp_path), "init", "team", "--team", "Acme CTI", "--tlp", "amber")
    assert code == 0, output
    root = tmp_path / "team"
    for name in ("tiops.yaml", "intel/_defaults.yaml", "intel/identities/acme-cti.yaml", "rules/relationships.yaml",
                 "rules/ingestion/review-low-confidence.yaml", ".gitignore", ".github/workflows/intel-pr.yml",
                 ".pre-commit-config.yaml"):
        assert (root / name).is_file(), name
    assert invoke("-C", str(root), "validate", "--strict")[0] == 0
    code, output = invoke("-C", str(root), "test")
    assert code == 0 and "2 passed, 0 failed" in output, output
    assert invoke("-C", str(root), "compile")[0] == 0
    bundle = json.loads((root / "dist" / "bundle.json").read_text())
    identity = next(o for o in bundle["objects"] if o["type"] == "identity" and o["name"] == "Acme CTI")
    # the folder defaults name the team's identity and the chosen TLP marking
    defaults = yaml.safe_load((root / "intel" / "_defaults.yaml").read_text())
    assert defaults["source"] == "Acme CTI"
    assert defaults["defaults"]["created_by_ref"] == identity["id"]
    assert defaults["defaults"]["object_marking_refs"] == ["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"]
    assert "#" in (root / "tiops.yaml").read_text()  # commented
    assert {".tiops/", "dist/"} <= set((root / ".gitignore").read_text().split())


def test_ci_recipes_are_pinned_to_the_running_version_and_call_real_commands(tmp_path: Path) -> None:
    assert invoke("-C", str(tmp_path), "init")[0] == 0
    workflow = (tmp_path / ".github" / "workflows" / "intel-pr.yml").read_text()
    assert f'pip install "tiops=={__version__}"' in workflow
    calls = [call for line in run_lines(yaml.safe_load(workflow)) for call in tiops_invocations(line)]
    assert {call[0] for call in calls} >= {"validate", "test", "diff"}
    for call in calls:
        check_invocation(call)
    hooks = yaml.safe_load((tmp_path / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    for hook in hooks:
        assert hook["additional_dependencies"] == [f"tiops=={__version__}"]
        check_invocation(shlex.split(hook["entry"])[1:])


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("node_modules/\n")
    code, output = invoke("-C", str(tmp_path), "init")
    assert code == 2
    assert ".gitignore" in output and "never overwrites" in output
    assert (tmp_path / ".gitignore").read_text() == "node_modules/\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore"]


def test_init_twice_is_refused(tmp_path: Path) -> None:
    assert invoke("-C", str(tmp_path), "init")[0] == 0
    before = (tmp_path / "intel" / "_defaults.yaml").read_text()
    code, output = invoke("-C", str(tmp_path), "init", "--tlp", "red")
    assert code == 2 and "tiops.yaml" in output
    assert (tmp_path / "intel" / "_defaults.yaml").read_text() == before


def test_init_refuses_a_folder_inside_another_repository(example_repo: Path) -> None:
    code, output = invoke("-C", str(example_repo / "intel"), "init", "team")
    assert code == 2 and "inside the tiops repository" in output
    assert not (example_repo / "intel" / "team").exists()


def test_init_writes_the_default_report_panels_for_the_team_to_edit(tmp_path: Path) -> None:
    from tiops.report.panels import DEFAULT_PANELS_YAML

    assert invoke("-C", str(tmp_path), "init", "team", "--team", "Acme CTI")[0] == 0
    root = tmp_path / "team"
    assert (root / "report.yaml").read_text() == DEFAULT_PANELS_YAML
    edited = (root / "report.yaml").read_text().replace("title: Objects by type", "title: What we hold, by type")
    (root / "report.yaml").write_text(edited)
    code, output = invoke("-C", str(root), "report", "--as-of", "2025-06-01")
    assert code == 0, output
    assert "What we hold, by type" in (root / "dist" / "report" / "index.html").read_text()


def test_init_in_a_place_that_cannot_hold_a_repository_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    for place, message in [(tmp_path / "a-file", "is a file"), (tmp_path / "a-file" / "repo", "cannot write"),
                           (Path("/proc/tiops-repo"), "cannot write")]:
        result = CliRunner().invoke(main, ["init", str(place)])
        assert result.exit_code == 2 and message in result.output, result.output
        assert "internal error" not in result.output
    assert (tmp_path / "a-file").read_text(encoding="utf-8") == "x"


def test_the_next_step_is_a_command_to_copy_as_it_is(tmp_path: Path) -> None:
    import shlex
    import subprocess

    from click.testing import CliRunner

    from tiops.cli import main

    result = CliRunner().invoke(main, ["-C", str(tmp_path), "init", "My Intel", "--team", "T"])
    assert result.exit_code == 0, result.output
    command = result.output.split("Next: ", 1)[1].split(" && tiops validate", 1)[0]
    assert command == "cd 'My Intel'"
    assert subprocess.run(["bash", "-c", f"{command} && pwd"], cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout.strip() == str(tmp_path / "My Intel")
    assert shlex.split(command) == ["cd", "My Intel"]


def test_init_dot_names_no_folder_to_change_to(tmp_path: Path) -> None:
    here = tmp_path / "here"
    here.mkdir()
    code, output = invoke("-C", str(here), "init", ".")
    assert code == 0, output
    # It said "Next: cd . && tiops validate ...".
    assert "Next: tiops validate && tiops compile" in output and "cd ." not in output
    named = tmp_path / "elsewhere"
    named.mkdir()
    code, output = invoke("-C", str(named), "init", "intel-repo")
    assert code == 0 and "Next: cd intel-repo && tiops validate" in output, output


def test_init_with_a_time_gives_the_same_files_every_time(tmp_path: Path) -> None:
    time = "2025-03-04T10:00:00.000Z"
    for name in ("one", "two"):
        code, output = invoke("-C", str(tmp_path), "init", name, "--team", "Acme CTI", "--time", time)
        assert code == 0, output
    files = {name: {p.relative_to(tmp_path / name).as_posix(): p.read_bytes()
                    for p in sorted((tmp_path / name).rglob("*")) if p.is_file()} for name in ("one", "two")}
    assert files["one"] == files["two"]
    identity = files["one"]["intel/identities/acme-cti.yaml"].decode()
    assert f"created: {time}" in identity and f"modified: {time}" in identity
    code, output = invoke("-C", str(tmp_path), "init", "three", "--time", "yesterday")
    assert code == 2 and "--time 'yesterday' is not a timestamp" in output
    assert not (tmp_path / "three").exists()
