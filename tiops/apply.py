"""Apply a plan to a store: exactly the plan, under the target's lock, idempotently.

Every write is of a specific version (id, modified) and a version already in the
store is skipped, so an apply interrupted anywhere (killed process, server error,
dropped connection) is finished by running it again: it converges to the plan
with nothing lost and nothing duplicated.
"""

from __future__ import annotations

import getpass
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from tiops import lastbuild
from tiops.config import Config, load_config
from tiops.errors import TiopsError, UsageError
from tiops.findings import Severity
from tiops.gitrepo import head_commit, head_commit_time
from tiops.lastbuild import BuildRecord, RecordedObjects
from tiops.memory import paused_gc
from tiops.plan import (
    BundleDigests,
    Change,
    Plan,
    compiled_ids,
    ids_to_read,
    make_plan,
    state_fingerprint,
    unchanged_plan,
)
from tiops.plan_check import check_plan_changes
from tiops.progress import Progress, no_progress
from tiops.stores import (
    ObjectError,
    PreparedRows,
    PreparesRows,
    Store,
    StoredVersion,
    StoreError,
    TargetSettings,
    TransientStoreError,
    open_store,
)

T = TypeVar("T")
# The bundle a plan compiles through the build cache and compares line by line with the target, and
# the name of its record in the cache (tiops.pipeline.compiled_lines): the compile's dist/bundle.json
# is left alone, and each plan reuses the lines of the files unchanged since the last one.
PLAN_BUNDLE = Path(".tiops") / "plan" / "bundle.json"
PLAN_RECORD = "plan-bundle-record"
MAX_BACKOFF_SECONDS = 60.0
# The longest a server's Retry-After is waited for; a server asking for more is a failure
# (recorded as such by tiops enrich, reported by apply) rather than a sleep of that length.
MAX_RETRY_AFTER_SECONDS = 300.0


class StalePlan(TiopsError):
    """The target or the repository changed since the plan was made."""


class RemovalGateClosed(TiopsError):
    """The plan would revoke or delete more of the target than the safety gate allows."""


class ApplyIncomplete(TiopsError):
    """Some objects were refused by the store; the rest was applied."""

    def __init__(self, errors: Sequence[ObjectError]) -> None:
        shown = "; ".join(f"{e.stix_id}: {e.message}" for e in errors[:5])
        super().__init__(
            f"the store refused {len(errors)} object(s): {shown}",
            hint="Fix the objects and run 'tiops apply' again; what was applied stays applied.",
        )
        self.errors = list(errors)


@dataclass(frozen=True)
class ApplyResult:
    written: int
    deleted: int
    #: Changes already present in the target (a rerun after an interruption).
    already_applied: int


def default_holder() -> str:
    """Who an apply lock names: user and host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def check_plan_current(plan: Plan, manifest: Mapping[str, StoredVersion], bundle_digest: str | None = None) -> None:
    """Raise :class:`StalePlan` unless ``manifest`` is the state the plan was made against.

    The plan's own changes, partly applied by an interrupted apply, do not make it
    stale: they are undone on paper (using the base state the plan records) before
    the fingerprints are compared.
    """
    if bundle_digest is not None and bundle_digest != plan.bundle_digest:
        raise StalePlan(
            "the plan was made from other content than the repository holds now",
            hint="Make a new plan with 'tiops plan -o FILE' and apply that.",
        )
    if state_fingerprint(base_manifest(plan, manifest)) != plan.state_fingerprint:
        raise StalePlan(
            f"target {plan.target!r} changed since the plan was made",
            hint="Make a new plan with 'tiops plan -o FILE', review it, and apply that.",
        )


def base_manifest(plan: Plan, manifest: Mapping[str, StoredVersion]) -> dict[str, StoredVersion]:
    """``manifest`` with every change of the plan that is already applied put back to its base."""
    base = dict(manifest)
    for change in plan.changes:
        if _is_applied(change, base):
            if change.stored is None:
                base.pop(change.id, None)
            else:
                base[change.id] = change.stored
    return base


def settle_target(store: Store, holder: str | None = None) -> None:
    """What an apply of a plan with no changes does: under the target's lock, bring what the store
    derives from the build's as-of time (ThreatIntelIndicators.IsActive: indicators that expired
    since the last apply) up to date, so the Sentinel rows are right at the new as-of time."""
    store.acquire_lock(holder or default_holder())
    try:
        store.refresh_active()
    finally:
        store.release_lock()


def apply_plan(
    plan: Plan,
    store: Store,
    *,
    progress: Progress = no_progress,
    force: bool = False,
    max_remove_share: float = 0.2,
    batch_size: int = 500,
    bundle_digest: str | None = None,
    holder: str | None = None,
    max_retries: int = 6,
    sleep: Callable[[float], None] = time.sleep,
    pause_between_batches: float = 0.0,
    compiled: Sequence[Mapping[str, Any]] | None = None,
    settings: TargetSettings | None = None,
) -> ApplyResult:
    """Apply ``plan`` to ``store``; see the module docstring for the guarantees.

    With ``compiled`` and ``settings`` (a saved plan), every change is first checked
    against the bundle compiled now (:mod:`tiops.plan_check`).
    """
    store.acquire_lock(holder or default_holder())
    try:
        manifest = _retrying(store.manifest, sleep, max_retries)
        check_plan_current(plan, manifest, bundle_digest)
        if compiled is not None and settings is not None:
            check_plan_changes(plan, compiled, base_manifest(plan, manifest), settings,
                               supports_delete=store.supports_delete)
        if plan.removals and not force and plan.removals > max_remove_share * plan.managed:
            raise RemovalGateClosed(
                f"the plan would remove {plan.removals} of the {plan.managed} objects tiops manages in "
                f"target {plan.target!r}, more than the {max_remove_share:.0%} allowed",
                hint="Check the plan; if the removals are intended, apply with --force (or raise max_remove_share).",
            )
        # Only a plan found current changes the target: a refused one leaves even IsActive as it was.
        store.refresh_active()
        pending = [change for change in plan.changes if not _is_applied(change, manifest)]
        writes = [change.object for change in pending if change.object is not None]
        # The plan carries each version's content digest (checked with the plan); stores reuse it.
        carried = [change.digest for change in pending if change.object is not None]
        digests = [d for d in carried if d is not None] if None not in carried else None
        deletes = [change.id for change in pending if change.action == "delete"]
        total, done = len(writes) + len(deletes), 0
        errors: list[ObjectError] = []
        progress("apply", 0, total)
        # The rows built per batch are acyclic tuples and strings: the cyclic collector
        # would only rescan them as they pile up (tiops.memory.paused_gc).
        with paused_gc():
            def written(count: int) -> None:
                nonlocal done
                done += count
                progress("apply", done, total)
                if pause_between_batches:
                    sleep(pause_between_batches)

            errors.extend(_write_in_batches(store, writes, digests, batch_size,
                                            lambda operation: _retrying(operation, sleep, max_retries), written))
            for start in range(0, len(deletes), batch_size):
                ids = deletes[start:start + batch_size]
                errors.extend(_retrying(lambda i=ids: store.delete_objects(i), sleep, max_retries))  # type: ignore[misc]
                done += len(ids)
                progress("apply", done, total)
    finally:
        store.release_lock()
    if errors:
        raise ApplyIncomplete(errors)
    return ApplyResult(len(writes), len(deletes), len(plan.changes) - len(pending))


def _write_in_batches(store: Store, writes: Sequence[Mapping[str, Any]], digests: Sequence[str] | None,
                      batch_size: int, retrying: Callable[[Callable[[], list[ObjectError]]], list[ObjectError]],
                      written: Callable[[int], None]) -> list[ObjectError]:
    """Write ``writes`` a batch at a time, in order, each batch its own transaction; ``written(count)`` after each.

    Building a batch's rows (serialising and digesting each object, parsing indicator
    patterns for the Sentinel tables) is about a fifth of an apply into SQLite. A store that
    builds them apart (:class:`tiops.stores.PreparesRows`) has a forked helper build each
    batch's rows ahead while this process writes the batch before, when the load rule
    allows a helper (tiops.load.helpers_wanted: a second CPU idle, TIOPS_LOAD_FORK) and
    the memory available could hold a copy of this process, which the helper, reading
    every object, partly makes (tiops.forkwork.room_for_a_copy). The
    helper only builds: every write, and every retry of one, happens here, in order, as
    without it, and the rows are the same either way (tiops.forkwork.run_ahead).
    """
    starts = range(0, len(writes), batch_size)
    errors: list[ObjectError] = []

    def batch(number: int) -> tuple[list[dict[str, Any]], Sequence[str] | None]:
        start = starts[number]
        objects = [obj if isinstance(obj, dict) else dict(obj) for obj in writes[start:start + batch_size]]
        return objects, None if digests is None else digests[start:start + batch_size]

    if not isinstance(store, PreparesRows):
        for number in range(len(starts)):
            objects, sums = batch(number)
            errors.extend(retrying(lambda b=objects, d=sums: store.write_versions(b, d)))  # type: ignore[misc]
            written(len(objects))
        return errors

    # The same calls with or without a helper: only who builds the rows differs.
    def write(objects: list[dict[str, Any]], prepared: PreparedRows) -> None:
        errors.extend(retrying(lambda: store.write_prepared(objects, prepared)))
        written(len(objects))

    from tiops.load import helpers_wanted

    if len(starts) > 1 and helpers_wanted(copying=True):  # the helper reads every object of the plan
        from tiops.forkwork import run_ahead

        run_ahead(len(starts), lambda number: store.prepared_rows(*batch(number)),
                  lambda number, prepared: write(batch(number)[0], prepared))
    else:
        for number in range(len(starts)):
            objects, sums = batch(number)
            write(objects, store.prepared_rows(objects, sums))
    return errors


def _is_applied(change: Change, manifest: Mapping[str, StoredVersion]) -> bool:
    current = manifest.get(change.id)
    if change.action == "delete":
        return current is None
    return (
        current is not None
        and current.modified == change.effective_modified
        and current.digest == change.digest
        and current.by_tiops
    )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 86_400 else f"{seconds / 86_400:.0f} days"


def _retrying(operation: Callable[[], T], sleep: Callable[[float], None], max_retries: int) -> T:
    """Run ``operation``, retrying transient failures with exponential backoff.

    A server's Retry-After (carried by :class:`TransientStoreError`) wins over the backoff.
    """
    for attempt in range(max_retries + 1):
        try:
            return operation()
        except TransientStoreError as error:
            if attempt == max_retries:
                raise StoreError(f"{error.message} (gave up after {max_retries} retries)") from error
            if error.retry_after is not None and error.retry_after > MAX_RETRY_AFTER_SECONDS:
                # A release job or an enrichment run must not sleep for as long as a server
                # (or a hostile one) asks: hours, or a figure past what the clock can hold.
                raise StoreError(f"{error.message} (the server asked to wait {_duration(error.retry_after)} before "
                                 f"retrying; tiops waits at most {MAX_RETRY_AFTER_SECONDS:.0f} s)") from error
            delay = error.retry_after if error.retry_after is not None else min(0.5 * 2**attempt, MAX_BACKOFF_SECONDS)
            sleep(delay)
    raise AssertionError("unreachable")


class Session:
    """A target opened for planning/applying: its settings, its store and the compiled content.

    The content is compiled when first asked for (``compiled``). With ``record`` (the
    last build's record, whose inputs all equal the repository's now: tiops.lastbuild),
    a plan that finds the target holding every recorded object needs no build at all.
    ``on_plan`` is called with each plan made from a build made here, the manifest it
    was made against and the build's digests (to record the build).
    """

    def __init__(self, settings: TargetSettings, store: Store, compiled: Sequence[dict[str, Any]] | None,
                 source_commit: str | None, *, build: Callable[[], Sequence[dict[str, Any]]] | None = None,
                 record: BuildRecord | None = None, record_holds: RecordVerdict | None = None,
                 on_plan: Callable[[Plan, Mapping[str, StoredVersion], BundleDigests], None] | None = None) -> None:
        if compiled is None and build is None:
            raise ValueError("a session needs the compiled objects or a way to build them")
        self.settings = settings
        self.store = store
        self.source_commit = source_commit
        self._record = record
        # Whether the record's inputs are the repository's now, worked out while the target is
        # read (open_session); None: they are (the caller checked).
        self._record_holds = record_holds
        self._compiled = compiled
        self._build = build
        self._on_plan = on_plan

    @property
    def record(self) -> BuildRecord | None:
        """The last build's record when nothing the build reads has changed since (tiops.lastbuild)."""
        if self._record is not None and self._record_holds is not None and not self._record_holds():
            self._record = None
        return self._record

    @property
    def built(self) -> bool:
        """Whether the repository was compiled in this session (a plan by the record alone needs not)."""
        return self._compiled is not None

    @property
    def compiled(self) -> Sequence[dict[str, Any]]:
        """The compiled objects in bundle order: a list, or the lines of the plan's own bundle,
        each parsed when read (tiops.plan.CompiledLines)."""
        if self._compiled is None:
            assert self._build is not None
            self._compiled = self._build()
        return self._compiled

    def plan(self, progress: Progress = no_progress) -> Plan:
        """Read the target's state (read-only) and compute the plan."""
        progress("read", 0, 1)
        # A manifest entry and a digest per object: acyclic, nothing for the collector (tiops.memory).
        with paused_gc():
            manifest = _retrying(self.store.manifest, time.sleep, 3)
            if self.record is not None and self._compiled is None:
                unchanged = unchanged_plan(
                    self.record.objects, self.record.bundle_digest, manifest, self.settings,
                    supports_delete=self.store.supports_delete, source_commit=self.source_commit,
                )
                if unchanged is not None:
                    progress("read", 1, 1)
                    return unchanged
            wanted = ids_to_read(self.compiled, manifest, self.settings, self.digests)
            stored = self.store.current_objects(wanted) if wanted else {}
            progress("read", 1, 1)
            plan = make_plan(
                self.compiled, manifest, stored, self.settings,
                supports_delete=self.store.supports_delete, source_commit=self.source_commit, digests=self.digests,
            )
            if self._on_plan is not None:
                self._on_plan(plan, manifest, self.digests)
            return plan

    @cached_property
    def digests(self) -> BundleDigests:
        """The bundle digest and the object digests, computed once for the plan and the apply."""
        return BundleDigests.of(self.compiled)

    @property
    def bundle_digest(self) -> str:
        return self.digests.bundle

    def close(self) -> None:
        if self._record_holds is not None:
            self._record_holds.close()
        self.store.close()


class RecordVerdict:
    """Whether the last build's record still holds (its inputs equal the repository's now), worked
    out by a forked helper while this process reads the target, when a loading helper would be
    forked for as many files (tiops.load.fork_helper): a no-change plan walks the repository's files (an lstat each)
    and reads the target's manifest, two waits of about the same length on 100k objects
    (docs/performance.md). Without a helper, or when it fails, the work is done here when asked."""

    def __init__(self, work: Callable[[], bool], files: int) -> None:
        from tiops.forkwork import run_beside
        from tiops.load import fork_helper

        self._work = work
        # As for loading: only for enough files (the record's count) and with a second CPU idle.
        self._beside = run_beside(work) if fork_helper(files) else None
        self._verdict: bool | None = None

    def __call__(self) -> bool:
        if self._verdict is None:
            outcome = self._beside.result() if self._beside is not None else None
            self._verdict = outcome if isinstance(outcome, bool) else self._work()
        return self._verdict

    def close(self) -> None:
        if self._beside is not None:
            self._beside.close()


def open_session(root: Path, target: str | None = None, *, progress: Progress = no_progress,
                 cache: bool = True, create: bool = True) -> Session:
    """Compile the repository at ``root`` and connect to the named target (default from tiops.yaml).

    ``cache``: load through the build cache in ``.tiops/build-cache/`` as ``tiops compile``
    does (tiops.pipeline.build), so unchanged files are neither parsed nor checked again,
    and use the last build's record (tiops.lastbuild): when nothing the build reads has
    changed since, the compile waits until a plan needs it, which a plan finding nothing
    to change does not. The compiled objects, and so the plan, are the same either way.
    ``create``: False for a plan, which never makes the target's store (tiops.stores.StoreFactory).
    """
    config, findings = load_config(root)
    if any(finding.severity is Severity.ERROR for finding in findings):
        from tiops.locate import resolve_locations
        from tiops.pipeline import ValidationFailed

        raise ValidationFailed(resolve_locations(findings, root))  # line and column, as validate shows them
    name = target or config.default_target
    entry = config.targets.get(name)
    if entry is None:
        known = ", ".join(sorted(config.targets)) or "none"
        raise UsageError(f"no target named {name!r} in tiops.yaml (targets: {known})")
    settings = TargetSettings.from_config(name, entry)

    def build() -> Sequence[dict[str, Any]]:
        # Imported here: a plan made from the last build's record loads none of the compiler.
        from tiops.compile import blocking_errors, compiled_objects
        from tiops.pipeline import ValidationFailed, compiled_lines, load_and_validate

        if cache:
            # The plan's own bundle through the build cache: the lines of unchanged files are the
            # last plan's, and only lines the target does not hold are parsed (tiops.plan.CompiledLines).
            lines = compiled_lines(root, root / PLAN_BUNDLE, PLAN_RECORD, progress=progress)
            if lines is not None:
                return lines
        with paused_gc():  # one pipeline: the collector would rescan every loaded object (tiops.memory)
            repo, findings = load_and_validate(root, progress=progress, cache=cache)
            if blocking_errors(findings):
                raise ValidationFailed(findings)
            return compiled_objects(repo)

    if not cache:
        compiled = build()
        return Session(settings, open_store(name, entry, root, create=create), compiled, head_commit(root))

    record = lastbuild.read_record(root)
    as_of = head_commit_time(root)
    recorded: list[lastbuild.KnownBlobs] = (
        [] if record is None else [(record.inputs.files, record.inputs.taken_ns - lastbuild.RACY_NS)])

    def inputs_now(listing: lastbuild.Listing | None = None) -> lastbuild.BuildInputs | None:
        return lastbuild.current_inputs(root, config, as_of, recorded, more=lambda: lastbuild.build_cache_blobs(root),
                                        against=None if record is None else record.inputs, listing=listing)

    if record is not None:
        # Nothing the build reads changed, most likely: the build waits until the plan needs it,
        # and whether the record holds is worked out beside the reading of the target. Should
        # it not hold, the inputs are taken again here, before the build (the record must
        # describe the files as they were when the build began: lastbuild.unchanged_during).
        recorded_inputs = record.inputs
        built: list[tuple[lastbuild.BuildInputs | None, Sequence[dict[str, Any]]]] = []

        def holds() -> bool:
            # Every file with its recorded lstat: the record holds, told as the files are listed (no
            # blob id worked out, no inputs built). Otherwise those lstats are compared as ever.
            listing = lastbuild.listed_against(root, config, recorded_inputs)
            if listing.as_recorded and recorded_inputs.code == lastbuild.code_key() and recorded_inputs.as_of == as_of:
                return True
            inputs = inputs_now(listing)
            return inputs is not None and inputs.same_as(recorded_inputs)

        def build_and_take() -> Sequence[dict[str, Any]]:
            inputs = inputs_now()
            built.append((inputs, build()))
            return built[-1][1]

        def keep_built(plan: Plan, manifest: Mapping[str, StoredVersion], digests: BundleDigests) -> None:
            if built:
                _keep_record(root, config, *built[-1], plan, manifest, digests)

        return Session(settings, open_store(name, entry, root, create=create), None, head_commit(root), build=build_and_take,
                       record=record, record_holds=RecordVerdict(holds, len(recorded_inputs.files)), on_plan=keep_built)
    inputs = inputs_now()
    compiled = build()

    def keep(plan: Plan, manifest: Mapping[str, StoredVersion], digests: BundleDigests) -> None:
        _keep_record(root, config, inputs, compiled, plan, manifest, digests)

    return Session(settings, open_store(name, entry, root, create=create), compiled, head_commit(root), on_plan=keep)


def _keep_record(root: Path, config: Config, inputs: lastbuild.BuildInputs | None, compiled: Sequence[dict[str, Any]],
                 plan: Plan, manifest: Mapping[str, StoredVersion], digests: BundleDigests) -> None:
    """Record the build a plan was made from (tiops.lastbuild), its inputs taken before it began,
    when no file it read changed while it ran."""
    if inputs is None:
        return
    # The build just wrote the build cache's index: most pending blob ids are in it.
    fresh = lastbuild.build_cache_blobs(root)
    complete = lastbuild.complete_inputs(root, inputs, [] if fresh is None else [fresh])
    if complete is not None and lastbuild.unchanged_during(root, config, complete):
        objects = recorded_objects(compiled, plan, manifest, digests)
        lastbuild.write_record(root, lastbuild.BuildRecord(complete, digests.bundle, objects))


def recorded_objects(compiled: Sequence[Mapping[str, Any]], plan: Plan, manifest: Mapping[str, StoredVersion],
                     digests: BundleDigests) -> RecordedObjects:
    """What the record keeps of each compiled object for the next plan (tiops.plan.unchanged_plan).

    The content digest is kept where this plan had it without computing it: a change's
    (``modified`` is not part of it, so a version whose ``modified`` tiops moved forward
    has the compiled object's content digest), and an unchanged object's stored one
    when the object digests differ (``_differs`` found the content digests equal).
    Objects whose stored text is their own need only the object digest, and ``modified``
    is kept only beside a content digest (unchanged_plan reads it nowhere else): so an
    object is read here only where it has one, which for a plan's lines (tiops.plan.CompiledLines)
    is the few lines it parsed.
    """
    changed = {change.id: change.digest for change in plan.changes if change.object is not None}
    by_id = digests.objects
    recorded = RecordedObjects([], [], [], [])
    for position, stix_id in enumerate(compiled_ids(compiled)):
        own = by_id[stix_id]
        content = changed.get(stix_id)
        if content is None:
            stored = manifest.get(stix_id)
            # A revoked stored version may differ without a change (the plan warns instead): not known.
            content = stored.digest if stored is not None and not stored.revoked and stored.object_digest != own else ""
        recorded.ids.append(stix_id)
        recorded.object_digests.append(own)
        recorded.content_digests.append(content or "")
        recorded.modified.append(str(compiled[position].get("modified") or "") if content else "")
    return recorded
