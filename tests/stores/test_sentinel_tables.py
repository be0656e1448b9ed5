"""Sentinel's 2025 tables (ThreatIntelIndicators, ThreatIntelObjects) and the legacy
ThreatIntelligenceIndicator view, in real SQLite and PostgreSQL stores."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tiops.apply import settle_target
from tiops.stores import Store
from tiops.stores import sql as shared
from tiops.stores.sqlite import SqliteStore

AS_OF = "2025-06-01T00:00:00.000Z"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "targets.md"


def stix(kind: str, number: int, **properties: Any) -> dict[str, Any]:
    return {"type": kind, "spec_version": "2.1", "id": f"{kind}--00000000-0000-4000-8000-{number:012d}",
            "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z", **properties}


def indicator(number: int, pattern: str, **properties: Any) -> dict[str, Any]:
    return stix("indicator", number, name=f"indicator {number}", pattern=pattern, pattern_type="stix",
                valid_from="2025-01-01T00:00:00Z", **properties)


WINDOWS_PATH = r"C:\Windows\Temp\o'neil.exe"
OBJECTS = [
    indicator(1, "[ipv4-addr:value = '203.0.113.45'] OR [ipv4-addr:value = '203.0.113.46']",
              confidence=80, indicator_types=["malicious-activity", "attribution"], labels=["c2", "apt"]),
    # STIX 2.1 section 9.2: a quote and a backslash are escaped in the pattern, not in the value.
    indicator(2, "[file:name = 'C:\\\\Windows\\\\Temp\\\\o\\'neil.exe' AND file:hashes.'SHA-256' = "
                 "'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']",
              confidence=40, indicator_types=["malicious-activity"]),
    indicator(3, "[domain-name:value = 'old.example']", valid_until="2025-03-01T00:00:00Z",
              indicator_types=["anomalous-activity"]),  # expired at the as-of time
    indicator(4, "[url:value = 'https://example.com/a']", revoked=True),
    indicator(5, "[ipv4-addr:value IN ('198.51.100.1', '198.51.100.2')]", valid_until="2026-01-01T00:00:00Z"),
    stix("threat-actor", 6, name="Copper Lantern", threat_actor_types=["crime-syndicate"]),
    stix("malware", 7, name="LanternLoader", is_family=True, labels=["loader"]),
    stix("relationship", 8, relationship_type="indicates", source_ref="indicator--00000000-0000-4000-8000-000000000001",
         target_ref="malware--00000000-0000-4000-8000-000000000007"),
]


class Database:
    """A store and plain SQL on the same database."""

    def __init__(self, store: Store, run: Callable[[str], list[tuple[Any, ...]]], dialect: str) -> None:
        self.store, self.run, self.dialect = store, run, dialect


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "store.sqlite"
        store: Store = SqliteStore(path, as_of=AS_OF)
        connection = sqlite3.connect(path)
        yield Database(store, lambda sql: connection.execute(sql).fetchall(), "sqlite")
        connection.close()
    else:
        import psycopg

        from tiops.stores.postgres import PostgresStore

        dsn = request.getfixturevalue("postgres_dsn")
        store = PostgresStore(dsn, target="t", as_of=AS_OF)
        pg = psycopg.connect(dsn, autocommit=True)
        yield Database(store, lambda sql: pg.execute(sql).fetchall(), "postgres")
        pg.close()
    store.close()


def test_one_row_per_observable_every_or_and_in_value_kept_unescaped(database: Database) -> None:
    database.store.write_versions(OBJECTS)
    rows = database.run("SELECT Id, ObservableKey, ObservableValue FROM ThreatIntelIndicators ORDER BY Id, ObservableKey, ObservableValue")
    pairs = [(row[0][-2:], row[1], row[2]) for row in rows]
    assert pairs == [
        ("01", "ipv4-addr:value", "203.0.113.45"), ("01", "ipv4-addr:value", "203.0.113.46"),
        ("02", "file:hashes.'SHA-256'", "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f"),
        ("02", "file:name", WINDOWS_PATH),
        ("03", "domain-name:value", "old.example"), ("04", "url:value", "https://example.com/a"),
        ("05", "ipv4-addr:value", "198.51.100.1"), ("05", "ipv4-addr:value", "198.51.100.2"),
    ]


def test_is_active_honours_expiry_at_the_as_of_time_and_is_deleted_marks_revoked(database: Database) -> None:
    database.store.write_versions(OBJECTS)
    rows = database.run("SELECT DISTINCT Id, IsActive, IsDeleted FROM ThreatIntelIndicators ORDER BY Id")
    assert [(i[-1], bool(a), bool(d)) for i, a, d in rows] == [
        ("1", True, False), ("2", True, False), ("3", False, False), ("4", False, True), ("5", True, False),
    ]


def test_a_later_as_of_time_deactivates_expired_rows_at_the_next_apply(database: Database, tmp_path: Path) -> None:
    database.store.write_versions(OBJECTS)
    database.store.as_of = "2026-02-01T00:00:00.000Z"  # type: ignore[attr-defined]
    settle_target(database.store)  # what an apply with no change to write does, under the lock
    rows = database.run("SELECT DISTINCT Id FROM ThreatIntelIndicators WHERE IsActive ORDER BY Id")
    assert [r[0][-1] for r in rows] == ["1", "2"]  # indicator 5 expired on 2026-01-01


def test_threat_intel_objects_hold_every_other_object_with_its_data(database: Database) -> None:
    database.store.write_versions(OBJECTS)
    rows = database.run("SELECT Id, StixType, Data, Tags, IsDeleted, Type FROM ThreatIntelObjects ORDER BY Id")
    assert [r[1] for r in rows] == ["malware", "relationship", "threat-actor"]
    data = rows[0][2] if isinstance(rows[0][2], dict) else json.loads(rows[0][2])
    assert data == OBJECTS[6]
    tags = rows[0][3] if isinstance(rows[0][3], list) else json.loads(rows[0][3])
    assert tags == ["loader"] and not rows[0][4] and rows[0][5] == "ThreatIntelObjects"


def test_rewriting_and_deleting_replace_the_rows(database: Database) -> None:
    database.store.write_versions(OBJECTS)
    changed = {**OBJECTS[0], "modified": "2025-02-01T00:00:00.000Z", "pattern": "[ipv4-addr:value = '192.0.2.9']"}
    database.store.write_versions([changed])
    assert database.run(f"SELECT ObservableValue FROM ThreatIntelIndicators WHERE Id = '{changed['id']}'") == [("192.0.2.9",)]
    # An older version written afterwards (history) does not replace the current rows.
    database.store.write_versions([OBJECTS[0]])
    assert database.run(f"SELECT ObservableValue FROM ThreatIntelIndicators WHERE Id = '{changed['id']}'") == [("192.0.2.9",)]
    database.store.delete_objects([changed["id"], OBJECTS[6]["id"]])
    assert database.run(f"SELECT COUNT(*) FROM ThreatIntelIndicators WHERE Id = '{changed['id']}'") == [(0,)]
    assert database.run(f"SELECT COUNT(*) FROM ThreatIntelObjects WHERE Id = '{OBJECTS[6]['id']}'") == [(0,)]
    assert database.run(f"SELECT COUNT(*) FROM ThreatIntelligenceIndicator WHERE IndicatorId = '{changed['id']}'") == [(0,)]


def test_a_batch_holding_two_versions_of_an_id_gets_the_rows_of_the_newer(database: Database) -> None:
    """The rows are built for every object of a batch before its write; an object that is not its
    id's current version afterwards (an older version, written for history) has its rows left out."""
    newer = {**OBJECTS[0], "modified": "2025-02-01T00:00:00.000Z", "pattern": "[ipv4-addr:value = '192.0.2.9']"}
    database.store.write_versions([newer, OBJECTS[0], OBJECTS[5]])
    assert database.run(f"SELECT ObservableValue FROM ThreatIntelIndicators WHERE Id = '{newer['id']}'") == [("192.0.2.9",)]
    assert database.run(f"SELECT COUNT(*) FROM ThreatIntelligenceIndicator WHERE IndicatorId = '{newer['id']}'") == [(1,)]
    assert database.run(f"SELECT StixType FROM ThreatIntelObjects WHERE Id = '{OBJECTS[5]['id']}'") == [("threat-actor",)]


def test_legacy_view_answers_old_queries_with_unescaped_values(database: Database) -> None:
    database.store.write_versions(OBJECTS)
    rows = database.run("SELECT IndicatorId, NetworkIP, FileName, FileHashType, FileHashValue, ThreatType, Tags, Active"
                        " FROM ThreatIntelligenceIndicator ORDER BY IndicatorId")
    assert [(r[0][-1], r[1], r[2], r[3], r[5], r[6], bool(r[7])) for r in rows] == [
        ("1", "203.0.113.45", None, None, "malicious-activity,attribution", "c2,apt", True),
        ("2", None, WINDOWS_PATH, "SHA256", "malicious-activity", None, True),
        ("3", None, None, None, "anomalous-activity", None, True),
        ("4", None, None, None, None, None, False),
        ("5", "198.51.100.1", None, None, None, None, True),
    ]
    assert database.run("SELECT Url FROM ThreatIntelligenceIndicator WHERE Url IS NOT NULL") == [("https://example.com/a",)]


MD5 = "8764605c6f388c89096b534d33565802"
SHA1 = "46aba99aa7158e4609aaa72b50990842fd22ae86"


def test_legacy_view_pairs_each_hash_type_with_its_own_value(database: Database) -> None:
    # MD5 sorts before SHA1 by type, and the SHA-1 value before the MD5 value: picked apart, the view
    # showed MD5 beside the SHA-1's value.
    two_hashes = indicator(9, f"[file:hashes.MD5 = '{MD5}' AND file:hashes.'SHA-1' = '{SHA1}']")
    one_kind = indicator(10, "[file:hashes.'SHA-256' = 'bb' OR file:hashes.'SHA-256' = 'aa']")
    database.store.write_versions([*OBJECTS, two_hashes, one_kind])
    rows = database.run("SELECT IndicatorId, FileHashType, FileHashValue FROM ThreatIntelligenceIndicator"
                        " WHERE FileHashType IS NOT NULL ORDER BY IndicatorId")
    assert [(row[0][-2:], row[1], row[2]) for row in rows] == [
        ("02", "SHA256", "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f"),
        ("09", "MD5", MD5),
        ("10", "SHA256", "aa"),
    ]
    assert database.run("SELECT FileHashValue FROM ThreatIntelligenceIndicator WHERE IndicatorId LIKE '%01'") == [(None,)]


def test_a_store_of_an_earlier_schema_version_gets_the_views_of_this_one(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite"
    SqliteStore(path, as_of=AS_OF).close()
    old = sqlite3.connect(path)
    old.execute("DROP VIEW ThreatIntelligenceIndicator")  # CREATE VIEW IF NOT EXISTS would keep this one
    old.execute("CREATE VIEW ThreatIntelligenceIndicator AS SELECT 'made by version 2' AS IndicatorId")
    old.execute("UPDATE tiops_store_schema SET version = 2")
    old.commit()
    old.close()
    store = SqliteStore(path, as_of=AS_OF)
    store.write_versions([indicator(9, f"[file:hashes.MD5 = '{MD5}' AND file:hashes.'SHA-1' = '{SHA1}']")])
    store.close()
    with sqlite3.connect(path) as reopened:
        assert reopened.execute("SELECT FileHashType, FileHashValue FROM ThreatIntelligenceIndicator").fetchall() == [
            ("MD5", MD5)]
        assert reopened.execute("SELECT version FROM tiops_store_schema").fetchall() == [(shared.SCHEMA_VERSION,)]


def test_a_store_with_the_legacy_table_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE stix_current (id TEXT PRIMARY KEY, version TEXT NOT NULL, version_sort TEXT NOT NULL,"
                " type TEXT NOT NULL, revoked INTEGER NOT NULL, digest TEXT, written_by TEXT NOT NULL DEFAULT 'external',"
                " managed INTEGER NOT NULL DEFAULT 0, object TEXT NOT NULL)")
    old.execute("INSERT INTO stix_current VALUES (?, ?, ?, ?, 0, NULL, 'tiops', 1, ?)",
                (OBJECTS[1]["id"], OBJECTS[1]["modified"], OBJECTS[1]["modified"], "indicator", json.dumps(OBJECTS[1])))
    # The legacy table kept the pattern's escapes: the migration must not.
    old.execute("CREATE TABLE ThreatIntelligenceIndicator (IndicatorId TEXT PRIMARY KEY, FileName TEXT)")
    old.execute("INSERT INTO ThreatIntelligenceIndicator VALUES (?, ?)", (OBJECTS[1]["id"], "C:\\\\Windows\\\\Temp\\\\o\\'neil.exe"))
    old.commit()
    old.close()
    SqliteStore(path, as_of=AS_OF).close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT type FROM sqlite_master WHERE name = 'ThreatIntelligenceIndicator'").fetchone() == ("view",)
    assert db.execute("SELECT FileName FROM ThreatIntelligenceIndicator").fetchall() == [(WINDOWS_PATH,)]
    assert db.execute("SELECT COUNT(*) FROM ThreatIntelIndicators").fetchone() == (2,)


# --- docs/targets.md: KQL beside SQL, each SQL run on both stores ----------------------------


def documented_queries() -> list[tuple[str, str, str]]:
    """(title, dialect or 'both', sql) for every ```sql block of the KQL/SQL section."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Sentinel's queries in SQL", 1)[1].split("\n## ", 1)[0]
    found = []
    title = ""
    for match in re.finditer(r"^### ([^\n]+)$|^```sql ?(\w*)\n(.*?)^```", section, re.M | re.S):
        if match.group(1):
            title = match.group(1)
        else:
            found.append((title, match.group(2) or "both", match.group(3).strip()))
    return found


def test_the_documented_sql_equivalents_exist() -> None:
    queries = documented_queries()
    assert len({title for title, _, _ in queries}) >= 6
    assert all(dialect in ("both", "sqlite", "postgres") for _, dialect, _ in queries)


@pytest.mark.parametrize("title,dialect,sql", documented_queries(), ids=lambda v: v[:40] if isinstance(v, str) else v)
def test_documented_sql_runs_and_answers(database: Database, title: str, dialect: str, sql: str) -> None:
    if dialect not in ("both", database.dialect):
        pytest.skip(f"{dialect} only")
    database.store.write_versions(OBJECTS)
    rows = database.run(sql)
    assert rows, f"{title}: no rows"
    expected = EXPECTED.get(title)
    if expected is not None:
        assert sorted(tuple(_plain(v) for v in row) for row in rows) == sorted(expected)


def _plain(value: Any) -> Any:
    return bool(value) if isinstance(value, bool) else value


EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "Active indicators": [("indicator--00000000-0000-4000-8000-000000000001", "ipv4-addr:value", "203.0.113.45"),
                          ("indicator--00000000-0000-4000-8000-000000000001", "ipv4-addr:value", "203.0.113.46"),
                          ("indicator--00000000-0000-4000-8000-000000000002", "file:hashes.'SHA-256'",
                           "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f"),
                          ("indicator--00000000-0000-4000-8000-000000000002", "file:name", WINDOWS_PATH),
                          ("indicator--00000000-0000-4000-8000-000000000005", "ipv4-addr:value", "198.51.100.1"),
                          ("indicator--00000000-0000-4000-8000-000000000005", "ipv4-addr:value", "198.51.100.2")],
    "Do we have this IP?": [("indicator--00000000-0000-4000-8000-000000000001", True)],
    "Indicators by observable type": [("domain-name:value", 1), ("file:hashes.'SHA-256'", 1), ("file:name", 1),
                                      ("ipv4-addr:value", 2)],  # the revoked url indicator is left out
    "Indicators by threat type": [("anomalous-activity", 1), ("attribution", 1), ("malicious-activity", 2)],
    "Objects by STIX type": [("malware", 1), ("relationship", 1), ("threat-actor", 1)],
    "Threat actors by name": [("threat-actor--00000000-0000-4000-8000-000000000006", "Copper Lantern")],
    "Relationships": [("indicator--00000000-0000-4000-8000-000000000001", "indicates",
                       "malware--00000000-0000-4000-8000-000000000007")],
    "Legacy table: count by ThreatType": [("anomalous-activity", 1), ("malicious-activity", 1),
                                          ("malicious-activity,attribution", 1)],
}


INSTANTS = [
    "2025-06-01T00:00:00Z", "2025-06-01T00:00:00.000Z", "2025-06-01T00:00:00.1Z", "2025-06-01T00:00:00.10Z",
    "2025-06-01T00:00:00.000000001Z", "2025-06-01T00:00:00.0000000001Z", "2025-05-31T23:59:59.999999999Z",
    "2025-05-31T23:59:60Z", "2025-05-31T23:59:60.5Z", "2025-05-31T24:00:00Z", "2025-02-30T00:00:00Z",
    "0999-12-31T23:59:59Z", "2025-06-01t00:00:00z", "2025-06-01T00:00:00+00:00", "not a time", "2016-12-31T23:59:60Z",
]


@pytest.mark.parametrize("as_of", ["2025-06-01T00:00:00Z", "2025-06-01T00:00:00.1Z", "2025-05-31T23:59:60Z", "bad"])
def test_is_active_compares_instants_as_parsed_timestamps(as_of: str) -> None:
    """The text comparison of the common shape gives what comparing parsed timestamps gives,
    and the other shapes (leap second, hour 24, long fractions, invalid dates) are parsed."""
    from tiops.stores import parse_timestamp
    from tiops.stores.sentinel_tables import is_active

    moment = parse_timestamp(as_of)
    answers = set()
    for valid_until in INSTANTS:
        until = parse_timestamp(valid_until)
        expected = until is None or moment is None or until > moment
        assert is_active({"valid_until": valid_until}, as_of) is expected, valid_until
        answers.add(expected)
    assert answers == {True, False} or moment is None
