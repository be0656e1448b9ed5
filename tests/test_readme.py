from __future__ import annotations

import re
import shlex
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


# --- The tour shows only what really exists --------------------------------------------

_BLOCK = re.compile(r"```(\w*)\n(.*?)\n```", re.S)
_PATH = re.compile(r"(?<![\w/.<-])((?:intel|rules|docs|schemas|benchmarks)/[\w./*-]*[\w*])")
_FULL_ID = re.compile(r"\b([a-z][a-z0-9-]*--[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b")
_SHORT_ID = re.compile(r"\b([a-z][a-z0-9-]*--[0-9a-f-]{4,35})…")


def _readme() -> str:
    return (REPO_ROOT / "README.md").read_text()


def _blocks(kind: str | None = None) -> list[str]:
    return [body for lang, body in _BLOCK.findall(_readme()) if kind is None or lang == kind]


def _init_block() -> str:
    return next(body for body in _blocks("console") if "$ tiops init" in body)


def _tour_text() -> str:
    """The README without the `tiops init` block, whose files are a new repository's, not the example's."""
    return _readme().replace(_init_block(), "")


def _example_ids(example_repo: Path) -> set[str]:
    from tiops import load_repo
    from tiops.stix import BUILTIN_OBJECTS

    return {o.id for o in load_repo(example_repo).objects} | set(BUILTIN_OBJECTS)


def test_every_path_the_readme_shows_exists() -> None:
    paths = set(_PATH.findall(_tour_text()))
    assert "intel/indicators/phishing-domain-woodgrove-securelogin-net.yaml" in paths
    for path in sorted(paths):
        if "*" in path:
            assert list(REPO_ROOT.glob(path)), f"README shows {path}, which matches nothing"
        else:
            assert (REPO_ROOT / path).exists(), f"README shows {path}, which does not exist"


def test_every_id_the_readme_shows_exists(example_repo: Path) -> None:
    ids = _example_ids(example_repo)
    text = _tour_text()
    shown = set(_FULL_ID.findall(text))
    assert shown, "the tour shows no id"
    assert shown <= ids, f"README shows ids the example repository lacks: {sorted(shown - ids)}"
    for prefix in _SHORT_ID.findall(text):
        assert any(i.startswith(prefix) for i in ids), f"README shows {prefix}…, which starts no id"


def test_yaml_shown_with_its_path_is_in_that_file() -> None:
    shown = [body for body in _blocks("yaml") if body.startswith("# intel/")]
    assert shown
    for body in shown:
        first, *lines = body.splitlines()
        actual = (REPO_ROOT / first[2:].strip()).read_text().splitlines()
        for line in lines:
            assert line in actual, f"{first[2:]} has no line {line!r}"


def test_compile_count_and_validate_example_are_real(example_repo: Path) -> None:
    from click.testing import CliRunner

    from tiops.cli import main

    runner = CliRunner()
    count = int(re.search(r"wrote dist/bundle\.json \((\d+) objects", _readme()).group(1))  # type: ignore[union-attr]
    result = runner.invoke(main, ["-C", str(example_repo), "compile"])
    assert f"({count} objects," in result.output, result.output
    block = next(body for body in _blocks("console") if body.startswith("$ tiops validate\n"))
    expected = block.splitlines()[1:]
    error_line = next(line for line in expected if " error " in line)
    file, bad = re.search(r"^(\S+?):\d+:\d+: .*?valid_from: '([^']+)'", error_line).groups()  # type: ignore[union-attr]
    path = example_repo / file
    path.write_text(re.sub(r"(?m)^valid_from: .*$", f"valid_from: {bad}", path.read_text(), count=1))
    result = runner.invoke(main, ["-C", str(example_repo), "validate"])
    assert result.output.splitlines() == expected


def test_plan_example_is_real(example_repo: Path) -> None:
    from click.testing import CliRunner

    from tiops.cli import main

    runner = CliRunner()
    assert runner.invoke(main, ["-C", str(example_repo), "apply", "--auto-approve"]).exit_code == 0
    block = next(body for body in _blocks("console") if body.startswith("$ tiops plan"))
    change, field, summary = block.splitlines()[1:4]
    old, new = re.search(r'~ description: "(.*)" -> "(.*)"', field).groups()  # type: ignore[union-attr]
    stix_id = _FULL_ID.search(change).group(1)  # type: ignore[union-attr]
    holder = next(p for p in (example_repo / "intel").rglob("*.yaml") if stix_id in p.read_text())
    holder.write_text(holder.read_text().replace(f"description: {old}", f"description: {new}", 1))
    lines = runner.invoke(main, ["-C", str(example_repo), "plan"]).output.splitlines()
    assert lines[0].startswith(change.removesuffix("…)")), lines[0]
    assert field in lines and summary in lines


def test_init_example_is_real(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tiops.cli import main

    block = _init_block().splitlines()
    command = shlex.split(block[0].removeprefix("$ "))
    result = CliRunner().invoke(main, ["-C", str(tmp_path), *command[1:]])
    assert result.exit_code == 0, result.output
    wrote = [line for line in block if line.startswith("wrote ")]
    assert [line for line in result.output.splitlines() if line.startswith("wrote ")] == wrote
