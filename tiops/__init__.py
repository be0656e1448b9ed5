"""tiops: threat intelligence as code.

The public API mirrors the pipeline: load -> validate -> compile. Names are
imported on first use (PEP 562), so `tiops --version` and commands that need
little of the pipeline do not pay for importing all of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "BuildResult": "tiops.pipeline",
    "Finding": "tiops.findings",
    "IntelObject": "tiops.load",
    "Location": "tiops.findings",
    "Progress": "tiops.progress",
    "Repo": "tiops.load",
    "Severity": "tiops.findings",
    "TiopsError": "tiops.errors",
    "UsageError": "tiops.errors",
    "ValidationFailed": "tiops.pipeline",
    "build": "tiops.pipeline",
    "compile_bundle": "tiops.compile",
    "compiled_objects": "tiops.compile",
    "load_bundle": "tiops.load",
    "load_repo": "tiops.load",
    "validate_repo": "tiops.validate",
}

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

if TYPE_CHECKING:
    from tiops.compile import compile_bundle, compiled_objects
    from tiops.errors import TiopsError, UsageError
    from tiops.findings import Finding, Location, Severity
    from tiops.load import IntelObject, Repo, load_bundle, load_repo
    from tiops.pipeline import BuildResult, ValidationFailed, build
    from tiops.progress import Progress
    from tiops.validate import validate_repo


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tiops' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
