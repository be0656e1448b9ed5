"""A shared store on a PostgreSQL server (psycopg 3), with the same schema as SQLite.

The apply lock is a session-level advisory lock on its own connection, so a killed
apply releases it when its connection goes away; ``tiops_lock`` names the holder. Its key
is the store's (database and schema), not the target name's, so two targets naming one
store share it; and every batch checks, in its own transaction, that the lock's session
still holds it, so an apply whose lock was broken (force-unlock, a dropped connection, an
idle timeout) stops before writing again instead of interleaving with the next one.
"""

from __future__ import annotations

import os
import socket
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import psycopg

from tiops.redact import redact
from tiops.stores import (
    LockHeld,
    ObjectError,
    PreparedRows,
    StoredVersion,
    StoreError,
    TransientStoreError,
    refuse_a_running_holder,
)
from tiops.stores import sentinel_tables as tables
from tiops.stores import sql as shared

# First key of the two-key advisory lock: "tiops" in ASCII, so it does not clash with other apps.
_LOCK_NAMESPACE = 0x74696F70


#: Connections refused while the server starts are tried again this many times, 0.5 s, 1 s, 2 s ... apart
#: (about 30 s in all, as apply's retries of a dropped connection).
_STARTUP_RETRIES = 6
_MAX_STARTUP_BACKOFF_SECONDS = 16.0
_sleep = time.sleep  # replaced by tests


def _starting_up(error: psycopg.OperationalError) -> bool:
    """Whether a failed connection met a server that is starting (or in recovery): SQLSTATE 57P03
    (cannot_connect_now). libpq gives no SQLSTATE for a refused connection, only the server's message."""
    text = str(error)
    return error.sqlstate == "57P03" or any(phrase in text for phrase in _STARTING_UP_PHRASES)


# The server's messages for 57P03 (postmaster.c); a server whose messages are translated is not recognised.
_STARTING_UP_PHRASES = ("the database system is starting up", "the database system is not yet accepting connections",
                        "the database system is not accepting connections")


def _first_line(error: psycopg.Error) -> str:
    """The server's message, without the SQL it quotes (LINE 1: CREATE TABLE ...), secrets redacted."""
    return redact(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)


_PRIVILEGE_HINT = ("An apply, and the first plan after a tiops upgrade changes the store schema, make or change the "
                   "tiops tables: run it as the role that owns them, with CREATE on the schema. A plan of a store at "
                   "this tiops' schema version needs only SELECT on the tables (docs/targets.md, 'postgres').")


# pg_class, not information_schema (which lists only tables the role has rights on): a store the role may
# not read is refused by its first read, not planned as empty.
_STORE_EXISTS = ("SELECT 1 FROM pg_class WHERE relname = 'stix_current' AND relkind = 'r'"
                 " AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())")


class LockLost(StoreError):
    """The apply's lock was broken while it ran: it stops, it is not tried again."""


def _pg(statement: str) -> str:
    return statement.replace("?", "%s")


# Each batch is COPYed into a temporary table (emptied at commit), then upserted with
# the same conflict rules as the row-by-row statements of tiops.stores.sql.
_NUL_ESCAPE = "\\u0000"  # how orjson writes U+0000 inside a JSON string
_OBJECT_TEXT = shared.VERSION_COLUMNS.index("object")  # the column of version_rows holding the object's JSON
_DIGEST = shared.VERSION_COLUMNS.index("digest")  # its content digest, which a plan carries
_INCOMING_TABLE = "CREATE TEMP TABLE IF NOT EXISTS tiops_incoming (LIKE stix_versions) ON COMMIT DELETE ROWS"
_FROM_INCOMING = f"SELECT {', '.join(shared.VERSION_COLUMNS)} FROM tiops_incoming"
_INSERT_VERSIONS_FROM_INCOMING = shared.INSERT_VERSION.replace("VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", _FROM_INCOMING)
_UPSERT_CURRENT_FROM_INCOMING = shared.UPSERT_CURRENT.format(true="TRUE").replace(
    "VALUES (?, ?, ?, ?, ?, ?, ?, TRUE, ?, ?)",
    "SELECT id, version, version_sort, type, revoked, digest, written_by, TRUE, object, object_digest FROM tiops_incoming",
)


def _holds_nul(value: Any) -> bool:
    """Whether a string or key anywhere in ``value`` holds U+0000 (the escape's text alone, a backslash
    and "u0000" written in a description, does not)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _copy(cursor: psycopg.Cursor[Any], table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Load ``rows`` into ``table`` with COPY (text format: the server parses each column as its type)."""
    if not rows:
        return
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


class PostgresStore:
    supports_delete = True

    def __init__(self, dsn: str, *, target: str, as_of: str | None = None, create: bool = True) -> None:
        self.target = target
        self.as_of = as_of  # the build's as-of time: ThreatIntelIndicators.IsActive honours expiry at it
        self._dsn = dsn
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._lock_pid: int | None = None  # the backend of the lock's session, while this store holds it
        # A plan (create=False) of a database without the tiops tables: read as an empty store, nothing made.
        self._empty = False
        self._needs_schema = False  # while the tables are made or migrated (which errors then mean)
        self._conn = self._connect()
        try:
            self._set_up(create)
        except psycopg.Error as error:
            self._conn.close()
            raise self._error(error, "make or upgrade the tiops tables" if self._needs_schema
                              else "read the tiops tables") from None
        except BaseException:
            self._conn.close()
            raise

    def _error(self, error: psycopg.Error, doing: str) -> StoreError:
        """A server's refusal as a StoreError naming the target (a dropped connection: a transient one)."""
        if isinstance(error, psycopg.OperationalError):  # the server went away meanwhile
            return TransientStoreError(f"postgres target {self.target!r}: {redact(str(error))}")
        if isinstance(error, psycopg.errors.InsufficientPrivilege):
            return StoreError(f"postgres target {self.target!r}: the role cannot {doing}: {_first_line(error)}",
                              hint=_PRIVILEGE_HINT)
        return StoreError(f"postgres target {self.target!r}: cannot {doing}: {_first_line(error)}",
                          hint="Check the database and schema the DSN names, and the role's rights there "
                               "(docs/targets.md, 'postgres').")

    def _set_up(self, create: bool) -> None:
        """Find the store's schema; bring it to this tiops' version unless a plan needs none of that.

        A plan (``create`` False) of a database without the tiops tables reads it as empty and makes
        nothing; one of a store at this schema version runs no DDL, so a role that may only read
        the tables can plan. A store at an older version is brought to this one by plan or apply,
        as the SQLite store is.
        """
        database, schema = self._conn.execute("SELECT current_database(), current_schema()").fetchone() or ("", None)
        if schema is None:
            # Every schema the search_path names is missing, or the role may not use it (PostgreSQL skips
            # those): CREATE would fail with "no schema has been selected", and reads would find no table.
            raise StoreError(
                f"postgres target {self.target!r}: the connection's search_path names no schema that exists in "
                f"database {database!r} and that the role may use",
                hint="Create the schema (CREATE SCHEMA ...) or grant the role USAGE on it, or fix the search_path "
                     "set by the DSN (options=-c search_path=...) or by the role (ALTER ROLE ... SET search_path).")
        self._lock_key = zlib.crc32(f"{database}\0{schema}".encode()) & 0x7FFFFFFF
        if not create:
            if not self._conn.execute(_STORE_EXISTS).fetchone():
                self._empty = True
                return
            if self._table_exists("tiops_store_schema"):
                row = self._conn.execute(shared.SELECT_SCHEMA_VERSION).fetchone()
                found = None if row is None else row[0]
                shared.check_schema_version(found, f"postgres target {self.target!r}")
                if found == shared.SCHEMA_VERSION:
                    return
        self._needs_schema = True
        self._make_schema()

    def _make_schema(self) -> None:
        """Create the tables, views and triggers missing, and migrate a store of an older schema version."""
        target, as_of = self.target, self.as_of
        with self._conn.transaction():
            # Serialise schema creation between concurrent first runs.
            self._conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (_LOCK_NAMESPACE,))
            for statement in shared.schema_statements("BOOLEAN", "TRUE", "FALSE"):
                self._conn.execute(statement)
            row = self._conn.execute(shared.SELECT_SCHEMA_VERSION).fetchone()
            found = None if row is None else row[0]
            shared.check_schema_version(found, f"postgres target {target!r}")
            legacy_table = self._table_exists("threatintelligenceindicator")
            if legacy_table:  # a store from before Sentinel's 2025 tables: the table becomes a view
                self._conn.execute("DROP TABLE ThreatIntelligenceIndicator")
            if self._table_exists("threatintelindicators"):  # schema version 1: the tables held Data
                for statement in tables.data_copy_migration(tables.POSTGRES):
                    self._conn.execute(statement)
            views = {name for (name,) in self._conn.execute(
                "SELECT table_name FROM information_schema.views WHERE table_schema = current_schema()")}
            for statement in tables.schema_statements(tables.POSTGRES):
                view = tables.view_created_by(statement)
                # A view already there at this version is left alone: replacing it waits for every query reading it.
                if view is None or view.lower() not in views or found != shared.SCHEMA_VERSION:
                    self._conn.execute(statement)
            self._add_object_digests()
            self._make_digest_triggers(found)
            if not self._conn.execute("SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = 'stix_current'::regclass",
                                      (tables.SENTINEL_TRUNCATE_TRIGGER,)).fetchone():  # made last
                for statement in tables.sentinel_trigger_statements(tables.POSTGRES):
                    self._conn.execute(statement)
            if legacy_table:
                objects = [orjson.loads(text) for (text,) in self._conn.execute("SELECT object FROM stix_current")]
                with self._conn.cursor() as cursor:
                    for statement, params in tables.sentinel_rows(objects, as_of, tables.POSTGRES).statements(tables.POSTGRES):
                        if params:
                            cursor.executemany(statement, params)
            for statement in shared.schema_version_statements(found):
                self._conn.execute(statement)

    def _make_digest_triggers(self, found: int | None) -> None:
        """The digest triggers (tiops.stores.sql); a store of an older schema version gets the new function,
        which its existing trigger calls, and its digests the old one left stale are cleared."""
        if found != shared.SCHEMA_VERSION:
            self._conn.execute(shared.POSTGRES_DIGEST_FUNCTION)
            for statement in shared.CLEAR_STALE_DIGESTS:
                self._conn.execute(statement)
        for table, name in shared.DIGEST_TRIGGER_TABLES.items():
            present = self._conn.execute(
                "SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = %s::regclass", (name, table)
            ).fetchone()
            if not present:  # made once: replacing it would lock the table against running applies
                self._conn.execute(shared.POSTGRES_DIGEST_TRIGGER.format(table=table, name=name))

    def _table_exists(self, name: str) -> bool:
        """Whether ``name`` (lower case, as PostgreSQL folds unquoted names) is a table, not a view.

        pg_class, not information_schema.tables, which lists only the tables the role has a right on:
        a role that may read stix_current but not tiops_store_schema was sent to make the schema, and
        told it may not, where it is the read that needs a GRANT.
        """
        return self._conn.execute(
            "SELECT 1 FROM pg_class WHERE relname = %s AND relkind IN ('r', 'p')"
            " AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())", (name,)
        ).fetchone() is not None

    def _add_object_digests(self) -> None:
        """Give a store made before ``object_digest`` existed the column, filled from each row's text."""
        for table in shared.OBJECT_DIGEST_COLUMNS:
            present = self._conn.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = %s AND column_name = 'object_digest'", (table,)
            ).fetchone()
            if present:
                continue
            self._conn.execute(f"ALTER TABLE {table} ADD COLUMN object_digest TEXT")
            # The same SHA-256 of the UTF-8 text as tiops.stores.object_digest, computed by the server.
            self._conn.execute(f"UPDATE {table} SET object_digest = encode(sha256(convert_to(object, 'UTF8')), 'hex')")

    def _connect(self) -> psycopg.Connection[Any]:
        # A server starting up (after a restart, a failover) refuses connections for a moment: waited for as
        # apply waits for a dropped connection (tiops.apply._retrying), here since the store is opened before.
        for attempt in range(_STARTUP_RETRIES + 1):
            try:
                return psycopg.connect(self._dsn, autocommit=True)
            except psycopg.OperationalError as error:
                if attempt < _STARTUP_RETRIES and _starting_up(error):
                    _sleep(min(0.5 * 2**attempt, _MAX_STARTUP_BACKOFF_SECONDS))
                    continue
                raise TransientStoreError(f"postgres target {self.target!r}: cannot connect: {redact(str(error))}") from None
            except psycopg.Error as error:  # a setting libpq refuses (connect_timeout=x): the DSN, not the server
                raise StoreError(f"postgres target {self.target!r}: cannot use the connection string: "
                                 f"{redact(str(error))}",
                                 hint=f"Fix the DSN in the variable targets.{self.target}.dsn_env names (libpq's "
                                      "connection parameters).") from None
        raise AssertionError("unreachable")

    def _data(self) -> psycopg.Connection[Any]:
        if self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def manifest(self) -> dict[str, StoredVersion]:
        if self._empty:
            return {}
        try:
            return shared.manifest_from_rows(self._data().execute(shared.SELECT_MANIFEST).fetchall())
        except psycopg.Error as error:
            raise self._error(error, "read the tiops tables") from None

    def current_objects(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if self._empty:
            return {}
        try:
            rows = self._data().execute("SELECT id, object FROM stix_current WHERE id = ANY(%s)", (list(ids),)).fetchall()
        except psycopg.Error as error:
            raise self._error(error, "read the tiops tables") from None
        # Another tool's text that is no object is left out: its content is unknown (tiops.stores.sql).
        return {stix_id: obj for stix_id, text in rows if (obj := shared.readable_object(text)) is not None}

    def write_versions(self, objects: Sequence[dict[str, Any]], digests: Sequence[str] | None = None) -> list[ObjectError]:
        return self.write_prepared(objects, self.prepared_rows(objects, digests))

    def prepared_rows(self, objects: Sequence[dict[str, Any]], digests: Sequence[str] | None = None) -> PreparedRows:
        return tables.prepared_rows(objects, digests, self.as_of, tables.POSTGRES)

    def write_prepared(self, objects: Sequence[dict[str, Any]], prepared: PreparedRows) -> list[ObjectError]:
        rows = prepared[0]
        # PostgreSQL text cannot hold U+0000 and JSONB refuses its escape: such an object stopped the
        # whole batch as an internal error, or, stored as JSON text, made every read of the Sentinel
        # views' Data column fail. Refused by name; the rest is written. (Its serialised text, the
        # row's object column, has every NUL of every string and key as the escape.)
        refused = [index for index, row in enumerate(rows)
                   if _NUL_ESCAPE in row[_OBJECT_TEXT] and _holds_nul(objects[index])]
        if refused:
            errors = [ObjectError(objects[i]["id"], "a string holds the NUL character (U+0000), which PostgreSQL "
                                                    "text and JSONB cannot store") for i in refused]
            skipped = set(refused)
            kept = [i for i in range(len(objects)) if i not in skipped]
            if kept:
                # The rows of the rest are made again: the Sentinel rows are not one per object.
                errors += self.write_versions([objects[i] for i in kept], [rows[i][_DIGEST] for i in kept])
            return errors
        ids = sorted({obj["id"] for obj in objects})

        def write(cursor: psycopg.Cursor[Any]) -> None:
            before = set(self._current_versions(cursor, ids))
            if len(ids) == len(rows):
                # One version per id: COPY the rows in, then two set-based upserts.
                cursor.execute(_INCOMING_TABLE)
                _copy(cursor, "tiops_incoming", shared.VERSION_COLUMNS, rows)
                cursor.execute(_INSERT_VERSIONS_FROM_INCOMING)
                cursor.execute(_UPSERT_CURRENT_FROM_INCOMING)
            else:  # an id twice: row by row, in order (ON CONFLICT cannot update a row twice in one statement)
                cursor.executemany(_pg(shared.INSERT_VERSION), rows)
                cursor.executemany(_pg(shared.UPSERT_CURRENT.format(true="TRUE")), rows)
            current = tables.current_sentinel_rows(objects, prepared, self._current_versions(cursor, ids), self.as_of,
                                                   tables.POSTGRES)
            # Only an object that is current now and had a current version before has Sentinel rows to replace.
            replaced = [stix_id for (stix_id,) in current.ids if stix_id in before]
            if replaced:
                for table, column in tables.ID_COLUMNS:
                    cursor.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", (replaced,))
            for table, columns, table_rows in current.inserts():
                _copy(cursor, table, columns, table_rows)

        self._in_transaction(write)
        return []

    @staticmethod
    def _current_versions(cursor: psycopg.Cursor[Any], ids: list[str]) -> dict[str, str]:
        return dict(cursor.execute("SELECT id, version FROM stix_current WHERE id = ANY(%s)", (ids,)).fetchall())

    def delete_objects(self, ids: Sequence[str]) -> list[ObjectError]:
        rows = [(stix_id,) for stix_id in ids]
        self._run_batch([
            ("DELETE FROM stix_versions WHERE id = %s", rows),
            ("DELETE FROM stix_current WHERE id = %s", rows),
            *tables.delete_statements(tables.POSTGRES, rows),
        ])
        return []

    def _in_transaction(self, work: Callable[[psycopg.Cursor[Any]], None]) -> None:
        """Run ``work`` in one transaction; connection failures are transient."""
        def run(cursor: psycopg.Cursor[Any]) -> list[tuple[str, list[tuple[Any, ...]]]]:
            work(cursor)
            return []

        self._run_batch([], then=run)

    def _run_batch(self, statements: list[tuple[str, list[tuple[Any, ...]]]],
                   then: Callable[[psycopg.Cursor[Any]], list[tuple[str, list[tuple[Any, ...]]]]] | None = None,
                   first: Callable[[psycopg.Cursor[Any]], list[tuple[str, list[tuple[Any, ...]]]]] | None = None) -> None:
        """Run ``statements`` in one transaction, between those ``first`` and ``then`` compute from its state."""
        try:
            connection = self._data()
            with connection.transaction(), connection.cursor() as cursor:
                self._check_lock(cursor)
                for statement, rows in [*(first(cursor) if first is not None else []), *statements]:
                    if rows:
                        cursor.executemany(statement, rows)
                for statement, rows in then(cursor) if then is not None else []:
                    if rows:
                        cursor.executemany(statement, rows)
        except psycopg.OperationalError as error:  # dropped connection, server shutting down
            self._conn.close()
            raise TransientStoreError(f"postgres target {self.target!r}: {redact(str(error))}") from None
        except psycopg.errors.SerializationFailure as error:
            raise TransientStoreError(f"postgres target {self.target!r}: {redact(str(error))}") from None
        except psycopg.IntegrityError as error:
            raise StoreError(f"postgres target {self.target!r}: {redact(str(error))}", hint=shared.INTEGRITY_HINT) from None

    def _check_lock(self, cursor: psycopg.Cursor[Any]) -> None:
        """Within a batch's transaction: raise LockLost unless the lock's session still holds the lock."""
        if self._lock_pid is None:
            return
        held = cursor.execute(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s AND objsubid = 2 "
            "AND pid = %s AND granted", (_LOCK_NAMESPACE, self._lock_key, self._lock_pid),
        ).fetchone()
        if held is None:
            raise LockLost(
                f"postgres target {self.target!r}: this apply lost its lock (the session holding it ended: "
                "'tiops force-unlock', a dropped connection or a server timeout); it stopped before writing "
                "another batch, so that no other apply's writes interleave with its own",
                hint="Run 'tiops apply' again once no other apply is running: it finishes the work.")

    def acquire_lock(self, holder: str) -> None:
        self._lock_conn = self._lock_conn or self._connect()
        row = self._lock_conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (_LOCK_NAMESPACE, self._lock_key)
        ).fetchone()
        if row is None or not row[0]:
            held = self._lock_conn.execute("SELECT holder, host, pid FROM tiops_lock LIMIT 1").fetchone()
            who = "another apply" if held is None else f"{held[0]} (pid {held[2]} on {held[1]})"
            raise LockHeld(
                f"target {self.target!r} is locked by {who}",
                hint=f"Wait for that apply to finish; if it hangs, run 'tiops force-unlock --target {self.target}'.",
            )
        # One holder per store, whichever target name it came by: rows a killed apply left go.
        with self._lock_conn.transaction():
            self._lock_conn.execute("DELETE FROM tiops_lock")
            self._lock_conn.execute("INSERT INTO tiops_lock (target, holder, host, pid) VALUES (%s, %s, %s, %s)",
                                    (self.target, holder, socket.gethostname(), os.getpid()))
        self._lock_pid = self._lock_conn.info.backend_pid

    def refresh_active(self) -> None:
        as_of = self.as_of
        if as_of is None:
            return

        def refresh(cursor: psycopg.Cursor[Any]) -> None:  # indicators that expired since the last apply
            cursor.execute(tables.refresh_active_sql(tables.POSTGRES), (as_of, as_of))

        self._in_transaction(refresh)

    def release_lock(self) -> None:
        if self._lock_conn is None:
            return
        self._lock_pid = None
        try:
            self._lock_conn.execute("DELETE FROM tiops_lock WHERE pid = %s AND host = %s", (os.getpid(), socket.gethostname()))
            self._lock_conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK_NAMESPACE, self._lock_key))
        except psycopg.Error:
            # The session is gone (the server ended it, or the network): so is its advisory lock, and
            # what the apply itself met is the outcome to report, not this.
            self._lock_conn.close()
            self._lock_conn = None

    def force_unlock(self) -> str | None:
        connection = self._data()
        held = connection.execute("SELECT holder, host, pid FROM tiops_lock LIMIT 1").fetchone()
        refuse_a_running_holder(self.target, held)
        connection.execute("DELETE FROM tiops_lock")
        # An advisory lock belongs to a session: ending that session is the only way to break it.
        # PostgreSQL 14 and later wait for the session to end (up to the timeout, in milliseconds):
        # ended is what force-unlock promises, so an apply started right after takes the lock.
        terminate = "pg_terminate_backend(pid, 10000)" if connection.info.server_version >= 140000 \
            else "pg_terminate_backend(pid)"
        try:
            connection.execute(
                f"SELECT {terminate} FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = %s AND objid = %s AND objsubid = 2",
                (_LOCK_NAMESPACE, self._lock_key),
            )
        except psycopg.Error as error:
            raise StoreError(f"postgres target {self.target!r}: cannot end the session holding the lock: {redact(str(error))}") from None
        return None if held is None else f"{held[0]} (pid {held[2]} on {held[1]})"

    def close(self) -> None:
        for connection in (self._conn, self._lock_conn):
            if connection is not None:
                connection.close()
