"""What the SQLite and PostgreSQL stores share: the schema, the SQL and the row mapping.

Tables (the same in both stores):

* ``stix_versions``: every version of every object, keyed by (id, version) where
  version is the object's ``modified`` (``created`` or '' for unversioned objects).
* ``stix_current``: the current version of each object, kept in step by tiops in
  the same transaction as ``stix_versions``.
* ``ThreatIntelIndicators``, ``ThreatIntelObjects`` and the legacy
  ``ThreatIntelligenceIndicator`` view: Microsoft Sentinel's tables
  (tiops.stores.sentinel_tables).
* ``tiops_lock``: who holds a target's apply lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from tiops.stores import StoredVersion, content_digest, parse_timestamp, version_key

WRITTEN_BY_TIOPS = "tiops"

SCHEMA = """
CREATE TABLE IF NOT EXISTS stix_versions (
    id TEXT NOT NULL,
    version TEXT NOT NULL,
    version_sort TEXT NOT NULL,
    type TEXT NOT NULL,
    revoked {bool} NOT NULL,
    digest TEXT,
    written_by TEXT NOT NULL DEFAULT 'external',
    object TEXT NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE TABLE IF NOT EXISTS stix_current (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    version_sort TEXT NOT NULL,
    type TEXT NOT NULL,
    revoked {bool} NOT NULL,
    digest TEXT,
    written_by TEXT NOT NULL DEFAULT 'external',
    managed {bool} NOT NULL DEFAULT {false},
    object TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stix_current_type ON stix_current (type);
CREATE TABLE IF NOT EXISTS tiops_lock (
    target TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL
)
"""

INSERT_VERSION = """
INSERT INTO stix_versions (id, version, version_sort, type, revoked, digest, written_by, object)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id, version) DO UPDATE SET
    revoked = excluded.revoked, digest = excluded.digest,
    written_by = excluded.written_by, object = excluded.object
WHERE stix_versions.digest IS NULL OR stix_versions.digest <> excluded.digest
"""

UPSERT_CURRENT = """
INSERT INTO stix_current (id, version, version_sort, type, revoked, digest, written_by, managed, object)
VALUES (?, ?, ?, ?, ?, ?, ?, {true}, ?)
ON CONFLICT (id) DO UPDATE SET
    version = excluded.version, version_sort = excluded.version_sort, type = excluded.type,
    revoked = excluded.revoked, digest = excluded.digest, written_by = excluded.written_by,
    managed = {true}, object = excluded.object
WHERE excluded.version_sort >= stix_current.version_sort
"""

# The object text is only fetched for rows another tool wrote without a digest.
SELECT_MANIFEST = (
    "SELECT id, version, digest, revoked, written_by, managed,"
    " CASE WHEN digest IS NULL THEN object END FROM stix_current"
)


def schema_statements(bool_type: str, true: str, false: str) -> list[str]:
    text = SCHEMA.format(bool=bool_type, false=false)
    return [statement.strip() for statement in text.split(";") if statement.strip()]


def version_sort_key(version: str) -> str:
    """A fixed-width text that sorts like the STIX timestamp it comes from."""
    key = parse_timestamp(version)
    if key is None:
        return version
    moment, fraction = key
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f"{fraction:.9f}"[1:]


def version_rows(objects: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows for stix_versions and stix_current (same column order, less ``managed``)."""
    rows = []
    for obj in objects:
        version = version_key(obj)
        rows.append((
            obj["id"], version, version_sort_key(version), obj["type"], bool(obj.get("revoked", False)),
            content_digest(obj), WRITTEN_BY_TIOPS, orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode(),
        ))
    return rows


def manifest_from_rows(rows: Iterable[Sequence[Any]]) -> dict[str, StoredVersion]:
    manifest: dict[str, StoredVersion] = {}
    for stix_id, version, digest, revoked, written_by, managed, text in rows:
        if digest is None:  # a row written by another tool: compute what tiops would have stored
            digest = content_digest(orjson.loads(text))
        manifest[stix_id] = StoredVersion(
            version, digest, bool(revoked), written_by == WRITTEN_BY_TIOPS, bool(managed)
        )
    return manifest
