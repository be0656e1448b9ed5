from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", readme)


def test_readme_opens_with_main_job_and_test_command() -> None:
    main_job, test_command = _commands()[:2]
    assert "pip install" in main_job and "tiops compile" in main_job
    assert "pip install" in test_command and "pytest" in test_command


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert _commands()[1] in ci
