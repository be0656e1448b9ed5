"""A new SQLite store is written without waiting for the disk and put on it when closed; the mark
beside it (``PATH.creating``) tells the next open what to do with a store whose maker never closed
it (tiops.stores.sqlite.CreationMark)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_sentinel_tables import OBJECTS

from tiops.stores import StoreError
from tiops.stores.sqlite import CreationMark, SqliteStore, _boot_id

NEEDS_BOOT_ID = pytest.mark.skipif(_boot_id() is None, reason="the system does not say which boot this is")


def synchronous(store: SqliteStore) -> int:
    return int(store._db.execute("PRAGMA synchronous").fetchone()[0])


def stored_ids(path: Path) -> set[str]:
    store = SqliteStore(path, create=False)
    try:
        return set(store.manifest())
    finally:
        store.close()


def dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def left_unclosed(path: Path, *, pid: int, boot: str | None, host: str | None = None) -> None:
    """A store with OBJECTS written, whose maker never closed it: the mark names ``pid`` on ``boot``."""
    store = SqliteStore(path)
    store.write_versions(OBJECTS)
    store._db.close()  # the connection goes, as at a crash; close() (which drops the mark) is never called
    mark = CreationMark(path)
    assert mark.path.exists()
    mark.path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "boot": boot}))


def test_a_new_store_waits_for_the_disk_only_when_closed(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = SqliteStore(path)
    mark = CreationMark(path)
    try:
        assert synchronous(store) == 0  # OFF: no fsync at each checkpoint
        maker = json.loads(mark.path.read_text())
        assert maker["pid"] == os.getpid() and maker["host"] == socket.gethostname() and maker["boot"] == _boot_id()
        store.write_versions(OBJECTS)
    finally:
        store.close()
    assert not mark.path.exists()
    again = SqliteStore(path)
    try:
        assert synchronous(again) == 1  # NORMAL, as for any store that exists
        assert not mark.path.exists()
        assert set(again.manifest()) == {obj["id"] for obj in OBJECTS}
    finally:
        again.close()


def test_a_second_connection_to_a_store_being_made_leaves_the_mark_to_its_maker(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    maker = SqliteStore(path)
    other = SqliteStore(path)
    try:
        assert synchronous(other) == 1
        other.close()
        assert CreationMark(path).path.exists()  # the maker (this process) still runs
    finally:
        maker.close()
    assert not CreationMark(path).path.exists()


@NEEDS_BOOT_ID
def test_a_store_whose_maker_died_is_kept_when_the_machine_did_not_restart(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    left_unclosed(path, pid=dead_pid(), boot=_boot_id())
    store = SqliteStore(path)
    try:
        assert synchronous(store) == 1  # an existing store, not a new one
        assert set(store.manifest()) == {obj["id"] for obj in OBJECTS}
    finally:
        store.close()
    assert not CreationMark(path).path.exists()


def test_a_store_written_before_the_machine_restarted_is_made_again(tmp_path: Path) -> None:
    """The machine may have lost pages the store was never made to wait for: the file may be damaged
    (here it is), and it is removed rather than trusted; the apply that opened it writes it again."""
    path = tmp_path / "store.sqlite"
    left_unclosed(path, pid=dead_pid(), boot="an-earlier-boot")
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)  # damaged
    store = SqliteStore(path)
    try:
        assert store.manifest() == {}
        assert synchronous(store) == 0  # made anew, by this process
        assert json.loads(CreationMark(path).path.read_text())["pid"] == os.getpid()
        store.write_versions(OBJECTS)
    finally:
        store.close()
    assert stored_ids(path) == {obj["id"] for obj in OBJECTS}


def test_a_damaged_store_without_a_mark_is_still_refused(tmp_path: Path) -> None:
    """Only a store tiops made, and whose making was cut short, is ever removed."""
    path = tmp_path / "store.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)
    with pytest.raises(StoreError, match=r"store\.sqlite"):
        SqliteStore(path)
    assert path.stat().st_size == 4096


def test_a_torn_mark_counts_as_a_making_cut_short_once_it_is_not_new(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    torn = CreationMark(path).path
    torn.write_bytes(b'{"pid": 12')
    path.write_bytes(b"")
    an_hour_ago = time.time() - 3600
    os.utime(torn, (an_hour_ago, an_hour_ago))
    store = SqliteStore(path)
    try:
        assert store.manifest() == {} and synchronous(store) == 0
        assert json.loads(torn.read_text())["pid"] == os.getpid()  # the mark is this process's now
    finally:
        store.close()
    assert not torn.exists()


def test_a_mark_that_does_not_parse_yet_is_taken_for_one_being_written(tmp_path: Path) -> None:
    """claim() makes the file, then writes it: a mark read in between is another maker's, just starting."""
    path = tmp_path / "store.sqlite"
    being_written = CreationMark(path).path
    being_written.write_bytes(b"")
    store = SqliteStore(path)
    try:
        assert synchronous(store) == 1  # the other maker's store: this connection does not make it
    finally:
        store.close()
    assert being_written.read_bytes() == b""


def test_a_store_that_cannot_be_set_up_leaves_no_mark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "store.sqlite"

    def fails(self: SqliteStore, where: Path) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(SqliteStore, "_set_up", fails)
    with pytest.raises(StoreError, match="disk I/O error"):
        SqliteStore(path)
    assert not CreationMark(path).path.exists()


def test_a_mark_left_by_another_host_or_a_running_maker_is_left_alone(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.sqlite"
    left_unclosed(elsewhere, pid=dead_pid(), boot="an-earlier-boot", host="another-host.example")
    running = tmp_path / "running.sqlite"
    left_unclosed(running, pid=os.getpid(), boot=_boot_id())
    for path in (elsewhere, running):
        store = SqliteStore(path)
        try:
            assert set(store.manifest()) == {obj["id"] for obj in OBJECTS}
        finally:
            store.close()
        assert CreationMark(path).path.exists()


def test_a_plan_never_settles_a_mark(tmp_path: Path) -> None:
    """A plan never writes to the target: the mark of a store cut short is left to the next apply."""
    path = tmp_path / "store.sqlite"
    left_unclosed(path, pid=dead_pid(), boot="an-earlier-boot")
    assert stored_ids(path) == {obj["id"] for obj in OBJECTS}  # create=False, as a plan opens it
    assert CreationMark(path).path.exists() and path.exists()


SECONDARY_INDEXES = {"stix_current_type", "ThreatIntelIndicators_Id", "ThreatIntelIndicators_Value",
                     "ThreatIntelObjects_StixType"}


def indexes(path: Path) -> set[str]:
    """The named (not automatic) indexes of the store at ``path``, read by a connection of its own."""
    with sqlite3.connect(path) as reader:
        return {name for (name,) in reader.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'")}


def test_a_new_store_gets_its_secondary_indexes_once_its_rows_are_in(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = SqliteStore(path)
    try:
        store.write_versions(OBJECTS)
        assert indexes(path) == set()  # the rows went in without them
    finally:
        store.close()
    assert indexes(path) == SECONDARY_INDEXES  # each built at once, from the rows, when the store was made
    found = sqlite3.connect(path).execute(
        "SELECT ObservableValue FROM ThreatIntelIndicators WHERE Id = ? ORDER BY 1", (OBJECTS[0]["id"],)).fetchall()
    assert found == [("203.0.113.45",), ("203.0.113.46",)]


def test_a_store_being_made_makes_its_indexes_before_rows_are_replaced_or_deleted(tmp_path: Path) -> None:
    """Rows to replace or delete are found by the indexes: without them each would be a scan of the table."""
    for change in ("replace", "delete"):
        path = tmp_path / change / "store.sqlite"
        path.parent.mkdir()
        store = SqliteStore(path)
        try:
            store.write_versions(OBJECTS)
            assert indexes(path) == set()
            if change == "replace":
                store.write_versions([{**OBJECTS[0], "modified": "2025-02-01T00:00:00.000Z",
                                       "pattern": "[ipv4-addr:value = '192.0.2.9']"}])
            else:
                store.delete_objects([OBJECTS[0]["id"]])
            assert indexes(path) == SECONDARY_INDEXES
        finally:
            store.close()
        found = sqlite3.connect(path).execute(
            "SELECT ObservableValue FROM ThreatIntelIndicators WHERE Id = ?", (OBJECTS[0]["id"],)).fetchall()
        assert found == ([("192.0.2.9",)] if change == "replace" else [])


@NEEDS_BOOT_ID
def test_a_store_whose_maker_died_before_its_indexes_gets_them_at_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    left_unclosed(path, pid=dead_pid(), boot=_boot_id())
    assert indexes(path) == set()
    again = SqliteStore(path)
    try:
        assert indexes(path) == SECONDARY_INDEXES
        assert set(again.manifest()) == {obj["id"] for obj in OBJECTS}
    finally:
        again.close()
