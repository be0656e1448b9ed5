"""The store schema's version and the migration from version 1 (the Sentinel tables held a
copy of each object's JSON) to 2 (they are views reading it from stix_current), in real
SQLite and PostgreSQL stores.

A migrated store must answer exactly as a store written fresh by this version: the same
Sentinel rows (Data included), manifest and current objects (what ``tiops query`` reads),
and the same plans and applies after it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_sentinel_tables import AS_OF, OBJECTS

from tiops.apply import apply_plan
from tiops.plan import BundleDigests, Plan, ids_to_read, make_plan
from tiops.stores import Store, StoreError, TargetSettings
from tiops.stores import sentinel_tables as tables
from tiops.stores import sql as shared
from tiops.stores.sqlite import SqliteStore

VERSION_1_DUMP = Path(__file__).resolve().parents[1] / "data" / "stores" / "store_schema_version_1.sql"
SETTINGS = TargetSettings("t", "sqlite")
SENTINEL_QUERIES = {
    "ThreatIntelIndicators": "SELECT * FROM ThreatIntelIndicators",
    "ThreatIntelObjects": "SELECT * FROM ThreatIntelObjects",
    "ThreatIntelligenceIndicator": "SELECT * FROM ThreatIntelligenceIndicator",
}
#: An older version of indicator 2, written between the others: the history holds two versions of one id.
OLDER = {**OBJECTS[1], "modified": "2024-12-01T00:00:00.000Z", "confidence": 10}


def write_as_the_dump_was_written(store: Store) -> None:
    """The writes that made tests/data/stores/store_schema_version_1.sql (tiops at schema version 1)."""
    store.write_versions(OBJECTS[:4])
    store.write_versions([OLDER])
    store.write_versions([*OBJECTS[4:], OBJECTS[1]])


@dataclass
class Database:
    """Opens stores on one database and runs plain SQL on it."""

    open_store: Callable[[], Store]
    run: Callable[[str], list[tuple[Any, ...]]]
    dialect: str


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "store.sqlite"
        connection = sqlite3.connect(path, isolation_level=None)
        yield Database(lambda: SqliteStore(path, target="t", as_of=AS_OF),
                       lambda sql: connection.execute(sql).fetchall(), "sqlite")
        connection.close()
    else:
        import psycopg

        from tiops.stores.postgres import PostgresStore

        dsn = request.getfixturevalue("postgres_dsn")
        pg = psycopg.connect(dsn, autocommit=True)

        def run(sql: str) -> list[tuple[Any, ...]]:
            cursor = pg.execute(sql)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

        yield Database(lambda: PostgresStore(dsn, target="t", as_of=AS_OF), run, "postgres")
        pg.close()


def make_version_1(database: Database) -> None:
    """Make the database a version 1 store holding what the dump holds.

    SQLite: the dump itself, as tiops wrote it. PostgreSQL (a dump is not portable): the
    same writes by this version, then its tables taken back to version 1's layout, the
    Sentinel tables as tables with their Data column, filled from the views.
    """
    if database.dialect == "sqlite":
        for statement in VERSION_1_DUMP.read_text(encoding="utf-8").split(";\n"):
            lines = [line for line in statement.splitlines() if not line.startswith("--")]
            if "".join(lines).strip():
                database.run("\n".join(lines))
        return
    store = database.open_store()
    write_as_the_dump_was_written(store)
    store.close()
    database.run("DROP VIEW ThreatIntelligenceIndicator")
    for view, table, _ in tables.VIEWS:
        database.run(f"CREATE TABLE old_{table} AS SELECT * FROM {view}")
        database.run(f"DROP VIEW {view}")
        database.run(f"DROP TABLE {table}")
        database.run(f"ALTER TABLE old_{table} RENAME TO {view}")
    database.run("ALTER TABLE ThreatIntelObjects ADD PRIMARY KEY (Id)")
    database.run("CREATE INDEX ThreatIntelIndicators_Id ON ThreatIntelIndicators (Id)")
    database.run("CREATE INDEX ThreatIntelIndicators_Value ON ThreatIntelIndicators (ObservableValue)")
    database.run("CREATE INDEX ThreatIntelObjects_StixType ON ThreatIntelObjects (StixType)")
    database.run(tables.legacy_view_sql(tables.POSTGRES).replace(tables.INDICATOR_TABLE, "ThreatIntelIndicators"))
    database.run("DROP TABLE tiops_store_schema")


def empty(database: Database) -> None:
    """Drop everything a store made."""
    if database.dialect == "postgres":
        database.run("DROP SCHEMA public CASCADE")
        database.run("CREATE SCHEMA public")
        return
    for kind in ("view", "table"):
        for (name,) in database.run(f"SELECT name FROM sqlite_master WHERE type = '{kind}'"):
            database.run(f"DROP {kind.upper()} {name}")


def table_kind(database: Database, name: str) -> str | None:
    if database.dialect == "sqlite":
        rows = database.run(f"SELECT type FROM sqlite_master WHERE name = '{name}'")
        return rows[0][0] if rows else None
    rows = database.run("SELECT table_type FROM information_schema.tables WHERE table_schema = current_schema()"
                        f" AND table_name = '{name.lower()}'")
    return {"BASE TABLE": "table", "VIEW": "view"}[rows[0][0]] if rows else None


def _plain(value: Any) -> Any:
    """A cell as comparable data: JSON text and JSONB alike as the value, times as text."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:  # a STIX pattern
            return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def sentinel_rows(database: Database) -> dict[str, list[str]]:
    """Every row of the Sentinel tables and the legacy view, in a stable order."""
    return {
        name: sorted(json.dumps([_plain(cell) for cell in row], sort_keys=True) for row in database.run(sql))
        for name, sql in SENTINEL_QUERIES.items()
    }


@dataclass
class Snapshot:
    sentinel: dict[str, list[str]]
    manifest: dict[str, Any]
    current: dict[str, dict[str, Any]]
    history: list[tuple[Any, ...]]


def snapshot(database: Database, store: Store) -> Snapshot:
    manifest = store.manifest()
    return Snapshot(sentinel_rows(database), manifest, store.current_objects(sorted(manifest)),
                    database.run("SELECT id, version, digest, object_digest FROM stix_versions ORDER BY id, version"))


def plan_for(store: Store, compiled: list[dict[str, Any]]) -> Plan:
    manifest = store.manifest()
    digests = BundleDigests.of(compiled)
    stored = store.current_objects(ids_to_read(compiled, manifest, SETTINGS, digests))
    return make_plan(compiled, manifest, stored, SETTINGS, supports_delete=True, source_commit=None, digests=digests)


EDITED = [{**OBJECTS[0], "modified": "2025-02-01T00:00:00.000Z", "pattern": "[ipv4-addr:value = '192.0.2.9']"},
          *OBJECTS[1:5], *OBJECTS[6:]]  # indicator 1 changed, the threat actor removed


def test_a_version_1_store_is_migrated_and_answers_as_a_fresh_one(database: Database) -> None:
    # A fresh store first (PostgreSQL: the same database is made version 1 from it afterwards).
    fresh_store = database.open_store()
    write_as_the_dump_was_written(fresh_store)
    fresh = snapshot(database, fresh_store)
    fresh_plan = plan_for(fresh_store, EDITED)
    apply_plan(fresh_plan, fresh_store)
    fresh_after = snapshot(database, fresh_store)
    fresh_store.close()
    empty(database)
    make_version_1(database)
    assert table_kind(database, "ThreatIntelIndicators") == "table" and table_kind(database, "tiops_store_schema") is None
    before = sentinel_rows(database)

    store = database.open_store()
    try:
        assert table_kind(database, "ThreatIntelIndicators") == "view"
        assert table_kind(database, "ThreatIntelObjects") == "view"
        assert table_kind(database, tables.INDICATOR_TABLE) == "table"
        assert database.run("SELECT version FROM tiops_store_schema") == [(shared.SCHEMA_VERSION,)]
        migrated = snapshot(database, store)
        # Nothing a reader sees changed: the rows as version 1 held them, and as a fresh store holds them.
        assert migrated.sentinel == before == fresh.sentinel
        assert migrated == fresh
        assert not plan_for(store, OBJECTS).has_changes
        plan = plan_for(store, EDITED)
        assert plan.changes == fresh_plan.changes
        apply_plan(plan, store)
        assert snapshot(database, store) == fresh_after
    finally:
        store.close()
    # Opening it again changes nothing.
    database.open_store().close()
    assert database.run("SELECT version FROM tiops_store_schema") == [(shared.SCHEMA_VERSION,)]
    assert sentinel_rows(database) == fresh_after.sentinel


def test_a_store_of_a_newer_schema_is_refused(database: Database) -> None:
    database.open_store().close()
    database.run(f"UPDATE tiops_store_schema SET version = {shared.SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=f"store schema version {shared.SCHEMA_VERSION + 1}") as raised:
        database.open_store()
    assert raised.value.hint and "Upgrade tiops" in raised.value.hint
