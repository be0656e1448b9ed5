"""The whole pipeline as one call: load, validate, apply ingestion rules, compile."""

from __future__ import annotations

import array
import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from tiops.compile import (
    blocking_errors,
    bundle_objects,
    serialize_bundle,
    write_bundle,
    write_line_runs,
)
from tiops.enrich.attach import repository_enrichment
from tiops.enrich.lock import kept_checks, lock_digest
from tiops.errors import TiopsError
from tiops.findings import Finding, sort_findings
from tiops.forkwork import resident_bytes, room_for_a_copy
from tiops.gitrepo import head_read_ahead
from tiops.load import IntelObject, Repo, fork_helper, helpers_wanted, load_repo
from tiops.locate import kept_positions, resolve_locations
from tiops.memory import hold_until_exit, paused_gc
from tiops.progress import Progress, no_progress
from tiops.rules import (
    AsOf,
    apply_repo_rules,
    build_metadata,
    per_object_rules,
    resolve_as_of,
    rule_drops,
)
from tiops.rules.trace import all_traces
from tiops.validate import validate_repo
from tiops.validate.objects import check_object

if TYPE_CHECKING:  # imported where used: only cached builds need them
    from tiops.buildcache import BuildCache, CachedLoad
    from tiops.buildcache.indexed import IndexedLoad
    from tiops.buildcache.store import PendingRecord
    from tiops.bundlereuse import EntryMark, PreviousBundle, SinceLoad, Spliced
    from tiops.compile import WrittenBundle
    from tiops.config import Config
    from tiops.plan import CompiledLines
    from tiops.rules.engine import RulesOutcome
    from tiops.rules.model import RuleSet

_T = TypeVar("_T")


class ValidationFailed(TiopsError):
    """Compilation refused because validation found errors."""

    def __init__(self, findings: list[Finding]) -> None:
        errors = blocking_errors(findings)
        super().__init__(
            f"validation found {len(errors)} error(s); nothing was compiled",
            hint="Run 'tiops validate' to see every finding.",
        )
        self.findings = findings


class BundleLines(NamedTuple):
    """Where each object line of a bundle just written starts, and its key (tiops.bundlereuse)."""

    keys: list[str]  # type NUL id of each line, in order
    starts: Sequence[int]  # offset of each line in the file
    bundle_id: str  # the bundle id its head holds (from its line groups' digests: tiops.compile.bundle_id_of)
    size: int


@dataclass(frozen=True)
class BuildResult:
    bundle: bytes  # empty when the bundle was streamed to bundle_file instead (build(output=...))
    object_count: int
    findings: list[Finding]
    metadata: dict[str, Any] = field(default_factory=dict)  # dist/build.json: as-of time, commit, rules
    traces: list[dict[str, Any]] | None = None  # per-object rule traces, when asked for
    bundle_file: Path | None = None
    lines: BundleLines | None = None  # with a bundle record kept (tiops.bundlereuse): its lines


def load_and_validate(root: Path, *, progress: Progress = no_progress, cache: bool = False) -> tuple[Repo, list[Finding]]:
    """Load and validate the repository at ``root``: what every command that compiles does first.

    ``cache``: reuse and update the build cache in ``.tiops/build-cache/`` (tiops.buildcache);
    the repository and findings are the same either way. Call it with the collector paused
    (tiops.memory.paused_gc), as the callers' whole pipeline is.
    """
    if not cache:
        repo = load_repo(root, progress=progress, check=check_object)
        return repo, validate_repo(repo, progress=progress)
    from tiops.buildcache import (  # only cached builds need them
        StaleEntry,
        has_entries,
        load_repo_indexed,
    )
    from tiops.buildcache.partnerlocks import PartnerLocks
    from tiops.validate import validate_indexed

    if not has_entries(root):
        return _load_and_validate_cached(root, progress)
    indexed = load_repo_indexed(root, progress=progress)

    def checked() -> list[Finding]:
        # The repository-wide checks read only the objects they may report on (tiops.validate.indexed).
        locks = PartnerLocks(indexed.cache)
        findings = validate_indexed(indexed.repo, indexed.files, progress=progress, read_lock=locks)[0]
        locks.save()
        for file in indexed.files:
            indexed.repo.objects.extend(file.objects()[0])
        return findings

    try:
        return indexed.repo, _checked_and_saved(indexed.cache, checked)
    except StaleEntry:
        pass  # an entry that cannot be read back: loaded the whole way below, which parses its file again
    return _load_and_validate_cached(root, progress)


def _checked_and_saved(cache: BuildCache, check: Callable[[], _T]) -> _T:
    """``check()`` (validation) with the enrichment lock's verdicts kept by the build cache
    (tiops.enrich.lock.kept_checks), then the cache saved: also when validation finds errors, so
    the next run after a fix reuses the rest. When ``check`` raises (an entry that cannot be read
    back, StaleEntry) nothing is saved: the caller builds another way."""
    checked = _checked(cache, check)
    cache.save()
    return checked


def _checked(cache: BuildCache, check: Callable[[], _T]) -> _T:
    """``check()`` with the enrichment lock's verdicts and the findings' positions kept by the build cache."""
    with kept_checks(cache), kept_positions(cache):
        return check()


def _load_and_validate_cached(root: Path, progress: Progress) -> tuple[Repo, list[Finding]]:
    """Load through the build cache with every object in memory (a first build, or an entry that cannot be read)."""
    from tiops.buildcache import load_repo_cached

    loaded = load_repo_cached(root, progress=progress)
    findings = _checked_and_saved(loaded.cache, lambda: validate_repo(loaded.repo, progress=progress,
                                                                      prechecked=loaded.prechecked()))
    return loaded.repo, findings


def build(root: Path, *, progress: Progress = no_progress, as_of: str | None = None,
          trace: bool = False, output: Path | None = None, cache: bool = False,
          record: str | None = None) -> BuildResult:
    """Load, validate and compile the repository at ``root``.

    ``as_of`` overrides the as-of time of ingestion rules (default: the HEAD commit time).
    ``cache``: reuse and update the build cache in ``.tiops/build-cache/`` (tiops.buildcache),
    so that only changed files are parsed and checked again; the result is the same.
    Raises :class:`ValidationFailed` (a :class:`TiopsError`) when there are errors.
    With ``output``, the bundle is streamed to that file rather than returned
    (a million objects' bundle would otherwise sit in memory; tiops.compile.write_bundle).
    ``record``: the name the bundle's record is kept under in the build cache (default
    tiops.bundlereuse.RECORD, the compile's; a plan keeps its own bundle: :func:`compiled_lines`).
    """
    # One pipeline: the collector would rescan every loaded object (tiops.memory). A cold
    # build has the enrichment lock's work done beside it (tiops.enrich.beside).
    with paused_gc(), contextlib.ExitStack() as beside:
        beside.enter_context(head_read_ahead(root))  # HEAD's commit found beside the build (build.json)
        if cache and not trace:
            if not _has_cache_entries(root):
                # Without a cache yet every file is parsed either way, and the plain route
                # holds less than file indexes (tiops.buildcache.has_entries).
                beside.enter_context(_lock_work_beside(root))
                return _build_first(root, progress, as_of, output, record)
            warm = _build_through_indexes(root, progress, as_of, output, record)
            if warm is not None:
                return warm
        if not cache:
            beside.enter_context(_lock_work_beside(root))
        repo, findings = load_and_validate(root, progress=progress, cache=cache)
        if blocking_errors(findings):
            raise ValidationFailed(findings)
        outcome, rule_set, moment = apply_repo_rules(repo, resolve_as_of(root, as_of), record=trace)
        findings = [*findings, *_dropped_references(repo.root, repo.objects, outcome)]
        objects = bundle_objects(repo, rules=outcome)
        if output is None:
            bundle = serialize_bundle(objects)
            bundle_sha256 = hashlib.sha256(bundle).hexdigest()
        else:
            bundle, bundle_sha256 = b"", write_bundle(objects, output).sha256
        # Within the block: HEAD's commit is the one read ahead, which the as-of time came from too.
        metadata = {**build_metadata(root, outcome, rule_set, moment), "bundle_sha256": bundle_sha256,
                    "objects": len(objects)}
    traces = all_traces(repo, outcome) if trace else None
    hold_until_exit(repo, objects, outcome)
    return BuildResult(bundle, len(objects), findings, metadata, traces, output)


def compiled_intel(root: Path, *, progress: Progress = no_progress, cache: bool = True) -> list[dict[str, Any]]:
    """The bundle's objects as :func:`build` makes them, kept in memory: no bundle is written,
    serialised or parsed again (a query of a repository changed since its last compile).

    ``cache``: through the build cache, as :func:`build`. Raises :class:`ValidationFailed`
    when there are errors.
    """
    with paused_gc():
        repo, findings = load_and_validate(root, progress=progress, cache=cache)
        if blocking_errors(findings):
            raise ValidationFailed(findings)
        outcome = apply_repo_rules(repo, resolve_as_of(root))[0]
        objects = list(bundle_objects(repo, rules=outcome))
    hold_until_exit(repo, outcome)
    return objects


def compiled_lines(root: Path, output: Path, record: str, *, progress: Progress = no_progress) -> CompiledLines | None:
    """The bundle's objects as :func:`compiled_intel` makes them, as the lines of a bundle that
    :func:`build` writes to ``output`` through the build cache (tiops.plan.CompiledLines).

    ``record`` names the bundle's record in the build cache, so the next call reuses the lines
    of unchanged files as a one-file ``tiops compile`` does (tiops.bundlereuse): a plan keeps a
    bundle and a record of its own, and ``dist/bundle.json`` stays the compile's. None when
    the lines are not kept (ingestion rules that do not make each object from itself alone,
    a bundle that cannot be written or read back): the caller then builds the objects
    themselves, as :func:`compiled_intel`. Raises :class:`ValidationFailed` when there are errors.
    """
    from tiops.compile import BundleWriteError
    from tiops.config import load_config
    from tiops.outputs import kept_out_of_git

    if not _lines_rules(load_config(root)[0])[1]:
        return None
    try:
        kept_out_of_git(output.parent)
        result = build(root, progress=progress, output=output, cache=True, record=record)
    except (OSError, BundleWriteError):
        return None
    return None if result.lines is None else _read_lines(output, result.lines)


def _read_lines(bundle: Path, lines: BundleLines) -> CompiledLines | None:
    """The bundle at ``bundle`` as :class:`CompiledLines`, if it is still the one just written: its
    size, and its head, which holds the bundle id (a digest of its lines: tiops.compile.bundle_id_of)."""
    import mmap

    from tiops.compile import BUNDLE_TAIL, bundle_head
    from tiops.plan import CompiledLines

    head = bundle_head(lines.bundle_id)
    try:
        with bundle.open("rb") as file:
            if os.fstat(file.fileno()).st_size != lines.size or lines.size < len(head) + len(BUNDLE_TAIL):
                return None
            # Mapped, not read: the pages are the file's, shared with the page cache (800 MB at a million objects).
            content = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    if content[:len(head)] != head or (lines.starts and lines.starts[0] != len(head)):
        content.close()
        return None  # replaced since (another plan at the same moment): the caller builds the objects
    ids = [key.split("\0", 1)[1] for key in lines.keys]
    return CompiledLines(content, ids, lines.starts, lines.size - len(BUNDLE_TAIL))


def _lock_work_beside(root: Path) -> contextlib.AbstractContextManager[None]:
    """A helper for the enrichment lock's work while a cold build of ``root`` runs, when helpers are
    wanted (tiops.load.helpers_wanted) and the lock is large enough (tiops.enrich.beside)."""
    from tiops.config import load_config
    from tiops.enrich.beside import lock_work_beside

    return lock_work_beside(load_config(root)[0].intel_path, root, helpers_wanted())


def _has_cache_entries(root: Path) -> bool:
    from tiops.buildcache import has_entries  # only cached builds need it

    return has_entries(root)


def _build_through_indexes(root: Path, progress: Progress, as_of: str | None, output: Path | None,
                           record_name: str | None = None) -> BuildResult | None:
    """:func:`build` through the build cache's file indexes: the same result, with less read.

    Validation reads only the objects a check may report on (tiops.validate.indexed).
    With no ingestion rule enabled, no enrichment locked and the bundle going to a file,
    the lines of unchanged files' objects are taken from the previous bundle
    (tiops.bundlereuse); otherwise every object is read and compiled as ever. None when
    a cache entry cannot be read back after all: the caller builds the plain way.
    """
    from tiops import bundlereuse
    from tiops.buildcache import StaleEntry, load_repo_indexed
    from tiops.buildcache.folders import bundle_files
    from tiops.buildcache.partnerlocks import PartnerLocks
    from tiops.rules.engine import RulesOutcome
    from tiops.validate import validate_indexed

    record_name = record_name or bundlereuse.RECORD
    early: list[_Reuse] = []

    def read_previous(partial: IndexedLoad) -> None:
        # The lstats taken, and the record read ahead already: the previous bundle is read and checked
        # on a thread from here, beside the rest of the load and the checks. Started after the load, it
        # had 0.1 s for its 0.11-0.13 s, and the splice waited for it (docs/performance.md).
        if partial.cache.read_already(record_name):  # else (a large record, read after the lstats): after the load
            early.append(_reuse(partial, output, record_name))

    try:
        # The record is read on a thread while the repository is walked, in case it is wanted.
        loaded = load_repo_indexed(root, progress=progress, read_ahead=(record_name,) if output is not None else (),
                                   after_stats=read_previous if output is not None else None)
    except BaseException:
        for *_, started in early:
            if started is not None:
                started.finish()  # its thread let go of before the error goes on
        raise
    repo = loaded.repo
    # Otherwise the previous bundle is read and checked on a thread while the checks run (one CPU).
    rule_set, reusable, record, prefetched = early.pop() if early else _reuse(loaded, output, record_name)
    loaded.cache.forget_prefetched()  # at a million objects, a record not wanted is 200 MB
    try:
        try:
            locks = PartnerLocks(loaded.cache)
            findings, _, types = _checked_and_saved(loaded.cache, lambda: validate_indexed(repo, loaded.files,
                                                                                          progress=progress,
                                                                                          read_lock=locks))
            locks.save()
        except StaleEntry:
            return None
        if blocking_errors(findings):
            raise ValidationFailed(findings)
        moment = resolve_as_of(root, as_of)
        if reusable and output is not None and (moment.moment is not None or not rule_set.needs_as_of):
            key = bundlereuse.record_key(loaded.cache.context, _lines_digest(repo, rule_set), moment.text)
            try:
                spliced = bundlereuse.spliced(record, key, output, bundle_files(loaded.files), types,
                                              lambda: repository_enrichment(repo.config.intel_path, repo.root,
                                                                            repo.config.source),
                                              _ruled(rule_set, moment), prefetched, _since_load(loaded))
            except StaleEntry:
                return None
            # What the new record keeps of the old one, it holds: the rest (a million offsets and
            # entries, about 90 MB at a million objects) is let go before the bundle is written.
            record = None
            if spliced is not None:
                try:
                    findings = [*findings, *_dropped_references_indexed(root, loaded.files, spliced)]
                except StaleEntry:
                    return None
                written = _write_spliced(loaded.cache, record_name, key, output, spliced,
                                         _listed_against(loaded, loaded.cache.saved_index_identities()))
                counts = RulesOutcome(objects=[], changed=spliced.changed_by_rules,
                                      dropped_by_rules=spliced.dropped_by_rules,
                                      dropped_by_cascade=spliced.dropped_by_cascade)
                metadata = {**build_metadata(root, counts, rule_set, moment),
                            "bundle_sha256": written.sha256, "objects": len(spliced.keys)}
                hold_until_exit(loaded, spliced)
                return BuildResult(b"", len(spliced.keys), findings, metadata, None, output,
                                   BundleLines(spliced.keys, spliced.offsets, written.bundle_id, written.size))
    finally:
        if prefetched is not None:
            prefetched.finish()  # nothing runs on beside the compile below, or a fallback build's fork
    # Not held through a full compile: at a million objects the two are most of a gigabyte.
    record = prefetched = None
    marks = _EntryMarks(rule_drops(rule_set)) if reusable else None
    try:
        for file in bundle_files(loaded.files):
            file_objects = file.objects()[0]
            repo.objects.extend(file_objects)
            if marks is not None and file.entry is not None:
                marks.add(file.entry, file_objects)
    except StaleEntry:
        return None
    return _compile_recorded(root, repo, findings, loaded.cache, moment, output, marks, record_name,
                             _listed_against(loaded, loaded.cache.saved_index_identities()))


def _build_first(root: Path, progress: Progress, as_of: str | None, output: Path | None,
                 record_name: str | None = None) -> BuildResult:
    """:func:`build` through a build cache that holds nothing yet: every file is parsed and kept.

    The bundle record (tiops.bundlereuse) is kept as :func:`_build_through_indexes` keeps
    it, from each cache entry's objects, so the next compile can reuse this bundle's lines.
    """
    from tiops.buildcache import load_repo_cached
    from tiops.buildcache.partnerlocks import PartnerLocks

    loaded = load_repo_cached(root, progress=progress, entry_objects=True, make_groups=True)
    # The partner folders' locks kept from here (tiops.buildcache.partnerlocks): the first warm build
    # takes them instead of parsing them.
    locks = PartnerLocks(loaded.cache)
    findings = _checked(loaded.cache, lambda: validate_repo(loaded.repo, progress=progress,
                                                            prechecked=loaded.prechecked(), read_lock=locks))
    locks.save()
    helper, new_process = _save_helper(loaded.parsed_files)
    saving = loaded.cache.save_beside(helper=helper, new_process=new_process)
    try:
        return _compiled_first(root, loaded, findings, as_of, output, record_name,
                               lambda: _saved_first(loaded, saving))
    except BaseException as error:
        if saving is not None and not isinstance(error, Exception):
            saving.close()  # interrupted (Ctrl-C): the helper stops with the build, unwaited for
        raise
    finally:
        if saving is not None:
            # The cache whole before this returns, also when validation failed (the next run
            # after a fix reuses the rest); at once after close().
            saving.result()


# The largest build whose cache a forked helper saves beside its compile; a larger one hands its
# save to a new process (_save_helper).
SAVE_HELPER_MAX_RESIDENT = 1 << 30


def _save_helper(files: int) -> tuple[bool, bool]:
    """Whether a first build of ``files`` object files saves its cache on a helper beside its
    compile, and whether that helper is a new process rather than a forked one.

    Saving every entry is one core's work, and so is the compile: a helper takes the save by
    the loading helper's rule (tiops.load.fork_helper). A forked helper costs least to start,
    but the compile writes to most of this process's pages, and while the helper lives the
    kernel copies each one written first: the two held 4.16 GB together at a million objects,
    where the command alone holds 2.7 GB (docs/performance.md, "A first build's cache saved
    beside its compile"). So a process of :data:`SAVE_HELPER_MAX_RESIDENT` or more, or one
    whose copy the memory available could not hold, hands its save to a new process, which
    holds only what it is handed. TIOPS_LOAD_FORK=1 forks it below that size whatever the memory.
    """
    if not fork_helper(files):
        return False, False
    resident = resident_bytes()
    if resident is not None and resident >= SAVE_HELPER_MAX_RESIDENT:
        return True, True
    return True, not (os.environ.get("TIOPS_LOAD_FORK") == "1" or room_for_a_copy())


def _saved_first(loaded: CachedLoad, saving: Any) -> dict[str, Any] | None:
    """What the bundle record of a first build notes of the cache its save left (:func:`_listed_against`):
    waited for, when a helper saves it beside the compile (a forked one tells the stat index it wrote; a
    new process does not, and the record then notes nothing)."""
    if saving is None:
        return _listed_against(loaded, loaded.cache.saved_index_identities())
    outcome = saving.result()
    return _listed_against(loaded, outcome if type(outcome) is tuple else None)


def _listed_against(loaded: IndexedLoad | CachedLoad,
                    identities: tuple[bytes | None, bytes | None] | None) -> dict[str, Any] | None:
    """What a bundle record notes of the cache its entries were listed against (tiops.bundlereuse.since_state):
    the stat index its build saved (``identities``), and the load's folder keys and overlays."""
    from tiops import bundlereuse

    return bundlereuse.since_state(identities, loaded.folder_keys, loaded.folder_overlays)


def _compiled_first(root: Path, loaded: CachedLoad, findings: list[Finding], as_of: str | None,
                    output: Path | None, record_name: str | None,
                    since: Callable[[], dict[str, Any] | None] | None = None) -> BuildResult:
    """The rest of :func:`_build_first`, once its cache is saved or being saved. ``since``: what the
    bundle record notes of that save (:func:`_saved_first`), asked for when the record is written."""
    loaded.cache.release_saved()
    if blocking_errors(findings):
        raise ValidationFailed(findings)
    rule_set, reusable = _reusable_lines(loaded.repo, output)
    marks = _EntryMarks(rule_drops(rule_set)) if reusable else None
    if marks is not None:
        for entry, objects in (loaded.entry_objects or {}).items():
            marks.add(entry, objects)
    loaded.entry_objects = None
    hold_until_exit(loaded)
    return _compile_recorded(root, loaded.repo, findings, loaded.cache, resolve_as_of(root, as_of), output, marks,
                             record_name, since)


# The rules, whether lines can be reused, the bundle record and the previous bundle's read (_reuse).
_Reuse = tuple["RuleSet", bool, dict[str, Any] | None, "PreviousBundle | None"]


def _reuse(loaded: IndexedLoad, output: Path | None, record_name: str) -> _Reuse:
    """The repository's rules and whether they let a compile to ``output`` reuse the previous bundle's
    lines; then its record and, on a thread, the read and check of that bundle (tiops.bundlereuse)."""
    from tiops import bundlereuse

    rule_set, reusable = _reusable_lines(loaded.repo, output)
    record = loaded.cache.read_record(record_name) if reusable and output is not None else None
    previous = bundlereuse.PreviousBundle(record, output) if record is not None and output is not None else None
    return rule_set, reusable, record, previous


def _since_load(loaded: IndexedLoad) -> SinceLoad | None:
    """What the load says of the build cache it read, for a splice to tell kept files by count
    (tiops.bundlereuse.SinceLoad); None without a stat index read."""
    from tiops.bundlereuse import SinceLoad

    cache = loaded.cache
    identities = cache.index_identities()
    if identities[0] is None:
        return None
    return SinceLoad(identities, cache.stat_index(), cache.gone_paths, loaded.folder_keys, loaded.folder_overlays)


def _reusable_lines(repo: Repo, output: Path | None) -> tuple[RuleSet, bool]:
    """The repository's ingestion rules, and whether its bundle lines can be reused (tiops.bundlereuse):
    written to a file, with rules that make each object's line from that object alone."""
    rule_set, reusable = _lines_rules(repo.config)
    return rule_set, output is not None and reusable


def _lines_rules(config: Config) -> tuple[RuleSet, bool]:
    """The ingestion rules of ``config``, and whether they make each object's line from that object
    alone (no problem in them, tiops.rules.per_object_rules)."""
    from tiops.rules.model import load_rules

    rule_set, rule_problems = load_rules(config)
    return rule_set, not rule_problems and per_object_rules(rule_set)


def _ruled(rule_set: RuleSet, moment: AsOf) -> Callable[[list[IntelObject]], list[IntelObject | None]] | None:
    """The enabled rules as a function of some objects, each object's result or None where a rule
    drops it (per_object_rules holds: tiops.rules.engine.rule_results), or None without any rule."""
    if not any(rule.enabled for rule in rule_set.rules):
        return None
    from tiops.rules.engine import rule_results

    return lambda objects: rule_results(objects, rule_set, moment.moment)


def _lines_digest(repo: Repo, rule_set: RuleSet) -> str:
    """What besides the objects and the cache context decides their lines (tiops.bundlereuse.record_key):
    the rule set and the enrichment lock (its digest; the same lock, the same results)."""
    lock = lock_digest(repo.config.intel_path, repo.root, repo.config.source)
    return f"{rule_set.digest}\0{lock}" if lock else rule_set.digest


class _EntryMarks:
    """Each cache entry's bundlereuse.EntryMark for the bundle record, from its objects as loaded.

    Made at once when no rule drops, as the objects are loaded; otherwise which of them the
    bundle holds is known only from the rules' outcome, so the objects are kept until then (a
    list per entry: at a million objects tens of megabytes, held only by repositories that drop).
    """

    def __init__(self, drops: bool) -> None:
        self._objects: dict[str, list[IntelObject]] | None = {} if drops else None
        self._marks: dict[str, EntryMark] = {}

    def add(self, entry: str, objects: list[IntelObject]) -> None:
        from tiops import bundlereuse

        if self._objects is not None:
            self._objects[entry] = objects
        else:
            self._marks[entry] = bundlereuse.mark_of(objects)

    def after(self, outcome: RulesOutcome) -> dict[str, EntryMark]:
        """The marks, once the rules gave ``outcome`` (what they dropped)."""
        from tiops import bundlereuse

        if self._objects is not None:
            self._marks = bundlereuse.outcome_marks(self._objects, outcome.dropped, outcome.cascaded)
            self._objects = None
        return self._marks


def _compile_recorded(root: Path, repo: Repo, findings: list[Finding], cache: BuildCache, moment: AsOf,
                      output: Path | None, entry_marks: _EntryMarks | None,
                      record_name: str | None = None,
                      since: dict[str, Any] | Callable[[], dict[str, Any] | None] | None = None) -> BuildResult:
    """Apply the rules, write the bundle and, with ``entry_marks`` (each cache entry's mark,
    bundlereuse.EntryMark), keep its record for the next compile. ``since``: the cache state its
    entries were listed against (bundlereuse.since_state), or what gives it when the record is written."""
    from tiops import bundlereuse

    outcome, rule_set, moment = apply_repo_rules(repo, moment)
    findings = [*findings, *_dropped_references(repo.root, repo.objects, outcome)]
    objects = bundle_objects(repo, rules=outcome)
    lines: BundleLines | None = None
    if output is None:
        bundle = serialize_bundle(objects)
        bundle_sha256 = hashlib.sha256(bundle).hexdigest()
    elif entry_marks is not None and output is not None:
        bundle = b""
        keys: list[str] = []
        marks = entry_marks.after(outcome)
        lock_enriched = objects.lock_enriched_keys()
        if lock_enriched:  # the entries whose objects take the lock's extension need its definition
            marks = {entry: mark if mark.enriched or lock_enriched.isdisjoint(mark.keys) else mark._replace(enriched=True)
                     for entry, mark in marks.items()}
        if outcome.changed:  # what the rules changed, counted by entry for the next compile's build.json
            marks = bundlereuse.with_rule_counts(marks, _changed_keys(repo.objects, outcome))
        extras: list[str] = []
        starts = array.array("q")  # the record's offsets, noted as the lines are written
        written = write_bundle(bundlereuse.recorded_keys(objects, keys, marks, extras), output, line_starts=starts,
                               groups=objects.groups)
        bundle_sha256 = written.sha256
        key = bundlereuse.record_key(cache.context, _lines_digest(repo, rule_set), moment.text)
        kept = bundlereuse.record(key, output, written, keys, marks, objects.groups, starts, extras,
                                  since() if callable(since) else since)
        _keep_record(cache, kept, record_name)
        if kept is not None:
            lines = BundleLines(keys, starts, written.bundle_id, written.size)
    else:
        bundle, bundle_sha256 = b"", write_bundle(objects, output).sha256
    metadata = {**build_metadata(root, outcome, rule_set, moment), "bundle_sha256": bundle_sha256,
                "objects": len(objects)}
    hold_until_exit(repo, objects, outcome, cache)
    return BuildResult(bundle, len(objects), findings, metadata, None, output, lines)


def _dropped_references(root: Path, loaded: list[IntelObject], outcome: RulesOutcome) -> list[Finding]:
    """TI514 for the survivors' references to what the rules dropped (tiops.rules.dropped)."""
    if not outcome.dropped:
        return []
    from tiops.rules.dropped import dropped_reference_findings

    by_rules = {identifier for identifier in outcome.dropped if identifier not in outcome.cascaded}
    survivors = (obj for obj in loaded if obj.id not in outcome.dropped)
    return sort_findings(resolve_locations(dropped_reference_findings(survivors, by_rules, outcome.cascaded), root))


def _dropped_references_indexed(root: Path, files: Sequence[Any], spliced: Any) -> list[Finding]:
    """:func:`_dropped_references` of a build through the file indexes: only the files whose
    reference lists name a dropped id are read (tiops.rules.dropped.names_any)."""
    gone = spliced.dropped_ids | spliced.gone_ids
    if not gone:
        return []
    from tiops.rules.dropped import dropped_reference_findings, names_any

    verdicts: dict[str | None, bool] = {}  # files of one folder mostly share their reference list's text

    def names_dropped(targets: str | None) -> bool:
        verdict = verdicts.get(targets)
        if verdict is None:
            verdict = verdicts[targets] = names_any(targets, gone)
        return verdict

    survivors = (obj for file in files if names_dropped(file.index.reference_targets)
                 for obj in file.objects()[0] if obj.id not in gone)
    found = dropped_reference_findings(survivors, spliced.dropped_ids, spliced.gone_ids)
    return sort_findings(resolve_locations(found, root))


def _changed_keys(loaded: list[IntelObject], outcome: RulesOutcome) -> set[str]:
    """``type NUL id`` of each survivor the rules changed: a copy of its object as loaded
    (tiops.rules.engine). The survivors are the loaded objects but the dropped, in order."""
    survivors = iter(outcome.objects)
    changed: set[str] = set()
    for before in loaded:
        if before.id in outcome.dropped:
            continue
        after = next(survivors)
        if after is not before:
            changed.add(f"{after.type}\0{after.id}")
    return changed


def _keep_record(cache: Any, record: dict[str, Any] | None, name: str | None = None) -> None:
    """Keep the record of the bundle just written for the next compile (tiops.bundlereuse), or forget the last one."""
    from tiops.bundlereuse import RECORD

    cache.write_record(name or RECORD, record if record is not None else {})


def _write_spliced(cache: BuildCache, record_name: str, key: str, output: Path, spliced: Spliced,
                   since: dict[str, Any] | None = None) -> WrittenBundle:
    """Write the bundle ``spliced`` makes, and its record for the next compile.

    The record is started while the bundle's own digest is taken on the other CPU, and finished
    with that digest (BuildCache.pending_record). Written after the bundle, it took 0.07 s of a
    one-file recompile at 100k objects, with the other CPU idle.
    """
    from tiops import bundlereuse

    started: list[PendingRecord | None] = []

    def start_record(bundle_id: str, size: int) -> None:
        body = bundlereuse.unsealed_spliced_record(key, output, size, spliced, since)
        started.append(cache.pending_record(record_name, body, bundlereuse.RECORD_DIGEST,
                                            bundlereuse.RECORD_DIGEST_WIDTH))

    try:
        written = write_line_runs(spliced.pieces, output, spliced.group_digests, meanwhile=start_record)
    except BaseException:
        for pending in started:
            if pending is not None:
                pending.abandon()
        raise
    pending = started[0] if started else None
    if pending is not None:
        pending.finish(written.sha256)
    else:  # it could not be started: the full way, or the old record forgotten
        _keep_record(cache, bundlereuse.spliced_record(key, output, written, spliced, since), record_name)
    return written
