"""What tiops reads from disk: unreadable folders, special files, symlinks, sizes and names are findings."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiops import build
from tiops.cli import main
from tiops.errors import TiopsError
from tiops.limits import MAX_FILE_BYTES
from tiops.load import load_bundle, load_repo
from tiops.validate import validate_repo

NOBODY = 65534
INDICATOR = """\
type: indicator
spec_version: "2.1"
id: indicator--0f6f9b5e-4c1e-4d8e-9a3b-6a1d2c3b4e5f
created: 2025-03-04T10:00:00.000Z
modified: 2025-03-04T10:00:00.000Z
name: C2
pattern: "[ipv4-addr:value = '203.0.113.45']"
pattern_type: stix
valid_from: 2025-03-04T10:00:00Z
"""


def other_indicator(number: int) -> str:
    return INDICATOR.replace("6a1d2c3b4e5f", f"{number:012d}").replace("203.0.113.45", f"203.0.113.{number}")


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A folder another user can enter (pytest's tmp_path is private to its owner)."""
    folder = Path(tempfile.mkdtemp(prefix="tiops-inputs-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in folder.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def as_unprivileged_user() -> Iterator[None]:
    """Permissions mean nothing to root: as root, run the block as 'nobody' (and back).

    What the commands import lazily is imported first: 'nobody' may not read a Python installed
    under root's home (a pyenv in /root), and an import would fail for that, not for the intel."""
    if os.geteuid() != 0:
        yield
        return
    for module in ("tiops.apply", "tiops.plan"):
        importlib.import_module(module)
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def codes(root: Path) -> list[tuple[str, str]]:
    return [(f.code, f.location.file) for f in validate_repo(load_repo(root)) if f.severity.name == "ERROR"]


def test_an_unreadable_folder_is_an_error_that_blocks_compile_and_plan(world_readable_dir: Path) -> None:
    root = world_readable_dir / "repo"
    (root / "intel" / "feed").mkdir(parents=True)
    (root / "intel" / "a.yaml").write_text(INDICATOR, encoding="utf-8")
    (root / "intel" / "feed" / "b.yaml").write_text(other_indicator(7), encoding="utf-8")
    for folder in (world_readable_dir, root, root / "intel"):
        folder.chmod(0o777)
    (root / "intel" / "feed").chmod(0o000)
    with as_unprivileged_user():
        found = codes(root)
        with pytest.raises(TiopsError) as raised:
            build(root)
        plan = CliRunner().invoke(main, ["-C", str(root), "plan"])
    assert found == [("TI107", "intel/feed")]
    assert "nothing was compiled" in raised.value.message
    assert plan.exit_code == 1 and "TI107" in plan.output


def test_an_unreadable_file_is_an_error(world_readable_dir: Path) -> None:
    root = world_readable_dir / "repo"
    (root / "intel").mkdir(parents=True)
    (root / "intel" / "a.yaml").write_text(INDICATOR, encoding="utf-8")
    (root / "intel" / "a.yaml").chmod(0o000)
    for folder in (root, root / "intel"):
        folder.chmod(0o755)
    with as_unprivileged_user():
        found = codes(root)
    assert found == [("TI106", "intel/a.yaml")]


def test_a_fifo_named_yaml_is_a_finding_not_a_hang(make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/a.yaml": INDICATOR})
    os.mkfifo(root / "intel" / "pipe.yaml")
    (root / "rules").mkdir()
    os.mkfifo(root / "rules" / "relationships.yaml")
    assert sorted(codes(root)) == [("TI108", "intel/pipe.yaml"), ("TI108", "rules/relationships.yaml")]


def test_symlinks_that_leave_the_repository_are_refused(make_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/a.yaml": INDICATOR, "intel/inside/b.yaml": other_indicator(8)})
    outside = tmp_path / "outside.yaml"
    outside.write_text(other_indicator(9), encoding="utf-8")
    (root / "intel" / "zero.yaml").symlink_to("/dev/zero")
    (root / "intel" / "outside.yaml").symlink_to(outside)
    (root / "intel" / "again.yaml").symlink_to(root / "intel" / "inside" / "b.yaml")  # inside: read
    (root / "intel" / "linked-folder").symlink_to(tmp_path)
    repo = load_repo(root)
    errors = sorted((f.code, f.location.file) for f in validate_repo(repo) if f.severity.name == "ERROR")
    assert ("TI108", "intel/zero.yaml") in errors
    assert ("TI108", "intel/outside.yaml") in errors
    assert ("TI108", "intel/linked-folder") in errors
    # The link inside the repository is read: its object is there twice (TI302 says so).
    assert [f for f in errors if f[0] == "TI302"]


def test_a_file_over_the_size_limit_is_a_finding(make_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/a.yaml": INDICATOR})
    # Sparse files: the size is real, the disk blocks are not.
    with (root / "intel" / "big.yaml").open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    assert codes(root) == [("TI109", "intel/big.yaml")]
    bundle = tmp_path / "big.json"
    with bundle.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    assert [f.code for f in validate_repo(load_bundle(bundle))] == ["TI109"]


def test_a_bundle_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "b.json")
    result = CliRunner().invoke(main, ["-C", str(tmp_path), "validate", str(tmp_path / "b.json")])
    assert result.exit_code == 1 and "TI108" in result.output


def test_a_non_utf8_relationship_table_is_a_finding(make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/a.yaml": INDICATOR})
    (root / "rules").mkdir()
    (root / "rules" / "relationships.yaml").write_bytes(b"relationships: \xff\n")
    assert codes(root) == [("TI106", "rules/relationships.yaml")]


@pytest.mark.parametrize("fmt", ["text", "json", "github", "sarif"])
def test_file_names_that_are_not_utf8_are_findings_in_every_format(make_repo, fmt: str) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/a.yaml": INDICATOR})
    intel = os.fsencode(root / "intel")
    with open(os.path.join(intel, b"b\xff.yaml"), "w", encoding="utf-8") as handle:
        handle.write(other_indicator(4))
    os.mkdir(os.path.join(intel, b"dir\xfe"))
    result = CliRunner().invoke(main, ["-C", str(root), "validate", "--format", fmt])
    assert result.exit_code == 1, result.output
    assert "TI114" in result.output
    if fmt != "sarif":  # SARIF percent-encodes the name in its URI
        assert "b\\xff.yaml" in result.output.replace("\\\\", "\\")
    if fmt == "json":
        assert {f["code"] for f in json.loads(result.output)["findings"]} == {"TI114"}


def test_a_fifo_as_an_imported_sources_lock_file_is_a_finding(tmp_path: Path) -> None:
    from tiops.importers.write import import_file

    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps([{"type": "x-thing", "spec_version": "2.1", "id": "x-thing--0f6f9b5e-4c1e-4d8e-9a3b-6a1d2c3b4e5f",
                                   "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z",
                                   "name": "one"}]), encoding="utf-8")
    root = tmp_path / "repo"
    assert import_file(root, bundle, "stix", "Partner").created == 1
    lock = root / "intel" / "partner" / "_imported.json"
    lock.unlink()
    os.mkfifo(lock)
    assert ("TI108", "intel/partner/_imported.json") in codes(root)
    # Import neither hangs on it nor writes into it.
    assert import_file(root, bundle, "stix", "Partner").unchanged == 1
    bundle.write_text(bundle.read_text(encoding="utf-8").replace('"one"', '"two"').replace("2025-01-01T00:00:00.000Z\", \"name",
                                                                                         "2025-02-01T00:00:00.000Z\", \"name"), encoding="utf-8")
    with pytest.raises(TiopsError, match="not a regular file"):
        import_file(root, bundle, "stix", "Partner")
    assert stat.S_ISFIFO(os.lstat(lock).st_mode)


def test_import_does_not_write_through_a_symlink(tmp_path: Path) -> None:
    from tiops.importers.write import import_file

    bundle = tmp_path / "b.json"
    item = {"type": "x-thing", "spec_version": "2.1", "id": "x-thing--0f6f9b5e-4c1e-4d8e-9a3b-6a1d2c3b4e5f", "name": "one",
            "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z"}
    bundle.write_text(json.dumps([item]), encoding="utf-8")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    target = tmp_path / "repo" / "intel" / "partner" / "x-thing" / "0f6f9b5e-4c1e-4d8e-9a3b-6a1d2c3b4e5f.yaml"
    target.parent.mkdir(parents=True)
    target.symlink_to(victim)
    # An imported source's folder (a folder of the team's own intel is refused before anything is written).
    (target.parent.parent / "_defaults.yaml").write_text("imported: true\nsource: Partner\n", encoding="utf-8")
    with pytest.raises(TiopsError, match="symlink"):
        import_file(tmp_path / "repo", bundle, "stix", "Partner")
    assert victim.read_text(encoding="utf-8") == "keep me"


def test_fifos_in_the_enrichment_lock_are_findings_not_hangs(make_repo) -> None:  # type: ignore[no-untyped-def]
    # The enrichment lock is read at every validate and compile: a pipe in its place
    # must be reported like any other input, never opened.
    root = make_repo({"intel/a.yaml": INDICATOR})
    lock = root / "intel" / ".enrichment"
    (lock / "geo").mkdir(parents=True)
    os.mkfifo(lock / "lock.json")
    os.mkfifo(lock / "geo" / "0.json")
    found = codes(root)
    assert ("TI108", "intel/.enrichment/lock.json") in found
    assert ("TI108", "intel/.enrichment/geo/0.json") in found


def test_a_symlink_to_nothing_or_to_itself_is_said_to_be_one(tmp_path: Path) -> None:
    from tiops.inputs import InputProblem, read_input

    (tmp_path / "gone.yaml").symlink_to("missing.yaml")
    (tmp_path / "loop.yaml").symlink_to("loop.yaml")
    for name, message in (("gone.yaml", "a symlink to missing.yaml, which does not exist"),
                          ("loop.yaml", "a loop of symbolic links")):
        with pytest.raises(InputProblem) as caught:
            read_input(str(tmp_path / name), root=str(tmp_path))
        assert caught.value.code == "TI108" and message in caught.value.message


@pytest.mark.parametrize("replacement", ["missing", "a file"])
def test_an_intel_folder_gone_is_an_error_not_an_empty_build_that_revokes_everything(
        make_repo, replacement: str) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"tiops.yaml": "intel: feeds\n", "feeds/a.yaml": INDICATOR})
    runner = CliRunner()
    assert runner.invoke(main, ["-C", str(root), "apply", "--auto-approve"]).exit_code == 0
    shutil.rmtree(root / "feeds")
    if replacement == "a file":
        (root / "feeds").write_text("not a folder\n", encoding="utf-8")
    expected = "does not exist" if replacement == "missing" else "is not a folder"
    for cache in ([], ["--no-cache"]):  # the build cache's loads and the plain one say the same
        checked = runner.invoke(main, ["-C", str(root), "validate", *cache])
        assert checked.exit_code == 1, checked.output
        assert "feeds:1:1: error TI107" in checked.output and expected in checked.output
    assert codes(root) == [("TI107", "feeds")]
    compiled = runner.invoke(main, ["-C", str(root), "compile"])
    assert compiled.exit_code == 1 and "nothing was compiled" in compiled.output
    planned = runner.invoke(main, ["-C", str(root), "plan"])
    assert planned.exit_code == 1 and "to revoke" not in planned.output


def test_a_defaults_file_that_is_a_folder_is_an_error_and_its_files_are_no_objects(
        make_repo) -> None:  # type: ignore[no-untyped-def]
    root = make_repo({"intel/feed/a.yaml": INDICATOR,
                      "intel/feed/_defaults.yaml/b.yaml": other_indicator(9),
                      "intel/feed/_overlay.yaml/c.yaml": other_indicator(10)})
    assert sorted(codes(root)) == [("TI108", "intel/feed/_defaults.yaml"), ("TI108", "intel/feed/_overlay.yaml")]
    runner = CliRunner()
    for cache in ([], ["--no-cache"]):
        checked = runner.invoke(main, ["-C", str(root), "validate", *cache])
        assert checked.exit_code == 1
        assert "intel/feed/_defaults.yaml:1:1: error TI108" in checked.output
        assert "_defaults.yaml is a folder, not a file" in checked.output
        assert "b.yaml" not in checked.output
