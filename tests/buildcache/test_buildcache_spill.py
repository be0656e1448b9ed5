"""The build cache's spill file: entries made during a build wait on disk, not in memory, until save."""

from __future__ import annotations

import marshal
import os
from pathlib import Path

import pytest
from test_buildcache import OLD, _outcome

from tiops.buildcache import CACHE_DIR, BuildCache, FileEntry, load_repo_cached, store
from tiops.enrich.lock import CHECK_RECORD


def _age(root: Path) -> None:
    """Old modification times, so the stat index is trusted (files are not racily clean)."""
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(OLD * 10**9, OLD * 10**9))


def _intel_files(root: Path) -> int:
    return sum(1 for p in (root / "intel").rglob("*.yaml") if p.name != "_defaults.yaml")


@pytest.fixture
def every_entry_spilled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of one entry each: the example repository's entries all go through the spill file."""
    monkeypatch.setattr(store, "_SPILL_CHUNK", 1)


def _names_in(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()} if folder.is_dir() else set()


@pytest.mark.usefixtures("every_entry_spilled")
def test_spilled_entries_are_saved_and_reused(example_repo: Path) -> None:
    _age(example_repo)
    loaded = load_repo_cached(example_repo)
    cache = loaded.cache
    assert loaded.parsed_files == _intel_files(example_repo)
    # Nothing of the entries is held in memory: each is one chunk of the spill file...
    assert not cache._pending
    assert sum(len(chunks) for chunks in cache._spilled.values()) == loaded.parsed_files
    # ...and that file has no name: an interrupted build leaves nothing behind.
    assert not any(name.startswith(".spill") for name in _names_in(example_repo / CACHE_DIR))
    cache.save()
    assert cache._spill is None and not cache._spilled
    again = load_repo_cached(example_repo)
    assert again.cache.rejected == [] and again.parsed_files == 0
    assert again.reused_files == loaded.parsed_files
    assert _outcome(example_repo, cache=True) == _outcome(example_repo, cache=False)


@pytest.mark.usefixtures("every_entry_spilled")
def test_a_torn_spill_file_is_ignored(example_repo: Path) -> None:
    expected = _outcome(example_repo, cache=False)
    _age(example_repo)
    loaded = load_repo_cached(example_repo)
    spill = loaded.cache._spill
    assert spill is not None
    chunks = sorted(chunk for chunks in loaded.cache._spilled.values() for chunk in chunks)
    # The last chunks torn off (a write cut short), and one digit of an object's id changed in the first.
    cut = chunks[len(chunks) // 2][0] + 3
    spill.flush()
    os.ftruncate(spill.fileno(), cut)
    spill.seek(chunks[0][0])
    first = spill.read(chunks[0][1])
    changed = chunks[0][0] + first.index(b"--", 60) + 4  # a digit of the first id in the entry's objects
    spill.seek(changed)
    spill.write(b"7" if first[changed - chunks[0][0]:][:1] != b"7" else b"8")
    spill.flush()
    damaged = 1 + sum(1 for offset, length, _ in chunks if offset + length > cut)
    loaded.cache.save()
    # The shards written hold every entry that read back whole, and nothing else.
    again = load_repo_cached(example_repo)
    assert again.cache.rejected == []
    assert again.parsed_files == damaged and again.reused_files == len(chunks) - damaged
    again.cache.save()
    assert _outcome(example_repo, cache=True) == expected
    assert load_repo_cached(example_repo).parsed_files == 0


@pytest.mark.parametrize("spilled", [True, False], ids=["spilled", "buffered"])
def test_an_interrupted_save_converges(example_repo: Path, monkeypatch: pytest.MonkeyPatch, spilled: bool) -> None:
    if spilled:
        monkeypatch.setattr(store, "_SPILL_CHUNK", 1)
    expected = _outcome(example_repo, cache=False)
    _age(example_repo)
    write = BuildCache._write
    written: list[str] = []

    def interrupted_after_two(self: BuildCache, name: str, body: dict[str, object]) -> None:
        # The example's enrichment lock keeps its checks in a record written while validating: not a shard.
        if len([done for done in written if done != CHECK_RECORD]) == 2:
            raise KeyboardInterrupt  # Ctrl-C between two shard files
        write(self, name, body)
        written.append(name)

    monkeypatch.setattr(BuildCache, "_write", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        _outcome(example_repo, cache=True)
    monkeypatch.setattr(BuildCache, "_write", write)
    folder = example_repo / CACHE_DIR
    # Two shards in place, no index yet, and nothing half-written or spilled left behind.
    assert _names_in(folder) == {".gitignore", *written}
    partial = load_repo_cached(example_repo)
    assert partial.cache.rejected == [] and 0 < partial.reused_files < _intel_files(example_repo)
    partial.cache.save()
    assert _outcome(example_repo, cache=True) == expected
    converged = load_repo_cached(example_repo)
    assert converged.parsed_files == 0 and converged.reused_files == _intel_files(example_repo)


def test_a_chunk_that_is_not_a_list_of_entries_gives_none() -> None:
    entry = ("ab" * 20, "intel/x.yaml\0key", (None, None, [], ["x"]), b"objects")
    assert store._chunk_entries(marshal.dumps([entry, entry])) == [entry, entry]
    for damaged in ([(*entry[:3], "objects")], [(*entry[:2], b"index", entry[3])], [entry[:3]], {"a": entry},
                    [entry, None]):
        assert store._chunk_entries(marshal.dumps(damaged)) == []
    assert store._chunk_entries(marshal.dumps([entry])[:-3]) == []  # cut short
    assert store._chunk_entries(b"\xff not marshal") == []


@pytest.mark.usefixtures("every_entry_spilled")
def test_a_spill_file_that_cannot_be_written_only_drops_the_entries(example_repo: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _outcome(example_repo, cache=False)
    _age(example_repo)
    import tempfile

    def refused(*_args: object, **_kwargs: object) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", refused)
    loaded = load_repo_cached(example_repo)  # every file still loaded, none kept
    assert loaded.parsed_files == _intel_files(example_repo)
    assert loaded.cache._spill_failed and not loaded.cache._pending
    loaded.cache.save()
    monkeypatch.undo()
    again = load_repo_cached(example_repo)
    assert again.cache.rejected == [] and again.reused_files == 0
    assert _outcome(example_repo, cache=True) == expected


@pytest.mark.parametrize("spill_chunk", [1, 1 << 20])  # spilled at once, or kept until the save
def test_an_entry_whose_index_marshal_cannot_write_is_left_out_alone(spill_chunk: int, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "_SPILL_CHUNK", spill_chunk)
    cache = BuildCache(tmp_path / "cache", "context")
    good = FileEntry((None, None, [], ["indicator--1"], ["indicator"], [], [], "", False, [], ""),
                                b"objects")
    unwritable = FileEntry((None, None, [], [object()], ["indicator"], [], [], "", False, [], ""),
                                      b"objects")
    cache.store("ab" * 20, "intel/a.yaml\0key", good)
    cache.store("ab" * 20, "intel/b.yaml\0key", unwritable)
    cache.save()
    shard = BuildCache(tmp_path / "cache", "context")._read("entries-ab")
    assert shard == {"ab" * 20: {"intel/a.yaml\0key": good.stored_index}}
