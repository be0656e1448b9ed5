"""Find the repository a command runs in, the way git finds its work tree.

A folder is a tiops repository root when it holds ``tiops.yaml`` or an ``intel/``
folder. Commands look in the folder they start in and then in each parent, so
running inside ``intel/indicators/`` works on the whole repository.
"""

from __future__ import annotations

from pathlib import Path

from tiops.config import CONFIG_FILE

INTEL_FOLDER = "intel"


def is_repo_root(folder: Path) -> bool:
    """True when ``folder`` holds tiops.yaml or an intel/ folder."""
    return (folder / CONFIG_FILE).is_file() or (folder / INTEL_FOLDER).is_dir()


def find_repo_root(start: Path) -> Path | None:
    """The nearest repository root at or above ``start`` (a folder or a file), or None."""
    start = start.resolve()
    folder = start if start.is_dir() else start.parent
    for candidate in (folder, *folder.parents):
        # intel/ itself is not a root even when it holds an intel/ subfolder of its own:
        # the folder that holds tiops.yaml, or intel/ as a child, is.
        if is_repo_root(candidate):
            return candidate
    return None
