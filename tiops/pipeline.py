"""The whole pipeline as one call: load, validate, apply ingestion rules, compile."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiops.compile import blocking_errors, bundle_objects, serialize_bundle, write_bundle
from tiops.errors import TiopsError
from tiops.findings import Finding
from tiops.load import Repo, load_repo
from tiops.memory import paused_gc
from tiops.progress import Progress, no_progress
from tiops.rules import apply_repo_rules, build_metadata, resolve_as_of
from tiops.rules.trace import all_traces
from tiops.validate import validate_repo


class ValidationFailed(TiopsError):
    """Compilation refused because validation found errors."""

    def __init__(self, findings: list[Finding]) -> None:
        errors = blocking_errors(findings)
        super().__init__(
            f"validation found {len(errors)} error(s); nothing was compiled",
            hint="Run 'tiops validate' to see every finding.",
        )
        self.findings = findings


@dataclass(frozen=True)
class BuildResult:
    bundle: bytes  # empty when the bundle was streamed to bundle_file instead (build(output=...))
    object_count: int
    findings: list[Finding]
    metadata: dict[str, Any] = field(default_factory=dict)  # dist/build.json: as-of time, commit, rules
    traces: list[dict[str, Any]] | None = None  # per-object rule traces, when asked for
    bundle_file: Path | None = None


def load_and_validate(root: Path, *, progress: Progress = no_progress, cache: bool = False) -> tuple[Repo, list[Finding]]:
    """Load and validate the repository at ``root``: what every command that compiles does first.

    ``cache``: reuse and update the build cache in ``.tiops/build-cache/`` (tiops.buildcache);
    the repository and findings are the same either way. Call it with the collector paused
    (tiops.memory.paused_gc), as the callers' whole pipeline is.
    """
    if not cache:
        repo = load_repo(root, progress=progress)
        return repo, validate_repo(repo, progress=progress)
    from tiops.buildcache import load_repo_cached  # imported here: only cached builds need it

    loaded = load_repo_cached(root, progress=progress)
    findings = validate_repo(loaded.repo, progress=progress, prechecked=loaded.prechecked())
    loaded.cache.save()  # also when validation fails: the next run after a fix reuses the rest
    return loaded.repo, findings


def build(root: Path, *, progress: Progress = no_progress, as_of: str | None = None,
          trace: bool = False, output: Path | None = None, cache: bool = False) -> BuildResult:
    """Load, validate and compile the repository at ``root``.

    ``as_of`` overrides the as-of time of ingestion rules (default: the HEAD commit time).
    ``cache``: reuse and update the build cache in ``.tiops/build-cache/`` (tiops.buildcache),
    so that only changed files are parsed and checked again; the result is the same.
    Raises :class:`ValidationFailed` (a :class:`TiopsError`) when there are errors.
    With ``output``, the bundle is streamed to that file rather than returned
    (a million objects' bundle would otherwise sit in memory; tiops.compile.write_bundle).
    """
    with paused_gc():  # one pipeline: the collector would rescan every loaded object (tiops.memory)
        repo, findings = load_and_validate(root, progress=progress, cache=cache)
        if blocking_errors(findings):
            raise ValidationFailed(findings)
        outcome, rule_set, moment = apply_repo_rules(repo, resolve_as_of(root, as_of), record=trace)
        objects = bundle_objects(repo, rules=outcome)
        if output is None:
            bundle = serialize_bundle(objects)
            bundle_sha256 = hashlib.sha256(bundle).hexdigest()
        else:
            bundle, bundle_sha256 = b"", write_bundle(objects, output).sha256
    metadata = {**build_metadata(root, outcome, rule_set, moment), "bundle_sha256": bundle_sha256,
                "objects": len(objects)}
    traces = all_traces(repo, outcome) if trace else None
    return BuildResult(bundle, len(objects), findings, metadata, traces, output)
