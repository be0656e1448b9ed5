"""tiops: threat intelligence as code.

The public API mirrors the pipeline: load -> validate -> compile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tiops.compile import blocking_errors, compile_bundle, compiled_objects, serialize_bundle
from tiops.errors import TiopsError, UsageError
from tiops.findings import Finding, Location, Severity
from tiops.load import IntelObject, Repo, load_bundle, load_repo
from tiops.progress import Progress, no_progress
from tiops.validate import validate_repo

__version__ = "0.1.0"

__all__ = [
    "BuildResult",
    "Finding",
    "IntelObject",
    "Location",
    "Progress",
    "Repo",
    "Severity",
    "TiopsError",
    "UsageError",
    "ValidationFailed",
    "__version__",
    "build",
    "compile_bundle",
    "compiled_objects",
    "load_bundle",
    "load_repo",
    "validate_repo",
]


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
    bundle: bytes
    object_count: int
    findings: list[Finding]


def build(root: Path, *, progress: Progress = no_progress) -> BuildResult:
    """Load, validate and compile the repository at ``root``.

    Raises :class:`ValidationFailed` (a :class:`TiopsError`) when there are errors.
    """
    repo = load_repo(root, progress=progress)
    findings = validate_repo(repo, progress=progress)
    if blocking_errors(findings):
        raise ValidationFailed(findings)
    objects = compiled_objects(repo)
    return BuildResult(serialize_bundle(objects), len(objects), findings)
