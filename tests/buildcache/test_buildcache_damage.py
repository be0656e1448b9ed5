"""A damaged build cache (restored from elsewhere, torn, replaced) costs a rebuild, never a traceback, hang or other byte.

Cases found by benchmarks/fuzz_build_cache.py, each kept here as it was found.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_buildcache import _age
from test_buildcache_reuse import AS_OF, _compiled, _record

from tiops import buildcache, pipeline
from tiops.buildcache import CACHE_DIR, BuildCache, context_key, has_entries, load_repo_cached
from tiops.bundlereuse import RECORD
from tiops.enrich.lock import CHECK_RECORD
from tiops.inputs import read_regular_file
from tiops.validate import validate_paths


class Hung(BaseException):
    """Raised into a block still running at its deadline (not an OSError, which the code under test handles)."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Fail, rather than hang the suite, when the block blocks (a named pipe opened for reading waits for a writer)."""

    def expired(_signal: int, _frame: object) -> None:
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def recorded_repo(example_repo: Path) -> Path:
    """The example repository without ingestion rules (a compile then keeps a bundle record), its lock kept."""
    shutil.rmtree(example_repo / "rules" / "ingestion")
    return example_repo


def _warm(root: Path, output: Path) -> None:
    """A cached compile twice (the second one keeps a bundle record and the lock's check record)."""
    _age(*(p for p in root.rglob("*") if p.is_file()))
    _compiled(root, output, cache=True)
    _compiled(root, output, cache=True)
    assert (root / CACHE_DIR / RECORD).is_file() and (root / CACHE_DIR / "index").is_file()


def _shards(root: Path) -> list[Path]:
    return sorted((root / CACHE_DIR).glob("entries-*"))


@pytest.mark.parametrize(("source", "target"), [
    ("index", "entries"),  # a stat index where entries were: its values are tuples, not entries
    (RECORD, "entries"),  # the bundle record (a dict of lists and numbers) where entries were
    ("entries", "index"),
    ("entries", "objects"),
    (CHECK_RECORD, RECORD),
    ("entries", "other-entries"),  # one shard restored over another
])
@pytest.mark.parametrize("how", ["copy", "link"])
def test_a_cache_file_in_place_of_another_is_foreign_there(recorded_repo: Path, tmp_path: Path, source: str,
                                                           target: str, how: str) -> None:
    output = tmp_path / "bundle.json"
    expected = _compiled(recorded_repo, tmp_path / "expected.json", cache=False)
    _warm(recorded_repo, output)
    folder = recorded_repo / CACHE_DIR
    shards = _shards(recorded_repo)
    assert len(shards) > 1 and (folder / CHECK_RECORD).is_file()
    named = {"index": folder / "index", RECORD: folder / RECORD, CHECK_RECORD: folder / CHECK_RECORD,
             "entries": shards[0], "other-entries": shards[1], "objects": folder / f"objects-{shards[0].name[-2:]}"}
    destination = named[target]
    destination.unlink()
    if how == "copy":
        shutil.copy(named[source], destination)
    else:
        destination.symlink_to(named[source].name)
    loaded = load_repo_cached(recorded_repo)
    if destination.name != CHECK_RECORD and destination.name != RECORD:
        assert destination.name in loaded.cache.rejected
    loaded.cache.save()
    for _ in range(2):  # the build that meets the damage, and the one after, which reads what that one wrote
        bundle, findings, _metadata = _compiled(recorded_repo, output, cache=True)
        assert (bundle, findings) == expected[:2]


@pytest.mark.parametrize("name", ["index", "entries", "objects", RECORD, CHECK_RECORD])
@pytest.mark.parametrize("kind", ["fifo", "folder", "dev-null", "unreadable"])
def test_a_cache_file_that_is_not_a_regular_file_is_ignored(recorded_repo: Path, tmp_path: Path, name: str,
                                                            kind: str) -> None:
    output = tmp_path / "bundle.json"
    expected = _compiled(recorded_repo, tmp_path / "expected.json", cache=False)
    _warm(recorded_repo, output)
    shard = _shards(recorded_repo)[0].name[-2:]
    path = recorded_repo / CACHE_DIR / {"entries": f"entries-{shard}", "objects": f"objects-{shard}"}.get(name, name)
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "dev-null":
        path.symlink_to(os.devnull)
    else:
        path.write_bytes(b"")
        path.chmod(0)
    with _deadline(20):
        for _ in range(2):
            bundle, findings, _metadata = _compiled(recorded_repo, output, cache=True)
            assert (bundle, findings) == expected[:2]


def test_a_link_to_an_endless_device_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "pipe").touch()
    (tmp_path / "pipe").unlink()
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "plain").write_bytes(b"abc")
    (tmp_path / "link").symlink_to("plain")
    with _deadline(5):
        assert read_regular_file(tmp_path / "zero") is None
        assert read_regular_file(tmp_path / "zero", follow_links=True) is None
        assert read_regular_file(tmp_path / "pipe") is None
    assert read_regular_file(tmp_path / "plain") == b"abc"
    assert read_regular_file(tmp_path / "plain", size=4) is None
    assert read_regular_file(tmp_path / "link") is None
    assert read_regular_file(tmp_path / "link", follow_links=True, size=3) == b"abc"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_bundle_replaced_by_a_pipe_or_device_is_written_to_it_never_read(recorded_repo: Path, tmp_path: Path,
                                                                           kind: str) -> None:
    from tiops import build
    from tiops.errors import TiopsError

    output = tmp_path / "bundle.json"
    expected = _compiled(recorded_repo, tmp_path / "expected.json", cache=False)
    _warm(recorded_repo, output)
    assert _record(recorded_repo) is not None
    output.unlink()
    if kind == "fifo":
        os.mkfifo(output)
        # The record's bundle is never read from it (a reader of a pipe waits for a writer), and a
        # pipe nobody reads from is an error at once, not a build that hangs on writing.
        with _deadline(20), pytest.raises(TiopsError, match="nothing reads from it"):
            build(recorded_repo, as_of=AS_OF, cache=True, output=output)
        assert output.is_fifo()
    else:
        output.symlink_to("/dev/zero")  # a device: written to through the link, which stays
        with _deadline(20):
            result = build(recorded_repo, as_of=AS_OF, cache=True, output=output)
        assert result.findings == expected[1] and output.is_symlink()
        assert not _record(recorded_repo)  # nothing to read lines back from next time
    bundle, findings, _metadata = _compiled(recorded_repo, tmp_path / "again.json", cache=True)
    assert (bundle, findings) == expected[:2]


def test_a_record_written_under_another_name_is_not_read(example_repo: Path) -> None:
    load_repo_cached(example_repo).cache.save()
    cache = BuildCache.open(example_repo, context_key(example_repo))
    cache.write_record("some-record", {"key": "value"})
    assert cache.read_record("some-record") == {"key": "value"}
    folder = example_repo / CACHE_DIR
    shutil.copy(folder / "some-record", folder / "another-record")
    assert cache.read_record("another-record") is None and "another-record" in cache.rejected


FOREIGN = ["configuration", "other-tiops", "truncated", "no-index"]


def _make_foreign(root: Path, change: str) -> None:
    """Leave the warm cache of ``root`` unusable as a whole, as ``change`` says."""
    assert has_entries(root)
    index = root / CACHE_DIR / "index"
    if change == "configuration":  # tiops.yaml is part of the context (the example has none: the defaults)
        (root / "tiops.yaml").write_text("intel: intel\n", encoding="utf-8")
    elif change == "other-tiops":  # the index as another version would write it: the same shape, another context
        raw = bytearray(index.read_bytes())
        context = context_key(root).encode()
        at = raw.index(context)
        raw[at:at + len(context)] = b"0" * len(context)
        index.write_bytes(bytes(raw))
    elif change == "truncated":
        index.write_bytes(index.read_bytes()[:40])
    else:
        index.unlink()
    assert not has_entries(root)


@pytest.mark.parametrize("change", FOREIGN)
def test_a_cache_of_another_context_takes_the_first_build_route(recorded_repo: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    """A cache none of whose entries can serve (another configuration or tiops wrote it, or no index)
    is built as a first build is (every object in memory once, not an index per file beside it:
    the route that keeps a million objects under 3 GB), and gives the same bytes."""
    output = tmp_path / "bundle.json"
    _warm(recorded_repo, output)
    _make_foreign(recorded_repo, change)
    routes: list[str] = []
    monkeypatch.setattr(pipeline, "_build_first", _noting(routes, "first", pipeline._build_first))
    monkeypatch.setattr(pipeline, "_build_through_indexes", _noting(routes, "indexes", pipeline._build_through_indexes))
    expected = _compiled(recorded_repo, tmp_path / "uncached.json", cache=False)
    assert _compiled(recorded_repo, output, cache=True) == expected
    assert routes == ["first"]
    assert has_entries(recorded_repo)  # written for this context now: the next build reads it by file indexes
    assert _compiled(recorded_repo, output, cache=True) == expected
    assert routes == ["first", "indexes"]


@pytest.mark.parametrize("change", FOREIGN)
@pytest.mark.parametrize("named", [False, True])
def test_validate_over_a_cache_of_another_context_holds_each_object_once(
        recorded_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str, named: bool) -> None:
    """``tiops validate`` and ``tiops validate FILE`` take the whole way (every object, no index per
    file) when no cache of this context exists, with the findings of the uncached check; and file
    indexes once it does."""
    _warm(recorded_repo, tmp_path / "bundle.json")
    _make_foreign(recorded_repo, change)
    edited = sorted((recorded_repo / "intel").rglob("*.yaml"))[-1]
    edited.write_text(edited.read_text(encoding="utf-8") + "x_note: edited\n", encoding="utf-8")
    targets = [edited] if named else []
    routes: list[str] = []
    monkeypatch.setattr(buildcache, "load_repo_cached", _noting(routes, "whole", buildcache.load_repo_cached))
    monkeypatch.setattr(buildcache, "load_repo_indexed", _noting(routes, "indexes", buildcache.load_repo_indexed))
    expected = validate_paths(recorded_repo, targets, cache=False)
    assert routes == []
    assert validate_paths(recorded_repo, targets, cache=True) == expected
    assert routes == ["whole"]
    assert has_entries(recorded_repo)
    assert validate_paths(recorded_repo, targets, cache=True) == expected
    assert routes == ["whole", "indexes"]


def _noting(routes: list[str], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def noted(*args: Any, **kwargs: Any) -> Any:
        routes.append(name)
        return function(*args, **kwargs)
    return noted
