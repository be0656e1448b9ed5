"""The stat index delta: a build that changed a few stat records writes them beside the index it
read, rather than the whole index again (tiops.buildcache.store.BuildCache._index_delta)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from tiops.buildcache import CACHE_DIR, BuildCache, context_key, store
from tiops.inputs import file_identity
from tiops.pipeline import ValidationFailed, build

AS_OF = "2025-01-01"
OLD = 1_600_000_000 * 10**9  # 2020: far from any racy bound


def _age(root: Path) -> None:
    """Old modification times, so the stat index trusts its records (no file is racily clean)."""
    for path in (root / "intel").rglob("*"):
        if path.is_file():
            os.utime(path, ns=(OLD, OLD))


def _compile(root: Path, tmp_path: Path) -> bytes:
    output = tmp_path / "bundle.json"
    build(root, as_of=AS_OF, output=output, cache=True)
    return output.read_bytes()


def _intel(root: Path) -> list[Path]:
    return sorted(p for p in (root / "intel").rglob("*.yaml") if not p.name.startswith("_"))


def _edit(path: Path) -> None:
    """Another file (another size and blob) with the same objects."""
    with path.open("a", encoding="utf-8") as out:
        out.write("# edited\n")
    os.utime(path, ns=(OLD, OLD))


def _open(root: Path) -> BuildCache:
    return BuildCache.open(root, context_key(root), lazy=True)


def _describes_the_files_as_they_are(root: Path, cache: BuildCache) -> None:
    """Every record of the index (its delta applied) is the lstat of its file now, and every file has one."""
    for relative, record in cache._index.items():
        now = os.lstat(root / relative)
        assert record[:4] == (now.st_size, now.st_mtime_ns, now.st_ctime_ns, file_identity(now)), relative
    assert set(cache._index) >= {path.relative_to(root).as_posix() for path in _intel(root)}


@pytest.fixture
def warm(example_repo: Path, tmp_path: Path) -> Path:
    _age(example_repo)
    _compile(example_repo, tmp_path)  # the first build: the index written whole
    return example_repo


def test_a_one_file_change_writes_its_record_beside_the_index(warm: Path, tmp_path: Path) -> None:
    folder = warm / CACHE_DIR
    index_before = (folder / "index").read_bytes()
    assert not (folder / "index-delta").exists()
    edited = _intel(warm)[3]
    _edit(edited)
    bundle = _compile(warm, tmp_path)
    assert (folder / "index").read_bytes() == index_before  # not written again
    cache = _open(warm)
    assert cache.rejected == [] and cache.index_identities()[1] is not None
    # The delta holds the one record that changed, not the others the build took unchanged.
    assert cache._delta_records is not None and set(cache._delta_records) == {edited.relative_to(warm).as_posix()}
    _describes_the_files_as_they_are(warm, cache)
    # The bound is the delta's time: the build that wrote it found or took again every record.
    assert cache._index_trusted_before == os.stat(folder / "index-delta").st_mtime_ns - store._RACY_NS
    delta_bytes = (folder / "index-delta").read_bytes()
    assert _compile(warm, tmp_path) == bundle  # nothing changed: nothing written
    assert (folder / "index-delta").read_bytes() == delta_bytes
    # A second change: the delta holds both, still beside the first index.
    other = _intel(warm)[5]
    _edit(other)
    _compile(warm, tmp_path)
    assert (folder / "index").read_bytes() == index_before
    cache = _open(warm)
    assert cache._delta_records is not None
    assert set(cache._delta_records) == {edited.relative_to(warm).as_posix(), other.relative_to(warm).as_posix()}
    _describes_the_files_as_they_are(warm, cache)
    # A plan reads the same records and bound (tiops.lastbuild: which files it need not hash again).
    from tiops.lastbuild import build_cache_blobs

    known = build_cache_blobs(warm)
    assert known is not None and known == (cache._index, cache._index_trusted_before)


def test_a_file_deleted_leaves_the_index_through_the_delta(warm: Path, tmp_path: Path) -> None:
    gone = _intel(warm)[-1]
    relative = gone.relative_to(warm).as_posix()
    assert relative in _open(warm)._index
    gone.unlink()
    with contextlib.suppress(ValidationFailed):  # a reference to its objects may fail; the cache is saved all the same
        _compile(warm, tmp_path)
    cache = _open(warm)
    assert cache._delta_records is not None and cache._delta_records.get(relative, "absent") is None
    assert relative not in cache._index
    _describes_the_files_as_they_are(warm, cache)


def test_a_change_too_large_for_a_delta_writes_the_index_again(warm: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = warm / CACHE_DIR
    _edit(_intel(warm)[1])
    _compile(warm, tmp_path)
    assert (folder / "index-delta").exists()
    index_before = (folder / "index").read_bytes()
    monkeypatch.setattr(store, "_DELTA_MIN", 2)  # the share alone: 1 record in 32 of the index's
    assert len(_open(warm)._index) // store._DELTA_SHARE < 3
    _edit(_intel(warm)[2])
    _compile(warm, tmp_path)
    assert (folder / "index").read_bytes() == index_before  # two records: still a delta
    _edit(_intel(warm)[3])
    _compile(warm, tmp_path)  # three: the index again
    assert (folder / "index").read_bytes() != index_before
    assert not (folder / "index-delta").exists()
    cache = _open(warm)
    assert cache._delta_records is None and cache.index_identities()[1] is None
    _describes_the_files_as_they_are(warm, cache)


def test_a_delta_of_another_index_is_not_applied(warm: Path, tmp_path: Path) -> None:
    cache = _open(warm)
    bogus = {"intel/not-there.yaml": (1, 2, 3, 4, "0" * 40)}
    cache._write("index-delta", {"base": b"\0" * 32, "records": bogus})  # a delta of some other index
    again = _open(warm)
    assert again.rejected == [] and again._delta_records is None and again.index_identities()[1] is None
    assert "intel/not-there.yaml" not in again._index
    assert again._index_trusted_before == os.stat(warm / CACHE_DIR / "index").st_mtime_ns - store._RACY_NS
    _compile(warm, tmp_path)  # nothing changed, nothing to write: but the useless delta goes
    assert not (warm / CACHE_DIR / "index-delta").exists()


@pytest.mark.parametrize("damage", ["flip", "shape"])
def test_a_damaged_delta_is_rejected_and_the_index_used_alone(warm: Path, tmp_path: Path, damage: str) -> None:
    delta = warm / CACHE_DIR / "index-delta"
    if damage == "flip":
        _edit(_intel(warm)[4])
        _compile(warm, tmp_path)
        data = delta.read_bytes()
        delta.write_bytes(data[:-3] + bytes([data[-3] ^ 1]) + data[-2:])
    else:  # the right index, records of another shape
        cache = _open(warm)
        cache._write("index-delta", {"base": cache.read_identities["index"], "records": {"intel/x.yaml": (1, 2)}})
    cache = _open(warm)
    assert cache._delta_records is None and "intel/x.yaml" not in cache._index
    assert cache.rejected == (["index-delta"] if damage == "flip" else [])
    # The files changed since the index was written are found changed by their lstat: the compile is right.
    assert _compile(warm, tmp_path) == build(warm, as_of=AS_OF, cache=False).bundle
    # And what is left beside the index is a delta that applies, or none at all.
    assert not delta.exists() or _open(warm)._delta_records is not None
    if damage == "shape":
        assert not delta.exists()  # nothing changed to write: the useless delta went all the same


@pytest.mark.parametrize("seed", range(6))
def test_the_new_index_is_the_files_as_they_are_after_random_changes(warm: Path, tmp_path: Path, seed: int) -> None:
    """Files edited, deleted, added and renamed between builds: the index the next build reads
    (delta or whole) holds a record for each file there is, and none for a file gone."""
    import random

    rng = random.Random(seed)
    for step in range(3):
        files = _intel(warm)
        for path in rng.sample(files, 2):
            _edit(path)
        for path in rng.sample(files, 2):
            os.utime(path)  # touched, not changed: read again, found unchanged, taken and remembered both
        gone = rng.choice(files)
        gone.unlink()
        renamed = rng.choice([path for path in files if path.exists()])
        renamed.rename(renamed.with_name(f"renamed-{seed}-{step}.yaml"))
        added = warm / "intel" / f"added-{seed}-{step}.yaml"
        added.write_text(f"type: identity\nid: identity--0000{seed:04d}-000{step}-4000-8000-000000000000\n"
                         f"name: added {seed} {step}\nidentity_class: organization\n", encoding="utf-8")
        os.utime(added, ns=(OLD, OLD))
        with contextlib.suppress(ValidationFailed):  # a reference to a deleted object may fail: saved all the same
            _compile(warm, tmp_path)
        cache = _open(warm)
        _describes_the_files_as_they_are(warm, cache)
        walked = {path.relative_to(warm).as_posix() for path in (warm / "intel").rglob("*.yaml")}
        assert set(cache._index) <= walked, set(cache._index) - walked


def test_a_path_taken_whole_and_remembered_too_is_neither_gone_nor_counted_twice(tmp_path: Path) -> None:
    record = (1, 2, 3, 4, "a" * 40)

    def taken_and_remembered(index: dict[str, tuple[int, int, int, int, str]]) -> BuildCache:
        cache = BuildCache(tmp_path / "cache", "context")
        cache._index = index
        cache.take_folder("intel/f/", "key", ["a.yaml", "b.yaml"], ["a" * 40, "a" * 40])
        cache.remember_record("intel/f/b.yaml", (5, 6, 7, 8), "b" * 40)  # made in this run: it wins
        cache.remember_record("intel/g/c.yaml", (5, 6, 7, 8), "c" * 40)
        return cache

    cache = taken_and_remembered({"intel/f/a.yaml": record, "intel/f/b.yaml": record, "intel/g/c.yaml": record})
    assert cache._gone() == set()
    assert cache._whole_new_index() == {"intel/f/a.yaml": record, "intel/f/b.yaml": (5, 6, 7, 8, "b" * 40),
                                        "intel/g/c.yaml": (5, 6, 7, 8, "c" * 40)}
    # A file of the index neither taken nor remembered is gone, and leaves the new index: counted
    # without the overlap, the four paths taken or remembered would hide it.
    cache = taken_and_remembered({"intel/f/a.yaml": record, "intel/f/b.yaml": record, "intel/g/c.yaml": record,
                                  "intel/h/d.yaml": record})
    assert cache._gone() == {"intel/h/d.yaml"}
    assert "intel/h/d.yaml" not in cache._whole_new_index()
    assert cache._index_changed()


def _taken_files(cache: BuildCache, relatives: list[str]) -> None:
    """Files taken unchanged as a load takes them (tiops.buildcache.indexed._IndexedEntry: a path and an entry name)."""
    from types import SimpleNamespace

    cache.take_unchanged([SimpleNamespace(relative=relative, entry=f"{'a' * 40}\0{relative}\0key") for relative in relatives])


def test_a_racily_clean_file_taken_and_remembered_counts_once_in_the_deltas_bound(tmp_path: Path) -> None:
    """4096 files all taken, 129 of them read again and remembered (racily clean): the new index holds
    4096 records, so a delta holds at most 128 (1 in 32), and these 129 are written as the whole index."""
    cache = BuildCache(tmp_path / "cache", "context")
    relatives = [f"intel/f/{number:04d}.yaml" for number in range(4096)]
    cache._index = {relative: (1, 2, 3, 4, "a" * 40) for relative in relatives}
    cache.read_identities["index"] = b"the index read"
    _taken_files(cache, relatives)
    for relative in relatives[:129]:
        cache.remember_record(relative, (5, 6, 7, 8), "a" * 40)
    assert cache._gone() == set()
    assert cache._index_delta() is None
    fewer = BuildCache(tmp_path / "cache", "context")
    fewer._index, fewer.read_identities["index"] = dict(cache._index), b"the index read"
    _taken_files(fewer, relatives)
    for relative in relatives[:128]:
        fewer.remember_record(relative, (5, 6, 7, 8), "a" * 40)
    delta = fewer._index_delta()
    assert delta is not None and len(delta["records"]) == 128


def test_a_small_change_counts_a_file_taken_and_remembered_as_one_record_changed(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "cache", "context")
    relatives = [f"intel/f/{number:03d}.yaml" for number in range(200)]
    cache._index = {relative: (1, 2, 3, 4, "a" * 40) for relative in relatives}
    _taken_files(cache, relatives)
    for relative in relatives[:33]:
        cache.remember_record(relative, (5, 6, 7, 8), "a" * 40)
    assert cache.small_change()  # before they are noted: 33 records made
    cache._note_taken()
    # Noted, each of the 33 is a record made in this run that is not the index's: with the 33 made,
    # 66 records are counted changed, more than a small change writes nothing for (_SMALL_RECORDS).
    assert not cache.small_change()
