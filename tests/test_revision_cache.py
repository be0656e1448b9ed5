"""`tiops diff`, `tiops validate --base` and `tiops bump` through the build cache, in real git repositories.

The cache must change only the time they take: over commits with edits, renames and a
defaults change, every output with a warm cache equals the output with ``--no-cache``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from pr_repo import (
    DATA,
    MALWARE,
    MALWARE_FILE,
    base_repo,
    edit,
    git,
    lfs_like_filter,
    make_pull_request,
)
from pr_repo import assert_same_revision as _same

from tiops.buildcache import CACHE_DIR
from tiops.cli import main
from tiops.gitrepo import GitRevision
from tiops.revision import compile_pair


def _outputs(root: Path, base: str, *flags: str) -> list[tuple[int, str]]:
    runner = CliRunner()
    found = []
    for args in (["diff", base, "--format", "json"], ["diff", base], ["validate", "--base", base, "--format", "json"],
                 ["bump", "--base", base, "--dry-run"]):
        result = runner.invoke(main, ["-C", str(root), *args, *flags])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        found.append((result.exit_code, result.output))
    return found


def _commit(root: Path, message: str, day: int) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message, date=f"2025-03-{day:02d}T12:00:00+00:00")


def test_a_warm_cache_gives_the_output_of_no_cache_over_a_history(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    (root / ".git" / "info" / "exclude").write_text(".tiops/\n")
    assert CliRunner().invoke(main, ["-C", str(root), "validate"]).exit_code == 0  # warms the cache
    make_pull_request(root)
    steps = []
    # A rename and a defaults change, committed; then an edit left in the working tree.
    (root / "intel" / "malware").mkdir()
    git(root, "mv", MALWARE_FILE, "intel/malware/lanternloader.yaml")
    defaults = root / "intel" / "_defaults.yaml"
    defaults.write_text(defaults.read_text() + "  labels: [reviewed]\n")
    # Errors that the per-object checks and the reference check find, on both sides from here on.
    (root / "intel" / "broken.yaml").write_text(
        "type: relationship\nspec_version: '2.1'\nid: relationship--0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d\n"
        "created: 2025-03-01T00:00:00.000Z\nmodified: 2025-03-01T00:00:00.000Z\nrelationship_type: uses\n"
        f"source_ref: {MALWARE}\ntarget_ref: tool--11111111-1111-4111-8111-111111111111\n")
    (root / "intel" / "unnamed-tool.yaml").write_text(
        "type: tool\nspec_version: '2.1'\nid: tool--22222222-2222-4222-8222-222222222222\n"
        "created: 2025-03-01T00:00:00.000Z\nmodified: 2025-03-01T00:00:00.000Z\n")
    _commit(root, "reorganise", 3)
    steps.append(("HEAD~1", "base"))
    edit(root, "intel/c2-address.yaml", "confidence: 85", "confidence: 40")
    steps.append(("HEAD~1", "base", "HEAD"))
    for bases in steps:
        for base in bases:
            uncached = _outputs(root, base, "--no-cache")
            assert (root / CACHE_DIR).is_dir()
            assert _outputs(root, base) == uncached  # the cache written by the run before
            assert _outputs(root, base) == uncached  # and read again, warm
    assert any(code == 1 or "TI8" in out for code, out in uncached)  # the checks had something to say
    assert "HEAD (" in uncached[1][1] and "has 2 validation error(s)" in uncached[1][1]  # per-object + reference
    assert "would bump 1 object(s)" in uncached[3][1]  # the edit left in the working tree


def _count_git_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The blob ids read from git from now on (until ``monkeypatch.undo()``), in order."""
    read: list[str] = []
    original = GitRevision._cat

    def counting(self: GitRevision, blob: str, size: int) -> bytes:
        read.append(blob)
        return original(self, blob, size)

    monkeypatch.setattr(GitRevision, "_cat", counting)
    return read


@pytest.mark.parametrize("lfs_filter", [False, True])
def test_base_files_in_the_cache_are_not_read_from_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        lfs_filter: bool) -> None:
    root = base_repo(tmp_path / "repo")
    (root / ".git" / "info" / "exclude").write_text(".tiops/\n")
    if lfs_filter:
        # git-lfs installed (many machines and CI runners have its filter set globally), but this
        # repository tracks nothing in LFS: its small files are still not read to tell a pointer.
        git(root, "config", "filter.lfs.smudge", "cat")
    # The cache knows every base file; then an edit the cache has never seen.
    compile_pair(root, "base", None, cache=True)
    edit(root, MALWARE_FILE, "name: LanternLoader", "name: LanternLoader v2")
    read = _count_git_reads(monkeypatch)
    old_blob = git(root, "rev-parse", f"base:{MALWARE_FILE}").strip()
    before, after = compile_pair(root, "base", None, cache=True)
    with_cache = list(read)
    assert old_blob not in with_cache  # the edited file's base version came from its cache entry
    read.clear()
    compile_pair(root, "base", None, cache=False)
    assert sorted(read) == sorted([*with_cache, old_blob])  # without the cache it is read from git
    monkeypatch.undo()
    plain_before, plain_after = compile_pair(root, "base", None)
    _same(before, plain_before)
    _same(after, plain_after)
    assert before.authored[MALWARE]["name"] == "LanternLoader"
    assert after.authored[MALWARE]["name"] == "LanternLoader v2"


def test_tiops_no_cache_turns_it_off_for_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = base_repo(tmp_path / "repo")
    (root / ".git" / "info" / "exclude").write_text(".tiops/\n")
    monkeypatch.setenv("TIOPS_NO_CACHE", "1")
    assert CliRunner().invoke(main, ["-C", str(root), "diff", "base"]).exit_code == 0
    assert not (root / CACHE_DIR).exists()
    monkeypatch.delenv("TIOPS_NO_CACHE")
    assert CliRunner().invoke(main, ["-C", str(root), "diff", "base"]).exit_code == 0
    assert (root / CACHE_DIR).is_dir()


def test_a_base_with_another_tiops_yaml_does_not_take_the_working_trees_entries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = base_repo(tmp_path / "repo")
    (root / ".git" / "info" / "exclude").write_text(".tiops/\n")
    (root / "tiops.yaml").write_text("intel: intel  # added since the base\n")
    compile_pair(root, "base", None, cache=True)  # warm
    read = _count_git_reads(monkeypatch)
    before, after = compile_pair(root, "base", None, cache=True)
    assert git(root, "rev-parse", f"base:{MALWARE_FILE}").strip() in read  # read and built afresh
    monkeypatch.undo()
    plain_before, plain_after = compile_pair(root, "base", None)
    _same(before, plain_before)
    _same(after, plain_after)


def test_a_tag_of_partner_intel_across_commits_gives_the_output_of_no_cache(tmp_path: Path) -> None:
    """The base revision's partner files under the base's overlay, the working tree's under its own: an
    entry made under one overlay is never taken for the other (tiops.buildcache.overlay_signature)."""
    root = base_repo(tmp_path / "repo")
    (root / ".git" / "info" / "exclude").write_text(".tiops/\n")
    partner = root / "intel" / "partner-writer"
    shutil.copytree(Path(__file__).parent / "data" / "importers" / "writer.expected", partner)
    indicator = next((partner / "indicator").glob("*.yaml"))
    identifier = next(line[4:] for line in indicator.read_text().splitlines() if line.startswith("id: "))
    (partner / "_overlay.yaml").write_text(f"{identifier}:\n  labels: [first]\n")
    _commit(root, "partner intel, tagged", 3)
    assert CliRunner().invoke(main, ["-C", str(root), "compile"]).exit_code == 0  # warms the cache
    (partner / "_overlay.yaml").write_text(f"{identifier}:\n  labels: [second]\n")
    _commit(root, "tagged again", 4)
    uncached = _outputs(root, "HEAD~1", "--no-cache")
    assert _outputs(root, "HEAD~1") == uncached
    assert _outputs(root, "HEAD~1") == uncached
    assert "first" in uncached[1][1] and "second" in uncached[1][1]  # the diff shows the label changed


def test_a_git_lfs_pointer_checked_out_as_itself_gives_the_output_of_no_cache(tmp_path: Path) -> None:
    """With git-lfs set up, a revision reads a pointer through its smudge filter (as a checkout does). A working
    tree holding the pointer itself (GIT_LFS_SKIP_SMUDGE=1, common in CI) has a file with the pointer's very
    blob id: taken by that id, the base's file was the working tree's parse of the pointer text (no object),
    and `tiops diff` said "no change" where the base holds the object (without the cache, through the
    working tree's parse; with it, through its entry)."""
    root = tmp_path / "repo"
    shutil.copytree(DATA / "base", root)
    git(root, "init", "-q", "-b", "main")
    (root / ".git" / "info" / "exclude").write_text(".tiops/\n")
    lfs_like_filter(root, tmp_path / "store")
    (root / ".gitattributes").write_text(f"{MALWARE_FILE} filter=lfs -text\n")
    _commit(root, "base", 1)
    pointer = git(root, "cat-file", "blob", f"HEAD:{MALWARE_FILE}")
    assert pointer.startswith("version https://git-lfs") and (root / MALWARE_FILE).read_text() != pointer
    (root / MALWARE_FILE).write_text(pointer)  # the checkout skipped the smudge
    assert CliRunner().invoke(main, ["-C", str(root), "validate"]).exit_code == 1  # warms the cache: pointer text
    uncached = CliRunner().invoke(main, ["-C", str(root), "diff", "HEAD", "--format", "json", "--no-cache"])
    cached = CliRunner().invoke(main, ["-C", str(root), "diff", "HEAD", "--format", "json"])
    assert (cached.exit_code, cached.output) == (uncached.exit_code, uncached.output)
    assert MALWARE in uncached.output  # the base's object, gone from the working tree's pointer text


def test_an_intel_folder_that_is_a_symlink_is_read_from_a_revision_as_its_checkout_reads_it(tmp_path: Path) -> None:
    """A checkout walks ``intel`` when it is a link to a folder of the repository (``data/intel``): the
    walk's top is followed. A revision read from git listed nothing under the link, so its intel was empty:
    `tiops diff HEAD` of a clean checkout listed every object as added, and `tiops diff BASE HEAD` every
    change as the whole intel added or removed."""
    root = tmp_path / "repo"
    shutil.copytree(DATA / "base", root)
    (root / "data").mkdir()
    (root / "intel").rename(root / "data" / "intel")
    (root / "intel").symlink_to(Path("data", "intel"))
    git(root, "init", "-q", "-b", "main")
    (root / ".git" / "info" / "exclude").write_text(".tiops/\n")
    _commit(root, "base", 1)
    for flags in ((), ("--no-cache",)):
        result = CliRunner().invoke(main, ["-C", str(root), "diff", "HEAD", "--format", "json", *flags])
        assert result.exit_code == 0 and '"added": []' in result.output, result.output
        assert '"removed": []' in result.output, result.output
    edit(root, f"data/{MALWARE_FILE}", "name: LanternLoader", "name: LanternLoader v2")
    _commit(root, "rename the malware", 2)
    assert _outputs(root, "HEAD~1") == _outputs(root, "HEAD~1", "--no-cache")
    result = CliRunner().invoke(main, ["-C", str(root), "diff", "HEAD~1", "HEAD", "--format", "json"])
    assert result.exit_code == 0 and '"added": []' in result.output and "LanternLoader v2" in result.output
    assert '"removed": []' in result.output, result.output
