"""Cache files read ahead on a thread (BuildCache.prefetch) are taken as a plain read would take them."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tiops.buildcache import CACHE_DIR, BuildCache, context_key, store
from tiops.pipeline import build

AS_OF = "2025-01-01"


@pytest.fixture
def warm_repo(example_repo: Path, tmp_path: Path) -> Path:
    build(example_repo, as_of=AS_OF, output=tmp_path / "bundle.json", cache=True)
    return example_repo


def _held_reads(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Cache reads held until the event returned is set (at most 5 s)."""
    release = threading.Event()
    real = store.read_regular_file_dated

    def held(path: Any) -> Any:
        release.wait(5)
        return real(path)

    monkeypatch.setattr(store, "read_regular_file_dated", held)
    return release


def _open(root: Path, prefetched: store.Prefetch | None, ahead: tuple[str, ...] = ()) -> BuildCache:
    cache = BuildCache.open(root, context_key(root), lazy=True, prefetched=prefetched)
    cache.read_ahead(ahead)
    return cache


def test_what_is_read_ahead_is_what_a_plain_read_gives(warm_repo: Path) -> None:
    plain = _open(warm_repo, None)
    ahead = _open(warm_repo, BuildCache.prefetch(warm_repo), ("bundle-record",))
    assert ahead._index == plain._index and ahead._index
    assert ahead._index_trusted_before == plain._index_trusted_before
    assert ahead.read_record("bundle-record") == plain.read_record("bundle-record") is not None
    assert ahead.read_identities == plain.read_identities
    assert ahead.rejected == plain.rejected == []


@pytest.mark.parametrize("damage", ["flip", "truncate", "directory"])
def test_a_damaged_file_read_ahead_is_rejected_as_a_plain_read_rejects_it(warm_repo: Path, damage: str) -> None:
    record = warm_repo / CACHE_DIR / "bundle-record"
    data = record.read_bytes()
    record.unlink()
    if damage == "flip":
        record.write_bytes(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:])
    elif damage == "truncate":
        record.write_bytes(data[:10])
    else:
        record.mkdir()
    plain = _open(warm_repo, None)
    ahead = _open(warm_repo, BuildCache.prefetch(warm_repo), ("bundle-record",))
    assert ahead.read_record("bundle-record") is None is plain.read_record("bundle-record")
    assert ahead.rejected == plain.rejected == ["bundle-record"]


def test_an_index_replaced_after_it_was_read_ahead_is_taken_with_its_own_time(warm_repo: Path) -> None:
    # The racy bound comes from the time of the index that was read, taken before reading it (as
    # _read_index does): never the time of a newer index with the older one's records.
    index = warm_repo / CACHE_DIR / "index"
    before = _open(warm_repo, None)
    prefetched = BuildCache.prefetch(warm_repo)
    prefetched._ready["index"].wait()
    newer = _open(warm_repo, None)
    newer._index = {"intel/x.yaml": (1, 2, 3, 4, "0" * 40)}
    newer._write("index", newer._index)
    os.utime(index, ns=(index.stat().st_mtime_ns + 5_000_000_000,) * 2)
    ahead = _open(warm_repo, prefetched)
    assert ahead._index == before._index
    assert ahead._index_trusted_before == before._index_trusted_before
    assert _open(warm_repo, None)._index == newer._index


def test_what_is_forgotten_is_read_again_from_the_file(warm_repo: Path) -> None:
    cache = _open(warm_repo, BuildCache.prefetch(warm_repo), ("bundle-record",))
    cache.forget_prefetched()
    other = _open(warm_repo, None)
    other.write_record("bundle-record", {"written": "after the read ahead"})
    assert cache.read_record("bundle-record") == {"written": "after the read ahead"}
    for thread in threading.enumerate():  # not waited for by forget_prefetched, but ending on its own
        if thread.name == "tiops-cache-read":
            thread.join(10)
    assert [thread.name for thread in threading.enumerate()].count("tiops-cache-read") == 0


def test_a_read_ahead_that_fails_on_its_thread_leaves_the_files_to_a_plain_read(
        warm_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = store.read_regular_file_dated
    calls: list[str] = []

    def failing(path: Any) -> Any:
        calls.append(threading.current_thread().name)
        if threading.current_thread().name == "tiops-cache-read":
            raise MemoryError("no room on the thread")
        return real(path)

    monkeypatch.setattr(store, "read_regular_file_dated", failing)
    plain = _open(warm_repo, None)
    ahead = _open(warm_repo, BuildCache.prefetch(warm_repo), ("bundle-record",))
    assert ahead._index == plain._index and ahead._index
    assert ahead.read_record("bundle-record") == plain.read_record("bundle-record") is not None
    assert "tiops-cache-read" in calls


def test_a_compile_reads_its_record_ahead_and_builds_the_same_bundle(warm_repo: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[tuple[str, bool]] = []
    real_take = store.Prefetch.take

    def noting(self: store.Prefetch, name: str) -> Any:
        got = real_take(self, name)
        taken.append((name, got is not None))
        return got

    monkeypatch.setattr(store.Prefetch, "take", noting)
    intel = sorted((warm_repo / "intel").rglob("*.yaml"))
    edited = next(path for path in intel if "name:" in path.read_text() and not path.name.startswith("_"))
    edited.write_text(edited.read_text().replace("name:", "name: Edited", 1))
    warm = build(warm_repo, as_of=AS_OF, output=tmp_path / "bundle.json", cache=True)
    assert ("index", True) in taken and ("bundle-record", True) in taken
    cold = build(warm_repo, as_of=AS_OF, cache=False)
    assert (tmp_path / "bundle.json").read_bytes() == cold.bundle
    assert warm.metadata["bundle_sha256"] == cold.metadata["bundle_sha256"]


def test_the_folder_groups_read_ahead_are_the_groups_a_plain_read_gives(warm_repo: Path) -> None:
    plain = _open(warm_repo, None)
    ahead = _open(warm_repo, BuildCache.prefetch(warm_repo))
    plain.walked_folders(set())
    ahead.walked_folders(set())
    assert ahead._folder_shards == plain._folder_shards and any(ahead._folder_shards.values())
    assert ahead.read_identities == plain.read_identities


def test_a_fork_waits_for_a_read_ahead_rather_than_refusing(warm_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tiops import forkwork

    if not forkwork.can_fork():
        pytest.skip("no fork here")
    real = store.read_regular_file_dated
    release = threading.Event()

    def slow(path: Any) -> Any:
        release.wait(5)
        return real(path)

    monkeypatch.setattr(store, "read_regular_file_dated", slow)
    prefetched = BuildCache.prefetch(warm_repo)
    assert threading.active_count() == 2
    timer = threading.Timer(0.2, release.set)
    timer.start()
    timer.join()  # the read ahead is released and still running: the fork waits for it
    assert forkwork.can_fork()
    assert threading.active_count() == 1
    assert _open(warm_repo, prefetched)._index == _open(warm_repo, None)._index


def test_a_warm_load_still_forks_its_lstat_helper_with_the_record_read_ahead(
        warm_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tiops.buildcache import stats

    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    forked: list[Any] = []
    real = stats._changed_beside_read

    def noting(*args: Any) -> Any:
        beside = real(*args)
        forked.append(beside)
        return beside

    monkeypatch.setattr(stats, "_changed_beside_read", noting)
    real_read = store.read_regular_file_dated

    def slow_on_the_thread(path: Any) -> Any:  # the read ahead still running when the load decides to fork
        if threading.current_thread().name == "tiops-cache-read" and Path(path).name == "folders-00":
            time.sleep(0.3)
        return real_read(path)

    monkeypatch.setattr(store, "read_regular_file_dated", slow_on_the_thread)
    build(warm_repo, as_of=AS_OF, output=tmp_path / "bundle.json", cache=True)
    assert len(forked) == 1 and forked[0] is not None


def test_a_fork_refused_for_want_of_a_cpu_does_not_wait_for_a_read_ahead(warm_repo: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tiops import forkwork

    release = _held_reads(monkeypatch)
    monkeypatch.setattr(forkwork, "_cpus", lambda: 1)
    prefetched = BuildCache.prefetch(warm_repo)
    started = time.monotonic()
    assert not forkwork.can_fork()
    assert time.monotonic() - started < 2 and not release.is_set()
    release.set()
    prefetched.close()


def test_the_index_time_is_that_of_the_very_file_read(warm_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another build renames its index over this one between a stat by path and the read: the bound
    # must be the time of the index whose records are read, not of the one stat-ed by path.
    index = warm_repo / CACHE_DIR / "index"
    old_time = index.stat().st_mtime_ns
    newer = _open(warm_repo, None)
    newer._index = {"intel/x.yaml": (1, 2, 3, 4, "0" * 40)}
    replaced: list[bool] = []
    real = store.read_regular_file_dated

    def renamed_over_first(path: Any) -> Any:
        if Path(path).name == "index" and not replaced:
            replaced.append(True)
            newer._write("index", newer._index)
            os.utime(index, ns=(old_time + 7_000_000_000,) * 2)
        return real(path)

    monkeypatch.setattr(store, "read_regular_file_dated", renamed_over_first)
    cache = _open(warm_repo, None)
    assert cache._index == newer._index
    assert cache._index_trusted_before == old_time + 7_000_000_000 - store._RACY_NS


def test_a_budget_reads_ahead_the_first_files_only(warm_repo: Path) -> None:
    folder = warm_repo / CACHE_DIR
    prefetched = store.Prefetch(folder, ["index", "bundle-record"], budget=1)
    first = prefetched.take("index")
    assert first is not None and first[1] == (folder / "index").read_bytes() and first[2]
    assert prefetched.take("bundle-record") is None  # over the budget: read as ever
    assert prefetched.take("index") is None  # taken once


def test_a_file_over_the_budget_is_read_ahead_by_a_later_call(warm_repo: Path) -> None:
    # A million objects' index spends the budget of the read ahead before the walk: the record is
    # then read ahead once the lstats are taken (BuildCache.read_ahead), not read plainly.
    folder = warm_repo / CACHE_DIR
    prefetched = store.Prefetch(folder, ["index", "bundle-record"], budget=1)
    for thread in prefetched._threads:
        thread.join()
    assert prefetched.ready("index") and not prefetched.ready("bundle-record")
    prefetched.more(["bundle-record"])
    record = prefetched.take("bundle-record")
    assert record is not None and record[1] == (folder / "bundle-record").read_bytes()
    assert not prefetched.ready("bundle-record")  # taken
    assert prefetched.take("index") is not None and not prefetched.ready("index")


def test_a_closed_read_ahead_is_not_waited_for_and_keeps_nothing(warm_repo: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    release = _held_reads(monkeypatch)
    prefetched = store.Prefetch(warm_repo / CACHE_DIR, ["bundle-record"])
    started = time.monotonic()
    prefetched.close()
    assert time.monotonic() - started < 2
    release.set()
    for thread in prefetched._threads:
        thread.join()
    assert prefetched.take("bundle-record") is None and prefetched._read == {}


@pytest.mark.parametrize("budget", ["default", "none"])
def test_the_previous_bundle_is_read_beside_the_load_when_the_record_was_read_ahead(
        example_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: str) -> None:
    import tiops.buildcache
    from tiops import bundlereuse

    output = tmp_path / "bundle.json"
    build(example_repo, as_of=AS_OF, output=output, cache=True)  # the cache, its record and the bundle
    edited = sorted((example_repo / "intel").rglob("*.yaml"))[-1]
    with edited.open("a", encoding="utf-8") as out:
        out.write("# edited\n")
    if budget == "none":  # nothing read ahead before the walk, nor after the lstats: the record read after the load
        monkeypatch.setattr(store, "_READ_AHEAD_BUDGET", 0)
        monkeypatch.setattr(store.BuildCache, "read_ahead", lambda self, names: None)
    loading = [False]
    started_while_loading: list[bool] = []
    real_load, real_previous = tiops.buildcache.load_repo_indexed, bundlereuse.PreviousBundle

    def load(*args: Any, **kwargs: Any) -> Any:
        loading[0] = True
        try:
            return real_load(*args, **kwargs)
        finally:
            loading[0] = False

    def previous(*args: Any, **kwargs: Any) -> Any:
        started_while_loading.append(loading[0])
        return real_previous(*args, **kwargs)

    monkeypatch.setattr(tiops.buildcache, "load_repo_indexed", load)
    monkeypatch.setattr(bundlereuse, "PreviousBundle", previous)
    result = build(example_repo, as_of=AS_OF, output=output, cache=True)
    # Read ahead before the walk, the record lets the previous bundle's read start once the lstats are
    # taken; read after the load, not before.
    assert started_while_loading == [budget == "default"]
    assert result.metadata["bundle_sha256"] == build(example_repo, as_of=AS_OF, cache=False).metadata["bundle_sha256"]
