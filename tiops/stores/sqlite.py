"""The embedded default store: a SQLite file (``.tiops/store.sqlite``) queryable with SQL.

A store tiops makes is written without waiting for the disk (``PRAGMA synchronous=OFF``)
until it is closed, and a mark beside it (``store.sqlite.creating``) names the process
making it: see :class:`CreationMark`.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import orjson

from tiops.outputs import kept_out_of_git
from tiops.stores import (
    Holder,
    LockHeld,
    ObjectError,
    PreparedRows,
    StoredVersion,
    StoreError,
    TransientStoreError,
    holder_running,
    object_digest,
    process_alive,
    refuse_a_running_holder,
    this_holder,
    whole_number,
)
from tiops.stores import sentinel_tables as tables
from tiops.stores import sql as shared

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _sqlite_errors(method: Callable[Concatenate[SqliteStore, _P], _R]) -> Callable[Concatenate[SqliteStore, _P], _R]:
    """The method with SQLite's own errors (a path that is a folder, a device or another file, a
    full disk, a damaged database) as a StoreError naming the store, never an internal error."""
    def translated(self: SqliteStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.IntegrityError as error:  # the file opened: its rows are what disagree
            raise StoreError(f"target {self.target!r}: the SQLite store {self.path}: {error}",
                             hint=shared.INTEGRITY_HINT) from None
        except sqlite3.OperationalError as error:
            if not _is_transient(error):
                raise _path_error(self, error) from None
            # Busy or locked after the connection's timeout: the file is fine, another process holds it.
            raise StoreError(f"target {self.target!r}: the SQLite store {self.path} is held by another process "
                             f"({error}; tiops waited {_BUSY_TIMEOUT_SECONDS:.0f} s for it)",
                             hint=_BUSY_HINT) from None
        except (sqlite3.Error, OSError) as error:  # OSError: its folder cannot be made
            raise _path_error(self, error) from None
    translated.__name__, translated.__doc__ = method.__name__, method.__doc__
    return translated


def _path_error(store: SqliteStore, error: Exception) -> StoreError:
    return StoreError(f"target {store.target!r}: the SQLite store {store.path}: {error}",
                      hint=f"Check that targets.{store.target}.path in tiops.yaml names a SQLite file tiops "
                           "can create and write (not a folder, a device or another kind of file), on a "
                           "disk with room.")


#: How long a connection waits for another one holding the database (sqlite3.connect's timeout).
_BUSY_TIMEOUT_SECONDS = 30.0
_BUSY_HINT = ("Another process (a database browser, a backup, a script, another tiops) holds the database: "
              "let it finish or close it, then run the command again.")


def _holds_a_store(path: Path) -> bool:
    """Whether something is at ``path`` to open: not a missing or empty file (SQLite makes a new database
    of either). Anything else, a folder or another kind of file among them, is opened and reported."""
    try:
        info = path.stat()
    except OSError:
        return False
    return not (stat.S_ISREG(info.st_mode) and info.st_size == 0)


def _boot_id() -> str | None:
    """This boot of the machine (Linux); None where the system does not say."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def _sync_folder(folder: Path) -> None:
    """Make a file made or removed in ``folder`` outlast a crash of the machine (fsync(2) of the folder)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: A mark that does not parse is one being written (claim writes it at once), unless it is older than this.
_TORN_AFTER_SECONDS = 60.0


class CreationMark:
    """Beside a store being made (``PATH.creating``): the process, host and boot making it.

    A new store is written without waiting for the disk (``PRAGMA synchronous=OFF``): on
    the default path every checkpoint of the write-ahead log waits for two fsync(2) calls,
    and writing a large bundle into an empty store spent more time waiting than writing
    (docs/performance.md, "A new SQLite store written without waiting for the disk"). The
    write-ahead log keeps the file consistent if the process dies (SQLite's "How To
    Corrupt", section 3.2: only the operating system's crash or a power loss can damage
    such a file), so the mark says what the next open does with a store whose maker
    did not close it:

    * its maker still runs on this host: nothing, the store is in use;
    * its maker died and the machine did not restart: every committed batch is there, and
      the store is made durable (fsync) and used as it is;
    * the machine restarted since (another boot), or cannot tell: the store may be damaged,
      and it is removed, to be written again by the apply that opened it.

    A mark left by another host (a store on a shared folder) is left alone. The mark goes
    once the store and its log are on the disk.
    """

    def __init__(self, store: Path) -> None:
        self.path = store.with_name(store.name + ".creating")
        self.store = store

    def claim(self) -> bool:
        """Write the mark, unless one is there (another process makes the store): whether this one did."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "boot": _boot_id()}).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        _sync_folder(self.path.parent)  # the mark is on the disk before any page of the store
        return True

    def settle(self) -> None:
        """Deal with a mark whose maker is gone (see the class); a store in the making is left to its maker."""
        try:
            text = self.path.read_bytes()
            written = self.path.stat().st_mtime
        except FileNotFoundError:
            return
        try:
            maker = json.loads(text)
            pid, host, boot = int(maker["pid"]), str(maker["host"]), maker["boot"]
        except (ValueError, KeyError, TypeError):
            if time.time() - written < _TORN_AFTER_SECONDS:
                return  # most likely being written now, by a maker that has not opened the store yet
            pid, host, boot = 0, socket.gethostname(), None  # torn: its maker died before opening the store
        if host != socket.gethostname():
            return
        this_boot = boot is not None and boot == _boot_id()
        if this_boot and process_alive(pid):
            return
        if this_boot:
            for path in (self.store, self.wal):
                _sync_file(path)
        else:
            for path in (self.store, self.wal, self.store.with_name(self.store.name + "-shm")):
                path.unlink(missing_ok=True)
        self.release()

    @property
    def wal(self) -> Path:
        return self.store.with_name(self.store.name + "-wal")

    def release(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        _sync_folder(self.path.parent)


#: The columns of ``tiops_lock`` beyond (target, holder, host, pid), added to a store made before them:
#: the holder's boot and start (clock ticks since that boot), which tell it from a later process with its id.
_LOCK_HOLDER_COLUMNS = (("boot", "TEXT"), ("started", "INTEGER"))


# Only another connection holding the database is worth waiting for; a full disk, a read-only
# file or a damaged database stays so however often the batch is tried again.
_TRANSIENT_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def _is_transient(error: sqlite3.OperationalError) -> bool:
    """Whether a failed batch is worth trying again: the database busy or locked by another connection."""
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _TRANSIENT_CODES  # the primary code of an extended one


class SqliteStore:
    supports_delete = True

    @_sqlite_errors
    def __init__(self, path: Path, *, target: str = "local", as_of: str | None = None, create: bool = True) -> None:
        self.path = path
        self.target = target
        self.as_of = as_of  # the build's as-of time: ThreatIntelIndicators.IsActive honours expiry at it
        self._making: CreationMark | None = None  # set while this connection makes the store
        # The secondary indexes of a store being made, created once its rows are in (_index_now).
        self._deferred_indexes: list[str] = []
        if create:
            CreationMark(path).settle()
        if not create and not _holds_a_store(path):
            # A plan never writes to the target: a store not made yet (or a path mistyped) is read as
            # an empty one, held in memory, and no file or folder is left behind.
            self._db = sqlite3.connect(":memory:", isolation_level=None)
            self._set_up(path)
        else:
            if path.parent.name == ".tiops":
                kept_out_of_git(path.parent)  # the default place: the store is no intel to commit
            path.parent.mkdir(parents=True, exist_ok=True)
            if not _holds_a_store(path):
                mark = CreationMark(path)
                self._making = mark if mark.claim() else None
            try:
                # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
                self._db = sqlite3.connect(path, isolation_level=None, timeout=_BUSY_TIMEOUT_SECONDS)
                self._set_up(path)
            except BaseException:
                if self._making is not None:  # nothing was committed: the mark has nothing to tell
                    self._making.release()
                raise
        self._lock_holder: str | None = None

    def _set_up(self, path: Path) -> None:
        """The connection's settings, and the schema brought to this tiops' version."""
        self._db.execute("PRAGMA journal_mode=WAL")
        # A store being made waits for the disk once, when closed (CreationMark).
        self._db.execute("PRAGMA synchronous=OFF" if self._making is not None else "PRAGMA synchronous=NORMAL")
        # A batch touches five tables and their indexes; with SQLite's default 2 MiB
        # cache their pages spill to the WAL before the commit. Memory is only taken as used.
        self._db.execute("PRAGMA cache_size=-65536")
        with self._transaction():
            for statement in shared.schema_statements("INTEGER", "1", "0"):
                self._run_schema(statement)
            found = self._db.execute(shared.SELECT_SCHEMA_VERSION).fetchone()[0]
            shared.check_schema_version(found, f"sqlite store {path}")
            legacy_table = self._table_exists("ThreatIntelligenceIndicator")
            if legacy_table:  # a store from before Sentinel's 2025 tables: the table becomes a view
                self._db.execute("DROP TABLE ThreatIntelligenceIndicator")
            if self._table_exists("ThreatIntelIndicators"):  # schema version 1: the tables held Data
                for statement in tables.data_copy_migration(tables.SQLITE):
                    self._db.execute(statement)
            if found != shared.SCHEMA_VERSION:  # views of another version are made again (CREATE VIEW IF NOT EXISTS)
                self._db.execute("DROP VIEW IF EXISTS ThreatIntelligenceIndicator")
            for statement in tables.schema_statements(tables.SQLITE):
                self._run_schema(statement)
            self._add_object_digests()
            for statement in shared.sqlite_digest_triggers(found):
                self._db.execute(statement)
            if not self._trigger_exists(tables.SENTINEL_TRIGGER):
                for statement in tables.sentinel_trigger_statements(tables.SQLITE):
                    self._db.execute(statement)
            if legacy_table:
                objects = [orjson.loads(text) for (text,) in self._db.execute("SELECT object FROM stix_current")]
                self._write_sentinel_rows(objects)
            for statement in shared.schema_version_statements(found):
                self._db.execute(statement)

    def _run_schema(self, statement: str) -> None:
        """One statement of the schema; a secondary index of a store being made is kept for later.

        Its rows go in faster without them: each is built at once from the rows, sorted,
        when the store is closed (an apply into a new store took 0.89 to 0.94 of the time,
        docs/performance.md). Unique indexes and keys are never deferred: they are
        constraints. Any connection that opens the store meanwhile, or after its maker
        died, makes them at once (IF NOT EXISTS).
        """
        if self._making is not None and statement.lstrip().upper().startswith("CREATE INDEX"):
            self._deferred_indexes.append(statement)
        else:
            self._db.execute(statement)

    def _index_now(self) -> None:
        """Make the deferred indexes (in the transaction open, if any)."""
        for statement in self._deferred_indexes:
            self._db.execute(statement)
        self._deferred_indexes = []

    def _trigger_exists(self, name: str) -> bool:
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)).fetchone() is not None

    def _table_exists(self, name: str) -> bool:
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None

    def _add_object_digests(self) -> None:
        """Give a store made before ``object_digest`` existed the column, filled from each row's text."""
        for table in shared.OBJECT_DIGEST_COLUMNS:
            columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if "object_digest" in columns:
                continue
            self._db.execute(f"ALTER TABLE {table} ADD COLUMN object_digest TEXT")
            rows = self._db.execute(f"SELECT rowid, object FROM {table}").fetchall()
            self._db.executemany(
                f"UPDATE {table} SET object_digest = ? WHERE rowid = ?",
                [(object_digest(text.encode()), rowid) for rowid, text in rows],
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    @contextmanager
    def _batch(self) -> Iterator[None]:
        """One batch's transaction; a busy or locked database is a TransientStoreError (tried again),
        anything else SQLite raises is left to :func:`_sqlite_errors`, which names the target."""
        try:
            with self._transaction():
                yield
        except sqlite3.OperationalError as error:
            if _is_transient(error):
                raise TransientStoreError(f"target {self.target!r}: the SQLite store {self.path} is held by another "
                                          f"process ({error})") from error
            raise

    @_sqlite_errors
    def manifest(self) -> dict[str, StoredVersion]:
        return shared.manifest_from_rows(self._db.execute(shared.SELECT_MANIFEST))

    @_sqlite_errors
    def current_objects(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            marks = ",".join("?" for _ in chunk)
            for stix_id, text in self._db.execute(f"SELECT id, object FROM stix_current WHERE id IN ({marks})", chunk):
                obj = shared.readable_object(text)
                if obj is not None:  # another tool's text that is no object: its content is unknown
                    found[stix_id] = obj
        return found

    def write_versions(self, objects: Sequence[dict[str, Any]], digests: Sequence[str] | None = None) -> list[ObjectError]:
        return self.write_prepared(objects, self.prepared_rows(objects, digests))

    def prepared_rows(self, objects: Sequence[dict[str, Any]], digests: Sequence[str] | None = None) -> PreparedRows:
        return tables.prepared_rows(objects, digests, self.as_of, tables.SQLITE)

    @_sqlite_errors
    def write_prepared(self, objects: Sequence[dict[str, Any]], prepared: PreparedRows) -> list[ObjectError]:
        rows = prepared[0]
        ids = sorted({obj["id"] for obj in objects})
        with self._batch():
            before = set(self._current_versions(ids))
            if before and self._deferred_indexes:
                self._index_now()  # rows to replace are found by the indexes: a new store made in one go has none
            self._db.executemany(shared.INSERT_VERSION, rows)
            self._db.executemany(shared.UPSERT_CURRENT.format(true="1"), rows)
            current = tables.current_sentinel_rows(objects, prepared, self._current_versions(ids), self.as_of,
                                                   tables.SQLITE)
            for statement, params in current.statements(tables.SQLITE, before):
                if params:
                    self._db.executemany(statement, params)
        return []

    def _current_versions(self, ids: Sequence[str]) -> dict[str, str]:
        current: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" for _ in chunk)
            current.update(self._db.execute(f"SELECT id, version FROM stix_current WHERE id IN ({marks})", chunk))
        return current

    def _write_sentinel_rows(self, objects: Sequence[dict[str, Any]], *, replaced: set[str] | None = None) -> None:
        """Sentinel's rows of ``objects``; only ids in ``replaced`` (all when None) can have old rows to delete."""
        rows = tables.sentinel_rows(objects, self.as_of, tables.SQLITE)
        for statement, params in rows.statements(tables.SQLITE, replaced):
            if params:
                self._db.executemany(statement, params)

    @_sqlite_errors
    def delete_objects(self, ids: Sequence[str]) -> list[ObjectError]:
        rows = [(stix_id,) for stix_id in ids]
        with self._batch():
            if self._deferred_indexes:
                self._index_now()  # the Sentinel rows are found by their ids' index
            self._db.executemany("DELETE FROM stix_versions WHERE id = ?", rows)
            self._db.executemany("DELETE FROM stix_current WHERE id = ?", rows)
            for statement, params in tables.delete_statements(tables.SQLITE, rows):
                self._db.executemany(statement, params)
        return []

    @_sqlite_errors
    def acquire_lock(self, holder: str) -> None:
        me = this_holder(holder)
        with self._transaction():
            self._add_lock_holder_columns()
            held = self._lock_row()
            # A lock whose holder is gone is taken over: a process that died on this host, or one whose
            # id a later process has (PID 1 of a container's next run, this very process among them),
            # or one of an earlier boot (holder_running). Another host's lock is not this host's to judge.
            if held is not None and (held.host != me.host or holder_running(held, records_start=True)):
                raise LockHeld(
                    f"target {self.target!r} is locked by {held.holder} (pid {held.pid} on {held.host})",
                    hint=f"Wait for that apply to finish; if it is gone, run 'tiops force-unlock --target {self.target}'.",
                )
            self._db.execute(
                "INSERT OR REPLACE INTO tiops_lock (target, holder, host, pid, boot, started) VALUES (?, ?, ?, ?, ?, ?)",
                (self.target, *me),
            )
        self._lock_holder = holder

    def _add_lock_holder_columns(self) -> None:
        """Give ``tiops_lock`` of a store made before them the columns that tell a holder from a later
        process with its id (:class:`tiops.stores.Holder`); rows already there keep None in both.

        Added when a lock is taken or broken rather than with the schema: the table's statement is
        the PostgreSQL store's too, whose advisory lock needs neither. A row written before (by a
        tiops that named four columns) has None in both.
        """
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(tiops_lock)")}
        for name, kind in _LOCK_HOLDER_COLUMNS:
            if name not in columns:
                self._db.execute(f"ALTER TABLE tiops_lock ADD COLUMN {name} {kind}")

    def _lock_row(self) -> Holder | None:
        """The holder of this target's lock, if any (in a transaction, after _add_lock_holder_columns)."""
        row = self._db.execute("SELECT holder, host, pid, boot, started FROM tiops_lock WHERE target = ?",
                               (self.target,)).fetchone()
        if row is None:
            return None
        holder, host, pid, boot, started = row
        # Another tool may have written anything there: a pid that is no number names no process (the
        # lock is nobody's, taken over), a start that is no number is no start recorded.
        number = whole_number(pid)
        return Holder(str(holder), str(host), -1 if number is None else number, None if boot is None else str(boot),
                      whole_number(started))

    @_sqlite_errors
    def refresh_active(self) -> None:
        if self.as_of is not None:  # indicators that expired since the last apply
            with self._transaction():
                self._db.execute(tables.refresh_active_sql(tables.SQLITE), (self.as_of, self.as_of))

    @_sqlite_errors
    def release_lock(self) -> None:
        if self._lock_holder is None:
            return
        me = this_holder(self._lock_holder)
        with self._transaction():
            # Only this process's own row: one a later apply took over (judging this one gone) is its lock now.
            self._db.execute(
                "DELETE FROM tiops_lock WHERE target = ? AND host = ? AND pid = ? AND boot IS ? AND started IS ?",
                (self.target, me.host, me.pid, me.boot, me.started),
            )
        self._lock_holder = None

    @_sqlite_errors
    def force_unlock(self) -> str | None:
        with self._transaction():
            self._add_lock_holder_columns()
            held = self._lock_row()
            refuse_a_running_holder(self.target, held)
            self._db.execute("DELETE FROM tiops_lock WHERE target = ?", (self.target,))
        return None if held is None else f"{held.holder} (pid {held.pid} on {held.host})"

    @_sqlite_errors
    def close(self) -> None:
        if self._making is not None:
            self._made_durable(self._making)
        self._db.close()

    def _made_durable(self, mark: CreationMark) -> None:
        """Make its deferred indexes, put the new store and its log on the disk, then drop the mark (the store is made)."""
        if self._deferred_indexes:
            with self._transaction():
                self._index_now()
        self._db.execute("PRAGMA synchronous=NORMAL")  # the checkpoint at close now syncs as on any store
        _sync_file(self.path)
        _sync_file(mark.wal)
        mark.release()
        self._making = None


class _Transaction:
    """BEGIN IMMEDIATE (take the write lock up front) ... COMMIT, or ROLLBACK on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
