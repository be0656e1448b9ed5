"""Git access for tiops: the only module that runs git.

It runs the git command line, which every checkout tiops works in already has: a few
short commands per run, and for a revision one long-lived ``git cat-file --batch``
that reads blobs straight from the object database (no checkout, no temporary files).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from tiops.inputs import InputProblem, WalkProblem, display_name, is_utf8_name
from tiops.limits import MAX_FILE_BYTES


class GitFailed(Exception):
    """A git command failed; the message is git's own, the line that says what failed (_gist)."""


class GitMissing(GitFailed):
    """No git program to run (none on PATH)."""


class GitUnavailable(LookupError):
    """A revision cannot be read: there is no git program to read it with."""


class NoCommitYet(LookupError):
    """The repository has no commit for a revision to name."""


class UntrustedRepository(LookupError):
    """git refuses the repository: another user owns it (safe.directory), as a CI container's checkout often is."""


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", os.fspath(root), *args], capture_output=True, check=False)
    except OSError as error:  # no git on PATH
        raise GitMissing(f"cannot run git: {error.strerror}") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitFailed(_gist(message) or f"git {args[0]} failed")
    return done.stdout.decode("utf-8", "surrogateescape")


def _gist(lines: list[str]) -> str | None:
    """What went wrong, of git's message: its last "fatal:" line, not the advice git may print
    under it (for a repository another user owns, the command that would trust it), else the last line."""
    for prefix in ("fatal: ", "error: "):
        said = [line for line in lines if line.startswith(prefix)]
        if said:
            return said[-1]
    return lines[-1] if lines else None


def _commit_time(root: Path, rev: str) -> str:
    """The committer time of ``rev`` as a STIX timestamp (UTC)."""
    # ``git log -1``, not ``git show -s``: the same commit's fields, but show sets up its diff
    # machinery first, 35-40 ms in a 100k-file repository against 2 ms (every compile asks
    # for HEAD's time). A signature is never wanted in the output, whatever the configuration.
    seconds = int(_git(root, "log", "-1", "--no-show-signature", "--format=%ct", rev, "--").strip())
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


_HEAD_ARGUMENTS = ("rev-parse", "--verify", "--quiet", "HEAD^{commit}")


def head_commit(root: Path) -> str | None:
    """The commit checked out at ``root`` (its hex sha), or None outside a git repository.
    Within :func:`head_read_ahead` for ``root``, the one its git process found."""
    ahead = _HEADS_AHEAD.get(os.fspath(root))
    if ahead is not None:
        return ahead.commit()
    try:
        return _git(root, *_HEAD_ARGUMENTS).strip() or None
    except GitFailed:
        return None


class _HeadAhead:
    """A ``git rev-parse HEAD`` running beside a build (:func:`head_read_ahead`), its answer kept once read."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self._commit: str | None = None
        self._read = False

    def commit(self) -> str | None:
        if not self._read:
            out, _ = self._process.communicate()  # interrupted (Ctrl-C), it is asked again, or close() stops git
            self._commit = (out.decode("utf-8", "surrogateescape").strip() or None) if self._process.returncode == 0 else None
            self._read = True
        return self._commit

    def close(self) -> None:
        """Stop git if it was never asked (the block ended first: an error, Ctrl-C), and wait for it."""
        if self._process.returncode is None:
            self._process.kill()
            self._process.communicate()


# The git processes head_read_ahead started, by repository root.
_HEADS_AHEAD: dict[str, _HeadAhead] = {}


@contextlib.contextmanager
def head_read_ahead(root: Path) -> Iterator[None]:
    """Start finding the commit checked out at ``root`` in a git process of its own, and within the
    block answer :func:`head_commit` for ``root`` with it.

    A compile asks at its end, for build.json, and a compile without ``--as-of`` also at its start,
    for HEAD's time: git took 3-13 ms of a one-file recompile at 100k objects there, where it can
    run on the other CPU from the start. Both then name the same commit, the one checked out when
    the build began. Where git cannot be started, head_commit runs it as ever."""
    key = os.fspath(root)
    if key in _HEADS_AHEAD:
        yield
        return
    try:
        process = subprocess.Popen(["git", "-C", key, *_HEAD_ARGUMENTS], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:  # no git on PATH: head_commit says so as ever
        yield
        return
    ahead = _HEADS_AHEAD[key] = _HeadAhead(process)
    try:
        yield
    finally:
        del _HEADS_AHEAD[key]
        ahead.close()


def smudge_drivers(root: Path) -> set[str]:
    """The filter drivers git is configured with that change what a checkout holds (git-crypt's,
    say), but Git LFS's, which readers of blobs handle by its pointers."""
    try:
        listing = _git(root, "config", "--get-regexp", r"^filter\..*\.(smudge|process)$")
    except GitFailed:  # exit 1: none configured
        return set()
    names = {line.split(" ", 1)[0][len("filter."):].rpartition(".")[0] for line in listing.splitlines()}
    return names - {"lfs", ""}


def files_with_filter(root: Path, relatives: list[str], drivers: set[str]) -> list[str]:
    """Those of ``relatives`` (paths relative to ``root``) whose ``filter`` attribute names one of
    ``drivers``, by one ``git check-attr`` (the checkout's attributes, on git before 2.40)."""
    try:
        done = subprocess.run(["git", "-C", os.fspath(root), "check-attr", "-z", "--stdin", "filter"],
                              input="".join(f"{relative}\0" for relative in relatives).encode("utf-8", "surrogateescape"),
                              capture_output=True, check=False)
    except OSError:
        return []
    if done.returncode != 0:
        return []
    fields = done.stdout.split(b"\0")  # path, attribute, value, for each path
    return [os.fsdecode(fields[at]) for at in range(0, len(fields) - 2, 3) if os.fsdecode(fields[at + 2]) in drivers]


def cat_filtered(root: Path, commit: str, relative: str) -> subprocess.CompletedProcess[bytes]:
    """``git cat-file --filters`` of a file at ``commit``: its content as a checkout writes it.
    One call per file: git 2.39 refuses ``--batch --filters`` ("missing path")."""
    return subprocess.run(["git", "-C", os.fspath(root), "cat-file", "--filters", f"{commit}:./{relative}"],
                          capture_output=True, check=False)


def head_files(root: Path, relatives: list[str]) -> dict[str, bytes]:
    """The named files as the commit checked out at ``root`` holds them (paths relative to ``root``),
    read from git objects in one ``git cat-file --batch``; a path that is no file there is left
    out, and outside a git repository (or without git) nothing is found.

    A file with a clean/smudge filter (git-crypt's: ciphertext in the commit) is read through it,
    as a checkout writes it; the common repository, with no such driver, pays one ``git config``."""
    if not relatives or any("\n" in relative for relative in relatives):
        return {}
    request = "".join(f"HEAD:./{relative}\n" for relative in relatives).encode("utf-8", "surrogateescape")
    try:
        done = subprocess.run(["git", "-C", os.fspath(root), "cat-file", "--batch"], input=request,
                              capture_output=True, check=False)
    except OSError:
        return {}
    if done.returncode != 0:
        return {}
    found: dict[str, bytes] = {}
    output, at = done.stdout, 0
    for relative in relatives:
        end = output.find(b"\n", at)
        if end < 0:
            break
        header = output[at:end].split()
        at = end + 1
        if len(header) != 3 or not header[2].isdigit():  # "<name> missing", "ambiguous"
            continue
        size = int(header[2])
        if header[1] == b"blob" and size <= MAX_FILE_BYTES:
            found[relative] = output[at:at + size]
        at += size + 1
    drivers = smudge_drivers(root) if found else set()
    for relative in files_with_filter(root, sorted(found), drivers) if drivers else ():
        try:
            filtered: subprocess.CompletedProcess[bytes] | None = cat_filtered(root, "HEAD", relative)
        except OSError:
            filtered = None
        if filtered is not None and filtered.returncode == 0 and len(filtered.stdout) <= MAX_FILE_BYTES:
            found[relative] = filtered.stdout
        else:
            del found[relative]  # its ciphertext holds no ids: as if HEAD had no such file
    return found


def head_commit_time(root: Path) -> str | None:
    """The committer time of the commit checked out at ``root`` as a STIX timestamp (UTC), or None."""
    sha = head_commit(root)
    if sha is None:
        return None
    try:
        return _commit_time(root, sha)
    except (GitFailed, ValueError):
        return None


# --- Revisions (tiops diff, tiops validate --base) ------------------------------------


def resolve_revision(root: Path, rev: str) -> tuple[str, str]:
    """``rev`` (a branch, tag, sha or expression like HEAD~1) as (full sha, committer time as a STIX timestamp).

    Raises ``LookupError`` when ``root`` is not in a git repository or ``rev`` names no commit;
    the message says why (a shallow clone that lacks the commit is named as such).
    """
    try:
        _git(root, "rev-parse", "--git-dir")
    except GitMissing as error:
        raise GitUnavailable(f"git is not installed, or not on PATH ({error})") from None
    except GitFailed as error:
        if "dubious ownership" in str(error):  # a CI container's checkout, owned by another user than the job's
            raise UntrustedRepository(f"git refuses to read the repository: another user owns it ({error})") from None
        raise LookupError(f"{root} is not inside a git repository ({error})") from None
    if rev.startswith("-"):  # never let a revision be read as an option of git
        raise LookupError(f"{rev!r} names no commit")
    if names_range(rev):
        raise LookupError(f"{rev!r} is a range of commits, not one commit")
    sha = _peeled_commit(root, rev)
    if not sha and not _has_commits(root):
        raise NoCommitYet(f"{rev!r} names no commit: the repository has no commit yet")
    if not sha:
        # A shallow clone cannot tell a misspelt name from one it never fetched: it says both.
        raise LookupError(f"{rev!r} names no commit" + (
            " in this shallow clone: it was not fetched (its history stops before it), or it is misspelt"
            if is_shallow(root) else ""))
    return sha, _commit_time(root, sha)


def _has_commits(root: Path) -> bool:
    try:
        return bool(_git(root, "rev-list", "-n", "1", "--all").strip())
    except GitFailed:
        return True  # cannot tell: the message stays the general one


def names_range(rev: str) -> bool:
    """Whether ``rev`` is git's A..B or A...B, two revisions: no ref name holds ".." (git-check-ref-format),
    while a path after a colon may (``HEAD:a..b.yaml``)."""
    return ".." in rev and ":" not in rev


def _peeled_commit(root: Path, rev: str) -> str:
    """The commit ``rev`` names, through tags; "" when it names none. LookupError when it names
    another kind of object (a tree or a blob: ``HEAD:intel``), saying which."""
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    except GitFailed:  # --verify --quiet fails with no message when the name resolves to no commit
        pass
    # The suffix is read as part of some names (":/fix typo^{commit}" searches commit messages
    # for the whole text): such a name is resolved alone, then peeled.
    try:
        named = _git(root, "rev-parse", "--verify", "--quiet", rev).strip()
    except GitFailed:
        return ""
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", f"{named}^{{commit}}").strip()
    except GitFailed:
        pass
    try:
        kind = _git(root, "cat-file", "-t", f"{named}^{{}}").strip()  # a tag of a tree names a tree
    except GitFailed:
        return ""
    raise LookupError(f"{rev!r} names a {kind}, not a commit")


def changed_paths(root: Path, commit: str) -> frozenset[str]:
    """The files under ``root`` whose content differs between ``commit`` (a full sha, from
    :func:`resolve_revision`) and the working tree, new files git does not ignore among them,
    as paths relative to ``root`` with "/" (as findings name files). Raises GitFailed."""
    changed = _git(root, "diff", "--name-only", "-z", "--no-renames", "--relative", commit, "--")
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "-z", "--", ".")
    return frozenset(path for path in (*changed.split("\0"), *untracked.split("\0")) if path)


def fork_point(root: Path, base: str) -> str | None:
    """The commit where HEAD's history left ``base`` (a full sha), when HEAD does not contain ``base``
    (a branch behind its base branch); None when it does, or when git cannot tell (a shallow clone
    that lacks the shared history, no HEAD). A pull request's change is what HEAD did since then."""
    try:
        head = _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").strip()
        if not head or head == base:
            return None
        merge_base = _git(root, "merge-base", base, head).strip()
    except GitFailed:
        return None
    return merge_base if merge_base and merge_base != base else None


def is_shallow(root: Path) -> bool:
    """Whether the repository around ``root`` is a shallow clone (CI checkouts often are)."""
    try:
        return _git(root, "rev-parse", "--is-shallow-repository").strip() == "true"
    except GitFailed:
        return False


_SYMLINK, _SUBMODULE = b"120000", b"160000"
_LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\n"
_LFS_POINTER_LIMIT = 1024  # git-lfs takes no blob of this size or more for a pointer
_MAX_LINK_HOPS = 40  # as Linux follows at most 40 links in resolving one path (path_resolution(7))


class GitRevision:
    """The files under ``root`` as they were at one commit, read from git objects (a tiops.filesource.FileSource).

    Paths are those the files would have in a checkout at ``root``, so findings name the
    same files as on the working tree. tiops may live in a subfolder of the git
    repository: only that subfolder's part of the tree is listed. A symlink is what a
    checkout's link is to tiops.inputs: the file it leads to within ``root``, a folder
    link reported (TI108) and not followed, and one leading outside, nowhere or round in
    a loop a file that cannot be read (TI108). Submodules are not files of the revision.
    Use as a context manager: it holds one git process.
    """

    def __init__(self, root: Path, commit: str) -> None:
        self.root = root
        self.commit = commit
        self._blobs: dict[str, tuple[str, int]] = {}  # path -> (blob id, size)
        self._folders: dict[str, tuple[set[str], list[str]]] = {os.fspath(root): (set(), [])}
        self._process: subprocess.Popen[bytes] | None = None
        self._pointers: dict[str, bool] = {}  # blob id -> whether it is a Git LFS pointer (blob_id)
        self._lfs_filter: bool | None = None  # whether git has a Git LFS filter, once asked (_smudges)
        self._filtered: frozenset[str] | None = None  # files with another smudge filter, once asked (_filtered_files)
        # Symlinks: path -> the path they lead to (a file of _blobs), or the TI108 message that
        # reading them gives; and the folder links a walk reports.
        self._links: dict[str, str | InputProblem] = {}
        self._folder_links: set[str] = set()
        self._folder_targets: dict[str, str] = {}  # folder link -> the folder it leads to (_real)
        link_entries: list[tuple[str, str, str, int]] = []  # (folder, name, blob, size)
        try:
            # ls-tree run in a subfolder lists that subfolder only, with paths relative to it.
            listing = subprocess.run(["git", "-C", os.fspath(root), "ls-tree", "-r", "-z", "-l", commit],
                                     capture_output=True, check=False)
        except OSError as error:
            raise LookupError(f"cannot run git: {error.strerror}") from None
        if listing.returncode != 0:
            raise LookupError(listing.stderr.decode("utf-8", "replace").strip() or f"cannot list {commit}")
        # Plain string work: this runs once per file of the revision (100k on big repositories).
        top = os.fspath(root)
        folders = self._folders
        for entry in listing.stdout.split(b"\0"):
            if not entry:
                continue
            meta, _, name = entry.partition(b"\t")
            mode, kind, blob, size = meta.split()
            if kind != b"blob" or mode == _SUBMODULE:
                continue
            folder, _, filename = os.fsdecode(name).rpartition("/")
            directory = f"{top}/{folder}" if folder else top
            if mode == _SYMLINK:
                link_entries.append((directory, filename, blob.decode(), int(size)))
                continue
            self._blobs[f"{directory}/{filename}"] = (blob.decode(), int(size))
            listed = folders.get(directory)
            if listed is None:
                listed = self._new_folder(directory)
            listed[1].append(filename)
        if link_entries:
            self._add_links(top, link_entries)

    def _add_links(self, top: str, entries: list[tuple[str, str, str, int]]) -> None:
        """Resolve the revision's symlinks as tiops.inputs resolves a checkout's (its _read_link)."""
        texts = {f"{directory}/{name}": os.fsdecode(self._cat(blob, size)) for directory, name, blob, size in entries}
        for (directory, name, _, _), (path, text) in zip(entries, texts.items(), strict=True):
            target = path
            for _ in range(_MAX_LINK_HOPS):  # a link to a link is followed, as the system does
                target = os.path.normpath(os.path.join(os.path.dirname(target), texts[target]))
                if target not in texts:
                    break
            else:
                self._links[path] = InputProblem("TI108", "a loop of symbolic links, which leads to no file")
                self._list_file(directory, name)
                continue
            if os.path.commonpath([target, top]) != top:
                self._links[path] = InputProblem("TI108", f"a symlink to {display_name(target)}, outside the repository")
            elif target in self._folders:
                self._folder_links.add(path)  # a walk reports it, as a checkout's folder link (tiops.inputs.walk)
                self._folder_targets[path] = target
                parent = self._folders.get(directory) or self._new_folder(directory)
                parent[0].add(name)
                continue
            elif target in self._blobs:
                self._links[path] = target
            else:
                self._links[path] = InputProblem("TI108", f"a symlink to {text}, which does not exist")
            self._list_file(directory, name)

    def _list_file(self, directory: str, name: str) -> None:
        listed = self._folders.get(directory)
        if listed is None:
            listed = self._new_folder(directory)
        listed[1].append(name)

    def _new_folder(self, path: str) -> tuple[set[str], list[str]]:
        """Add a folder and, up to the root, every parent it was not yet listed in."""
        listed = self._folders[path] = (set(), [])
        child = path
        while True:
            parent, _, name = child.rpartition("/")
            known = self._folders.get(parent)
            if known is not None:
                known[0].add(name)
                return listed
            self._folders[parent] = ({name}, [])
            child = parent

    # --- FileSource ---

    def _real(self, path: str) -> str:
        """``path`` through the folder links of the revision that lead to a folder of it, as the system
        resolves a path in a checkout. A walk does not enter a folder link below its top (TI108), but the
        top itself and the folders above it are followed in a checkout (``intel`` a link to
        ``data/intel``): so are they here, or the revision had no intel where its checkout has it all."""
        if not self._folder_targets or path in self._blobs or path in self._folders:
            return path
        for _ in range(_MAX_LINK_HOPS):
            for link, target in self._folder_targets.items():
                if path == link or path.startswith(link + "/"):
                    path = target + path[len(link):]
                    break
            else:
                return path
        return path

    def read(self, path: str) -> bytes:
        path = self._real(path)
        entry = self._blobs.get(path)
        if entry is None and path in self._links:
            target = self._links[path]
            if isinstance(target, InputProblem):
                raise target
            entry = self._blobs[target]
        if entry is None:
            raise InputProblem("TI106", f"cannot read the file: not a file of commit {self.commit[:12]}")
        blob, size = entry
        if size > MAX_FILE_BYTES:
            raise InputProblem("TI109", f"{size} bytes, more than the limit of {MAX_FILE_BYTES} bytes")
        file = path if entry is self._blobs.get(path) else str(self._links[path])
        if file in self._filtered_files():
            return self._filtered_read(file)
        data = self._cat(blob, size)
        if data.startswith(_LFS_POINTER):
            data = self._smudged(file, data)
        return data

    def _cat_filters(self, path: str) -> subprocess.CompletedProcess[bytes]:
        try:
            return cat_filtered(self.root, self.commit, os.path.relpath(path, os.fspath(self.root)))
        except OSError as error:
            raise InputProblem("TI106", f"cannot read the file from git: {error.strerror}") from None

    def _filtered_read(self, path: str) -> bytes:
        """A file with a smudge filter (git-crypt, a custom driver) as a checkout has it: its blob holds
        what the clean filter made (ciphertext, say), which would compile to nothing or to errors."""
        done = self._cat_filters(path)
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise InputProblem("TI106", f"cannot read the file: its smudge filter failed on commit {self.commit[:12]}"
                               + (f" ({message[-1]})" if message else ""))
        if len(done.stdout) > MAX_FILE_BYTES:
            raise InputProblem("TI109", f"{len(done.stdout)} bytes, more than the limit of {MAX_FILE_BYTES} bytes")
        return done.stdout

    def _filtered_files(self) -> frozenset[str]:
        """The files of the revision that git gives a smudge filter other than Git LFS's (which
        _smudged reads by its pointers), a driver git is configured with. Asked once, with one
        ``git check-attr`` over every file, and only when the revision's attributes name such a
        driver: a repository without one costs a ``git config``. The attributes are those git's own
        ``cat-file --filters`` applies (the checkout's, on git before 2.40)."""
        if self._filtered is None:
            self._filtered = frozenset()
            drivers = smudge_drivers(self.root)
            if drivers and any(b"filter=" + name.encode() in attributes
                               for name in drivers for attributes in self._attribute_texts()):
                self._filtered = self._files_with_filter(drivers)
        return self._filtered

    def _attribute_texts(self) -> list[bytes]:
        """The revision's ``.gitattributes`` files that name a filter, and ``$GIT_DIR/info/attributes``."""
        try:
            # No colour whatever color.ui says: it would come between "filter=" and the driver's name.
            found = _git(self.root, "grep", "--no-color", "-h", "-F", "filter=", self.commit, "--",
                         ":(top,glob)**/.gitattributes")
        except GitFailed:  # exit 1: no match
            found = ""
        return [found.encode("utf-8", "surrogateescape"), self._info_attributes()]

    def _files_with_filter(self, drivers: set[str]) -> frozenset[str]:
        top = os.fspath(self.root)
        return frozenset(f"{top}/{relative}" for relative in files_with_filter(
            self.root, [path[len(top) + 1:] for path in self._blobs], drivers))

    def _smudged(self, path: str, pointer: bytes) -> bytes:
        """A Git LFS pointer as a checkout has it: through the file's filters (git-lfs smudge), so a
        revision compiles as its checkout does; without git-lfs, a clear TI106 rather than a parse error."""
        done = self._cat_filters(path)
        if done.returncode != 0 or done.stdout.startswith(_LFS_POINTER):
            raise InputProblem("TI106", "cannot read the file: commit "
                               f"{self.commit[:12]} holds a Git LFS pointer and git-lfs could not give its content "
                               "(install git-lfs and run 'git lfs fetch', or keep intel out of LFS)")
        if len(done.stdout) > MAX_FILE_BYTES:
            raise InputProblem("TI109", f"{len(done.stdout)} bytes, more than the limit of {MAX_FILE_BYTES} bytes")
        return done.stdout

    def lexists(self, path: str) -> bool:
        if path not in self._folder_links:
            path = self._real(path)
        return path in self._blobs or path in self._folders or path in self._links or path in self._folder_links

    def is_dir(self, path: str) -> bool:
        return self._real(path) in self._folders

    def listdir(self, path: str) -> list[str]:
        folder = self._folders.get(self._real(path))
        return sorted([*folder[0], *folder[1]]) if folder is not None else []

    def walk(self, top: str, on_problem: WalkProblem) -> Iterator[tuple[str, list[str], list[str]]]:
        real = self._real(top)
        if real not in self._folders:
            return
        pending = [real]
        while pending:
            directory = pending.pop()
            shown = directory if real == top else top + directory[len(real):]  # named as under the link
            subdirs, filenames = self._folders[directory]
            kept = []
            for name in sorted(subdirs):
                full = os.path.join(directory, name)
                if not is_utf8_name(name):
                    on_problem(os.path.join(shown, name), "TI114", "the folder name is not UTF-8; its files were not read")
                elif full in self._folder_links:
                    on_problem(os.path.join(shown, name), "TI108", "a symlink to a folder; tiops does not follow "
                                                                   "folder symlinks, so its files were not read")
                else:
                    kept.append(name)
            yield shown, kept, sorted(filenames)
            pending.extend(os.path.join(directory, name) for name in reversed(kept))

    def blob_id(self, path: str) -> str | None:
        path = self._real(path)
        entry = self._blobs.get(path)
        if entry is None and isinstance(target := self._links.get(path), str):
            entry = self._blobs[target]  # a link reads as the file it leads to
        if entry is None:
            return None
        if (path if path in self._blobs else self._links[path]) in self._filtered_files():
            return None  # read through its filter: its blob is not the bytes read (as for Git LFS below)
        blob, size = entry
        # A Git LFS pointer is read through its filters (read): its blob id is not the id of the bytes
        # read, and what was parsed or cached under it (a working tree holding the pointer itself, with
        # GIT_LFS_SKIP_SMUDGE) is not this file. None: the loader reads the file and takes the id of that.
        # Only where git-lfs is set up: elsewhere a pointer cannot be smudged, and its small files are
        # still not read when their blob is known.
        if len(_LFS_POINTER) <= size < _LFS_POINTER_LIMIT and self._smudges() and self._lfs_pointer(blob, size):
            return None
        return blob

    def _smudges(self) -> bool:
        """Whether a pointer of this revision can be smudged: git has a Git LFS filter (what `git lfs
        install` sets, globally on many machines and CI runners) and the revision's attributes give
        some path ``filter=lfs`` (what `git lfs track` writes). Both are asked once: with a filter
        alone every file under 1 KB would be read from git to tell a pointer, 2.5 s more of a
        `tiops diff` at 100k objects in a repository that keeps nothing in LFS."""
        if self._lfs_filter is None:
            self._lfs_filter = self._git_succeeds("config", "--get-regexp", r"^filter\.lfs\.(smudge|process)$") and (
                self._git_succeeds("grep", "-q", "-F", "filter=lfs", self.commit, "--", ":(top,glob)**/.gitattributes")
                or b"filter=lfs" in self._info_attributes())
        return self._lfs_filter

    def _git_succeeds(self, *args: str) -> bool:
        try:
            done = subprocess.run(["git", "-C", os.fspath(self.root), *args], capture_output=True, check=False)
        except OSError:
            return False
        return done.returncode == 0  # config --get-regexp and grep -q exit 1 when nothing matches

    def _info_attributes(self) -> bytes:
        """The repository's own attributes file (``$GIT_DIR/info/attributes``), which gitattributes(5)
        reads beside the tree's."""
        try:
            path = _git(self.root, "rev-parse", "--git-path", "info/attributes").strip()
            return (self.root / path).read_bytes() if path else b""
        except (GitFailed, OSError):
            return b""

    def _lfs_pointer(self, blob: str, size: int) -> bool:
        known = self._pointers.get(blob)
        if known is None:
            try:
                known = self._cat(blob, size).startswith(_LFS_POINTER)
            except InputProblem:
                known = True  # unreadable: read() reports it, nothing is reused for it
            self._pointers[blob] = known
        return known

    # --- the cat-file process ---

    def _cat(self, blob: str, size: int) -> bytes:
        process = self._process
        if process is None:
            process = self._process = subprocess.Popen(
                ["git", "-C", os.fspath(self.root), "cat-file", "--batch"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(blob.encode() + b"\n")
            process.stdin.flush()
            header = process.stdout.readline().split()
            if len(header) != 3 or header[1] != b"blob":
                raise InputProblem("TI106", f"cannot read the file: git has no blob {blob}")
            data = process.stdout.read(int(header[2]) + 1)[:-1]  # the content, then a newline
        except OSError as error:
            raise InputProblem("TI106", f"cannot read the file from git: {error.strerror}") from None
        return data

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.close()
            process.wait()
            process.stdout.close()

    def __enter__(self) -> GitRevision:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()
