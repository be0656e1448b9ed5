"""Find the repository a command runs in, the way git finds its work tree.

A folder is a tiops repository root when it holds ``tiops.yaml`` or an ``intel/``
folder. Commands look in the folder they start in and then in each parent, so
running inside ``intel/indicators/`` works on the whole repository.
"""

from __future__ import annotations

import os
from pathlib import Path

from tiops.config import CONFIG_FILE

INTEL_FOLDER = "intel"
# Like GIT_CEILING_DIRECTORIES: a list of folders (os.pathsep-separated) the search never
# enters, so a stray intel/ above a work area is not taken for the repository.
CEILING_VARIABLE = "TIOPS_CEILING_DIRECTORIES"


def is_repo_root(folder: Path) -> bool:
    """True when ``folder`` holds tiops.yaml or an intel/ folder."""
    return (folder / CONFIG_FILE).is_file() or (folder / INTEL_FOLDER).is_dir()


def find_repo_root(start: Path) -> Path | None:
    """The nearest repository root at or above ``start`` (a folder or a file), or None.

    The search stops at the top of the git work tree it starts in (a tiops repository
    never reaches above its git repository) and before any folder in
    ``TIOPS_CEILING_DIRECTORIES``.
    """
    start = start.resolve()
    folder = start if start.is_dir() else start.parent
    ceilings = {Path(p).resolve() for p in os.environ.get(CEILING_VARIABLE, "").split(os.pathsep) if p}
    for candidate in (folder, *folder.parents):
        if candidate in ceilings:
            return None
        if is_repo_root(candidate):
            return candidate
        if (candidate / ".git").exists():
            return None
    return None
