"""The CI recipes in .github/, action.yml and .pre-commit-hooks.yaml are valid YAML and call only real commands and flags."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from tiops.cli import main

ROOT = Path(__file__).resolve().parent.parent
RECIPES = [
    ROOT / ".github" / "workflows" / "intel-pr.yml",
    ROOT / ".github" / "workflows" / "intel-release.yml",
    ROOT / "action.yml",
]


def run_lines(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("run", "entry") and isinstance(value, str):
                found.extend(value.splitlines())
            else:
                found.extend(run_lines(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(run_lines(item))
    return found


def tiops_invocations(line: str) -> list[list[str]]:
    line = re.sub(r"\$\{\{[^}]*\}\}", "X", line)
    calls = []
    for part in re.split(r"\|\||&&|;|\|", line):
        if "tiops" not in part:
            continue  # not a call (the split may cut through another program's quoted code)
        words = shlex.split(part)
        if words[:1] == ["exec"]:
            words = words[1:]
        if words and words[0] == "tiops":
            calls.append(words[1:])
    return calls


def check_invocation(words: list[str]) -> None:
    context = click.Context(main)
    command = main.get_command(context, words[0]) if words and not words[0].startswith("$") else None
    if words and words[0].startswith("$"):
        return  # the composite action passes its arguments through
    assert command is not None, f"no command tiops {words[0] if words else ''}"
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word in words[1:]:
        if word.startswith("-"):
            assert word.split("=")[0] in known, f"tiops {words[0]} has no option {word}"


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_is_yaml_calling_real_commands(recipe: Path) -> None:
    data = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    calls = [call for line in run_lines(data) for call in tiops_invocations(line)]
    assert calls, f"{recipe.name} runs no tiops command"
    for call in calls:
        check_invocation(call)


def test_workflows_cover_the_pull_request_and_release_steps() -> None:
    pr = (ROOT / ".github" / "workflows" / "intel-pr.yml").read_text()
    for needed in ("tiops validate --format github", "upload-sarif", "tiops test", "tiops enrich --check", "tiops diff",
                   "--format markdown", "gh pr comment"):
        assert needed in pr
    release = yaml.safe_load((ROOT / ".github" / "workflows" / "intel-release.yml").read_text())
    assert "release" in release[True]  # PyYAML reads the key 'on' as True
    text = (ROOT / ".github" / "workflows" / "intel-release.yml").read_text()
    assert text.index("tiops plan -o plan.json") < text.index("tiops apply plan.json") < text.index("upload-artifact")


def test_pre_commit_hooks_run_real_commands() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert {hook["id"] for hook in hooks} == {"tiops-validate", "tiops-test"}
    for hook in hooks:
        assert {"id", "name", "entry", "language"} <= set(hook)
        re.compile(hook["files"])
        check_invocation(shlex.split(hook["entry"])[1:])


def test_the_action_passes_its_arguments_split_as_written_never_expanded(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (step,) = [s for s in yaml.safe_load((ROOT / "action.yml").read_text())["runs"]["steps"] if s.get("name") == "Run tiops"]
    # A stand-in that prints the arguments it gets: what is under test is the step's shell, not tiops.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tiops").write_text(f"#!{sys.executable}\nimport sys\nprint(repr(sys.argv[1:]))\n")
    (bin_dir / "tiops").chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    (tmp_path / "intel.yaml").write_text("")  # a glob in the arguments must not name it
    def run_step(args: str) -> subprocess.CompletedProcess[str]:
        # As GitHub runs a bash step: bash --noprofile --norc -eo pipefail {0}
        return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=tmp_path,
                              capture_output=True, text=True,
                              env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "TIOPS_ARGS": args})

    result = run_step("""query "name = 'a b'" --format csv * $(touch pwned) 'it''s'""")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(["query", "name = 'a b'", "--format", "csv", "*", "$(touch", "pwned)", "its"])
    assert not (tmp_path / "pwned").exists()
    unclosed = run_step("""query "name = 'a b'""")  # never run with the arguments it could not split
    assert unclosed.returncode == 2 and unclosed.stdout == ""
    assert "a quote is not closed" in unclosed.stderr


@pytest.mark.parametrize("path", ["intel/capec/_imported.json", "intel/.enrichment/geo/lock.json", "intel/a.YAML",
                                  "intel/malware/x.yml", "rules/ingestion/tags.yaml", "tiops.yaml"])
def test_the_validate_hook_runs_for_every_file_tiops_checks(tmp_path: Path, path: str) -> None:
    """An import record, an enrichment lock file or a .YAML name (TI115) changed alone did not run the hook."""
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert CliRunner().invoke(main, ["init", str(tmp_path / "repo")]).exit_code == 0
    written = yaml.safe_load((tmp_path / "repo" / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    patterns = [hook["files"] for hook in hooks if hook["id"] == "tiops-validate"]
    patterns += [hook["files"] for repo in written["repos"] for hook in repo["hooks"] if hook["id"] == "tiops-validate"]
    assert len(patterns) == 2
    for pattern in patterns:
        assert re.search(pattern, path), (pattern, path)
        assert not re.search(pattern, "README.md") and not re.search(pattern, "docs/format.yaml")
