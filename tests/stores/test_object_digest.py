"""The stored object digest: a re-plan recognises unchanged objects by it, in real SQLite and PostgreSQL stores.

It is a shortcut only: plans made with and without it are the same data, a stale
one (another tool rewrote the object) is never trusted, and stores made before it
existed get it by a migration.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from tiops.apply import apply_plan
from tiops.plan import BundleDigests, Plan, ids_to_read, make_plan
from tiops.stores import Store, StoredVersion, TargetSettings, content_digest
from tiops.stores import sql as shared
from tiops.stores.sqlite import SqliteStore

OLD_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "stores" / "schema_before_object_digest.sql"
SETTINGS = TargetSettings("t", "sqlite")


def indicator(number: int, description: str = "C2", modified: str = "2025-01-01T00:00:00.000Z") -> dict[str, Any]:
    return {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--00000000-0000-4000-8000-{number:012d}",
        "created": "2025-01-01T00:00:00.000Z", "modified": modified, "name": f"C2 {number}",
        "description": description, "pattern": f"[ipv4-addr:value = '10.0.0.{number}']", "pattern_type": "stix",
        "valid_from": "2025-01-01T00:00:00Z",
    }


class Database:
    """A store, and plain SQL on its database (``?`` placeholders in both dialects)."""

    def __init__(self, open_store: Callable[[], Store], run: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]],
                 dialect: str) -> None:
        self.open_store, self.run, self.dialect = open_store, run, dialect


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "store.sqlite"
        connection = sqlite3.connect(path, isolation_level=None)
        yield Database(lambda: SqliteStore(path, target="t"),
                       lambda sql, params=(): connection.execute(sql, params).fetchall(), "sqlite")
        connection.close()
    else:
        import psycopg

        from tiops.stores.postgres import PostgresStore

        dsn = request.getfixturevalue("postgres_dsn")
        pg = psycopg.connect(dsn, autocommit=True)

        def run(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            cursor = pg.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

        yield Database(lambda: PostgresStore(dsn, target="t"), run, "postgres")
        pg.close()


def plan_for(store: Store, compiled: list[dict[str, Any]], manifest: dict[str, StoredVersion] | None = None) -> Plan:
    manifest = store.manifest() if manifest is None else manifest
    digests = BundleDigests.of(compiled)
    stored = store.current_objects(ids_to_read(compiled, manifest, SETTINGS, digests))
    return make_plan(compiled, manifest, stored, SETTINGS, supports_delete=True, source_commit=None, digests=digests)


def sync(store: Store, compiled: list[dict[str, Any]]) -> Plan:
    plan = plan_for(store, compiled)
    apply_plan(plan, store)
    return plan


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_every_current_object_keeps_the_digest_of_its_text_and_a_re_plan_matches_it(database: Database) -> None:
    compiled = [indicator(n) for n in range(1, 6)]
    store = database.open_store()
    try:
        sync(store, compiled)
        for table in ("stix_current", "stix_versions"):
            rows = database.run(f"SELECT object, object_digest, digest FROM {table}", ())
            assert len(rows) == 5 and all(digest == sha256(text) for text, digest, _ in rows)
            # The content digests the plan carried were stored, and are those of the objects.
            assert all(digest == content_digest(orjson.loads(text)) for text, _, digest in rows)
        manifest = store.manifest()
        assert {i: s.object_digest for i, s in manifest.items()} == BundleDigests.of(compiled).objects
        again = plan_for(store, compiled)
        assert not again.has_changes and again.unchanged == 5
    finally:
        store.close()


def test_plans_made_with_and_without_the_stored_digest_are_the_same(database: Database) -> None:
    store = database.open_store()
    try:
        sync(store, [indicator(n) for n in range(1, 6)])
        # One of each: unchanged, content changed without a bump, modified moved forward by
        # the author, the same content, a new object, and one gone (revoked).
        compiled = [
            indicator(1),
            indicator(2, description="edited"),
            indicator(3, modified="2025-02-01T00:00:00.000Z"),
            indicator(4),
            indicator(6),
        ]
        with_digests = plan_for(store, compiled)
        without = {i: s._replace(object_digest=None) for i, s in store.manifest().items()}
        assert all(s.object_digest is None for s in without.values())
        assert plan_for(store, compiled, without).to_json() == with_digests.to_json()
        assert {(c.action, c.id[-1]) for c in with_digests.changes} == {
            ("update", "2"), ("update", "3"), ("create", "6"), ("revoke", "5"),
        }
        assert with_digests.unchanged == 2
        apply_plan(with_digests, store)
        after = plan_for(store, compiled)
        assert not after.has_changes
        # Re-versioned objects (modified moved by tiops) are unchanged by their content digest.
        moved = store.manifest()[indicator(2)["id"]]
        assert moved.modified == "2025-01-01T00:00:00.001Z" and moved.object_digest != BundleDigests.of(compiled).objects[indicator(2)["id"]]
    finally:
        store.close()


def test_another_tool_rewriting_the_object_clears_the_digest_and_the_change_is_planned(database: Database) -> None:
    compiled = [indicator(1), indicator(2)]
    store = database.open_store()
    try:
        sync(store, compiled)
        edited = orjson.dumps(indicator(1, description="edited by hand"), option=orjson.OPT_SORT_KEYS).decode()
        # Same version, new text, no digest of either kind: what a tool that does not know them writes.
        database.run("UPDATE stix_current SET object = ?, digest = NULL, written_by = 'external' WHERE id = ?",
                     (edited, indicator(1)["id"]))
        assert database.run("SELECT object_digest FROM stix_current WHERE id = ?", (indicator(1)["id"],)) == [(None,)]
        [change] = plan_for(store, compiled).changes
        assert change.action == "update" and change.id == indicator(1)["id"] and change.drift
        assert change.effective_modified == "2025-01-01T00:00:00.001Z"
        # tiops rewriting the same text keeps its digest (the trigger only clears a stale one).
        sync(store, compiled)
        rows = database.run("SELECT object, object_digest FROM stix_current ORDER BY id", ())
        assert [digest for _, digest in rows] == [sha256(text) for text, _ in rows]
    finally:
        store.close()


def _old_store(database: Database, objects: list[dict[str, Any]]) -> None:
    """A store as tiops wrote it before object_digest: old tables, rows with content digests."""
    boolean, false, true = ("INTEGER", "0", 1) if database.dialect == "sqlite" else ("BOOLEAN", "FALSE", True)
    for statement in OLD_SCHEMA.read_text().format(bool=boolean, false=false).split(";"):
        lines = [line for line in statement.splitlines() if not line.startswith("--")]
        if "".join(lines).strip():
            database.run("\n".join(lines), ())
    for obj in objects:
        text = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()
        row = (obj["id"], obj["modified"], shared.version_sort_key(obj["modified"]), obj["type"], not true,
               content_digest(obj), "tiops", text)
        database.run("INSERT INTO stix_versions (id, version, version_sort, type, revoked, digest, written_by, object)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
        database.run("INSERT INTO stix_current (id, version, version_sort, type, revoked, digest, written_by, object,"
                     " managed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (*row, true))


def test_a_store_made_before_the_object_digest_is_migrated(database: Database) -> None:
    compiled = [indicator(1), indicator(2), indicator(3)]
    _old_store(database, compiled)
    store = database.open_store()
    try:
        for table in ("stix_current", "stix_versions"):
            rows = database.run(f"SELECT object, object_digest FROM {table}", ())
            assert len(rows) == 3 and all(digest == sha256(text) for text, digest in rows)
        assert {i: s.object_digest for i, s in store.manifest().items()} == BundleDigests.of(compiled).objects
        assert not plan_for(store, compiled).has_changes
        plan = sync(store, [indicator(1), indicator(2, description="edited"), indicator(3)])
        assert [(c.action, c.id) for c in plan.changes] == [("update", indicator(2)["id"])]
    finally:
        store.close()
    # Opening it again is a no-op: the column and the trigger are there.
    database.open_store().close()
    rows = database.run("SELECT object, object_digest FROM stix_current", ())
    assert all(digest == sha256(text) for text, digest in rows)


@pytest.mark.parametrize("text", [
    "2025-01-01T00:00:00Z", "2025-01-01T00:00:00.1Z", "2025-01-01T00:00:00.123Z", "2025-01-01T00:00:00.123456789Z",
    "2025-01-01T00:00:00.1234567891Z", "2025-01-01T00:00:59.9999999999Z",  # more than nine digits: cut
    "2016-12-31T23:59:60.5Z",  # a leap second
    "0999-01-01T00:00:00.000Z",  # a year before 1000
    "2025-02-30T00:00:00.000Z",  # not a real day
    "2025-01-01T00:00:00.000",  # not a STIX timestamp
    "2025-01-01T00:00:0\u0661.000Z",  # a non-ASCII digit
    "2025-01-01T24:00:00.000Z", "2025-01-01T00:60:00Z",  # no hour 24, no minute 60
    "2024-02-29T12:00:00.5Z", "2025-02-29T12:00:00.5Z",  # a leap day, and a day that is not
    "2025-01-01T00:00:00.000Z\n",  # a trailing newline, which the STIX pattern's $ lets through
    "",
])
def test_the_version_sort_key_shortcut_gives_what_parsing_gives(text: str) -> None:
    assert shared.version_sort_key(text) == (shared._parsed_sort_key(text) or text)


def test_version_sort_keys_sort_like_the_timestamps() -> None:
    ordered = ["0999-12-31T23:59:59Z", "1000-01-01T00:00:00Z",
               "2016-12-31T23:59:59Z", "2016-12-31T23:59:59.5Z", "2016-12-31T23:59:59.9999999999Z",
               "2016-12-31T23:59:60Z", "2016-12-31T23:59:60.5Z",  # a leap second, after all of :59
               "2017-01-01T00:00:00Z",
               "2024-12-31T23:59:59.999999999Z", "2025-01-01T00:00:00Z", "2025-01-01T00:00:00.0000001Z",
               "2025-01-01T00:00:00.001Z", "2025-01-01T00:00:00.01Z", "2025-01-01T00:00:00.1Z"]
    assert sorted(reversed(ordered), key=shared.version_sort_key) == ordered
    # Fixed width, so the store's text ordering agrees with this one.
    assert len({len(shared.version_sort_key(text)) for text in ordered}) == 1


def test_a_batch_with_two_versions_of_an_id_keeps_the_later_current(database: Database) -> None:
    older, newer = indicator(1), indicator(1, description="later", modified="2025-02-01T00:00:00.000Z")
    store = database.open_store()
    try:
        # Later first: the older one is history and moves neither the current view nor the Sentinel rows.
        assert store.write_versions([newer, older, indicator(2)]) == []
        assert database.run("SELECT id, version FROM stix_versions ORDER BY id, version", ()) == [
            (older["id"], older["modified"]), (older["id"], newer["modified"]), (indicator(2)["id"], indicator(2)["modified"]),
        ]
        manifest = store.manifest()
        assert manifest[older["id"]].modified == newer["modified"]
        assert manifest[older["id"]].object_digest == BundleDigests.of([newer]).objects[newer["id"]]
        rows = database.run("SELECT Modified FROM ThreatIntelIndicators WHERE Id = ?", (older["id"],))
        assert [str(value)[:10] for (value,) in rows] == ["2025-02-01"]
    finally:
        store.close()
