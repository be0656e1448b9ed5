"""The static HTML report (`tiops report`).

``build_report`` and ``ReportResult`` are read from :mod:`tiops.report.build` when first asked
for: ``tiops validate`` checks ``report.yaml`` through :mod:`tiops.report.panels` alone, without
the builder's imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tiops.report.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tiops.report import build

        return getattr(build, name)
    raise AttributeError(f"module 'tiops.report' has no attribute {name!r}")
