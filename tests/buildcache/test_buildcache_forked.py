"""A first build with a forked helper, or its save in a new process: the same findings, bundle and cache as one
process makes."""

from __future__ import annotations

import marshal
import os
import shutil
import signal
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from varied_repo import build_outcome, clean_repository, varied_repository

from tiops import forkwork, pipeline
from tiops.buildcache import CACHE_DIR, context_key, store, whole
from tiops.bundlereuse import RECORD
from tiops.forkwork import can_fork, process_alive
from tiops.pipeline import build
from tiops.validate import validate_paths

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs fork, two CPUs and no other thread")


def _cache_content(root: Path) -> dict[str, Any]:
    """Every cache file's body, each entry's objects part read back (marshal's bytes for the same
    values may differ with what else the writing process held)."""
    folder = root / CACHE_DIR
    content: dict[str, Any] = {}
    for path in sorted(folder.iterdir()):
        raw = path.read_bytes()
        if path.name == "bundle-record" or not raw.startswith(store._MAGIC):
            content[path.name] = raw if path.name != "bundle-record" else None
            continue
        body = marshal.loads(raw[len(store._MAGIC) + store._CHECKSUM_SIZE:])[-1]
        if path.name.startswith("objects-"):
            body = {blob: {key: marshal.loads(part) for key, part in parts.items()} for blob, parts in body.items()}
        content[path.name] = body
    return content


def _first_builds(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[Any, Any]]:
    runs = {}
    for fork in ("0", "1"):
        shutil.rmtree(root / ".tiops", ignore_errors=True)
        monkeypatch.setenv("TIOPS_LOAD_FORK", fork)
        runs[fork] = (build_outcome(root), _cache_content(root))
    return runs


def _note_parsing_processes(monkeypatch: pytest.MonkeyPatch, log: Path) -> None:
    fresh = whole._fresh_result

    def noted(*args: Any) -> Any:
        descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(descriptor, f"{os.getpid()}\n".encode())
        finally:
            os.close(descriptor)
        return fresh(*args)

    monkeypatch.setattr(whole, "_fresh_result", noted)


def test_a_forked_first_build_gives_the_bundle_and_cache_of_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "clean"
    clean_repository(root, 700)
    log = tmp_path / "parsed-by"
    _note_parsing_processes(monkeypatch, log)
    runs = _first_builds(root, monkeypatch)
    assert len(set(log.read_text().split())) == 2  # this process and the helper parsed files
    alone, forked = runs["0"], runs["1"]
    assert alone[0][0] is not None and alone[0][0].count(b'"type":"indicator"') > 500
    assert forked[0] == alone[0]
    assert forked[1] == alone[1] and any(name.startswith("objects-") for name in alone[1])
    # The next build reads what the forked one kept, and gives the same again.
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    assert build_outcome(root) == alone[0] == build_outcome(root, cache=False)


def test_a_forked_first_build_of_broken_files_gives_their_findings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "broken"
    varied_repository(root, 700)
    runs = _first_builds(root, monkeypatch)
    alone, forked = runs["0"], runs["1"]
    assert alone[0][0] is None and len(alone[0][1]) > 100
    assert forked == alone
    assert build_outcome(root) == alone[0]


def test_a_helper_that_dies_during_a_first_build_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "clean"
    clean_repository(root, 700)
    expected = _first_builds(root, monkeypatch)["0"]
    parent, made = os.getpid(), whole._helper_entry
    count = [0]

    def dying(*args: Any) -> Any:
        count[0] += 1
        if os.getpid() != parent and count[0] > 100:
            os._exit(3)
        return made(*args)

    monkeypatch.setattr(whole, "_helper_entry", dying)
    shutil.rmtree(root / ".tiops")
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    assert (build_outcome(root), _cache_content(root)) == expected


@pytest.mark.parametrize("make", [clean_repository, varied_repository])
def test_a_forked_first_validate_gives_the_findings_and_cache_of_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Any) -> None:
    """`tiops validate` with no cache yet parses every file as a first build does (load_repo_cached), on two processes."""
    root = tmp_path / "repo"
    make(root, 700)
    log = tmp_path / "parsed-by"
    _note_parsing_processes(monkeypatch, log)
    runs = {}
    for fork in ("0", "1"):
        shutil.rmtree(root / ".tiops", ignore_errors=True)
        monkeypatch.setenv("TIOPS_LOAD_FORK", fork)
        runs[fork] = ([repr(f) for f in validate_paths(root, [root], cache=True)], _cache_content(root))
    assert len(set(log.read_text().split())) == 2  # this process and the helper parsed files
    assert runs["1"] == runs["0"] and any(name.startswith("objects-") for name in runs["0"][1])
    expected = [repr(f) for f in validate_paths(root, [root], cache=False)]
    assert runs["0"][0] == expected
    # The cache the forked run kept gives the same findings, for the repository and for one file.
    assert [repr(f) for f in validate_paths(root, [root], cache=True)] == expected
    one = next((root / "intel" / "plain").glob("file-*.yaml"))
    assert ([repr(f) for f in validate_paths(root, [one], cache=True)]
            == [repr(f) for f in validate_paths(root, [one], cache=False)])


def _note_saving_processes(monkeypatch: pytest.MonkeyPatch, log: Path) -> None:
    """Log the process id and niceness of whoever saves the cache."""
    save = store.BuildCache.save

    def noted(self: store.BuildCache) -> None:
        log.write_text(f"{os.getpid()} {os.nice(0)}\n")
        save(self)

    monkeypatch.setattr(store.BuildCache, "save", noted)


@pytest.mark.parametrize("make", [clean_repository, varied_repository])
def test_a_first_build_saves_its_cache_beside_its_compile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Any) -> None:
    """The save goes to a helper at the command's own priority (the command waits for it), and the
    build returns with the very cache one process saves: also when validation fails
    (varied_repository has errors), so the next run after a fix reuses it."""
    root = tmp_path / "repo"
    make(root, 700)
    log = tmp_path / "saved-by"
    _note_saving_processes(monkeypatch, log)
    runs = _first_builds(root, monkeypatch)
    saver, niceness = map(int, log.read_text().split())  # the last run's save: TIOPS_LOAD_FORK=1
    assert saver not in (os.getpid(), 0) and niceness == os.nice(0)
    assert runs["1"] == runs["0"] and any(name.startswith("objects-") for name in runs["0"][1])
    monkeypatch.setenv("TIOPS_LOAD_FORK", "0")
    shutil.rmtree(root / ".tiops")
    build_outcome(root)
    assert int(log.read_text().split()[0]) == os.getpid()  # no helper wanted: saved here


def test_a_first_build_with_its_bundle_written_and_recorded_beside_the_save(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compile's bundle file and its record, written while the helper saves: the next builds
    reuse them (tiops.bundlereuse) and give the uncached build's bytes."""
    root = tmp_path / "clean"
    clean_repository(root, 700)
    expected, out = tmp_path / "expected.json", tmp_path / "bundle.json"
    build(root, as_of="2025-06-01", cache=False, output=expected)
    log = tmp_path / "saved-by"
    _note_saving_processes(monkeypatch, log)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    build(root, as_of="2025-06-01", cache=True, output=out)
    assert int(log.read_text().split()[0]) != os.getpid()
    assert out.read_bytes() == expected.read_bytes()
    assert store.BuildCache.open(root, context_key(root)).read_record(RECORD) is not None
    one = next((root / "intel").rglob("file-*.yaml"))
    one.write_text(one.read_text().replace("name: ", "name: edited ", 1))
    warm = build(root, as_of="2025-06-01", cache=True, output=out)
    build(root, as_of="2025-06-01", cache=False, output=expected)
    assert warm.lines is not None  # the record was taken: the lines of unchanged files reused
    assert out.read_bytes() == expected.read_bytes()


def test_the_spill_file_is_flushed_before_the_helper_reads_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both processes share the spill file's open file and position: bytes left in this process's
    buffer would be written by its close at a position the helper is moving, into what it reads."""
    root = tmp_path / "clean"
    clean_repository(root, 700)
    # A small folder walked last: its group is the last spill write, smaller than the file's buffer.
    last = root / "intel" / "zz-last"
    last.mkdir()
    (last / "one.yaml").write_text(
        "type: indicator\nspec_version: '2.1'\nid: indicator--7f1e3a1a-0d66-4b5e-9b4a-2f7f1e3a1a11\n"
        "created: '2025-01-01T00:00:00.000Z'\nmodified: '2025-01-01T00:00:00.000Z'\n"
        "pattern: \"[ipv4-addr:value = '198.51.100.7']\"\npattern_type: stix\nvalid_from: '2025-01-01T00:00:00Z'\n")
    caches: list[store.BuildCache] = []
    on_disk: list[tuple[int, int]] = []
    save_beside, run_beside = store.BuildCache.save_beside, store.run_beside

    def noting_cache(self: store.BuildCache, **options: Any) -> Any:
        caches.append(self)
        return save_beside(self, **options)

    def noting_spill(work: Any, **options: Any) -> Any:
        spill = caches[-1]._spill
        assert spill is not None
        on_disk.append((os.fstat(spill.fileno()).st_size, caches[-1]._spill_size))
        return run_beside(work, **options)

    monkeypatch.setattr(store.BuildCache, "save_beside", noting_cache)
    monkeypatch.setattr(store, "run_beside", noting_spill)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    assert build_outcome(root) == build_outcome(root, cache=False)
    assert len(on_disk) == 1 and on_disk[0][0] == on_disk[0][1] > 0


@pytest.mark.skipif(not hasattr(signal, "alarm"), reason="bounds a hang with SIGALRM")
def test_an_interrupted_first_build_stops_its_save_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the compile ends the build at once: the helper is stopped, not waited for."""
    root = tmp_path / "clean"
    clean_repository(root, 700)
    marker, parent = tmp_path / "helper.pid", os.getpid()
    save = store.BuildCache.save

    def endless(self: store.BuildCache) -> None:
        if os.getpid() != parent:
            marker.write_text(str(os.getpid()))
            time.sleep(3600)
        save(self)

    def interrupted(*args: Any) -> Any:
        while not (marker.exists() and marker.read_text()):  # the helper has begun (its pid written whole)
            time.sleep(0.01)
        raise KeyboardInterrupt

    monkeypatch.setattr(store.BuildCache, "save", endless)
    monkeypatch.setattr(pipeline, "_compiled_first", interrupted)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")

    def hung(*_: Any) -> None:
        raise AssertionError("the build waited for its helper")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        with pytest.raises(KeyboardInterrupt):
            build(root, as_of="2025-06-01", cache=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert not process_alive(int(marker.read_text()))  # stopped and reaped


def test_a_save_helper_that_dies_part_way_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after writing some of the cache's files: the build's result stands, and the next
    builds trust what was written and parse the rest again."""
    root = tmp_path / "clean"
    clean_repository(root, 700)
    expected = build_outcome(root, cache=False)
    parent, write = os.getpid(), store.BuildCache._write
    written = [0]

    def dying(self: store.BuildCache, name: str, body: dict[str, Any], **options: Any) -> None:
        written[0] += 1
        if os.getpid() != parent and written[0] > 20:
            os._exit(9)
        write(self, name, body, **options)

    monkeypatch.setattr(store.BuildCache, "_write", dying)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    assert build_outcome(root) == expected
    folder = root / CACHE_DIR
    assert 10 < len([path for path in folder.iterdir() if path.name.startswith(("entries-", "objects-"))]) <= 20
    assert not (folder / "index").exists()  # the stat index is written after every shard
    monkeypatch.undo()
    assert build_outcome(root) == expected
    one = next((root / "intel").rglob("file-*.yaml"))
    one.write_text(one.read_text().replace("name: ", "name: edited ", 1))
    assert build_outcome(root) == build_outcome(root, cache=False) != expected


def _saves_in_new_processes(monkeypatch: pytest.MonkeyPatch) -> list[forkwork.NewProcess]:
    """Make every first build with a helper hand its save to a new process, as one of a gigabyte or
    more does (tiops.pipeline.SAVE_HELPER_MAX_RESIDENT); the processes started, as they start."""
    started: list[forkwork.NewProcess] = []
    start = store.start_in_new_process

    def noted(*args: Any, **options: Any) -> forkwork.NewProcess | None:
        process = start(*args, **options)
        if process is not None:
            started.append(process)
        return process

    monkeypatch.setattr(store, "start_in_new_process", noted)
    monkeypatch.setattr(pipeline, "SAVE_HELPER_MAX_RESIDENT", 0)
    return started


@pytest.mark.parametrize("make", [clean_repository, varied_repository])
def test_a_large_first_build_hands_its_save_to_a_new_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Any) -> None:
    """The new process writes the very cache one process saves (varied_repository has errors:
    the cache is kept for the run after a fix), and the next build reads it."""
    root = tmp_path / "repo"
    make(root, 700)
    started = _saves_in_new_processes(monkeypatch)
    runs = _first_builds(root, monkeypatch)
    assert len(started) == 1  # TIOPS_LOAD_FORK=1's build; =0 wants no helper and saves in the command
    assert started[0].pid != os.getpid() and not process_alive(started[0].pid)
    assert started[0].result() is True
    assert runs["1"] == runs["0"] and any(name.startswith("objects-") for name in runs["0"][1])
    cache = store.BuildCache.open(root, context_key(root))
    assert cache.holds_entries() and not cache.rejected
    assert build_outcome(root) == runs["0"][0]


def test_a_save_process_handed_what_does_not_read_back_writes_nothing(tmp_path: Path) -> None:
    """The state is checked as spilled entries are: a damaged hand-over is a cache not saved."""
    from tiops.buildcache import saver

    with tempfile.TemporaryFile() as spill:
        spill.write(b"not the state")
        spill.flush()
        assert store.BuildCache.resumed(tmp_path, spill, (0, 13, 0)) is None  # its CRC-32 is not 0
        assert store.BuildCache.resumed(tmp_path, spill, (0, 99, zlib.crc32(b"not the state"))) is None
        assert store.BuildCache.resumed(tmp_path, spill, (0, 13, zlib.crc32(b"not the state"))) is None  # no marshal
        partial = marshal.dumps({"context": "c", "dirty": [1]})  # a dict, but not a whole state
        spill.seek(0)
        spill.write(partial)
        spill.flush()
        assert store.BuildCache.resumed(tmp_path, spill, (0, len(partial), zlib.crc32(partial))) is None
        assert saver.main([str(tmp_path), str(os.dup(spill.fileno())), "0", "13", "0"]) == 2  # it closes what it is given
    assert saver.main([str(tmp_path), "not a descriptor", "0", "0", "0"]) == 2
    assert list(tmp_path.iterdir()) == []


def _cache_saved_in_the_command(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    with monkeypatch.context() as alone:
        alone.setenv("TIOPS_LOAD_FORK", "0")
        shutil.rmtree(root / ".tiops", ignore_errors=True)
        build_outcome(root)
    content = _cache_content(root)
    shutil.rmtree(root / ".tiops")
    return content


@pytest.mark.parametrize("when", ["at once", "once it has written an objects file"])
def test_a_save_process_killed_part_way_leaves_the_save_to_the_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    """Killed from outside (the OOM killer, say), at once or part way: the command saves from the
    state it handed over, and the cache is the one it saves alone."""
    root = tmp_path / "clean"
    clean_repository(root, 700)
    expected, saved_alone = build_outcome(root, cache=False), _cache_saved_in_the_command(root, monkeypatch)
    started = _saves_in_new_processes(monkeypatch)
    result, folder = forkwork.NewProcess.result, root / CACHE_DIR

    def killed(self: forkwork.NewProcess) -> bool | None:
        deadline = time.monotonic() + 60
        while (when != "at once" and self._process.poll() is None and time.monotonic() < deadline
               and not any(path.name.startswith("objects-") for path in folder.iterdir())):
            time.sleep(0.001)
        os.kill(self.pid, signal.SIGKILL)
        return result(self)

    monkeypatch.setattr(forkwork.NewProcess, "result", killed)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    assert build_outcome(root) == expected
    assert len(started) == 1 and not process_alive(started[0].pid)
    if when == "at once":
        assert started[0]._process.returncode == -signal.SIGKILL  # killed before it could have saved anything
    assert _cache_content(root) == saved_alone
    monkeypatch.undo()
    one = next((root / "intel").rglob("file-*.yaml"))
    one.write_text(one.read_text().replace("name: ", "name: edited ", 1))
    assert build_outcome(root) == build_outcome(root, cache=False) != expected


def test_a_save_process_that_fails_leaves_the_save_to_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that starts but does not save (here one that only fails: tiops not importable
    there, say) is a save done in the command, not a build with no cache."""
    root = tmp_path / "clean"
    clean_repository(root, 700)
    saved_alone = _cache_saved_in_the_command(root, monkeypatch)
    started = _saves_in_new_processes(monkeypatch)
    start = store.start_in_new_process

    def failing(function: str, arguments: list[str], pass_fds: tuple[int, ...] = ()) -> forkwork.NewProcess | None:
        return start("operator:truth", arguments, pass_fds)  # True: exit status 1

    monkeypatch.setattr(store, "start_in_new_process", failing)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    build_outcome(root)
    assert len(started) == 1 and started[0]._process.returncode == 1
    assert _cache_content(root) == saved_alone


def test_an_interrupted_large_first_build_stops_its_save_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the compile stops the save's process too (it ignores SIGINT itself)."""
    root = tmp_path / "clean"
    clean_repository(root, 700)
    started = _saves_in_new_processes(monkeypatch)
    start = store.start_in_new_process

    def stopped_at_once(*args: Any, **options: Any) -> forkwork.NewProcess | None:
        process = start(*args, **options)
        if process is not None:
            os.kill(process.pid, signal.SIGSTOP)  # still at work when the build is interrupted
        return process

    def interrupted(*_: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "start_in_new_process", stopped_at_once)
    monkeypatch.setattr(pipeline, "_compiled_first", interrupted)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    with pytest.raises(KeyboardInterrupt):
        build(root, as_of="2025-06-01", cache=True)
    assert len(started) == 1 and not process_alive(started[0].pid)


def test_a_spill_that_fails_while_handing_over_saves_in_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk full while the buffered entries are spilled for the new process: no process, the
    command saves (what was not spilled is parsed again next time) and the build stands."""
    root = tmp_path / "clean"
    clean_repository(root, 700)
    expected = build_outcome(root, cache=False)
    started = _saves_in_new_processes(monkeypatch)
    hand_over, spill_bytes = store.BuildCache._hand_over, store.BuildCache._spill_bytes
    handing, spilled = [False], [0]

    def noted(self: store.BuildCache) -> Any:
        handing[0] = True
        try:
            return hand_over(self)
        finally:
            handing[0] = False

    def failing(self: store.BuildCache, chunk: bytes) -> tuple[int, int, int] | None:
        if handing[0]:
            spilled[0] += 1
            if spilled[0] >= 2:  # the second buffer spilled: the disk is full
                self._spill_failed = True
                return None
        return spill_bytes(self, chunk)

    monkeypatch.setattr(store.BuildCache, "_hand_over", noted)
    monkeypatch.setattr(store.BuildCache, "_spill_bytes", failing)
    monkeypatch.setenv("TIOPS_LOAD_FORK", "1")
    assert build_outcome(root) == expected
    assert spilled[0] == 2 and started == []
    monkeypatch.undo()
    assert build_outcome(root) == expected
