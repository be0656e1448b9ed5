"""What an interrupted or slow build leaves in ``.tiops/build-cache/``: leftovers of a killed save go at the next
save (also when their process id was handed out again), and a slow run never vouches for a file edited during it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tiops.buildcache import CACHE_DIR


def _tiops(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tiops", "-C", str(root), *args], capture_output=True, text=True,
                          cwd=root.parent)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="process start times come from /proc")
def test_a_leftover_of_a_killed_build_goes_though_its_process_id_is_alive_again(example_repo: Path) -> None:
    # A build killed while writing a shard leaves .NAME.XXXXXX.PID.tmp (BuildCache._write). In a
    # container tiops runs as the same small process id each time, and a CI cache restores the
    # folder there: the id names a live process again, one started after the file was written.
    assert _tiops(example_repo, "compile", "-o", "dist/bundle.json").returncode == 0
    folder = example_repo / CACHE_DIR
    hour_ago = time.time() - 3600
    with subprocess.Popen(["sleep", "60"]) as reused:  # started now: it cannot have written an hour-old file
        try:
            old = folder / f".objects-3a.k9x2ab.{reused.pid}.tmp"
            being_written = folder / f".entries-3a.q7w1cd.{reused.pid}.tmp"  # a live writer's, just written
            old.write_bytes(b"x" * 4096)
            os.utime(old, (hour_ago, hour_ago))
            being_written.write_bytes(b"x")
            own = folder / f".entries-3b.z8r4ef.{os.getpid()}.tmp"  # alive too (the test itself), written long ago
            own.write_bytes(b"x")
            os.utime(own, (hour_ago, hour_ago))
            (example_repo / "intel" / "zz-new.yaml").write_text(
                "type: identity\nspec_version: '2.1'\nname: Leftover Test Org\nidentity_class: organization\n"
                "id: identity--1d5b1c8e-8a0e-4c8e-9a43-6e9e9a7e2b11\n"
                "created: '2025-01-01T00:00:00.000Z'\nmodified: '2025-01-01T00:00:00.000Z'\n", encoding="utf-8")
            compiled = _tiops(example_repo, "compile", "-o", "dist/bundle.json")
            assert compiled.returncode == 0, compiled.stderr
            assert not old.exists() and not own.exists()
            assert being_written.exists()  # a live writer's file started after it: maybe its own, kept
        finally:
            reused.kill()


def test_a_file_modified_just_before_a_slow_run_is_hashed_again_by_the_next(example_repo: Path) -> None:
    # The stat index's modification time bounds the records the next run trusts (BuildCache._read_index):
    # a file modified less than a second before it is hashed again. The records are taken while
    # the run reads the files; a run slower than a second (a large repository, a loaded machine)
    # dated its index when it ended, so a file saved again after the run read it, in the same clock
    # tick (a second, on file systems keeping whole seconds) and at the same size, kept the record of
    # the content read before, and every later build used that stale content.
    from tiops.buildcache import BuildCache, context_key
    from tiops.pipeline import load_and_validate

    files = sorted(p for p in (example_repo / "intel").rglob("*.yaml") if p.name != "_defaults.yaml")
    hour_ago = int((time.time() - 3600) * 1e9)
    for path in files:
        os.utime(path, ns=(hour_ago, hour_ago))
    load_and_validate(example_repo, cache=True)
    edited = files[0]
    edited.write_text(edited.read_text(encoding="utf-8") + "# saved\n", encoding="utf-8")
    slept: list[str] = []

    def slow(stage: str, _done: int, _total: int) -> None:
        if stage == "validate" and not slept:  # after every file was read, before the cache is saved
            slept.append(stage)
            time.sleep(1.3)

    load_and_validate(example_repo, cache=True, progress=slow)
    assert slept
    cache = BuildCache.open(example_repo, context_key(example_repo))
    relative = edited.relative_to(example_repo).as_posix()
    assert relative in cache._index  # the run remembered it (with the content it read)
    assert cache.known_blob(relative, os.lstat(edited)) is None  # racy: read again, not trusted
    assert cache.known_blob(files[1].relative_to(example_repo).as_posix(), os.lstat(files[1])) is not None
