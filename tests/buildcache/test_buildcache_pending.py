"""A cache file written but for the value of its last key (BuildCache.pending_record), and the
bundle record a one-file recompile writes that way while the bundle's digest is taken."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from test_buildcache_reuse import plain_repo  # noqa: F401 (a fixture)

from tiops import bundlereuse, pipeline
from tiops.buildcache import CACHE_DIR, BuildCache, context_key
from tiops.bundlereuse import RECORD, RECORD_DIGEST, RECORD_DIGEST_WIDTH
from tiops.pipeline import build

AS_OF = "2025-01-01"
BLANK = "\0" * 64


def _cache(tmp_path: Path) -> BuildCache:
    return BuildCache.open(tmp_path, context_key(tmp_path))


def _body(value: str = BLANK) -> dict[str, Any]:
    # A record's shape: big texts first, the bundle digest last.
    return {"format": 2, "key": "k" * 64, "lines": "indicator\0indicator--1\n" * 1000, "offsets": bytes(800),
            "entries": (["a", "b"], {"x": (1, [], ())}), RECORD_DIGEST: value}


def _leftovers(cache: BuildCache) -> list[str]:
    return sorted(name for name in os.listdir(cache.folder) if name.startswith(".") and name != ".gitignore")


@pytest.mark.parametrize("value", ["0" * 64, hashlib.sha256(b"bundle").hexdigest()])
def test_a_pending_record_finished_reads_back_as_the_record_write_record_writes(tmp_path: Path, value: str) -> None:
    cache = _cache(tmp_path)
    pending = cache.pending_record("pending", _body(), RECORD_DIGEST, RECORD_DIGEST_WIDTH)
    assert pending is not None
    assert not (cache.folder / "pending").exists()  # nothing in place before the value comes
    pending.finish(value)
    cache.write_record("whole", _body(value))
    pending_bytes, whole_bytes = (cache.folder / "pending").read_bytes(), (cache.folder / "whole").read_bytes()
    # The same length: only a flag marshal sets on a text held twice may differ, not the layout.
    assert len(pending_bytes) - len("pending") == len(whole_bytes) - len("whole")
    assert _cache(tmp_path).read_record("pending") == _cache(tmp_path).read_record("whole") == _body(value)
    assert _leftovers(cache) == []


def test_an_interrupted_start_or_finish_leaves_nothing_beside_the_cache(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from tiops.buildcache import store

    cache = _cache(tmp_path)

    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(store, "write_in_pieces", interrupted)
        with pytest.raises(KeyboardInterrupt):
            cache.pending_record("pending", _body(), RECORD_DIGEST, RECORD_DIGEST_WIDTH)
    assert _leftovers(cache) == []
    pending = cache.pending_record("pending", _body(), RECORD_DIGEST, RECORD_DIGEST_WIDTH)
    assert pending is not None
    with monkeypatch.context() as patch:
        patch.setattr(store, "rename_over", interrupted)
        with pytest.raises(KeyboardInterrupt):
            pending.finish("0" * 64)
    assert _leftovers(cache) == [] and not (cache.folder / "pending").exists()


def test_a_value_that_is_not_ascii_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    pending = cache.pending_record("pending", _body(), RECORD_DIGEST, RECORD_DIGEST_WIDTH)
    assert pending is not None
    with pytest.raises(UnicodeEncodeError):
        pending.finish("é" * 64)
    assert _leftovers(cache) == [] and not (cache.folder / "pending").exists()


def test_an_abandoned_pending_record_leaves_the_old_record_and_no_file_beside_it(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    cache.write_record(RECORD, _body("1" * 64))
    pending = cache.pending_record(RECORD, _body(), RECORD_DIGEST, RECORD_DIGEST_WIDTH)
    assert pending is not None
    assert len(_leftovers(cache)) == 1  # the partial file, under a temporary name
    pending.abandon()
    pending.finish("2" * 64)  # too late: abandoned is final
    assert _leftovers(cache) == []
    assert _cache(tmp_path).read_record(RECORD) == _body("1" * 64)


def test_a_value_of_another_width_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    pending = cache.pending_record("pending", _body(), RECORD_DIGEST, RECORD_DIGEST_WIDTH)
    assert pending is not None
    with pytest.raises(ValueError, match="does not fill the blank"):
        pending.finish("abc")
    assert not (cache.folder / "pending").exists()
    assert _leftovers(cache) == []


@pytest.mark.parametrize("body", [
    {RECORD_DIGEST: BLANK, "after": 1},  # the value not last
    {RECORD_DIGEST: "x" * 64},  # not the blank
    {RECORD_DIGEST: "\0" * 63},  # another width
])
def test_a_body_not_ending_with_the_blank_is_refused(tmp_path: Path, body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="last key"):
        _cache(tmp_path).pending_record("pending", body, RECORD_DIGEST, RECORD_DIGEST_WIDTH)


def test_a_pending_record_that_cannot_be_started_is_none(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    cache.folder.parent.mkdir(parents=True)
    cache.folder.write_text("a file where the cache folder goes")
    assert cache.pending_record("pending", _body(), RECORD_DIGEST, RECORD_DIGEST_WIDTH) is None


def test_a_value_marshal_cannot_write_is_none(tmp_path: Path) -> None:
    body = {"unmarshallable": object(), RECORD_DIGEST: BLANK}
    assert _cache(tmp_path).pending_record("pending", body, RECORD_DIGEST, RECORD_DIGEST_WIDTH) is None


def _record_bytes(root: Path) -> bytes:
    return (root / CACHE_DIR / RECORD).read_bytes()


def test_a_one_file_recompile_records_its_bundle_as_written_after_it(plain_repo: Path,  # noqa: F811
                                                                     tmp_path: Path) -> None:
    output = tmp_path / "bundle.json"
    build(plain_repo, as_of=AS_OF, output=output, cache=True)
    indicator = next(path for path in sorted((plain_repo / "intel").rglob("*.yaml"))
                     if "name:" in path.read_text() and not path.name.startswith("_"))
    indicator.write_text(indicator.read_text().replace("name:", "name: Edited", 1))
    started: list[int] = []
    real = BuildCache.pending_record

    def noting(self: BuildCache, *args: Any) -> Any:
        started.append(1)
        return real(self, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BuildCache, "pending_record", noting)
        result = build(plain_repo, as_of=AS_OF, output=output, cache=True)
    assert started == [1]  # the spliced route, its record started while the digest was taken
    cache = BuildCache.open(plain_repo, context_key(plain_repo))
    record = cache.read_record(RECORD)
    assert record is not None
    assert record[RECORD_DIGEST] == hashlib.sha256(output.read_bytes()).hexdigest() == result.metadata["bundle_sha256"]
    assert record["size"] == output.stat().st_size
    # And the next compile takes its lines from that bundle.
    indicator.write_text(indicator.read_text().replace("name: Edited", "name: Edited again", 1))
    again: list[Any] = []
    real_spliced = bundlereuse.spliced

    def spliced_noting(*args: Any, **kwargs: Any) -> Any:
        made = real_spliced(*args, **kwargs)
        again.append(made)
        return made

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bundlereuse, "spliced", spliced_noting)
        build(plain_repo, as_of=AS_OF, output=output, cache=True)
    assert len(again) == 1 and again[0] is not None
    assert output.read_bytes() == build(plain_repo, as_of=AS_OF, cache=False).bundle


def test_a_bundle_write_that_fails_after_the_record_started_leaves_the_old_record(
        plain_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    output = tmp_path / "bundle.json"
    build(plain_repo, as_of=AS_OF, output=output, cache=True)
    before = _record_bytes(plain_repo)
    indicator = next(path for path in sorted((plain_repo / "intel").rglob("*.yaml"))
                     if "name:" in path.read_text() and not path.name.startswith("_"))
    indicator.write_text(indicator.read_text().replace("name:", "name: Edited", 1))
    real = pipeline.write_line_runs

    def failing_after(*args: Any, meanwhile: Any = None) -> Any:
        def then_fail(bundle_id: str, size: int) -> None:
            meanwhile(bundle_id, size)
            raise OSError(28, "No space left on device")
        return real(*args, meanwhile=then_fail)

    monkeypatch.setattr(pipeline, "write_line_runs", failing_after)
    with pytest.raises(OSError, match="No space left"):
        build(plain_repo, as_of=AS_OF, output=output, cache=True)
    assert _record_bytes(plain_repo) == before
    assert [name for name in os.listdir(plain_repo / CACHE_DIR) if name.startswith(".")] == [".gitignore"]
