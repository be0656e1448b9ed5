"""Compile a git revision (or the working tree) for `tiops diff` and the versioning checks.

A revision is read straight from git objects (tiops.gitrepo.GitRevision: no checkout,
no temporary files) and goes through the normal pipeline (load, validate, ingestion
rules, compile), so what is compared is exactly what `tiops compile` would have
written at that commit. Findings name the files where a checkout would have them.

Comparing two revisions (:func:`compile_pair`) does the work of a file once: files whose
blob, path and defaults are the same on both sides load to the very same objects, which
are then checked, compiled and described once (:class:`SharedWork`); read from git, such
a file is not even read. Any other file whose content was seen is not parsed again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from tiops.compile import blocking_errors, compiled_objects
from tiops.config import CONFIG_FILE
from tiops.errors import TiopsError, UsageError
from tiops.filesource import FileSource, SharedParses
from tiops.findings import Finding, Severity
from tiops.gitrepo import (
    GitRevision,
    GitUnavailable,
    NoCommitYet,
    UntrustedRepository,
    fork_point,
    is_shallow,
    names_range,
    resolve_revision,
)
from tiops.load import IntelObject, Repo, load_repo
from tiops.locate import kept_positions
from tiops.memory import paused_gc
from tiops.progress import Progress, no_progress
from tiops.rules import AsOf, RulesInvalid, apply_repo_rules, resolve_as_of
from tiops.rules.conditions import parse_timestamp
from tiops.validate import validate_repo

WORKING_TREE = "working tree"
_Value = TypeVar("_Value")


@dataclass(frozen=True)
class Provenance:
    """Where an object was written, and what shaped its compiled form besides its own file."""

    file: str
    path: tuple[str | int, ...]
    source: str | None
    defaults_files: tuple[str, ...]
    defaulted: tuple[str, ...]  # properties that came from _defaults.yaml
    rules: tuple[str, ...]  # ingestion rules that changed the object (in the order they ran)
    declared_by: str | None = None
    imported_folder: str | None = None  # partner intel: the source folder `tiops import` wrote it into
    overlay_file: str | None = None
    overlaid: tuple[str, ...] = ()  # properties whose compiled value comes from overlay_file


class ByObject(Mapping[str, _Value]):
    """id -> a value worked out from the object with that id, when first asked for.

    A review reads the authored form and provenance of the few objects that changed; working
    them out for each of 100k objects on both sides took a tenth of a diff's time.
    """

    def __init__(self, objects: dict[str, IntelObject], make: Callable[[IntelObject], _Value]) -> None:
        self._objects = objects
        self._make = make
        self._made: dict[str, _Value] = {}

    def __getitem__(self, object_id: str) -> _Value:
        try:
            return self._made[object_id]
        except KeyError:  # not made yet; a KeyError from the objects is the mapping's own
            made = self._made[object_id] = self._make(self._objects[object_id])
            return made

    def __iter__(self) -> Iterator[str]:
        return iter(self._objects)

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, object_id: object) -> bool:
        return object_id in self._objects


@dataclass
class CompiledRevision:
    """One revision compiled: the bundle's objects and, per id, what the authors wrote and where."""

    label: str
    commit: str | None
    objects: list[dict[str, Any]]
    # id -> properties as written (with _defaults.yaml, before rules; partner intel without its overlay)
    authored: Mapping[str, dict[str, Any]]
    provenance: Mapping[str, Provenance]
    dropped_by_rules: dict[str, tuple[str, ...]] = field(default_factory=dict)  # id -> rules that dropped it
    # id -> the object as loaded, before any rule (overlay and defaults in): what a rule saw
    loaded: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    error_count: int = 0
    repo: Repo | None = None
    # Of error_count, those that say a revision read from git has no intel folder at all (TI107 at the
    # intel path: one from before the intel was added, which compiles to nothing).
    missing_intel_errors: int = 0
    config_error: Finding | None = None  # the first error in its tiops.yaml, which then reads as every default
    # The errors of its ingestion rules, when it was compiled without them (a base: compile_revision's as_base).
    rule_errors: int = 0


@dataclass
class SharedWork:
    """What the two sides of a comparison share, by object identity (objects are never changed after loading)."""

    parses: SharedParses = field(default_factory=SharedParses)
    checked: dict[int, tuple[IntelObject, list[Finding]]] = field(default_factory=dict)
    compiled: dict[int, tuple[IntelObject, dict[str, Any]]] = field(default_factory=dict)
    described: dict[int, tuple[IntelObject, Provenance]] = field(default_factory=dict)
    # The working tree loaded through the build cache, and the revision's files taken from it.
    cached: Any = None  # tiops.buildcache.CachedFiles, set by the working tree's compile

    def provenance(self, obj: IntelObject, rules: tuple[str, ...]) -> Provenance:
        earlier = self.described.get(id(obj))
        if earlier is None or earlier[0] is not obj or earlier[1].rules != rules:
            earlier = self.described[id(obj)] = (obj, _provenance(obj, rules))
        return earlier[1]


def compile_pair(root: Path, base: str, head: str | None, *, progress: Progress = no_progress,
                 cache: bool = False) -> tuple[CompiledRevision, CompiledRevision]:
    """``base`` and ``head`` (None: the working tree) compiled for comparing, each file content parsed once.

    Both revisions are resolved first, so a wrong name fails before any work. The head is
    compiled first: a working tree is read from disk anyway, and the base then reads
    from git only the files whose blobs the head did not have.

    ``cache`` (with the working tree as head): the working tree is loaded through the build
    cache in ``.tiops/build-cache/`` (tiops.buildcache) and the base's files with an entry
    there (or a working-tree twin) are neither read, parsed nor checked; the base's
    reference check resolves the references kept with them. The result is the same.
    """
    for rev in (base, head):
        if rev is not None:
            _resolve(root, rev)
    shared = SharedWork()
    # Two revisions' objects, compiled forms and descriptions are acyclic data that lives to the
    # end: the collector would only rescan it as it piles up (about a second of a 100k-object
    # diff's seven, docs/performance.md "tiops diff HEAD~1").
    with paused_gc():
        if cache and head is None:
            after = _compile_working_tree_cached(root, progress, shared)
            try:
                with kept_positions(shared.cached.cache):
                    before = compile_revision(root, base, progress=progress, shared=shared, as_base=True)
            finally:
                shared.cached.cache.settle()
                shared.cached.cache.save()
            return before, after
        after = compile_revision(root, head, progress=progress, shared=shared)
        if head is not None and after.config_error is not None:
            # As the working tree's is refused (tiops.config.usable_config): compiled as every default,
            # the head would be compared from another intel folder, with other rules, as if that were its change.
            where = after.config_error.location
            place = f"{where.file}:{where.line}" if where.line else where.file
            raise TiopsError(f"{after.label}: {place}: {after.config_error.message}; nothing was compared",
                             hint=f"Fix tiops.yaml in {head} ('tiops validate' on its checkout shows every finding).")
        before = compile_revision(root, base, progress=progress, shared=shared, as_base=True)
        return before, after


class BaseChoice(NamedTuple):
    """The revision a change is checked against for ``--base BASE``, and why, when it is not BASE."""

    revision: str
    note: str | None


def change_base(root: Path, base: str) -> BaseChoice:
    """The revision a change of the working tree is checked against for ``--base BASE``: BASE itself,
    or, when HEAD does not contain BASE (the branch is behind it), their merge base, so objects
    changed, added or deleted on BASE since the branch left it are not taken for the branch's own
    changes (``git diff BASE...HEAD``, as a pull request shows it); with a note saying so."""
    sha, _ = _resolve(root, base)
    merge_base = fork_point(root, sha)
    if merge_base is None:
        return BaseChoice(base, None)
    return BaseChoice(merge_base, f"HEAD does not contain {base} ({sha[:7]}); comparing with the commit where this "
                                  f"branch left it, {merge_base[:7]} (merge base), as the pull request's change")


def _compile_working_tree_cached(root: Path, progress: Progress, shared: SharedWork) -> CompiledRevision:
    from tiops.buildcache import (  # imported here: it imports the checks
        CachedFiles,
        load_repo_cached,
    )

    loaded = load_repo_cached(root, progress=progress, record_files=True, settle=False)
    shared.cached = CachedFiles(loaded, shared.parses)
    with kept_positions(loaded.cache):
        findings = validate_repo(loaded.repo, progress=progress, prechecked=loaded.prechecked())
    return _compile_loaded(loaded.repo, findings, WORKING_TREE, None, resolve_as_of(root), shared)


def compile_revision(root: Path, rev: str | None, *, progress: Progress = no_progress,
                     shared: SharedWork | None = None, as_base: bool = False) -> CompiledRevision:
    """Compile ``rev`` of the repository at ``root`` (None: the working tree as it is on disk).

    ``shared``: the work of an earlier call, to reuse (see the module's doc). ``as_base``: ``rev`` is
    the base of a comparison, compiled without its ingestion rules when they have errors (the change
    compared may be the one that mends them; :attr:`CompiledRevision.rule_errors` counts them), as a
    base with broken object files is compiled without those. Another revision's are refused.
    """
    if rev is None:
        return _compile_tree(root, WORKING_TREE, None, resolve_as_of(root), progress, None, shared)
    root = root.resolve()  # the revision's files are looked up by the paths the load stage builds under root
    sha, committed = _resolve(root, rev)
    try:
        revision = GitRevision(root, sha)
    except LookupError as error:
        raise UsageError(f"cannot read revision {rev!r}: {error}", hint=_revision_hint(root, rev)) from error
    with revision:
        # The revision's own commit time is its as-of: the same moment `tiops compile` used there.
        as_of = AsOf(parse_timestamp(committed), "head-commit")
        compiled = _compile_tree(root, _label(rev, sha), sha, as_of, progress, revision, shared, as_base)
    compiled.repo = None  # its files were read from git objects, through a reader that is now closed
    return compiled


def _resolve(root: Path, rev: str) -> tuple[str, str]:
    try:
        return resolve_revision(root, rev)
    except LookupError as error:
        raise UsageError(f"cannot read revision {rev!r}: {error}", hint=_revision_hint(root, rev, error)) from error


def _revision_hint(root: Path, rev: str, error: LookupError | None = None) -> str:
    if isinstance(error, GitUnavailable):
        return "Install git, or put it on PATH: revisions are read from the repository through it."
    if isinstance(error, NoCommitYet):
        return "Commit the intel first (git add -A && git commit): a revision names a commit."
    if isinstance(error, UntrustedRepository):
        return ("The checkout belongs to another user than the one running tiops (in a CI container, often): trust "
                "it as git says, git config --global --add safe.directory FOLDER with the folder git names.")
    if names_range(rev):
        return ("Name one commit: for A..B that is A, and for A...B, what a pull request shows, the commit "
                "where B left A: $(git merge-base A B). tiops diff takes the head as a second argument: "
                "tiops diff A B.")
    if is_shallow(root):
        return ("This is a shallow clone: fetch the history the revision needs (git fetch --unshallow; in CI, "
                "fetch-depth: 0 in actions/checkout, GIT_DEPTH: 0 in GitLab CI).")
    return "Name a commit, branch or tag of this git repository, e.g. origin/main or HEAD~1."


def _label(rev: str, sha: str) -> str:
    """How a revision is named in the diff's heading: as given, with its short sha; a sha (or an
    abbreviation of it) given as the revision, once and short ("35f3acb", not the 40 digits and then
    "(35f3acb)")."""
    if len(rev) >= 4 and sha.startswith(rev.lower()):
        return sha[:7]
    return f"{rev} ({sha[:7]})"


def _compile_tree(root: Path, label: str, commit: str | None, as_of: AsOf, progress: Progress,
                  source: FileSource | None, shared: SharedWork | None, as_base: bool = False) -> CompiledRevision:
    cached = shared.cached if shared is not None and source is not None else None
    if cached is not None and cached.fits(root, source):
        repo = load_repo(root, progress=progress, source=source, parsed=cached)
        prechecked = cached.prechecked(repo)
    else:
        repo = load_repo(root, progress=progress, source=source, parsed=shared.parses if shared is not None else None)
        prechecked = None
    findings = validate_repo(repo, progress=progress, prechecked=prechecked,
                             checked=shared.checked if shared is not None else None)
    compiled = _compile_loaded(repo, findings, label, commit, as_of, shared, as_base=as_base)
    intel = os.fspath(repo.config.intel_path)
    if source is not None and not source.lexists(intel):
        where = os.path.relpath(intel, os.fspath(root))
        compiled.missing_intel_errors = sum(1 for finding in blocking_errors(findings)
                                            if finding.code == "TI107" and finding.location.file == where)
    compiled.config_error = next((finding for finding in repo.findings if finding.location.file == CONFIG_FILE
                                  and finding.severity is Severity.ERROR), None)
    return compiled


def _compile_loaded(repo: Repo, findings: list[Finding], label: str, commit: str | None, as_of: AsOf,
                    shared: SharedWork | None, as_base: bool = False) -> CompiledRevision:
    """``as_base``: as for :func:`compile_revision`."""
    rule_errors = 0
    try:
        outcome, _rules, _as_of = apply_repo_rules(repo, as_of, record=True)  # the per-object trace
    except RulesInvalid as invalid:
        if commit is None:
            raise  # the working tree's: 'tiops validate' shows them
        if not as_base:
            raise TiopsError(f"{label}: {invalid}; nothing was compared",
                             hint=f"Check it out (git switch --detach {commit[:12]}) and run 'tiops validate' "
                                  "to see them.") from None
        rule_errors = len(invalid.findings)
        outcome, _rules, _as_of = apply_repo_rules(repo, as_of, record=True, skip_invalid=True)
    changed_by: dict[str, tuple[str, ...]] = {
        object_id: tuple(a.rule for a in applications if a.changes)
        for object_id, applications in outcome.applied.items()
    }
    dropped_by = {
        object_id: tuple(a.rule for a in outcome.applied.get(object_id, ()) if a.dropped) or (reason,)
        for object_id, reason in outcome.dropped.items()
    }
    objects = compiled_objects(repo, rules=outcome, built=shared.compiled if shared is not None else None)
    describe = shared.provenance if shared is not None else _provenance
    by_id = repo.by_id()
    return CompiledRevision(
        label=label,
        commit=commit,
        objects=objects,
        authored=ByObject(by_id, _authored),
        provenance=ByObject(by_id, lambda obj: describe(obj, changed_by.get(obj.id, ()))),
        dropped_by_rules=dropped_by,
        loaded=ByObject(by_id, _loaded_data),
        error_count=len(blocking_errors(findings)),
        repo=repo,
        rule_errors=rule_errors,
    )


def _loaded_data(obj: IntelObject) -> dict[str, Any]:
    return obj.data


def _authored(obj: IntelObject) -> dict[str, Any]:
    """What the authors wrote. For partner intel that is the partner's version: overlay values are,
    like ingestion rules, part of the build, and `tiops apply` gives the compiled change a later
    ``modified`` (docs/import.md), so they are not an edit of the partner's object.
    """
    if not obj.overlaid_properties or obj.imported_data is None:
        return obj.data
    data = dict(obj.data)
    for name in obj.overlaid_properties:
        if name in obj.imported_data:
            data[name] = obj.imported_data[name]
        else:
            data.pop(name, None)
    return data


def _provenance(obj: IntelObject, rules: tuple[str, ...]) -> Provenance:
    return Provenance(
        file=obj.file,
        path=tuple(obj.path),
        source=obj.source,
        defaults_files=obj.defaults_files,
        defaulted=obj.defaulted_properties,
        rules=rules,
        declared_by=obj.declared_by,
        imported_folder=obj.imported_folder,
        overlay_file=obj.overlay_file,
        overlaid=obj.overlaid_properties,
    )
