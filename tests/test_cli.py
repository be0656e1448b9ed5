from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tiops.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tiops", *args], capture_output=True, text=True)


def test_every_command_has_help_and_is_documented() -> None:
    docs = (REPO_ROOT / "README.md").read_text() + "".join(p.read_text() for p in (REPO_ROOT / "docs").glob("*.md"))
    assert isinstance(main, click.Group)
    context = click.Context(main)
    names = main.list_commands(context)
    assert {"validate", "compile", "plan", "apply", "import"} <= set(names)
    for name in names:
        command = main.get_command(context, name)
        assert command is not None and command.name == name, f"COMMANDS maps {name!r} to another command"
        assert command.help, f"tiops {name} has no help text"
        assert f"tiops {name}" in docs, f"tiops {name} is not documented in README.md or docs/"
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0


def test_validate_example_is_clean(example_repo: Path) -> None:
    result = run("-C", str(example_repo), "validate", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr


def test_validate_exit_codes_and_formats(make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/bad.yaml": "type: identity\nspec_version: '2.1'\nname: x\nname: y\n"})
    text = run("-C", str(root), "validate")
    assert text.returncode == 1
    assert "intel/bad.yaml:4:1" in text.stdout and "TI101" in text.stdout
    assert "Traceback" not in text.stdout + text.stderr
    as_json = json.loads(run("-C", str(root), "validate", "--format", "json").stdout)
    assert as_json["findings"][0]["code"] == "TI101"
    github = run("-C", str(root), "validate", "--format", "github").stdout
    assert github.startswith("::error file=intel/bad.yaml,line=4,col=1")
    sarif = json.loads(run("-C", str(root), "validate", "--format", "sarif").stdout)
    assert sarif["version"] == "2.1.0"
    assert sarif["runs"][0]["results"][0]["ruleId"] == "TI101"


def test_warnings_fail_only_with_strict(make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo(
        {"intel/id.yaml": "type: identity\nspec_version: '2.1'\nid: identity--55555555-5555-4555-8555-555555555555\ncreated: '2024-01-01T00:00:00.000Z'\nmodified: '2024-01-01T00:00:00.000Z'\nname: x\nx_ok: 1\nfavourite_colour: red\n"}
    )
    assert run("-C", str(root), "validate").returncode == 0
    assert run("-C", str(root), "validate", "--strict").returncode == 1
    (root / "tiops.yaml").write_text("validation:\n  strict: true\n")
    assert run("-C", str(root), "validate").returncode == 1


def test_usage_error_exits_2() -> None:
    assert run("validate", "--format", "nope").returncode == 2
    assert run("validate", "/no/such/path").returncode == 2


def test_validate_reports_only_named_paths(make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/a/bad.yaml": "type: identity\nname: x\nname: y\n", "intel/b/bad.yaml": "type: identity\nname: x\nname: y\n"})
    result = run("-C", str(root), "validate", str(root / "intel" / "a"))
    assert "intel/a/bad.yaml" in result.stdout
    assert "intel/b/bad.yaml" not in result.stdout


def test_compile_refuses_and_writes_nothing_on_errors(make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/bad.yaml": "type: identity\nspec_version: '2.1'\nname: x\n"})
    result = run("-C", str(root), "compile")
    assert result.returncode == 1
    assert "nothing was compiled" in result.stderr and "TI201" in result.stderr
    assert not (root / "dist").exists()


@pytest.mark.parametrize(
    "text",
    ["\x00\x01binary", "- 1\n- [2\n", "just a string\n", "type: [unhashable]\nid: 3\n", "{a: *nope}\n", "?\n"],
)
def test_garbage_gives_findings_not_tracebacks(make_repo, text: str) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/garbage.yaml": text})
    result = run("-C", str(root), "validate")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert "intel/garbage.yaml:" in result.stdout


def test_validate_of_a_small_repository_imports_only_what_it_uses() -> None:
    # The example repository: `tiops validate` there is what a user runs first and a
    # pre-commit hook runs on every commit. Git, compile and versioning are only for
    # --base; the RFC 3986 grammar only for URLs of an unusual shape.
    root = Path(__file__).resolve().parents[1]
    probe = (
        "import sys; from click.testing import CliRunner; from tiops.cli import main; "
        f"r = CliRunner().invoke(main, ['-C', {str(root)!r}, 'validate', '-q']); assert r.exit_code == 0, r.output; "
        "assert 'tiops.validate' in sys.modules; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('git', 'requests', 'jinja2', 'rfc3986_validator') "
        "or m in ('tiops.compile', 'tiops.versioning', 'tiops.revision', 'tiops.gitrepo', 'tiops.report')); print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_version_imports_no_pipeline_module() -> None:
    # `tiops --version` and help for one command import only what they need (lazy
    # commands and a lazy package API): a regression here costs every invocation.
    probe = (
        "import sys; from click.testing import CliRunner; from tiops.cli import main; "
        "r = CliRunner().invoke(main, ['--version']); assert r.exit_code == 0, r.output; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('git', 'requests', 'stix2patterns', 'jinja2', 'psycopg', 'taxii2client') "
        "or m in ('tiops.load', 'tiops.validate', 'tiops.compile', 'tiops.rules')); print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


_QUICK_EXIT_PROBE = """
import sys
from tiops import cli, memory

class Marker:
    def __del__(self):
        with open(sys.argv[1], "w") as out:
            out.write("freed")

if sys.argv[2] == "held":
    memory.allow_ending_without_freeing()  # as tiops.cli.run does
    memory.end_without_freeing()  # as tiops compile does
elif sys.argv[2] == "in-process":  # a command run by a caller that goes on: nothing is held
    memory.end_without_freeing()
memory.hold_until_exit(Marker())
if sys.argv[3] == "message":
    cli.main = lambda: sys.exit("stopped: a message for the user")
elif sys.argv[3] == "print":  # output left in the buffer, as print leaves it on a pipe
    cli.main = lambda: (print("a line not flushed yet"), sys.exit(0))
sys.argv = ["tiops", "--version"]
cli.run()
"""


def _probe(tmp_path: Path, held: str, main: str = "tiops", stdout: int = subprocess.PIPE) -> tuple[subprocess.Popen[str], Path]:
    marker = tmp_path / f"freed-{held}-{main}"
    # Buffered output, as on a user's machine, whatever this environment says.
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    process = subprocess.Popen([sys.executable, "-c", _QUICK_EXIT_PROBE, str(marker), held, main],
                               stdout=stdout, stderr=subprocess.PIPE, text=True, env=environment)
    return process, marker


def test_what_a_command_held_is_not_freed_and_its_output_is_not_lost(tmp_path: Path) -> None:
    process, marker = _probe(tmp_path, "held")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0 and "version" in out, err
    assert not marker.exists()  # the process ended without freeing what was held
    process, marker = _probe(tmp_path, "held", main="print")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert out == "a line not flushed yet\n"  # flushed before the end
    assert not marker.exists()


@pytest.mark.parametrize("held", ["not-held", "in-process"])
def test_nothing_is_held_unless_the_command_and_the_program_say_so(tmp_path: Path, held: str) -> None:
    process, marker = _probe(tmp_path, held)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0 and "version" in out, err
    assert marker.read_text() == "freed"


def test_a_command_run_in_process_holds_nothing(example_repo: Path, tmp_path: Path) -> None:
    from tiops import memory

    result = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "--no-cache", "-o", str(tmp_path / "b.json")])
    assert result.exit_code == 0, result.output
    assert not memory.holds_anything()


def test_the_exit_status_is_the_one_sys_exit_gives(tmp_path: Path) -> None:
    process, _marker = _probe(tmp_path, "held", main="message")
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "stopped: a message for the user" in err


def test_output_that_cannot_be_flushed_ends_with_status_120(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: writing the buffered version line fails at the end
    try:
        process, marker = _probe(tmp_path, "held", main="print", stdout=write_end)
    finally:
        os.close(write_end)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 120, err
    assert not marker.exists()


def test_compile_and_validate_print_everything_before_ending(make_repo) -> None:  # type: ignore[no-untyped-def]
    files = {f"intel/bad-{number:04d}.yaml": "type: identity\nspec_version: '2.1'\nname: x\nname: y\n"
             for number in range(400)}
    root = make_repo(files)
    result = run("-C", str(root), "validate")
    assert result.returncode == 1
    # Far more than a pipe's buffer: every finding reached the reader.
    assert sum(1 for line in result.stdout.splitlines() if line.startswith("intel/bad-") and "TI101" in line) == 400
    assert "\nby code: TI101 yaml-duplicate-key 400\n" in result.stdout
    assert result.stdout.rstrip().endswith("in 400 files"), result.stdout[-200:]


def test_compile_ends_with_its_line_and_its_files(example_repo: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "out" / "bundle.json"
    result = run("-C", str(example_repo), "compile", "--no-cache", "-o", str(bundle))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote ") and "objects" in result.stdout
    assert json.loads(bundle.read_text())["type"] == "bundle"
    assert json.loads((bundle.parent / "build.json").read_text())["bundle_sha256"]


@pytest.mark.parametrize("command", [["query", "--group-by", "type"], ["query", "type = indicator"], ["validate"]])
def test_a_reader_that_went_away_is_no_internal_error(example_repo: Path, command: list[str]) -> None:
    # `tiops query ... | head -1`: the pipe's read end is closed before tiops writes, so its
    # first write fails (EPIPE) whatever the output's size.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "tiops", "-C", str(example_repo), *command], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    finally:
        os.close(write_end)
    assert done.returncode == 0 and "internal error" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


def test_explain_names_the_objects_tiops_adds_to_the_bundle(example_repo: Path) -> None:
    from tiops.enrich.attach import ENRICHMENT_EXTENSION_ID
    from tiops.stix import BUILTIN_MARKING_IDS

    for identifier in (sorted(BUILTIN_MARKING_IDS)[0], ENRICHMENT_EXTENSION_ID):
        result = CliRunner().invoke(main, ["-C", str(example_repo), "explain", identifier])
        assert result.exit_code == 0 and "built in: no file holds it" in result.output, result.output
        shown = CliRunner().invoke(main, ["-C", str(example_repo), "explain", identifier, "--format", "json"])
        assert json.loads(shown.output)["builtin"] is True and json.loads(shown.output)["id"] == identifier
    missing = CliRunner().invoke(main, ["-C", str(example_repo), "explain", "malware--00000000-0000-4000-8000-000000000000"])
    assert missing.exit_code == 2 and "no object has that id" in missing.output


def test_ctrl_c_ends_with_130_and_says_to_run_again(example_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tiops.commands import compile_cmd

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    # click said "Aborted!" and exited 1, the status of findings: CI read an interrupted run as failed checks.
    monkeypatch.setattr(compile_cmd, "build", interrupted)
    result = CliRunner().invoke(main, ["-C", str(example_repo), "compile"])
    assert result.exit_code == 130, result.output
    assert "interrupted; run the same command again" in result.output and "Aborted" not in result.output


# Ctrl-C as Python imports click, before tiops.cli exists: raised where that import starts.
_INTERRUPTED_WHILE_IMPORTING_CLICK = """\
import runpy, sys

class Interrupt:
    def find_spec(self, name, *_):
        if name == "click":
            raise KeyboardInterrupt

sys.meta_path.insert(0, Interrupt())
sys.argv = ["tiops", "--version"]
runpy.run_module("tiops", run_name="__main__")
"""


def test_ctrl_c_while_the_command_line_is_imported_ends_with_130_without_a_traceback() -> None:
    # The kill campaign's Ctrl-C in the first 0.1 s printed a KeyboardInterrupt traceback through click.
    done = subprocess.run([sys.executable, "-c", _INTERRUPTED_WHILE_IMPORTING_CLICK], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "interrupted; run the same command again" in done.stderr


@pytest.mark.parametrize("named", ["tiops.yaml", "intel/new.json", "rules/bundle.json"])
def test_compile_refuses_to_write_the_bundle_over_the_repositorys_own_files(example_repo: Path, named: str) -> None:
    (example_repo / "tiops.yaml").write_text("output: dist\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "-o", str(example_repo / named)])
    assert result.exit_code == 2 and "part of the repository's own source" in result.output, result.output
    assert (example_repo / "tiops.yaml").read_text(encoding="utf-8") == "output: dist\n"
    assert named == "tiops.yaml" or not (example_repo / named).exists()
    assert not (example_repo / "build.json").exists() and not (example_repo / "intel" / "build.json").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_bundle_to_a_full_device_is_an_error_not_a_crash(example_repo: Path) -> None:
    result = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "-o", "/dev/full"])
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output and "/dev/full" in result.output


def test_plan_places_a_tiops_yaml_error_at_its_line(example_repo: Path) -> None:
    (example_repo / "tiops.yaml").write_text("default_target: local\ntargets:\n  local:\n    type: sqlite\n    path: 5\n")
    result = CliRunner().invoke(main, ["-C", str(example_repo), "plan"])
    assert result.exit_code == 1 and "tiops.yaml:5:5:" in result.output, result.output


def test_a_finding_quoting_a_huge_value_is_cut_in_its_middle(make_repo) -> None:  # type: ignore[no-untyped-def]
    value = "a" * 100_000 + ".example"
    root = make_repo({"intel/d.yaml": "type: domain-name\nspec_version: '2.1'\n"
                                      f"id: domain-name--3c10e5f0-7b9f-5c48-9a9d-0f2b1a7c3e11\nvalue: {value}\n"})
    result = CliRunner().invoke(main, ["-C", str(root), "validate", "--format", "json"])
    [finding] = [f for f in json.loads(result.output)["findings"] if f["code"] == "TI239"]
    # It was a 100,000-character line in every log, annotation and SARIF result.
    assert len(finding["message"]) < 2_100 and "characters left out]" in finding["message"]
    assert ".example" in finding["message"][-600:]  # both ends kept


def test_compile_may_write_into_a_configured_output_folder_inside_intel(example_repo: Path) -> None:
    (example_repo / "tiops.yaml").write_text("output: intel/dist\n", encoding="utf-8")
    target = example_repo / "intel" / "dist" / "bundle.json"
    result = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "-o", str(target)])
    assert result.exit_code == 0 and target.is_file(), result.output
    refused = CliRunner().invoke(main, ["-C", str(example_repo), "compile", "-o", str(example_repo / "intel" / "x.json")])
    assert refused.exit_code == 2 and "the default intel/dist/bundle.json" in refused.output


def test_explain_finds_ids_in_any_case_and_built_ins_by_name(example_repo: Path) -> None:
    from tiops.load import load_repo

    indicator = next(o.id for o in load_repo(example_repo).objects if o.type == "indicator")
    upper = CliRunner().invoke(main, ["-C", str(example_repo), "explain", indicator.upper()])
    assert upper.exit_code == 0 and indicator in upper.output, upper.output  # an id a tool printed as a GUID
    clear = CliRunner().invoke(main, ["-C", str(example_repo), "explain", "TLP:CLEAR"])
    assert clear.exit_code == 0 and "built in: no file holds it" in clear.output, clear.output
    both = CliRunner().invoke(main, ["-C", str(example_repo), "explain", "TLP:AMBER"])  # TLP 1.0 and 2.0 both
    assert both.exit_code == 2 and "2 built-in objects match" in both.output, both.output


def test_dash_c_reads_relative_paths_in_its_folder(example_repo: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``tiops -C DIR`` runs as if started in DIR (as ``git -C`` does): a relative -o or PATHS is
    read there, so the same command writes the same file wherever the shell happens to be."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    runner = CliRunner()
    compiled = runner.invoke(main, ["-C", str(example_repo), "compile", "--no-cache", "-o", "out/bundle.json"])
    assert compiled.exit_code == 0, compiled.output
    assert (example_repo / "out" / "bundle.json").is_file()
    assert not (elsewhere / "out").exists()
    checked = runner.invoke(main, ["-C", str(example_repo), "validate", "--format", "json",
                                   "intel/indicators/copper-lantern-c2-infrastructure.yaml"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["findings"]
    assert Path.cwd() == elsewhere  # the caller's folder is given back when the command ends
    monkeypatch.chdir(example_repo)
    inside = runner.invoke(main, ["compile", "--no-cache", "-o", "here.json"])
    assert inside.exit_code == 0, inside.output
    assert (example_repo / "here.json").read_bytes() == (example_repo / "out" / "bundle.json").read_bytes()


def test_a_second_dash_c_is_read_in_the_first_as_in_git(example_repo: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # click kept only the last -C and checked it where tiops was started: "-C repo -C intel"
    # failed there, or worked in the wrong folder when one of that name was there too.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "intel").mkdir()
    runner = CliRunner()
    nested = runner.invoke(main, ["-C", str(example_repo), "-C", "intel", "validate", "--format", "json",
                                  "indicators/copper-lantern-c2-infrastructure.yaml"])
    assert nested.exit_code == 0, nested.output
    assert json.loads(nested.stdout)["findings"]
    assert Path.cwd() == tmp_path
    missing = runner.invoke(main, ["-C", str(example_repo), "-C", "nowhere", "validate"])
    assert missing.exit_code == 2 and "cannot work in" in missing.output and "does not exist" in missing.output


@pytest.mark.parametrize("command", [["new", "threat-actor", "--set"], ["tag", "add"]])
def test_an_argument_the_locale_cannot_decode_is_a_usage_error(example_repo: Path, command: list[str]) -> None:
    # Python's own protections switched off by hand: the C locale decodes argv as ASCII, and the
    # bytes of "İ" reach tiops as lone surrogates, which no YAML or JSON text can hold.
    environment = {**os.environ, "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    value = b"name=\xc4\xb0 Actor" if command[0] == "new" else b"\xc4\xb0-tag"
    arguments: list[str | bytes] = [sys.executable, "-m", "tiops", "-C", str(example_repo), *command, value]
    if command[0] == "tag":
        arguments += ["--id", "malware--94f8646d-0db8-464a-a055-32cf0e11690d"]
    ran = subprocess.run(arguments, env=environment, capture_output=True, cwd=REPO_ROOT)
    assert ran.returncode == 2, ran.stderr
    assert b"not text in this locale's encoding" in ran.stderr and b"internal error" not in ran.stderr
