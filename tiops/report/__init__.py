"""The static HTML report (`tiops report`)."""

from __future__ import annotations

from tiops.report.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
