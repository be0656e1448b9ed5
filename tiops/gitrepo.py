"""Git access for tiops: the only module that imports gitpython."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

# gitpython is imported inside each function: it costs almost half a second to import,
# and most runs of most commands (validate, query, a file given by name) never read git.
if TYPE_CHECKING:
    import git


def head_commit(root: Path) -> str | None:
    """The commit checked out at ``root`` (its hex sha), or None outside a git repository."""
    import git

    try:
        return str(git.Repo(root, search_parent_directories=True).head.commit.hexsha)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return None


def head_commit_time(root: Path) -> str | None:
    """The committer time of the commit checked out at ``root`` as a STIX timestamp (UTC), or None."""
    import git

    try:
        commit = git.Repo(root, search_parent_directories=True).head.commit
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return None
    moment = datetime.fromtimestamp(commit.committed_date, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


# --- Revisions (tiops diff, tiops validate --base) ------------------------------------


def _commit(root: Path, rev: str) -> tuple[git.Repo, git.Commit]:
    """The repository around ``root`` and the commit ``rev`` names; LookupError when there is none."""
    import git

    try:
        repo = git.Repo(root, search_parent_directories=True)
        return repo, repo.commit(rev)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as error:
        raise LookupError(f"{root} is not inside a git repository") from error
    except (git.BadName, git.BadObject, ValueError) as error:
        raise LookupError(f"{rev!r} names no commit") from error


def resolve_revision(root: Path, rev: str) -> tuple[str, str]:
    """``rev`` (a branch, tag, sha or expression like HEAD~1) as (full sha, committer time as a STIX timestamp).

    Raises ``LookupError`` when ``root`` is not in a git repository or ``rev`` names no commit.
    """

    _, commit = _commit(root, rev)
    moment = datetime.fromtimestamp(commit.committed_date, tz=UTC)
    return str(commit.hexsha), moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def export_revision(root: Path, rev: str, target: Path) -> str:
    """Write the files of ``root`` as they were at ``rev`` into ``target``; returns the commit sha.

    Only the part of the tree under ``root`` is written (tiops may live in a subfolder
    of the git repository), so ``target`` then looks like ``root`` did at that commit.
    """
    import git

    repo, commit = _commit(root, rev)
    top = Path(str(repo.working_tree_dir)).resolve()
    prefix = root.resolve().relative_to(top).as_posix()
    tree = commit.tree
    if prefix not in ("", "."):
        try:
            tree = tree / prefix
        except KeyError:
            return str(commit.hexsha)  # the folder did not exist yet: an empty revision
    start = len(str(tree.path)) + 1 if tree.path else 0
    for item in tree.traverse():
        if not isinstance(item, git.Blob) or item.mode == 0o120000:  # files only; symlinks are not followed
            continue
        path = target / str(item.path)[start:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(item.data_stream.read())
    return str(commit.hexsha)
