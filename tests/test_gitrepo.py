"""tiops.gitrepo against real git repositories: a revision as a file source, and the HEAD commit."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pr_repo import encrypting_filter, git

from tiops.filesource import WorkingTree, blob_id_of
from tiops.gitrepo import (
    GitRevision,
    changed_paths,
    head_commit,
    head_commit_time,
    head_read_ahead,
    resolve_revision,
)
from tiops.inputs import InputProblem


def _walked(source: WorkingTree | GitRevision, top: Path) -> list[tuple[str, list[str], list[str]]]:
    problems: list[tuple[str, str]] = []
    walked = [(os.path.relpath(d, source.root), s, f)
              for d, s, f in source.walk(os.fspath(top), lambda p, c, m: problems.append((p, c)))]
    assert problems == []
    return walked


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for relative, text in {
        "tiops.yaml": "intel: intel\n",
        "intel/a.yaml": "a: 1\n",
        "intel/b/c.yaml": "c: [1, 2]\r\n",
        "intel/b/d/e.yaml": "",
        "intel/z/y.yaml": "y: true\n",
        "rules/ingestion/r.yaml": "rules: []\n",
    }.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
    (root / "intel" / "link.yaml").symlink_to("a.yaml")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "files", date="2025-04-05T06:07:08+00:00")
    return root


def test_a_revision_lists_and_reads_the_files_of_its_checkout(repo: Path) -> None:
    (repo / "intel" / "uncommitted.yaml").write_text("x: 1\n")
    (repo / "intel" / "a.yaml").write_text("changed after the commit\n")
    with GitRevision(repo, resolve_revision(repo, "HEAD")[0]) as revision:
        git(repo, "stash", "-q", "-u")  # the working tree back at the commit, for the reference
        tree = WorkingTree(repo)
        assert _walked(revision, repo / "rules") == _walked(tree, repo / "rules")
        assert _walked(revision, repo / "intel") == _walked(tree, repo / "intel")
        for relative in ("tiops.yaml", "intel/a.yaml", "intel/b/c.yaml", "intel/b/d/e.yaml"):
            path = os.fspath(repo / relative)
            assert revision.read(path) == tree.read(path)
            assert revision.blob_id(path) == blob_id_of(tree.read(path)) == git(repo, "rev-parse", f"HEAD:{relative}").strip()
        assert revision.listdir(os.fspath(repo / "intel")) == ["a.yaml", "b", "link.yaml", "z"]
        assert revision.is_dir(os.fspath(repo / "intel" / "b")) and not revision.is_dir(os.fspath(repo / "intel" / "a.yaml"))
        assert revision.lexists(os.fspath(repo / "rules" / "ingestion" / "r.yaml"))
        assert not revision.lexists(os.fspath(repo / "intel" / "uncommitted.yaml"))
        with pytest.raises(InputProblem) as missing:
            revision.read(os.fspath(repo / "intel" / "uncommitted.yaml"))
        assert missing.value.code == "TI106"


def test_a_symlink_in_a_revision_is_what_a_checkouts_link_is(repo: Path, tmp_path: Path) -> None:
    """The same commit compiles the same from git and from a checkout: a link to a file of the
    repository reads as that file, and every other link gives the checkout's finding (TI108)."""
    (tmp_path / "outside.yaml").write_text("x: 1\n")
    intel = repo / "intel"
    (intel / "chained.yaml").symlink_to("link.yaml")
    (intel / "b" / "up.yaml").symlink_to("../z/y.yaml")
    (intel / "outside.yaml").symlink_to(tmp_path / "outside.yaml")
    (intel / "escapes.yaml").symlink_to("../../outside.yaml")
    (intel / "dangling.yaml").symlink_to("nowhere.yaml")
    (intel / "loop1.yaml").symlink_to("loop2.yaml")
    (intel / "loop2.yaml").symlink_to("loop1.yaml")
    (intel / "folder-link").symlink_to("b", target_is_directory=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "links")

    def outcome(source: WorkingTree | GitRevision, path: Path) -> tuple[str, str]:
        try:
            return "read", source.read(os.fspath(path)).decode()
        except InputProblem as problem:
            return problem.code, problem.message

    tree = WorkingTree(repo)
    with GitRevision(repo, "HEAD") as revision:
        for name in ("link.yaml", "chained.yaml", "b/up.yaml", "outside.yaml", "escapes.yaml", "dangling.yaml",
                     "loop1.yaml"):
            assert outcome(revision, intel / name) == outcome(tree, intel / name), name
        assert outcome(revision, intel / "link.yaml") == ("read", "a: 1\n")
        assert outcome(revision, intel / "outside.yaml")[0] == "TI108"
        assert revision.blob_id(os.fspath(intel / "link.yaml")) == revision.blob_id(os.fspath(intel / "a.yaml"))
        problems: list[tuple[str, str]] = []
        walked = [(os.path.relpath(d, repo), s, f)
                  for d, s, f in revision.walk(os.fspath(intel), lambda p, c, m: problems.append((p, c)))]
        assert problems == [(os.fspath(intel / "folder-link"), "TI108")]
    tree_problems: list[tuple[str, str]] = []
    assert walked == [(os.path.relpath(d, repo), s, f)
                      for d, s, f in tree.walk(os.fspath(intel), lambda p, c, m: tree_problems.append((p, c)))]
    assert tree_problems == problems


def test_the_head_commit_and_its_time(repo: Path, tmp_path: Path) -> None:
    assert head_commit(repo) == git(repo, "rev-parse", "HEAD").strip()
    assert head_commit(repo / "intel" / "b") == head_commit(repo)  # found from a subfolder
    assert head_commit_time(repo) == "2025-04-05T06:07:08.000Z"
    outside = tmp_path / "outside"
    outside.mkdir()
    assert head_commit(outside) is None and head_commit_time(outside) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    assert head_commit(empty) is None and head_commit_time(empty) is None


def test_resolving_names_the_problem(repo: Path, tmp_path: Path) -> None:
    sha, moment = resolve_revision(repo, "main")
    assert sha == head_commit(repo) and moment == "2025-04-05T06:07:08.000Z"
    with pytest.raises(LookupError, match="'nope' names no commit"):
        resolve_revision(repo, "nope")
    with pytest.raises(LookupError, match="not inside a git repository"):
        resolve_revision(tmp_path, "HEAD")


def test_a_range_a_tree_a_blob_and_a_message_search_are_told_apart(repo: Path) -> None:
    git(repo, "commit", "-q", "--allow-empty", "-m", "fix typo", date="2025-04-06T06:07:08+00:00")
    git(repo, "tag", "-a", "-m", "annotated", "v1", "HEAD~1")
    # git's range forms name two commits: said so, not "names no commit".
    for rev in ("HEAD~1..HEAD", "HEAD~1...HEAD", "main.."):
        with pytest.raises(LookupError, match=f"'{re.escape(rev)}' is a range of commits, not one commit"):
            resolve_revision(repo, rev)
    # A tree or a blob names an object, just not a commit.
    with pytest.raises(LookupError, match="'HEAD:intel' names a tree, not a commit"):
        resolve_revision(repo, "HEAD:intel")
    with pytest.raises(LookupError, match="names a blob, not a commit"):
        resolve_revision(repo, "HEAD:intel/a.yaml")
    git(repo, "tag", "-a", "-m", "a tree", "tree-tag", "HEAD^{tree}")
    with pytest.raises(LookupError, match="'tree-tag' names a tree, not a commit"):
        resolve_revision(repo, "tree-tag")
    with pytest.raises(LookupError, match="'HEAD:nope' names no commit"):
        resolve_revision(repo, "HEAD:nope")
    # A commit message search, whose text a ^{commit} suffix would have become part of; a tag, peeled.
    assert resolve_revision(repo, ":/fix typo")[0] == head_commit(repo)
    assert resolve_revision(repo, "v1") == resolve_revision(repo, "HEAD~1")


def test_a_file_with_a_smudge_filter_is_read_as_its_checkout_holds_it(repo: Path) -> None:
    encrypting_filter(repo)
    git(repo, "config", "color.ui", "always")  # what git says is read for tiops, never shown
    (repo / ".gitattributes").write_text("intel/z/secret.yaml filter=crypt\n")
    (repo / "intel" / "z" / "secret.yaml").write_text("secret: value\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "an encrypted file")
    commit = resolve_revision(repo, "HEAD")[0]
    assert git(repo, "cat-file", "-p", "HEAD:intel/z/secret.yaml") != "secret: value\n"  # what the blob holds
    with GitRevision(repo, commit) as revision:
        secret, plain = os.fspath(repo / "intel" / "z" / "secret.yaml"), os.fspath(repo / "intel" / "a.yaml")
        assert revision.read(secret) == b"secret: value\n"
        assert revision.read(os.fspath(repo / "intel" / "z" / "y.yaml")) == b"y: true\n"
        # Never taken by its blob id, which is the ciphertext's: the loader hashes what it read.
        assert revision.blob_id(secret) is None
        assert revision.blob_id(plain) == blob_id_of(b"a: 1\n")


def test_changed_paths_are_edits_and_new_files_git_does_not_ignore(repo: Path) -> None:
    base = resolve_revision(repo, "HEAD")[0]
    assert changed_paths(repo, base) == frozenset()
    (repo / "intel" / "a.yaml").write_text("a: 2\n")
    (repo / "intel" / "b" / "c.yaml").write_bytes(b"c: [1, 2, 3]\n")
    git(repo, "add", "intel/b/c.yaml")  # staged or not, a change since the base
    (repo / "intel" / "z" / "y.yaml").unlink()
    (repo / ".gitignore").write_text("*.tmp\n")
    (repo / "intel" / "new file.yaml").write_text("n: 1\n")
    (repo / "intel" / "scratch.tmp").write_text("not intel\n")
    assert changed_paths(repo, base) == {"intel/a.yaml", "intel/b/c.yaml", "intel/z/y.yaml", ".gitignore",
                                         "intel/new file.yaml"}


def test_changed_paths_of_a_repository_in_a_subfolder_are_relative_to_it(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    for relative in ("intel-team/tiops.yaml", "intel-team/intel/a.yaml", "elsewhere/readme.md"):
        (outer / relative).parent.mkdir(parents=True, exist_ok=True)
        (outer / relative).write_text("x: 1\n")
    git(outer, "init", "-q", "-b", "main")
    git(outer, "add", "-A")
    git(outer, "commit", "-q", "-m", "files")
    root = outer / "intel-team"
    base = resolve_revision(root, "HEAD")[0]
    (root / "intel" / "a.yaml").write_text("x: 2\n")
    (root / "intel" / "b.yaml").write_text("x: 3\n")
    (outer / "elsewhere" / "readme.md").write_text("changed\n")
    (outer / "elsewhere" / "new.md").write_text("new\n")
    assert changed_paths(root, base) == {"intel/a.yaml", "intel/b.yaml"}


def test_head_read_ahead_answers_with_the_commit_checked_out_when_it_began(repo: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    first = git(repo, "rev-parse", "HEAD").strip()
    with head_read_ahead(repo):
        (repo / "intel" / "a.yaml").write_text("a: 2\n", encoding="utf-8")
        git(repo, "commit", "-qam", "second")
        assert head_commit(repo) == first  # the build's own commit, asked at its start and its end alike
        assert head_commit(repo) == first
    second = git(repo, "rev-parse", "HEAD").strip()
    assert second != first and head_commit(repo) == second  # after the block, git is asked again
    outside = tmp_path / "not-a-repository"
    outside.mkdir()
    with head_read_ahead(outside):
        assert head_commit(outside) is None
    with head_read_ahead(repo):
        pass  # never asked: its git process is stopped and waited for
    monkeypatch.setenv("PATH", os.fspath(tmp_path / "no-git-here"))
    with head_read_ahead(repo):
        assert head_commit(repo) is None  # no git to start: asked as ever, which says none
