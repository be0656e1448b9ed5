"""Incremental build cache: what loading and per-object checks made of each file, kept in ``.tiops/build-cache/``.

A one-file change to a 100k-object repository should cost one file's parse and checks,
not the whole repository's (docs/performance.md, incremental builds). The cache keeps,
for every object file, the objects loading made of it (``_defaults.yaml`` and overlays
applied, ids derived, inline relationships expanded), its load findings, the
per-object findings of ``tiops.validate.objects.check_object`` (locations already
resolved) and each object's references (tiops.validate.reference_index), the index the
repository-wide reference check resolves against every id of the repository.
Repository-wide checks (duplicate ids, references, relationship triples, extensions,
ingestion rules, partner intel) always run again over the whole repository, cached
objects included, so a change in one file still shows up wherever it matters.

The package, from the bottom up:

* :mod:`tiops.buildcache.entries`: what one entry holds (:class:`FileEntry`) and how it is
  keyed (blob id, entry key, overlay signature, context key);
* :mod:`tiops.buildcache.store`: the cache folder (:class:`BuildCache`): its files, how they
  are trusted, read, spilled and saved, and the stat index;
* :mod:`tiops.buildcache.stats`: which files changed since the stat index, from an lstat of
  each (a forked helper taking a share);
* :mod:`tiops.buildcache.folders`: a folder of unchanged files taken whole as one indexed file;
* :mod:`tiops.buildcache.whole`: a load with every object in memory (:func:`load_repo_cached`,
  :func:`load_intel`, :class:`CachedFiles` for a git revision beside the working tree);
* :mod:`tiops.buildcache.indexed`: a load as file indexes, objects read on demand
  (:func:`load_repo_indexed`), the warm route of builds and checks.

Lookup API (also for reading a git revision without a checkout)::

    cache = BuildCache.open(root, context_key(root))
    key = entry_key("intel/malware/x.yaml", defaults_key(defaults))
    entry = cache.lookup(blob_id(content), key, defaults.overlay)   # FileEntry | None
    unpacked = entry.unpack()   # objects, findings, references, malformed ids, overlay signature
    cache.store(blob, key, entry)      # FileEntry.build(...) makes one
    cache.save()                       # atomic; never raises for a read-only folder
    cache.save_unless_small()          # a check's save: nothing for a handful of changed files

Determinism: the cache never changes what a build produces; cached and uncached builds
give the same findings and bundle bytes (tests/buildcache/test_buildcache.py proves it on random
edits). ``tiops compile --no-cache`` / ``TIOPS_NO_CACHE=1`` build without it.
"""

from tiops.buildcache.entries import (
    FORMAT,
    FileEntry,
    StaleEntry,
    StatRecord,
    Unpacked,
    blob_id,
    context_key,
    defaults_key,
    entry_key,
    entry_name,
    overlay_signature,
)
from tiops.buildcache.indexed import IndexedLoad, load_repo_indexed
from tiops.buildcache.store import CACHE_DIR, BuildCache, has_entries
from tiops.buildcache.whole import CachedFiles, CachedLoad, FileResult, load_intel, load_repo_cached

__all__ = [
    "CACHE_DIR",
    "FORMAT",
    "BuildCache",
    "CachedFiles",
    "CachedLoad",
    "FileEntry",
    "FileResult",
    "IndexedLoad",
    "StaleEntry",
    "StatRecord",
    "Unpacked",
    "blob_id",
    "context_key",
    "defaults_key",
    "entry_key",
    "entry_name",
    "has_entries",
    "load_intel",
    "load_repo_cached",
    "load_repo_indexed",
    "overlay_signature",
]
