"""Progress reporting: the library calls a callback, the CLI draws the bar."""

from __future__ import annotations

from collections.abc import Callable

# progress(stage, done, total): ``stage`` names the work ("load", "validate", ...).
Progress = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    """The default callback: report nothing."""
