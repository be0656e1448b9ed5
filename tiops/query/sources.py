"""Where a query's rows come from: the repository's compiled intel, a bundle file, or a
store's current objects."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import orjson

from tiops.config import CONFIG_FILE, Config, load_config
from tiops.errors import TiopsError, UsageError
from tiops.query.view import MemoryView, View, bundle_view

CACHE_DIR = Path(".tiops") / "cache"


def repository_view(root: Path) -> tuple[View, bool]:
    """The view of the repository's compiled intel, and whether the bundle was fresh.

    The bundle ``tiops compile`` wrote (``<output>/bundle.json``) is used, through the
    kept view, when no intel, rule or config file is newer than it; otherwise the
    repository is compiled in memory (defaults and ingestion rules applied), nothing
    written.
    """
    config = _config(root)
    bundle = root / config.output_dir / "bundle.json"
    if _is_fresh(bundle, config):
        return bundle_view(bundle, root / CACHE_DIR), True
    # The whole pipeline, imported only when the bundle cannot serve.
    from tiops.pipeline import build

    objects = orjson.loads(build(root).bundle)["objects"]
    return MemoryView(objects), False


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
    try:
        built = bundle.stat().st_mtime_ns
    except OSError:
        return False
    for top in (config.root / CONFIG_FILE, config.intel_path, config.rules_path):
        if _newest(top) > built:
            return False
    return True


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
