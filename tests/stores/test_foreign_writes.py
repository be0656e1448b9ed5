"""What other tools and other connections do to a SQL store, and what plan and apply make of it:
an object rewritten behind tiops' back, a row whose object is not JSON, a schema version that is
not a number, a database held by another process, and a PostgreSQL role or search_path that
cannot make the tables. Each is a clear plan or error, never an internal error."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_plan_apply import indicator, write_repo
from test_sentinel_tables import OBJECTS
from test_store_schema import Database, database, plan_for  # noqa: F401 (database: a fixture)

from tiops.apply import apply_plan
from tiops.cli import main
from tiops.stores import StoreError, TransientStoreError, content_digest
from tiops.stores import sql as shared
from tiops.stores.sqlite import SqliteStore

FOREIGN_ID = "malware--11111111-1111-4111-8111-111111111111"
_role_numbers = itertools.count()


def tamper(db: Database, stix_id: str, tables: tuple[str, ...] = ("stix_current", "stix_versions")) -> None:
    """Rewrite an object's text as another tool would: `object` only, neither digest touched."""
    for table in tables:
        ((text,),) = db.run(f"SELECT object FROM {table} WHERE id = '{stix_id}'")
        tampered = json.dumps({**json.loads(text), "name": "TAMPERED"}).replace("'", "''")
        db.run(f"UPDATE {table} SET object = '{tampered}' WHERE id = '{stix_id}'")


def stored_name(db: Database, stix_id: str) -> str:
    ((text,),) = db.run(f"SELECT object FROM stix_current WHERE id = '{stix_id}'")
    return str(json.loads(text)["name"])


def test_an_object_rewritten_by_another_tool_is_planned_and_restored(database: Database) -> None:  # noqa: F811
    store = database.open_store()
    try:
        store.write_versions(OBJECTS)
        stix_id, name = OBJECTS[0]["id"], OBJECTS[0]["name"]
        tamper(database, stix_id)
        # The trigger cleared both digests: neither describes the text now.
        assert database.run(f"SELECT digest, object_digest FROM stix_current WHERE id = '{stix_id}'") == [(None, None)]
        assert database.run(f"SELECT digest, object_digest FROM stix_versions WHERE id = '{stix_id}'") == [(None, None)]
        plan = plan_for(store, OBJECTS)
        assert [(change.action, change.id) for change in plan.changes] == [("update", stix_id)]
        apply_plan(plan, store)
        assert stored_name(database, stix_id) == name
        assert not plan_for(store, OBJECTS).has_changes
    finally:
        store.close()


def test_a_tool_that_sets_the_digest_with_the_object_is_trusted(database: Database) -> None:  # noqa: F811
    store = database.open_store()
    try:
        store.write_versions(OBJECTS)
        stix_id = OBJECTS[0]["id"]
        renamed = {**OBJECTS[0], "name": "Renamed elsewhere"}
        text = json.dumps(renamed).replace("'", "''")
        database.run(f"UPDATE stix_current SET object = '{text}', digest = '{content_digest(renamed)}' WHERE id = '{stix_id}'")
        assert database.run(f"SELECT digest FROM stix_current WHERE id = '{stix_id}'") == [(content_digest(renamed),)]
        assert plan_for(store, [renamed, *OBJECTS[1:]]).changes == ()
    finally:
        store.close()


def test_a_store_of_schema_version_3_gets_the_new_triggers_and_its_stale_digests_cleared(database: Database) -> None:  # noqa: F811
    store = database.open_store()
    store.write_versions(OBJECTS)
    store.close()
    make_schema_version_3(database)
    stix_id, name = OBJECTS[0]["id"], OBJECTS[0]["name"]
    tamper(database, stix_id, ("stix_current",))  # under the old trigger: object_digest cleared, digest left stale
    assert database.run(f"SELECT digest IS NULL, object_digest IS NULL FROM stix_current WHERE id = '{stix_id}'") \
        in ([(0, 1)], [(False, True)])
    store = database.open_store()
    try:
        assert database.run("SELECT version FROM tiops_store_schema") == [(shared.SCHEMA_VERSION,)]
        plan = plan_for(store, OBJECTS)
        assert [(change.action, change.id) for change in plan.changes] == [("update", stix_id)]
        apply_plan(plan, store)
        assert stored_name(database, stix_id) == name
        # The new triggers are in place: a second rewrite is seen too.
        other = OBJECTS[1]["id"]
        tamper(database, other)
        assert [change.id for change in plan_for(store, OBJECTS).changes] == [other]
    finally:
        store.close()


_OLD_SQLITE_TRIGGER = """
CREATE TRIGGER stix_current_object_digest AFTER UPDATE OF object ON stix_current
FOR EACH ROW WHEN NEW.object IS NOT OLD.object AND NEW.object_digest IS OLD.object_digest
BEGIN UPDATE stix_current SET object_digest = NULL WHERE id = NEW.id; END
"""
_OLD_POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION tiops_stale_object_digest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.object IS DISTINCT FROM OLD.object AND NEW.object_digest IS NOT DISTINCT FROM OLD.object_digest THEN
        NEW.object_digest := NULL;
    END IF;
    RETURN NEW;
END $$
"""


def make_schema_version_3(db: Database) -> None:
    """Take the store back to schema version 3: its one trigger cleared only object_digest."""
    if db.dialect == "sqlite":
        for name in shared.DIGEST_TRIGGER_TABLES.values():
            db.run(f"DROP TRIGGER {name}")
        db.run(_OLD_SQLITE_TRIGGER)
    else:
        db.run("DROP TRIGGER stix_versions_object_digest ON stix_versions")
        db.run(_OLD_POSTGRES_FUNCTION)
    db.run("UPDATE tiops_store_schema SET version = 3")


def insert_foreign_row(db: Database, stix_id: str, text: str, *, managed: bool = False) -> None:
    """A row another tool wrote into stix_current without a digest."""
    flag = ("1" if managed else "0") if db.dialect == "sqlite" else ("TRUE" if managed else "FALSE")
    false = "0" if db.dialect == "sqlite" else "FALSE"
    db.run(
        "INSERT INTO stix_current (id, version, version_sort, type, revoked, digest, written_by, managed, object) "
        f"VALUES ('{stix_id}', '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000000000', "
        f"'{stix_id.split('--')[0]}', {false}, NULL, 'external', {flag}, '{text}')")


@pytest.mark.parametrize("text", ["{bad", "[1,2]", "null"])
def test_a_foreign_row_that_is_not_a_json_object_is_left_alone(database: Database, text: str) -> None:  # noqa: F811
    store = database.open_store()
    try:
        store.write_versions(OBJECTS)
        insert_foreign_row(database, FOREIGN_ID, text)
        manifest = store.manifest()
        assert manifest[FOREIGN_ID].digest.startswith(shared.UNREADABLE_DIGEST)
        assert store.current_objects([FOREIGN_ID]) == {}  # its content is unknown
        assert not plan_for(store, OBJECTS).has_changes  # not tiops' to remove
    finally:
        store.close()


@pytest.mark.parametrize("text", ["{bad", "[1,2]"])
def test_a_row_of_the_repository_whose_object_is_not_json_is_written_again(database: Database, text: str) -> None:  # noqa: F811
    store = database.open_store()
    try:
        store.write_versions(OBJECTS[1:])
        stix_id = OBJECTS[0]["id"]
        insert_foreign_row(database, stix_id, text, managed=True)
        plan = plan_for(store, OBJECTS)
        assert [(change.action, change.id, change.drift) for change in plan.changes] == [("update", stix_id, True)]
        apply_plan(plan, store)
        assert stored_name(database, stix_id) == OBJECTS[0]["name"]
        assert not plan_for(store, OBJECTS).has_changes
    finally:
        store.close()


def test_a_foreign_row_of_bad_json_does_not_stop_plan_or_apply(tmp_path: Path) -> None:
    target = {"type": "sqlite", "path": str(tmp_path / "store.sqlite")}
    root = write_repo(tmp_path / "repo", target, [indicator(n) for n in range(3)])
    runner = CliRunner()
    assert runner.invoke(main, ["-C", str(root), "apply", "--auto-approve"]).exit_code == 0
    with sqlite3.connect(target["path"]) as connection:
        connection.execute(
            "INSERT INTO stix_current (id, version, version_sort, type, revoked, digest, written_by, managed, object) "
            f"VALUES ('{FOREIGN_ID}', '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000000000', 'malware', 0, NULL, "
            "'external', 0, '{bad')")
    connection.close()
    for command in (["plan", "--detailed-exitcode"], ["apply", "--auto-approve"]):
        result = runner.invoke(main, ["-C", str(root), *command])
        assert result.exit_code == 0 and "internal error" not in result.output, result.output


def test_a_schema_version_that_is_not_a_number_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    SqliteStore(path, target="t").close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE tiops_store_schema SET version = 'v3'")
    connection.close()
    for create in (True, False):
        with pytest.raises(StoreError, match=r"unreadable store schema version 'v3'") as raised:
            SqliteStore(path, target="t", create=create)
        assert str(path) in raised.value.message
        assert raised.value.hint and "tiops_store_schema" in raised.value.hint


def test_a_store_held_by_another_process_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tiops.stores import sqlite as sqlite_store

    path = tmp_path / "store.sqlite"
    SqliteStore(path, target="t").close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    # Waited for briefly: the 30 s of a real run would only slow the test down.
    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite_store.sqlite3, "connect",
                        lambda *args, **kwargs: real_connect(*args, **{**kwargs, "timeout": 0.1}))
    try:
        with pytest.raises(StoreError) as raised:
            SqliteStore(path, target="t", create=False)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "held by another process" in raised.value.message and "database is locked" in raised.value.message
    assert raised.value.hint is not None and "Another process" in raised.value.hint
    assert "folder" not in raised.value.hint and "disk" not in raised.value.hint


# PostgreSQL: what a plan needs of the role, the schema and the server.


@pytest.fixture
def pg_repo(tmp_path: Path, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A repository whose target `t` is a fresh PostgreSQL database (its DSN in TIOPS_TEST_STORE_DSN)."""
    monkeypatch.setenv("TIOPS_TEST_STORE_DSN", postgres_dsn)
    root = write_repo(tmp_path / "repo", {"type": "postgres", "dsn_env": "TIOPS_TEST_STORE_DSN"},
                      [indicator(n) for n in range(3)])
    return root, postgres_dsn


def run(root: Path, *command: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-C", str(root), *command])
    assert result.exit_code != 3, result.output
    return result.exit_code, result.output


def tables_in(dsn: str) -> list[str]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        return [name for (name,) in connection.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v')")]


def test_a_plan_of_an_empty_postgres_database_plans_creates_and_makes_nothing(pg_repo: tuple[Path, str]) -> None:
    root, dsn = pg_repo
    code, output = run(root, "plan", "--detailed-exitcode")
    assert code == 2 and "4 to create" in output, output
    assert tables_in(dsn) == []
    assert run(root, "apply", "--auto-approve")[0] == 0
    assert "stix_current" in tables_in(dsn)


def reader_dsn(dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The DSN of a new role that may read the tiops tables and nothing else; the role has a password in it."""
    import psycopg

    role = f"tiops_reader_{os.getpid()}_{next(_role_numbers)}"
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'Reader-Secret-77'")
        connection.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        connection.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        connection.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    server, name = dsn.rsplit("/", 1)
    reader = server.replace("postgres@", f"{role}:Reader-Secret-77@") + "/" + name
    monkeypatch.setenv("TIOPS_TEST_STORE_DSN", reader)
    return reader


def test_a_read_only_role_plans_a_store_of_this_schema_version(pg_repo: tuple[Path, str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root, dsn = pg_repo
    assert run(root, "apply", "--auto-approve")[0] == 0
    reader_dsn(dsn, monkeypatch)
    code, output = run(root, "plan", "--detailed-exitcode")
    assert code == 0 and "no changes" in output, output


def test_a_role_that_may_not_read_the_schema_version_is_told_it_cannot_read(pg_repo: tuple[Path, str],
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # information_schema lists only the tables a role has a right on: such a role was sent to make the
    # schema, and told it may not make it.
    import psycopg

    root, dsn = pg_repo
    assert run(root, "apply", "--auto-approve")[0] == 0
    reader = reader_dsn(dsn, monkeypatch)
    role = reader.split("//", 1)[1].split(":", 1)[0]
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f"REVOKE SELECT ON tiops_store_schema FROM {role}")
    code, output = run(root, "plan")
    assert code == 1, output
    assert "cannot read the tiops tables: permission denied for table tiops_store_schema" in output, output
    assert "make or upgrade" not in output and "Reader-Secret-77" not in output


def test_a_read_only_role_cannot_upgrade_an_older_store_and_is_told_why(pg_repo: tuple[Path, str],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    root, dsn = pg_repo
    assert run(root, "apply", "--auto-approve")[0] == 0
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("UPDATE tiops_store_schema SET version = 3")
    reader_dsn(dsn, monkeypatch)
    for command in (("plan",), ("apply", "--auto-approve")):
        code, output = run(root, *command)
        assert code == 1, output
        assert "the role cannot make or upgrade the tiops tables: permission denied" in output, output
        assert "CREATE on the schema" in output and "Reader-Secret-77" not in output and "LINE 1" not in output


def test_a_search_path_naming_no_schema_is_a_clear_error(pg_repo: tuple[Path, str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root, dsn = pg_repo
    monkeypatch.setenv("TIOPS_TEST_STORE_DSN", dsn + "?options=-c%20search_path%3Dnosuchschema")
    for command in (("plan",), ("apply", "--auto-approve")):
        code, output = run(root, *command)
        assert code == 1 and "search_path names no schema that exists" in output, output
    assert tables_in(dsn) == []


def test_a_server_starting_up_is_waited_for(postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    from tiops.stores import postgres

    real_connect, refusals, sleeps = psycopg.connect, [2], []

    def starting(*args: Any, **kwargs: Any) -> Any:
        if refusals[0]:
            refusals[0] -= 1
            raise psycopg.OperationalError('connection failed: connection to server at "127.0.0.1", port 5432 '
                                           "failed: FATAL:  the database system is starting up")
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(postgres.psycopg, "connect", starting)
    monkeypatch.setattr(postgres, "_sleep", sleeps.append, raising=False)
    store = postgres.PostgresStore(postgres_dsn, target="t")
    try:
        assert store.manifest() == {}
    finally:
        store.close()
    assert sleeps == [0.5, 1.0]


def test_a_server_refusing_connections_for_another_reason_is_not_waited_for(
        postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    from tiops.stores import postgres

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise psycopg.OperationalError("connection failed: Connection refused")

    sleeps: list[float] = []
    monkeypatch.setattr(postgres.psycopg, "connect", refused)
    monkeypatch.setattr(postgres, "_sleep", sleeps.append, raising=False)
    with pytest.raises(TransientStoreError, match="Connection refused"):
        postgres.PostgresStore(postgres_dsn, target="t")
    assert sleeps == []
