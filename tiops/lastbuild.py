"""The last build's record: what a plan needs of a build, kept so that a plan of an unchanged repository skips it.

``tiops plan`` and ``tiops apply`` build the repository before comparing it with a
target, and on 100k objects that build (even through the warm build cache) is most of
a no-change plan (docs/performance.md, "Plan and apply"). A plan that finds nothing to
do needs only two things of the build: the bundle digest and each object's id and
object digest (:func:`tiops.stores.object_digest`, which the SQL stores keep beside
every current object). This module keeps them in ``.tiops/last-build`` together with a
description of everything the build read:

* every file under the repository root, by path and git blob id: the intel with its
  ``_defaults.yaml`` and overlays, the enrichment lock (``intel/.enrichment/``), the
  ingestion rules, ``tiops.yaml`` and anything else. Left out are only what a build
  never reads: ``.git/``, ``.tiops/`` (the store, the caches, this record), the output
  folder (``output:`` in tiops.yaml, unless the intel or rules are in it) and the files
  of the SQLite targets. The intel and rules folders are walked as well when
  tiops.yaml puts them outside the root;
* the as-of time of the ingestion rules (the HEAD commit's time, as compile uses);
* the code: the record format, tiops' version, the Python version and the installed
  tiops files (names, sizes, modification times), as the build cache's context does.

A repository holding a symbolic link or a special file is never recorded: the link's
own ``lstat`` says nothing about what it points to.

When every input equals the record's, the plan compares the target's stored object
digests with the recorded ones (:func:`tiops.plan.unchanged_plan`); any difference
there, or any changed input, and the plan is made from a full build as before. The
plan is the same either way (tests/test_lastbuild.py proves it input kind by input
kind). ``--no-cache`` / ``TIOPS_NO_CACHE=1`` neither reads nor writes the record.

Blob ids are not computed from every file every time: as git's index does, a file
whose ``lstat`` (size, modification and change times, inode) equals the one recorded
with a blob id keeps that id, unless it was modified within a second before the id was
taken ("racily clean": a second change in the same clock tick keeps the time). The
sources of known ids are the previous record and the build cache's index.

Trust: as the build cache (tiops.buildcache), the record is ``marshal`` data of plain
values behind a magic string and a SHA-256 checksum, written to a temporary name and
renamed into place; a damaged, truncated or foreign record is ignored as if absent. The
record is written only after a successful build whose files did not change while it ran.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import tiops
from tiops.config import Config
from tiops.forkwork import remove_abandoned
from tiops.inputs import file_identity, read_regular_file
from tiops.installed import package_fingerprint
from tiops.memory import write_in_pieces
from tiops.outputs import kept_out_of_git, rename_over

RECORD_PATH = Path(".tiops") / "last-build"
# Bumped whenever the layout of the record changes.
FORMAT = 1
_MAGIC = b"TIOPS-LAST-BUILD\x00"
_DIGEST_SIZE = 32
_HEX_DIGEST = 64  # an object digest: SHA-256 in hex, as the stores keep it
RACY_NS = 1_000_000_000
# Beside a SQLite store: its write-ahead log, shared memory and rollback journal.
_SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")

#: A file as recorded: size, modification time, change time, inode (its lstat) and git blob id.
FileState = tuple[int, int, int, int, str]


@dataclass(frozen=True)
class BuildInputs:
    """Everything a build read, as described in the module docstring."""

    code: str
    as_of: str | None
    files: dict[str, FileState]
    #: When the files' lstat was taken: blob ids of files modified within a second before are not reused.
    taken_ns: int

    def same_as(self, other: BuildInputs) -> bool:
        """The same code, as-of time and files with the same contents (their lstat may differ)."""
        if self.code != other.code or self.as_of != other.as_of or len(self.files) != len(other.files):
            return False
        theirs = other.files
        for path, state in self.files.items():
            known = theirs.get(path)
            if known is None or known[4] != state[4] or not state[4]:
                return False
        return True


@dataclass(frozen=True)
class BuildRecord:
    """A build's inputs and what a plan needs of its outputs."""

    inputs: BuildInputs
    bundle_digest: str
    #: Every object of the bundle, in bundle order.
    objects: RecordedObjects


@dataclass(frozen=True)
class RecordedObjects:
    """What a plan compares of each compiled object (tiops.plan.unchanged_plan), one list per property.

    Lists of strings rather than an object per compiled object: 100k of them took as
    long to make as the rest of reading the record.
    """

    ids: list[str]
    #: tiops.stores.object_digest of each object's canonical JSON.
    object_digests: list[str]
    #: tiops.stores.content_digest, where the plan that recorded it had it at hand, else ''.
    content_digests: list[str]
    #: ``modified``, or '' without one.
    modified: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def code_key() -> str:
    """What besides the files changes a build's result: this record's format, tiops and Python, the installed code."""
    return hashlib.sha256(marshal.dumps((FORMAT, tiops.__version__, sys.version, package_fingerprint()))).hexdigest()


def blob_id(content: bytes) -> str:
    """The git blob id of ``content`` (what ``git hash-object`` prints; tiops.buildcache.blob_id)."""
    digest = hashlib.sha1(b"blob %d\0" % len(content), usedforsecurity=False)
    digest.update(content)
    return digest.hexdigest()


#: Known blob ids: path -> recorded state, and the time from which recorded modification times are racy.
KnownBlobs = tuple[Mapping[str, Sequence[Any]], int]


def current_inputs(root: Path, config: Config, as_of: str | None, known: Iterable[KnownBlobs] = (),
                   more: Callable[[], KnownBlobs | None] | None = None, *,
                   against: BuildInputs | None = None, listing: Listing | None = None) -> BuildInputs | None:
    """The inputs of a build of ``root`` now; None when they cannot be recorded (a link, an unreadable file).

    Blob ids come from ``known`` where a file's lstat allows. While the inputs may still
    equal ``against`` (the record: a plan without a build is still possible, worth some
    reading for), a file ``known`` does not know is looked up in ``more()`` (called once:
    reading it has a cost) or hashed. Once they cannot, the rest is left pending (blob id
    '') for :func:`complete_inputs` after the build, which finds most of them in the
    build cache's index that the build has just written.

    ``listing``: the files' lstats taken already (:func:`listed_against`), and when.
    """
    if listing is None:
        taken_ns = time.time_ns()
        listed = list_files(root, config)
    else:
        taken_ns, listed = listing.taken_ns, listing.files
    code = code_key()
    if listed is None:
        return None
    theirs = against.files if against is not None else {}
    matching = (against is not None and against.code == code and against.as_of == as_of
                and len(against.files) == len(listed))
    sources = list(known)
    files: dict[str, FileState] = {}
    first, racy_from = sources[0] if sources else ({}, 0)
    for path, info in listed.items():
        # file_identity(info), inline: this runs once per file.
        state = (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_dev << 64 | info.st_ino)
        earlier = first.get(path)  # the usual source, looked at inline: this runs once per file
        blob: str | None
        if (earlier is not None and len(earlier) == 5 and earlier[1] == state[1] and tuple(earlier[:4]) == state
                and state[1] < racy_from and isinstance(earlier[4], str)):
            blob = earlier[4]
        else:
            blob = _known_blob(sources[1:], path, state)
        if blob is None and more is not None and matching:
            extra, more = more(), None
            if extra is not None:
                sources.append(extra)
                blob = _known_blob(sources[-1:], path, state)
        if blob is None:
            if matching:
                try:
                    blob = blob_id(_read(_full_path(root, path)))
                except OSError:
                    return None
            else:
                blob = ""  # pending: complete_inputs
        if matching:
            recorded = theirs.get(path)
            matching = recorded is not None and recorded[4] == blob
        files[path] = (*state, blob)
    return BuildInputs(code, as_of, files, taken_ns)


def complete_inputs(root: Path, inputs: BuildInputs, known: Iterable[KnownBlobs] = ()) -> BuildInputs | None:
    """``inputs`` with every pending blob id found in ``known`` or by hashing the file; None if one cannot be read.

    Call it before :func:`unchanged_during`, so that a file hashed here is known to be
    the one whose lstat was taken before the build.
    """
    sources = list(known)
    files = dict(inputs.files)
    for path, state in inputs.files.items():
        if state[4]:
            continue
        blob = _known_blob(sources, path, state[:4])
        if blob is None:
            try:
                blob = blob_id(_read(_full_path(root, path)))
            except OSError:
                return None
        files[path] = (*state[:4], blob)
    return BuildInputs(inputs.code, inputs.as_of, files, inputs.taken_ns)


def _known_blob(sources: Sequence[KnownBlobs], path: str, state: Sequence[int]) -> str | None:
    for recorded, racy_from in sources:
        earlier = recorded.get(path)
        if (earlier is not None and len(earlier) == 5 and tuple(earlier[:4]) == tuple(state)
                and state[1] < racy_from and isinstance(earlier[4], str) and earlier[4]):
            return earlier[4]
    return None


def build_cache_blobs(root: Path) -> KnownBlobs | None:
    """The blob ids the build cache's index (tiops.buildcache) remembers for the intel files, if it can be read."""
    from tiops.buildcache import CACHE_DIR, BuildCache, context_key

    cache = BuildCache(root / CACHE_DIR, context_key(root))
    # The index BuildCache.open trusts, with the delta a later build wrote beside it and the bound
    # that goes with them, read without the entries.
    index, racy_from = cache._read_index()
    if not racy_from:
        return None
    return index, racy_from


def unchanged_during(root: Path, config: Config, inputs: BuildInputs) -> bool:
    """Whether every file still has the lstat it had when ``inputs`` were taken (nothing was edited meanwhile)."""
    listed = list_files(root, config)
    if listed is None or len(listed) != len(inputs.files):
        return False
    for path, info in listed.items():
        state = inputs.files.get(path)
        if state is None or state[:4] != (info.st_size, info.st_mtime_ns, info.st_ctime_ns, file_identity(info)):
            return False
    return True


class Listing(NamedTuple):
    """The files a build may read with their lstats (:func:`list_files`; None: one is a link or special
    file), when they were taken, and whether each is the file a record describes (:func:`listed_against`)."""

    taken_ns: int
    files: dict[str, os.stat_result] | None
    as_recorded: bool


def list_files(root: Path, config: Config) -> dict[str, os.stat_result] | None:
    """Every file a build of ``root`` may read, by path, with its lstat; None when one is a link or special file."""
    return _listed(root, config, None, 0)[0]


def listed_against(root: Path, config: Config, recorded: BuildInputs) -> Listing:
    """:func:`list_files` with, in the same pass, whether every file listed has the very lstat ``recorded``
    holds for it, taken before its racy bound and with a blob id, and no other file is recorded.

    Then the record holds for these files without a blob id worked out: the test :func:`current_inputs`
    makes of each file against the record, made as the files are listed rather than after. A no-change
    plan asks it of every file; at 88k files the second pass took 0.1 s of the 0.37 s.
    """
    taken_ns = time.time_ns()
    files, as_recorded = _listed(root, config, recorded.files, recorded.taken_ns - RACY_NS)
    return Listing(taken_ns, files, as_recorded and files is not None and len(files) == len(recorded.files))


def _listed(root: Path, config: Config, recorded: Mapping[str, FileState] | None,
            racy_from: int) -> tuple[dict[str, os.stat_result] | None, bool]:
    root_text = os.fspath(root)
    skipped = {".git", ".tiops"}
    store_files = frozenset(_store_files(root, config))
    output = _inside(root, config.root / config.output_dir)
    read = [inside for inside in (_inside(root, config.intel_path), _inside(root, config.rules_path))
            if inside is not None]
    if output is not None and not any(_overlaps(output, folder) for folder in read):
        skipped.add(output)
    found: dict[str, os.stat_result] = {}
    walk = _Walk(found, recorded, racy_from)
    if not walk.walk(root_text, "", skipped, store_files):
        return None, False
    for folder in (config.intel_path, config.rules_path):
        if _inside(root, folder) is None and os.path.isdir(folder):  # outside the root: keyed by absolute path
            absolute = os.path.abspath(folder)
            if not walk.walk(absolute, absolute + "/", set()):
                return None, False
    return found, walk.as_recorded


class _Walk:
    """Lists files into ``found``; with ``recorded``, also tells whether each is the file recorded (:func:`listed_against`)."""

    def __init__(self, found: dict[str, os.stat_result], recorded: Mapping[str, FileState] | None,
                 racy_from: int) -> None:
        self.found = found
        self.recorded = recorded
        self.racy_from = racy_from
        self.as_recorded = recorded is not None

    def walk(self, top: str, prefix: str, skipped: set[str], skipped_files: frozenset[str] = frozenset()) -> bool:
        """False when a link or special file is met, or a folder cannot be listed. ``skipped``: paths left
        out, whatever they are; ``skipped_files``: paths left out unless they are folders (the stores')."""
        found, recorded, racy_from = self.found, self.recorded, self.racy_from
        pending = [(top, prefix)]
        while pending:
            directory, relative = pending.pop()
            try:
                entries = os.scandir(directory)
            except OSError:
                return False
            with entries:
                for entry in entries:
                    path = relative + entry.name
                    if path in skipped:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        pending.append((entry.path, path + "/"))
                    elif path in skipped_files:
                        continue  # a store's file: a folder of that name is walked all the same
                    elif entry.is_file(follow_symlinks=False):
                        try:
                            info = found[path] = entry.stat(follow_symlinks=False)
                        except OSError:
                            return False
                        if self.as_recorded:
                            # current_inputs' test of a file against its record, inline: this runs once per file.
                            earlier = recorded.get(path)  # type: ignore[union-attr]
                            if not (earlier is not None and len(earlier) == 5 and earlier[1] == info.st_mtime_ns
                                    and earlier[1] < racy_from and earlier[0] == info.st_size
                                    and earlier[2] == info.st_ctime_ns
                                    and earlier[3] == info.st_dev << 64 | info.st_ino  # file_identity
                                    and isinstance(earlier[4], str) and earlier[4]):
                                self.as_recorded = False
                    else:
                        return False  # a symbolic link or a special file
        return True


def _store_files(root: Path, config: Config) -> list[str]:
    """The SQLite targets' files inside the root: an apply writes them, a build never reads them."""
    paths: list[str] = []
    for entry in config.targets.values():
        if isinstance(entry, Mapping) and entry.get("type") == "sqlite":
            inside = _inside(root, root / str(entry.get("path", ".tiops/store.sqlite")))
            if inside is not None:
                paths.extend(inside + suffix for suffix in _SQLITE_COMPANIONS)
    return paths


def _inside(root: Path, path: Path) -> str | None:
    """``path`` relative to ``root`` in the walk's form (a/b), or None when it is not below it."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if relative == "." or relative == ".." or relative.startswith("../"):
        return None if relative != "." else ""
    return relative.replace(os.sep, "/")


def _overlaps(a: str, b: str) -> bool:
    return a == b or a == "" or b == "" or a.startswith(b + "/") or b.startswith(a + "/")


def _full_path(root: Path, path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(os.fspath(root), path)


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def read_record(root: Path) -> BuildRecord | None:
    """The record in ``root``'s ``.tiops/``, or None when absent, damaged or of another format."""
    # A FIFO in the record's place would block a plain read for ever, and a link to
    # /dev/zero read until memory runs out: only a regular file, not followed, is read.
    raw = read_regular_file(root / RECORD_PATH)
    if raw is None:
        return None
    head = len(_MAGIC)
    if raw[:head] != _MAGIC or len(raw) < head + _DIGEST_SIZE:
        return None
    payload = raw[head + _DIGEST_SIZE:]
    if hashlib.sha256(payload).digest() != raw[head:head + _DIGEST_SIZE]:
        return None
    try:
        version, code, as_of, files, taken_ns, bundle, ids, digests, contents, modified = marshal.loads(payload)
    except (ValueError, TypeError, EOFError):
        return None
    if (version != FORMAT or not isinstance(code, str) or not (as_of is None or isinstance(as_of, str))
            or not isinstance(files, dict) or not isinstance(taken_ns, int) or not isinstance(bundle, str)
            or not all(isinstance(text, str) for text in (ids, digests, contents, modified))):
        return None
    for state in files.values():
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[4], str)):
            return None
    # The objects as four strings (one value a line; object digests back to back): read in
    # one go rather than as 100k tuples of four.
    id_list = ids.split("\n") if ids else []
    content_list = contents.split("\n") if ids else []
    modified_list = modified.split("\n") if ids else []
    count = len(id_list)
    if len(digests) != _HEX_DIGEST * count or len(content_list) != count or len(modified_list) != count:
        return None
    objects = RecordedObjects(id_list, [digests[at:at + _HEX_DIGEST] for at in range(0, len(digests), _HEX_DIGEST)],
                              content_list, modified_list)
    return BuildRecord(BuildInputs(code, as_of, files, taken_ns), bundle, objects)


def write_record(root: Path, record: BuildRecord) -> None:
    """Keep ``record`` in ``root``'s ``.tiops/``, atomically. Never raises for I/O: the record is optional."""
    import tempfile  # only a build that changed something writes

    inputs = record.inputs
    if any(not state[4] for state in inputs.files.values()):
        return  # a blob id still pending (complete_inputs): the record would not describe the build
    objects = record.objects
    count = len(objects.ids)
    if (len(objects.object_digests) != count or len(objects.content_digests) != count or len(objects.modified) != count
            or any("\n" in text for text in (*objects.ids, *objects.modified))
            or any(len(digest) != _HEX_DIGEST for digest in objects.object_digests)
            or any(len(digest) not in (0, _HEX_DIGEST) for digest in objects.content_digests)):
        return  # not ids, timestamps and SHA-256 digests as a store keeps them: nothing a plan could compare
    payload = marshal.dumps((FORMAT, inputs.code, inputs.as_of, inputs.files, inputs.taken_ns, record.bundle_digest,
                             "\n".join(objects.ids), "".join(objects.object_digests),
                             "\n".join(objects.content_digests), "\n".join(objects.modified)))
    target = root / RECORD_PATH
    try:
        kept_out_of_git(target.parent)  # .tiops/
        # The writer's process id ends the name: the record of a build killed while writing it (kill -9)
        # is removed by the next one instead of staying in .tiops/ for good (tiops.forkwork.remove_abandoned).
        remove_abandoned(target.parent, f".{target.name}.", ".tmp")
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".{os.getpid()}.tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(_MAGIC + hashlib.sha256(payload).digest())
                write_in_pieces(out.write, payload)
            rename_over(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        return  # a read-only checkout plans as well, only without the record
