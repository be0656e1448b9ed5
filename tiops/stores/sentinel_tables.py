"""Microsoft Sentinel's threat-intelligence tables in the SQL stores.

Sentinel moved threat intelligence to two tables in 2025: ``ThreatIntelIndicators``
(one row per observable of each indicator) and ``ThreatIntelObjects`` (every other
STIX object), and stopped filling the legacy ``ThreatIntelligenceIndicator`` table on
31 August 2025. The SQLite and PostgreSQL stores keep both new tables, with the
columns of Microsoft's table reference (docs/targets.md says which tiops fills), and
``ThreatIntelligenceIndicator`` as a view over them, so old queries still run.

Each object's JSON is stored once, in ``stix_current`` (and ``stix_versions``): the
rows tiops writes for Sentinel are kept in ``tiops_threat_intel_indicators`` and
``tiops_threat_intel_objects`` without it, and ``ThreatIntelIndicators`` and
``ThreatIntelObjects`` are views that add the ``Data`` column from ``stix_current``
(store schema version 2, tiops.stores.sql.SCHEMA_VERSION). A copy of every object's
text in a third and fourth place was most of what an apply wrote.

Observable values are unescaped (STIX 2.1 section 9.2: ``\\'`` and ``\\\\`` are escapes,
not text), so ``C:\\Windows\\evil.exe`` is stored as Windows writes it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from tiops.observables import equality_pairs
from tiops.stix import SOURCE_EXTENSION_ID, tlp_level
from tiops.stores import PreparedRows, parse_timestamp, version_key
from tiops.stores.sql import timestamp_sort_key, version_rows

LAST_UPDATE_METHOD = "tiops"


@dataclass(frozen=True)
class Dialect:
    """What differs between SQLite and PostgreSQL in these tables."""

    name: str
    bool_type: str
    time_type: str
    json_type: str
    param: str

    def sql(self, statement: str) -> str:
        return statement.replace("?", self.param)


SQLITE = Dialect("sqlite", "INTEGER", "TEXT", "TEXT", "?")
POSTGRES = Dialect("postgres", "BOOLEAN", "TIMESTAMPTZ", "JSONB", "%s")

# (column, type) of ThreatIntelIndicators, in the order of Microsoft's table reference.
INDICATOR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("TenantId", "TEXT"), ("TimeGenerated", "{time}"), ("Id", "TEXT NOT NULL"), ("Type", "TEXT NOT NULL"),
    ("ObservableKey", "TEXT"), ("ObservableValue", "TEXT"), ("Pattern", "TEXT"), ("PatternType", "TEXT"),
    ("Confidence", "INTEGER"), ("Created", "{time}"), ("Modified", "{time}"), ("ValidFrom", "{time}"),
    ("ValidUntil", "{time}"), ("IsActive", "{bool} NOT NULL"), ("IsDeleted", "{bool} NOT NULL"),
    ("LastUpdateMethod", "TEXT"), ("SourceSystem", "TEXT"), ("Tags", "{json}"), ("AdditionalFields", "{json}"),
    ("Data", "{json} NOT NULL"),
)  # fmt: skip
OBJECT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("TenantId", "TEXT"), ("TimeGenerated", "{time}"), ("Id", "TEXT PRIMARY KEY"), ("Type", "TEXT NOT NULL"),
    ("StixType", "TEXT NOT NULL"), ("IsDeleted", "{bool} NOT NULL"), ("LastUpdateMethod", "TEXT"),
    ("SourceSystem", "TEXT"), ("Tags", "{json}"), ("Data", "{json} NOT NULL"),
)  # fmt: skip
# What the legacy table had that the new ones do not: kept per indicator for the view.
LEGACY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("IndicatorId", "TEXT PRIMARY KEY"), ("ExternalIndicatorId", "TEXT"), ("SourceSystem", "TEXT"),
    ("IndicatorProvider", "TEXT"), ("Description", "TEXT"), ("ThreatType", "TEXT"), ("ConfidenceScore", "REAL"),
    ("ExpirationDateTime", "TEXT"), ("TimeGenerated", "TEXT"), ("Active", "{bool}"),
    ("TrafficLightProtocolLevel", "TEXT"), ("Tags", "TEXT"), ("KillChainPhases", "TEXT"),
)  # fmt: skip
# Legacy observable columns, read back from ThreatIntelIndicators' ObservableKey.
_LEGACY_OBSERVABLES: tuple[tuple[str, str], ...] = (
    ("NetworkIP", "ObservableKey IN ('ipv4-addr:value', 'ipv6-addr:value')"),
    ("NetworkSourceIP", "ObservableKey = 'network-traffic:src_ref.value'"),
    ("NetworkDestinationIP", "ObservableKey = 'network-traffic:dst_ref.value'"),
    ("DomainName", "ObservableKey = 'domain-name:value'"),
    ("Url", "ObservableKey = 'url:value'"),
    ("EmailSenderAddress", "ObservableKey IN ('email-addr:value', 'email-message:from_ref.value')"),
    ("EmailSubject", "ObservableKey = 'email-message:subject'"),
    ("FileName", "ObservableKey = 'file:name'"),
)
_NEVER_FILLED = ("NetworkCidrBlock", "MalwareNames", "UserAgent")

#: The tables behind the ThreatIntelIndicators and ThreatIntelObjects views.
INDICATOR_TABLE = "tiops_threat_intel_indicators"
OBJECT_TABLE = "tiops_threat_intel_objects"
#: (view, table behind it, the view's columns): Data, the last column, comes from stix_current.
VIEWS = (("ThreatIntelIndicators", INDICATOR_TABLE, INDICATOR_COLUMNS), ("ThreatIntelObjects", OBJECT_TABLE, OBJECT_COLUMNS))
#: The columns the tables hold: all the view's but Data.
STORED_INDICATOR_COLUMNS = INDICATOR_COLUMNS[:-1]
STORED_OBJECT_COLUMNS = OBJECT_COLUMNS[:-1]
assert INDICATOR_COLUMNS[-1][0] == OBJECT_COLUMNS[-1][0] == "Data"


def _columns(columns: Sequence[tuple[str, str]], dialect: Dialect) -> str:
    return ",\n    ".join(
        f"{name} {kind.format(bool=dialect.bool_type, time=dialect.time_type, json=dialect.json_type)}"
        for name, kind in columns
    )


def legacy_view_sql(dialect: Dialect) -> str:
    observed = ",\n        ".join(f"MIN(CASE WHEN {test} THEN ObservableValue END) AS {name}" for name, test in _LEGACY_OBSERVABLES)
    hashes = "ObservableKey LIKE 'file:hashes.%'"
    legacy = ", ".join(f"l.{name}" for name, _ in LEGACY_COLUMNS)
    picked = ", ".join(f"o.{name}" for name, _ in _LEGACY_OBSERVABLES)
    empty = ", ".join(f"CAST(NULL AS TEXT) AS {name}" for name in _NEVER_FILLED)
    create = "CREATE OR REPLACE VIEW" if dialect is POSTGRES else "CREATE VIEW IF NOT EXISTS"
    # The hash type and its value are one pair: the smallest type, with the smallest of its values,
    # picked as one text (type, a separator below every character of a type, value) and split again.
    # Picked apart, an indicator with an MD5 and a SHA-1 showed MD5 beside the SHA-1's value.
    hash_type = "REPLACE(REPLACE(SUBSTR(ObservableKey, 13), '''', ''), '-', '')"
    if dialect is POSTGRES:
        pair = f'MIN((CASE WHEN {hashes} THEN {hash_type} || chr(1) || ObservableValue END) COLLATE "C")'
        split = ("SPLIT_PART(o.FileHash, chr(1), 1) AS FileHashType, "
                 "SUBSTR(o.FileHash, STRPOS(o.FileHash, chr(1)) + 1) AS FileHashValue")
    else:
        pair = f"MIN(CASE WHEN {hashes} THEN {hash_type} || char(1) || ObservableValue END)"
        split = ("SUBSTR(o.FileHash, 1, INSTR(o.FileHash, char(1)) - 1) AS FileHashType, "
                 "SUBSTR(o.FileHash, INSTR(o.FileHash, char(1)) + 1) AS FileHashValue")
    return f"""{create} ThreatIntelligenceIndicator AS
SELECT {legacy}, {picked}, {split}, {empty}
FROM tiops_indicator_legacy l LEFT JOIN (
    SELECT Id,
        {observed},
        {pair} AS FileHash
    FROM {INDICATOR_TABLE} GROUP BY Id
) o ON o.Id = l.IndicatorId"""


def data_view_sql(view: str, table: str, columns: Sequence[tuple[str, str]], dialect: Dialect) -> str:
    """``view``: the rows of ``table`` with each object's JSON from stix_current as ``Data``."""
    names = ", ".join(f"r.{name} AS {name}" for name, _ in columns[:-1])
    data = "CAST(c.object AS JSONB)" if dialect is POSTGRES else "c.object"
    create = "CREATE OR REPLACE VIEW" if dialect is POSTGRES else "CREATE VIEW IF NOT EXISTS"
    return f"{create} {view} AS\nSELECT {names}, {data} AS Data\nFROM {table} r JOIN stix_current c ON c.id = r.Id"


def schema_statements(dialect: Dialect) -> list[str]:
    """The tables, indexes and views (run after a legacy table is dropped and after
    :func:`data_copy_migration`). The indexes keep the names they had on the Sentinel
    tables before those became views, so a migrated store and a new one are alike."""
    return [
        f"CREATE TABLE IF NOT EXISTS {INDICATOR_TABLE} (\n    {_columns(STORED_INDICATOR_COLUMNS, dialect)}\n)",
        f"CREATE INDEX IF NOT EXISTS ThreatIntelIndicators_Id ON {INDICATOR_TABLE} (Id)",
        f"CREATE INDEX IF NOT EXISTS ThreatIntelIndicators_Value ON {INDICATOR_TABLE} (ObservableValue)",
        f"CREATE TABLE IF NOT EXISTS {OBJECT_TABLE} (\n    {_columns(STORED_OBJECT_COLUMNS, dialect)}\n)",
        f"CREATE INDEX IF NOT EXISTS ThreatIntelObjects_StixType ON {OBJECT_TABLE} (StixType)",
        f"CREATE TABLE IF NOT EXISTS tiops_indicator_legacy (\n    {_columns(LEGACY_COLUMNS, dialect)}\n)",
        *(data_view_sql(view, table, columns, dialect) for view, table, columns in VIEWS),
        legacy_view_sql(dialect),
    ]


def view_created_by(statement: str) -> str | None:
    """The name of the view ``statement`` (one of :func:`schema_statements`) creates, if it creates one."""
    for prefix in ("CREATE OR REPLACE VIEW ", "CREATE VIEW IF NOT EXISTS "):
        if statement.startswith(prefix):
            return statement[len(prefix):].split(None, 1)[0]
    return None


def data_copy_migration(dialect: Dialect) -> list[str]:
    """Schema version 1 to 2, for a store whose ThreatIntelIndicators and ThreatIntelObjects
    are tables with a Data column: they become the tables behind the views, without it.
    The legacy view reads ThreatIntelIndicators, so it goes first (schema_statements
    makes it again, and the indexes of the new tables).

    PostgreSQL renames the tables and drops the column (no row is written again). SQLite
    before 3.35 cannot drop a column, so there the rows are copied into the new tables
    (what dropping a column costs SQLite anyway: it rewrites the table)."""
    statements = ["DROP VIEW IF EXISTS ThreatIntelligenceIndicator"]
    for view, table, columns in VIEWS:
        if dialect is POSTGRES:
            statements += [f"ALTER TABLE {view} RENAME TO {table}", f"ALTER TABLE {table} DROP COLUMN Data"]
            continue
        names = ", ".join(name for name, _ in columns[:-1])
        statements += [
            f"CREATE TABLE {table} (\n    {_columns(columns[:-1], dialect)}\n)",
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {view}",
            f"DROP TABLE {view}",
        ]
    return statements


def _insert(table: str, columns: Sequence[tuple[str, str]], dialect: Dialect, upsert_key: str | None = None) -> str:
    names = [name for name, _ in columns]
    statement = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
    if upsert_key is not None:
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n != upsert_key)
        statement += f" ON CONFLICT ({upsert_key}) DO UPDATE SET {updates}"
    return dialect.sql(statement)


@dataclass(frozen=True)
class SentinelRows:
    """The rows a batch of current objects gives, and the statements that write them."""

    ids: list[tuple[str]]
    indicators: list[tuple[Any, ...]]
    objects: list[tuple[Any, ...]]
    legacy: list[tuple[Any, ...]]

    def statements(self, dialect: Dialect, replaced: Collection[str] | None = None) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """Delete the ids' old rows, then insert the new ones (one transaction with the versions).

        ``replaced``: the ids that may have rows already (those that had a current
        version before the write); the others have none, so deleting them is skipped.
        """
        ids = self.ids if replaced is None else [row for row in self.ids if row[0] in replaced]
        return [
            *delete_statements(dialect, ids),
            (_insert(INDICATOR_TABLE, STORED_INDICATOR_COLUMNS, dialect), self.indicators),
            (_insert(OBJECT_TABLE, STORED_OBJECT_COLUMNS, dialect), self.objects),
            (_insert("tiops_indicator_legacy", LEGACY_COLUMNS, dialect), self.legacy),
        ]


    def inserts(self) -> list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
        """(table, columns, rows) of the rows to insert, for a bulk load (PostgreSQL's COPY)."""
        return [
            (INDICATOR_TABLE, tuple(name for name, _ in STORED_INDICATOR_COLUMNS), self.indicators),
            (OBJECT_TABLE, tuple(name for name, _ in STORED_OBJECT_COLUMNS), self.objects),
            ("tiops_indicator_legacy", tuple(name for name, _ in LEGACY_COLUMNS), self.legacy),
        ]


#: (table, id column) of the Sentinel tables, for deletes by id.
ID_COLUMNS = ((INDICATOR_TABLE, "Id"), (OBJECT_TABLE, "Id"), ("tiops_indicator_legacy", "IndicatorId"))


#: Another tool that deletes an object's row from stix_current (docs/targets.md) left its Sentinel rows
#: behind, and the apply that wrote the object again met them: a key of their own made every such
#: apply fail, and ThreatIntelIndicators, which has none, would have shown the old rows beside the new.
#: A trigger takes them with the row (in PostgreSQL a second one empties them with a TRUNCATE of
#: stix_current, which row triggers do not see); a store made before it has the rows no current
#: object owns removed once, when the triggers are made (:func:`sentinel_trigger_statements`).
SENTINEL_TRIGGER = "stix_current_sentinel_rows"
SENTINEL_TRUNCATE_TRIGGER = "stix_current_sentinel_truncate"


def sentinel_trigger_statements(dialect: Dialect) -> list[str]:
    """Remove the Sentinel rows of objects with no current row, then make :data:`SENTINEL_TRIGGER` (and
    in PostgreSQL :data:`SENTINEL_TRUNCATE_TRIGGER`, last). Run once, in the transaction that opens a
    store without them."""
    # NOT EXISTS, not NOT IN: PostgreSQL compares a NOT IN row by row once the ids outgrow work_mem.
    orphans = [f"DELETE FROM {table} WHERE NOT EXISTS (SELECT 1 FROM stix_current c WHERE c.id = {table}.{column})"
               for table, column in ID_COLUMNS]
    if dialect is POSTGRES:
        # The trigger's schema, not the deleting session's search_path: one database may hold a store per schema.
        deletes = " ".join(f"EXECUTE format('DELETE FROM %I.{table} WHERE {column} = $1', TG_TABLE_SCHEMA) USING OLD.id;"
                           for table, column in ID_COLUMNS)
        truncate = ", ".join(f"%I.{table}" for table, _ in ID_COLUMNS)
        schemas = ", ".join("TG_TABLE_SCHEMA" for _ in ID_COLUMNS)
        return [
            *orphans,
            "CREATE OR REPLACE FUNCTION tiops_sentinel_rows_gone() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN {deletes} RETURN OLD; END $$",
            "CREATE OR REPLACE FUNCTION tiops_sentinel_rows_truncated() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN EXECUTE format('TRUNCATE {truncate}', {schemas}); RETURN NULL; END $$",
            f"DROP TRIGGER IF EXISTS {SENTINEL_TRIGGER} ON stix_current",
            f"CREATE TRIGGER {SENTINEL_TRIGGER} AFTER DELETE ON stix_current\n"
            "FOR EACH ROW EXECUTE FUNCTION tiops_sentinel_rows_gone()",
            f"CREATE TRIGGER {SENTINEL_TRUNCATE_TRIGGER} AFTER TRUNCATE ON stix_current\n"
            "FOR EACH STATEMENT EXECUTE FUNCTION tiops_sentinel_rows_truncated()",
        ]
    # SQLite has no TRUNCATE: a DELETE without WHERE runs row triggers (its truncate optimisation is off then).
    deletes = " ".join(f"DELETE FROM {table} WHERE {column} = OLD.id;" for table, column in ID_COLUMNS)
    return [*orphans, f"CREATE TRIGGER IF NOT EXISTS {SENTINEL_TRIGGER} AFTER DELETE ON stix_current\n"
                      f"FOR EACH ROW BEGIN {deletes} END"]


def delete_statements(dialect: Dialect, ids: list[tuple[str]]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    return [(dialect.sql(f"DELETE FROM {table} WHERE {column} = ?"), list(ids)) for table, column in ID_COLUMNS]


def sentinel_rows(objects: Sequence[dict[str, Any]], as_of: str | None, dialect: Dialect) -> SentinelRows:
    """Rows for the current versions ``objects`` (the caller passes only current ones)."""
    indicators: list[tuple[Any, ...]] = []
    others: list[tuple[Any, ...]] = []
    legacy: list[tuple[Any, ...]] = []
    for obj in objects:
        if obj["type"] == "indicator":
            source = _source(obj)  # both rows name it: looked up once
            indicators.extend(indicator_rows(obj, as_of, dialect, source=source))
            legacy.append(legacy_row(obj, source=source))
        else:
            others.append(object_row(obj, dialect))
    return SentinelRows([(obj["id"],) for obj in objects], indicators, others, legacy)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _source(obj: dict[str, Any]) -> str | None:
    extensions = obj.get("extensions")
    if not extensions:
        return None
    value = (extensions.get(SOURCE_EXTENSION_ID) or {}).get("source_system")
    return value if isinstance(value, str) else None


def _tags(obj: dict[str, Any]) -> str | None:
    labels = obj.get("labels")
    return _json(labels) if labels else None


def is_active(obj: dict[str, Any], as_of: str | None) -> bool:
    """Not revoked, and not expired at the build's as-of time (STIX 2.1 section 4.7: valid_until)."""
    if obj.get("revoked", False):
        return False
    valid_until = obj.get("valid_until")
    if as_of is None or not isinstance(valid_until, str):
        return True
    until_key, moment_key = timestamp_sort_key(valid_until), _as_of_key(as_of)
    if until_key is None or moment_key is None:
        return True  # a valid_until or as-of time that is not a timestamp expires nothing
    if until_key != moment_key:
        return until_key > moment_key
    # Equal keys: the same instant, or two that differ only past nine fraction digits.
    until, moment = parse_timestamp(valid_until), parse_timestamp(as_of)
    return until is not None and moment is not None and until > moment


@lru_cache(maxsize=4)
def _as_of_key(as_of: str) -> str | None:
    """The as-of time's sort key made once, not once per indicator."""
    return timestamp_sort_key(as_of)


def indicator_rows(obj: dict[str, Any], as_of: str | None, dialect: Dialect,
                   source: str | None) -> list[tuple[Any, ...]]:
    """One ThreatIntelIndicators row per observable the pattern asserts equal (``=``, ``IN``),
    every value of an OR or IN kept; one row without an observable when there is none.

    The tuples follow :data:`STORED_INDICATOR_COLUMNS`, around ObservableKey and ObservableValue.
    ``source``: the object's source system (:func:`_source`), looked up once for this and its legacy row.
    """
    pairs: list[tuple[str | None, str | None]] = []
    if obj.get("pattern_type", "stix") == "stix" and isinstance(obj.get("pattern"), str):
        pairs = list(equality_pairs(obj["pattern"]))
    get = obj.get
    head = (None, get("modified"), obj["id"], "ThreatIntelIndicators")
    tail = (
        get("pattern"), get("pattern_type"), get("confidence"), get("created"), get("modified"),
        get("valid_from"), get("valid_until"), is_active(obj, as_of), bool(get("revoked", False)),
        LAST_UPDATE_METHOD, source, _tags(obj), None,
    )
    return [(*head, key, value, *tail) for key, value in pairs or [(None, None)]]


def object_row(obj: dict[str, Any], dialect: Dialect) -> tuple[Any, ...]:
    """A ThreatIntelObjects row, in the order of :data:`STORED_OBJECT_COLUMNS`."""
    get = obj.get
    return (
        None, get("modified") or get("created"), obj["id"], "ThreatIntelObjects", obj["type"],
        bool(get("revoked", False)), LAST_UPDATE_METHOD, _source(obj), _tags(obj),
    )


def legacy_row(obj: dict[str, Any], source: str | None) -> tuple[Any, ...]:
    """A tiops_indicator_legacy row, in the order of :data:`LEGACY_COLUMNS` (``source`` as for indicator_rows)."""
    get = obj.get
    phases = get("kill_chain_phases")
    labels = get("labels")
    return (
        obj["id"],  # IndicatorId
        obj["id"],  # ExternalIndicatorId
        source,  # SourceSystem
        get("created_by_ref"),  # IndicatorProvider
        get("description") or get("name"),  # Description
        ",".join(get("indicator_types") or []) or None,  # ThreatType
        get("confidence"),  # ConfidenceScore
        get("valid_until"),  # ExpirationDateTime
        get("modified"),  # TimeGenerated
        not get("revoked", False),  # Active
        tlp_level(get("object_marking_refs")),  # TrafficLightProtocolLevel
        ",".join(labels or []) or None,  # Tags
        ",".join(f"{p.get('kill_chain_name')}:{p.get('phase_name')}" for p in phases) if phases else None,
    )


def refresh_active_sql(dialect: Dialect) -> str:
    """Bring IsActive to a new as-of time for rows no write touched (one parameter: as-of)."""
    if dialect is POSTGRES:
        active = "(NOT IsDeleted AND (ValidUntil IS NULL OR ValidUntil > %s::timestamptz))"
    else:
        active = "(CASE WHEN IsDeleted THEN 0 WHEN ValidUntil IS NULL THEN 1 WHEN julianday(ValidUntil) > julianday(?) THEN 1 ELSE 0 END)"
    return f"UPDATE {INDICATOR_TABLE} SET IsActive = {active} WHERE IsActive <> {active}"


def prepared_rows(objects: Sequence[dict[str, Any]], digests: Sequence[str] | None, as_of: str | None,
                  dialect: Dialect) -> PreparedRows:
    """Every row a write of ``objects`` may need, built from the objects alone (no store is read): the
    version rows (tiops.stores.sql.version_rows), then the Sentinel tables' indicator, object and
    legacy rows of every object.

    The Sentinel rows assume each object becomes its id's current version, as nearly every
    write does; :func:`current_sentinel_rows` makes them again for the few that do not.
    """
    sentinel = sentinel_rows(objects, as_of, dialect)
    return version_rows(objects, digests), sentinel.indicators, sentinel.objects, sentinel.legacy


def current_sentinel_rows(objects: Sequence[dict[str, Any]], prepared: PreparedRows, current_versions: dict[str, str],
                          as_of: str | None, dialect: Dialect) -> SentinelRows:
    """The Sentinel rows of those of ``objects`` that are current after their write (``current_versions``,
    read in its transaction): the prepared ones when every object is, else made again for those."""
    indexes = current_indexes(objects, current_versions)
    if len(indexes) == len(objects):  # distinct ids, each now at the version written: the rows prepared
        _, indicators, others, legacy = prepared
        return SentinelRows([(obj["id"],) for obj in objects], indicators, others, legacy)
    return sentinel_rows([objects[index] for index in indexes], as_of, dialect)


def current_indexes(objects: Sequence[dict[str, Any]], current_versions: dict[str, str]) -> list[int]:
    """Where in ``objects`` those are that are their id's current version after a write (the last one
    per id): an older version, written for history, leaves the Sentinel tables as they are."""
    latest = {obj["id"]: index for index, obj in enumerate(objects) if current_versions.get(obj["id"]) == version_key(obj)}
    return list(latest.values())
