"""Revisions read straight from git objects, in real git repositories in temporary folders.

The reference for every revision is a real checkout of it (``git worktree add``)
compiled as `tiops compile` would: reading from git objects must give the same objects,
findings and provenance, with no file written.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from pr_repo import C2_ADDRESS, C2_DOMAIN, MALWARE, MALWARE_FILE, base_repo, git
from pr_repo import assert_same_revision as _same

from tiops.cli import main
from tiops.diff import diff_revisions
from tiops.errors import UsageError
from tiops.revision import CompiledRevision, compile_pair, compile_revision


def _checked_out(root: Path, rev: str, folder: Path) -> CompiledRevision:
    """``rev`` compiled from a real checkout at the same place relative to the git top folder."""
    top = Path(git(root, "rev-parse", "--show-toplevel").strip())
    git(root, "worktree", "add", "-q", "--detach", str(folder), rev)
    checkout = folder / root.resolve().relative_to(top.resolve())
    compiled = compile_revision(checkout, None)
    # Provenance names repository-relative files: comparable as is. The as-of is the
    # working tree's HEAD, the same commit as rev here.
    return compiled


def _history(root: Path) -> None:
    """A second commit that renames, deletes, adds and edits files, and changes defaults and tiops.yaml."""
    (root / "intel" / "malware").mkdir()
    git(root, "mv", MALWARE_FILE, "intel/malware/lanternloader.yaml")
    git(root, "rm", "-q", "intel/c2-domain.yaml")
    (root / "intel" / "new-tool.yaml").write_text(
        "type: tool\nspec_version: '2.1'\nid: tool--6e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b\n"
        "created: 2025-03-01T00:00:00.000Z\nmodified: 2025-03-01T00:00:00.000Z\nname: Rclone\n")
    defaults = root / "intel" / "_defaults.yaml"
    defaults.write_text(defaults.read_text() + "  labels: [reviewed]\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "reorganise", date="2025-03-02T12:00:00+00:00")
    git(root, "tag", "reorganised")


def test_a_revision_read_from_git_objects_compiles_as_its_checkout(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    _history(root)
    for rev in ("base", "reorganised"):
        from_git = compile_revision(root, rev)
        from_checkout = _checked_out(root, rev, tmp_path / f"checkout-{rev}")
        assert from_git.objects == from_checkout.objects
        assert from_git.provenance == from_checkout.provenance
        assert from_git.authored == from_checkout.authored
    # Findings on the base side keep the paths the files had in that revision.
    assert compile_revision(root, "base").provenance[MALWARE].file == MALWARE_FILE
    assert compile_revision(root, "reorganised").provenance[MALWARE].file == "intel/malware/lanternloader.yaml"


def test_renames_deletions_additions_and_a_defaults_change(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    _history(root)
    diff = diff_revisions(*compile_pair(root, "base", "reorganised"))
    assert [r.id for r in diff.added] == ["tool--6e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b"]
    assert [r.id for r in diff.removed] == [C2_DOMAIN]
    # The renamed malware is neither removed nor added; the defaults change is a defaults effect.
    effects = {e.cause: {c.ref.id for c in e.changes} for e in diff.effects}
    assert MALWARE in effects["defaults intel/_defaults.yaml"]
    assert C2_ADDRESS in effects["defaults intel/_defaults.yaml"]
    assert diff.changed == ()


def test_sharing_work_between_the_sides_changes_nothing(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    _history(root)
    (root / "intel" / "c2-address.yaml").write_text(
        (root / "intel" / "c2-address.yaml").read_text().replace("confidence: 90", "confidence: 40"))
    for base, head in (("base", None), ("base", "reorganised"), ("reorganised", None)):
        before, after = compile_pair(root, base, head)
        _same(before, compile_revision(root, base))
        _same(after, compile_revision(root, head))


def test_a_base_whose_tiops_yaml_moves_the_intel_folder(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    (root / "intel").rename(root / "threat-intel")
    (root / "tiops.yaml").write_text("intel: threat-intel\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "move the intel folder")
    (root / "tiops.yaml").write_text("intel: cti\n")
    (root / "threat-intel").rename(root / "cti")
    before, after = compile_pair(root, "HEAD", None)
    assert before.provenance[MALWARE].file == "threat-intel/lanternloader.yaml"
    assert after.provenance[MALWARE].file == "cti/lanternloader.yaml"
    assert diff_revisions(before, after).empty


def test_errors_in_the_base_are_counted_at_the_base_paths(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    (root / "intel" / "broken.yaml").write_text("type: malware\nspec_version: '2.1'\nname: [unclosed\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "a broken file")
    (root / "intel" / "broken.yaml").unlink()
    before, after = compile_pair(root, "HEAD", None)
    assert before.error_count == 1 and after.error_count == 0
    checkout = _checked_out(root, "HEAD", tmp_path / "checkout")
    assert before.error_count == checkout.error_count


def test_a_base_overlay_that_the_head_removed(tmp_path: Path) -> None:
    """Partner intel: the overlay of the base revision applies to the base side only."""
    root = base_repo(tmp_path / "repo")
    feed = root / "intel" / "feed"
    feed.mkdir()
    (feed / "_defaults.yaml").write_text("imported: true\nsource: Abuse feed\n")
    shutil.move(str(root / "intel" / "c2-domain.yaml"), feed / "c2-domain.yaml")
    (feed / "_overlay.yaml").write_text(f"{C2_DOMAIN}:\n  confidence: 10\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "partner folder with an overlay")
    (feed / "_overlay.yaml").unlink()
    before, after = compile_pair(root, "HEAD", None)
    assert before.provenance[C2_DOMAIN].overlaid == ("confidence",)
    assert after.provenance[C2_DOMAIN].overlaid == ()
    diff = diff_revisions(before, after)
    assert [e.cause for e in diff.effects] == ["partner object, overlay change (intel/feed/_overlay.yaml)"]
    _same(before, compile_revision(root, "HEAD"))


def test_tiops_in_a_subfolder_of_the_git_repository(tmp_path: Path) -> None:
    top = tmp_path / "monorepo"
    top.mkdir()
    git(top, "init", "-q", "-b", "main")
    (top / "README").write_text("other things\n")
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "before the intel existed")
    git(top, "tag", "empty")
    root = top / "security" / "cti"
    shutil.copytree(Path(__file__).resolve().parent / "data" / "diff" / "base", root)
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "intel")
    assert compile_revision(root, "empty").objects == []  # the folder did not exist yet
    from_git = compile_revision(root, "HEAD")
    assert from_git.provenance[MALWARE].file == MALWARE_FILE
    assert from_git.objects == _checked_out(root, "HEAD", tmp_path / "checkout").objects


def test_no_file_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = base_repo(tmp_path / "repo")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    files_before = sorted(p.relative_to(root) for p in root.rglob("*") if ".git" not in p.parts)
    compile_revision(root, "base")
    assert list(scratch.iterdir()) == []
    assert sorted(p.relative_to(root) for p in root.rglob("*") if ".git" not in p.parts) == files_before


def test_an_unknown_revision_and_a_folder_outside_git_are_usage_errors(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    with pytest.raises(UsageError) as unknown:
        compile_revision(root, "no-such-branch")
    assert "'no-such-branch' names no commit" in str(unknown.value)
    assert "HEAD~1" in (unknown.value.hint or "")
    with pytest.raises(UsageError, match="names no commit"):
        compile_revision(root, "--output=/tmp/x")  # never passed to git as an option
    plain = tmp_path / "plain"
    shutil.copytree(root, plain, ignore=shutil.ignore_patterns(".git"))
    result = CliRunner().invoke(main, ["-C", str(plain), "diff", "HEAD~1"])
    assert result.exit_code == 2
    assert "not inside a git repository" in result.output
    assert "Traceback" not in result.output


def test_a_shallow_clone_says_so(tmp_path: Path) -> None:
    root = base_repo(tmp_path / "repo")
    git(root, "commit", "-q", "--allow-empty", "-m", "second")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{root}", str(clone)], check=True)
    result = CliRunner().invoke(main, ["-C", str(clone), "diff", "HEAD~1"])
    assert result.exit_code == 2
    assert "shallow clone" in result.output
    assert "fetch-depth: 0" in result.output and "GIT_DEPTH: 0" in result.output  # GitHub's and GitLab's
    assert "Traceback" not in result.output
    misspelt = CliRunner().invoke(main, ["-C", str(clone), "diff", "nosuchbranch"])
    assert misspelt.exit_code == 2 and "or it is misspelt" in misspelt.output  # a shallow clone cannot tell which


def test_a_repository_git_refuses_for_its_owner_is_not_said_to_be_outside_git(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = base_repo(tmp_path / "repo")
    # git's own switch for what a CI container's checkout meets: the files belong to another user.
    monkeypatch.setenv("GIT_TEST_ASSUME_DIFFERENT_OWNER", "1")
    if subprocess.run(["git", "-C", str(root), "rev-parse", "--git-dir"], capture_output=True).returncode == 0:
        pytest.skip("this git has no safe.directory check (before 2.35.2)")
    result = CliRunner().invoke(main, ["-C", str(root), "diff", "HEAD~1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    # git's "fatal:" line, not the advice under it, and no claim that this is not a git repository.
    assert "another user owns it (fatal: detected dubious ownership in repository at" in result.output
    assert "not inside a git repository" not in result.output
    assert "safe.directory" in result.output.split("hint:")[1]


def test_a_relative_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = base_repo(tmp_path / "repo")
    expected = compile_revision(root, "base")
    monkeypatch.chdir(root)
    from_relative = compile_revision(Path("."), "base")
    assert from_relative.objects == expected.objects and len(expected.objects) > 5


def test_descriptions_are_made_only_for_the_objects_a_review_reads(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    import tiops.revision as revision

    root = base_repo(tmp_path / "repo")
    _history(root)
    described: list[str] = []
    describe = revision._provenance
    monkeypatch.setattr(revision, "_provenance", lambda obj, rules: described.append(obj.id) or describe(obj, rules))
    collecting: list[bool] = []
    validate = revision.validate_repo
    monkeypatch.setattr(revision, "validate_repo", lambda *a, **k: collecting.append(gc.isenabled()) or validate(*a, **k))

    before, after = compile_pair(root, "base", None)
    assert described == []
    assert collecting == [False, False]  # both sides built with the collector held
    assert gc.isenabled()  # and given back

    diff = diff_revisions(before, after)
    assert diff.changed or diff.effects
    assert 0 < len(set(described)) < len(after.provenance)
    # Asked for everything, the lazy forms are what the eager ones were.
    everything = dict(after.provenance.items())
    assert set(everything) == {obj["id"] for obj in after.objects if obj["id"] in after.authored}
    assert everything == {object_id: describe(obj, everything[object_id].rules)
                          for object_id, obj in after.repo.by_id().items()}  # type: ignore[union-attr]
    assert "nope" not in after.provenance
    with pytest.raises(KeyError):
        after.provenance["nope"]


@pytest.mark.parametrize("edit", ["source", "default"])
def test_a_defaults_effect_names_the_defaults_file_that_changed_not_the_nearest(example_repo: Path, edit: str) -> None:
    root = example_repo
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "example")
    defaults = root / "intel" / "_defaults.yaml"
    text = defaults.read_text(encoding="utf-8")
    # The example's intel/indicators and intel/feeds/contoso have _defaults.yaml files of their own,
    # unchanged: the objects under them take the root's source and confidence through them.
    defaults.write_text(text.replace("source: Fabrikam CTI", "source: Fabrikam CTI 2") if edit == "source"
                        else text.replace("defaults:\n", "defaults:\n  confidence: 77\n"), encoding="utf-8")
    diff = diff_revisions(*compile_pair(root, "HEAD", None))
    effects = {e.cause: {c.ref.id for c in e.changes} for e in diff.effects}
    assert set(effects) == {"defaults intel/_defaults.yaml"}
    # Among them, objects whose nearest _defaults.yaml is another (what the cause used to name).
    nested = {obj_id for obj_id, origin in compile_revision(root, None).provenance.items()
              if origin.defaults_files[-1:] not in ((), ("intel/_defaults.yaml",))}
    assert nested & effects["defaults intel/_defaults.yaml"]
