"""Time a one-file change with the build cache against a full compile, in the same run.

    python benchmarks/bench_incremental.py [REPO] [--objects 100000] [--repeat 3]

REPO is a repository the benchmark may write into (it edits one object file, restores
it, and keeps ``.tiops/build-cache/``); without it one of ``--objects`` objects is
generated into a temporary folder (not timed). Every figure is a real ``tiops``
command in a new process, start-up included, kept as the best of ``--repeat`` runs,
the runs of the different commands alternating:

* full compile      = ``tiops compile --no-cache`` (the baseline, 1.00x);
* cold cache        = ``tiops compile`` with no ``.tiops/build-cache/`` (writes it);
* one-file recompile = ``tiops compile`` after appending a property to one object file;
* validate FILE     = ``tiops validate FILE`` after the same kind of edit (pre-commit);
* no-change compile = ``tiops compile`` when nothing changed;
* with imported partner intel in REPO (a folder holding ``_imported.json``), what
  ``tiops tag`` does to it: a line for one more partner object added to the folder's
  ``_overlay.yaml``, then ``tiops compile``; and another, then
  ``tiops validate`` of the overlay (the pre-commit hook after the tag).

Each cached compile's bundle is compared byte for byte with the full compile's
bundle of the same content, so a figure never comes from a wrong build.

``--phases`` then also times the stages of one cached compile after a one-file edit
in this process: loading through the cache, the checks, saving the cache, ingestion
rules, ordering the bundle's objects and serialising them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import generate_repo
import yaml

CACHE = Path(".tiops") / "build-cache"


def _run(root: Path, *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tiops", *args], cwd=root, capture_output=True, text=True,
                          check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"tiops {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def _pick_file(root: Path) -> Path:
    for path in sorted((root / "intel").rglob("*.yaml")):
        if path.name != "_defaults.yaml" and path.read_text(encoding="utf-8").startswith("type:"):
            return path
    raise SystemExit("no single-object file to edit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", nargs="?", type=Path)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--phases", action="store_true", help="also time the stages of a cached compile in-process")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tiops-bench-incremental-") as scratch:
        root = options.repo
        if root is None:
            root = Path(scratch) / "repo"
            generate_repo.main([str(options.objects), str(root)])
        root = root.resolve()
        edited = _pick_file(root)
        original = edited.read_bytes()
        partner = _pick_partner(root)
        overlay = partner[0] / "_overlay.yaml" if partner else None
        overlay_before = overlay.read_bytes() if overlay is not None and overlay.exists() else None
        full_bundle, cached_bundle = Path(scratch) / "full.json", Path(scratch) / "cached.json"
        best: dict[str, float] = {}

        def keep(name: str, seconds: float) -> None:
            best[name] = min(seconds, best.get(name, seconds))

        try:
            for attempt in range(options.repeat):
                shutil.rmtree(root / CACHE, ignore_errors=True)
                keep("full compile (--no-cache)", _run(root, "compile", "--no-cache", "-o", str(full_bundle)))
                keep("cold cache (first compile)", _run(root, "compile", "-o", str(cached_bundle)))
                _same(full_bundle, cached_bundle)
                keep("no-change compile", _run(root, "compile", "-o", str(cached_bundle)))
                edited.write_bytes(original + f"x_bench_edit: {attempt}\n".encode())
                keep("one-file recompile", _run(root, "compile", "-o", str(cached_bundle)))
                _run(root, "compile", "--no-cache", "-o", str(full_bundle))  # the same content, uncached
                _same(full_bundle, cached_bundle)
                edited.write_bytes(original + f"x_bench_check: {attempt}\n".encode())
                keep("validate FILE (pre-commit)", _run(root, "validate", str(edited.relative_to(root))))
                edited.write_bytes(original)
                if partner and overlay is not None:
                    _tag(overlay, overlay_before, partner[1], f"bench-{attempt}")
                    keep("tag a partner object, compile", _run(root, "compile", "-o", str(cached_bundle)))
                    _run(root, "compile", "--no-cache", "-o", str(full_bundle))
                    _same(full_bundle, cached_bundle)
                    _tag(overlay, overlay_before, partner[2], f"bench-{attempt}")
                    keep("tag one, validate _overlay.yaml", _run(root, "validate", str(overlay.relative_to(root))))
                    _restore(overlay, overlay_before)
        finally:
            edited.write_bytes(original)
            if overlay is not None:
                _restore(overlay, overlay_before)
        baseline = best["full compile (--no-cache)"]
        files = sum(1 for _ in (root / "intel").rglob("*.yaml"))
        print(f"repository: {root} ({files} YAML files), edited: {edited.relative_to(root)}, best of {options.repeat}")
        print(f"{'what':<30} {'seconds':>8} {'vs. full compile':>17}")
        for name, seconds in best.items():
            print(f"{name:<30} {seconds:8.2f} {seconds / baseline:16.2f}x")
        size = sum(p.stat().st_size for p in (root / CACHE).iterdir())
        print(f"cache size: {size / 1e6:.0f} MB in {len(os.listdir(root / CACHE))} files")
        if options.phases:
            try:
                edited.write_bytes(original + b"x_bench_phases: 1\n")
                _phases(root)
            finally:
                edited.write_bytes(original)


def _pick_partner(root: Path) -> tuple[Path, str, str] | None:
    """An imported source folder and two ids of its objects (its import lock lists them) that its
    overlay does not name yet, or None."""
    for lock in sorted((root / "intel").rglob("_imported.json")):
        folder = lock.parent
        overlay = folder / "_overlay.yaml"
        lines = yaml.safe_load(overlay.read_text(encoding="utf-8")) if overlay.exists() else None
        named = set(lines) if isinstance(lines, dict) else set()
        imported = json.loads(lock.read_text(encoding="utf-8")).get("objects", {})
        ids = sorted(identifier for identifier in imported if identifier not in named)
        if len(ids) >= 2:
            return folder, ids[0], ids[1]
    return None


def _tag(overlay: Path, before: bytes | None, identifier: str, label: str) -> None:
    """What `tiops tag add LABEL --id IDENTIFIER` writes for a partner object: a line of the overlay."""
    overlay.write_bytes((before or b"") + f"{identifier}:\n  labels: [{label}]\n".encode())


def _restore(overlay: Path, before: bytes | None) -> None:
    if before is None:
        overlay.unlink(missing_ok=True)
    else:
        overlay.write_bytes(before)


def _phases(root: Path) -> None:
    from tiops.buildcache import load_repo_cached
    from tiops.compile import bundle_objects, serialize_bundle
    from tiops.memory import paused_gc
    from tiops.rules import apply_repo_rules, resolve_as_of
    from tiops.validate import validate_repo

    marks = [("start", time.perf_counter())]
    with paused_gc():
        loaded = load_repo_cached(root)
        marks.append((f"load through the cache ({loaded.parsed_files} file(s) parsed)", time.perf_counter()))
        validate_repo(loaded.repo, prechecked=loaded.prechecked())
        marks.append(("repository-wide checks", time.perf_counter()))
        loaded.cache.save()
        marks.append(("save the cache", time.perf_counter()))
        outcome = apply_repo_rules(loaded.repo, resolve_as_of(root, None))[0]
        marks.append(("ingestion rules", time.perf_counter()))
        objects = bundle_objects(loaded.repo, rules=outcome)
        marks.append(("order the bundle's objects", time.perf_counter()))
        serialize_bundle(objects)
        marks.append(("serialise the bundle", time.perf_counter()))
    total = marks[-1][1] - marks[0][1]
    print(f"\nstages of one cached compile after a one-file edit (in-process, {total:.2f} s):")
    for (_, before), (name, after) in itertools.pairwise(marks):
        print(f"  {name:<45} {after - before:6.2f} s {100 * (after - before) / total:5.1f} %")


def _same(first: Path, second: Path) -> None:
    if first.read_bytes() != second.read_bytes():
        raise SystemExit("the cached build's bundle differs from the full compile's")


if __name__ == "__main__":
    main()
