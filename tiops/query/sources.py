"""Where a query's rows come from: the repository's compiled intel, a bundle file, or a
store's current objects."""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
from pathlib import Path

from tiops.config import CONFIG_FILE, Config, load_config
from tiops.errors import TiopsError, UsageError
from tiops.query.view import MemoryView, View, bundle_view

CACHE_DIR = Path(".tiops") / "cache"


def repository_view(root: Path, *, cache: bool = True) -> tuple[View, bool]:
    """The view of the repository's compiled intel, and whether the bundle was fresh.

    The bundle ``tiops compile`` wrote (``<output>/bundle.json``) is used, through the
    kept view, when no intel, rule or config file is newer than it; otherwise the
    repository is compiled in memory (defaults and ingestion rules applied), through the
    build cache as `tiops compile` builds (only the files changed since the last build are
    parsed and checked again; ``cache=False`` parses all), and no bundle is written.
    """
    config = _config(root)
    bundle = root / config.output_dir / "bundle.json"
    if _is_fresh(bundle, config):
        return bundle_view(bundle, root / CACHE_DIR), True
    # The whole pipeline, imported only when the bundle cannot serve.
    from tiops.pipeline import compiled_intel

    return MemoryView(compiled_intel(root, cache=cache)), False


def file_view(path: Path, root: Path | None) -> View:
    """The view of a STIX bundle file, kept under the repository's .tiops/cache (outside
    a repository nothing is written and the bundle is read each time)."""
    if not path.is_file():
        raise UsageError(f"no such bundle file: {path}")
    return bundle_view(path, root / CACHE_DIR if root is not None else None)


def target_view(root: Path, name: str) -> View:
    """The current objects of a configured store target."""
    from tiops.stores import open_store

    config = _config(root)
    if name not in config.targets:
        close = difflib.get_close_matches(name, sorted(config.targets), n=3, cutoff=0.6)
        raise UsageError(f"unknown target {name!r}" + (f"; did you mean {' or '.join(map(repr, close))}?" if close else ""),
                         hint=f"Targets are named in {CONFIG_FILE}: {', '.join(sorted(config.targets))}.")
    store = open_store(name, config.targets[name], root)
    try:
        ids = sorted(store.manifest())
        objects = store.current_objects(ids)
    finally:
        store.close()
    return MemoryView(objects[i] for i in ids if i in objects)


def _config(root: Path) -> Config:
    config, findings = load_config(root)
    if findings:
        raise TiopsError(f"{CONFIG_FILE}: {findings[0].message}", hint="Run 'tiops validate' to see every finding.")
    return config


def _is_fresh(bundle: Path, config: Config) -> bool:
    """Whether no intel, rule or config file (nor folder) was modified after the bundle.

    Every file is looked at: an editor that saves in place changes the file's time and
    not its folder's, so folder times alone would miss an edit. With 48k files the
    look is most of a query; ``find`` (POSIX) makes it in C and stops at the first
    newer file, at about half the CPU time of the same walk in Python
    (docs/performance.md); without it, or if it fails, Python walks.
    """
    try:
        built = bundle.stat().st_mtime_ns
    except OSError:
        return False
    tops = [top for top in (config.root / CONFIG_FILE, config.intel_path, config.rules_path) if os.path.lexists(top)]
    newer = _find_newer(tops, bundle)
    if newer is not None:
        return not newer
    return all(_newest(top) <= built for top in tops)


def _find_newer(tops: list[Path], bundle: Path) -> bool | None:
    """Whether ``find`` sees anything under ``tops`` modified after ``bundle`` (None: no answer)."""
    find = shutil.which("find") if os.name == "posix" else None
    if find is None or not tops:
        return None if tops else False
    try:
        # -newer compares modification times at the file system's precision (as _newest does);
        # -P: symbolic links are not followed. Paths are absolute, so none is read as an option.
        done = subprocess.run([find, "-P", *(str(top.absolute()) for top in tops), "-newer", str(bundle.absolute()),
                               "-print", "-quit"], capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.stdout.strip():
        return True
    return False if done.returncode == 0 else None


def _newest(path: Path) -> int:
    """The newest modification time of a file or of anything under a folder (0 if absent)."""
    try:
        newest = path.stat().st_mtime_ns
    except OSError:
        return 0
    if not path.is_dir():
        return newest
    pending = [str(path)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime_ns)
    return newest
