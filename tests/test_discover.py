"""Repository discovery: commands find tiops.yaml or intel/ in the folder they start in or above it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tiops.discover import CEILING_VARIABLE, find_repo_root

DATA = Path(__file__).resolve().parent / "data"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tiops", *args], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def test_root_is_found_from_a_subfolder_and_a_file(example_repo: Path) -> None:
    assert find_repo_root(example_repo / "intel" / "indicators") == example_repo
    assert find_repo_root(example_repo / "intel" / "malware" / "mimikatz.yaml") == example_repo
    assert find_repo_root(example_repo) == example_repo


def test_tiops_yaml_alone_marks_a_root(tmp_path: Path) -> None:
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "tiops.yaml").write_text("intel: stix\n")
    (tmp_path / "team" / "stix" / "deep").mkdir(parents=True)
    assert find_repo_root(tmp_path / "team" / "stix" / "deep") == tmp_path / "team"


def test_outside_a_repository_commands_exit_2_and_write_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for command in (["validate"], ["compile"], ["plan"], ["report"], ["test"], ["new", "indicator"]):
        result = run(*command, cwd=empty)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "not inside a tiops repository" in result.stderr
        assert "tiops init" in result.stderr and "-C DIR" in result.stderr
        assert "Traceback" not in result.stderr
    assert list(empty.iterdir()) == []  # no .tiops/, no dist/


def test_commands_in_a_subfolder_work_on_the_whole_repository(example_repo: Path) -> None:
    inside = example_repo / "intel" / "indicators"
    result = run("compile", cwd=inside)
    assert result.returncode == 0, result.stderr
    bundle = json.loads((example_repo / "dist" / "bundle.json").read_text())
    assert len(bundle["objects"]) > 50
    assert not (inside / "dist").exists() and not (inside / ".tiops").exists()
    # validate from a subfolder still sees errors elsewhere in the repository
    (example_repo / "intel" / "malware" / "broken.yaml").write_text("type: malware\nspec_version: '2.1'\nname: x\nis_family: maybe\n")
    assert run("validate", cwd=inside).returncode == 1


def test_a_bundle_given_by_name_is_validated_anywhere(tmp_path: Path) -> None:
    shutil.copy(DATA / "importers" / "partner_v1.json", tmp_path / "their-bundle.json")
    result = run("validate", "their-bundle.json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "bundle", "id": "bundle--1", "objects": [{"type": "indicator", "spec_version": "2.1"}]}')
    result = run("validate", "broken.json", cwd=tmp_path)
    assert result.returncode == 1 and "broken.json" in result.stdout


def test_a_yaml_file_given_by_name_finds_its_repository(example_repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = example_repo / "intel" / "malware" / "mimikatz.yaml"
    result = run("validate", str(target), cwd=elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dash_c_starts_the_search_in_dir(example_repo: Path, tmp_path: Path) -> None:
    result = run("-C", str(example_repo / "intel" / "actors"), "test", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "passed" in result.stdout


def test_the_search_stops_at_the_git_work_tree_and_at_ceilings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "intel").mkdir()  # a stray intel/ above a project
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    monkeypatch.setenv(CEILING_VARIABLE, "")
    assert find_repo_root(project / "sub") == tmp_path
    (project / ".git").mkdir()
    assert find_repo_root(project / "sub") is None
    (project / ".git").rmdir()
    monkeypatch.setenv(CEILING_VARIABLE, str(project))
    assert find_repo_root(project / "sub") is None
