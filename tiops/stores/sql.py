"""What the SQLite and PostgreSQL stores share: the schema, the SQL and the row mapping.

Tables (the same in both stores):

* ``stix_versions``: every version of every object, keyed by (id, version) where
  version is the object's ``modified`` (``created`` or '' for unversioned objects).
* ``stix_current``: the current version of each object, kept in step by tiops in
  the same transaction as ``stix_versions``.
* ``ThreatIntelligenceIndicator``: one flat row per current indicator with the
  columns of Microsoft Sentinel's table of that name where they apply.
* ``tiops_lock``: who holds a target's apply lock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from tiops.stix import SOURCE_EXTENSION_ID, tlp_level
from tiops.stores import StoredVersion, content_digest, parse_timestamp, version_key

WRITTEN_BY_TIOPS = "tiops"

# Columns of Sentinel's ThreatIntelligenceIndicator table that a STIX indicator fills.
INDICATOR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("IndicatorId", "TEXT PRIMARY KEY"),
    ("ExternalIndicatorId", "TEXT"),
    ("SourceSystem", "TEXT"),
    ("IndicatorProvider", "TEXT"),
    ("Description", "TEXT"),
    ("ThreatType", "TEXT"),
    ("ConfidenceScore", "REAL"),
    ("ExpirationDateTime", "TEXT"),
    ("TimeGenerated", "TEXT"),
    ("Active", "{bool}"),
    ("TrafficLightProtocolLevel", "TEXT"),
    ("Tags", "TEXT"),
    ("KillChainPhases", "TEXT"),
    ("MalwareNames", "TEXT"),
    ("NetworkIP", "TEXT"),
    ("NetworkSourceIP", "TEXT"),
    ("NetworkDestinationIP", "TEXT"),
    ("NetworkCidrBlock", "TEXT"),
    ("DomainName", "TEXT"),
    ("Url", "TEXT"),
    ("EmailSenderAddress", "TEXT"),
    ("EmailSubject", "TEXT"),
    ("FileName", "TEXT"),
    ("FileHashType", "TEXT"),
    ("FileHashValue", "TEXT"),
    ("UserAgent", "TEXT"),
)

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
CREATE TABLE IF NOT EXISTS ThreatIntelligenceIndicator (
    {indicator_columns}
);
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
    columns = ",\n    ".join(f"{name} {kind.format(bool=bool_type)}" for name, kind in INDICATOR_COLUMNS)
    text = SCHEMA.format(bool=bool_type, false=false, indicator_columns=columns)
    return [statement.strip() for statement in text.split(";") if statement.strip()]


def upsert_indicator_sql() -> str:
    names = [name for name, _ in INDICATOR_COLUMNS]
    updates = ", ".join(f"{name} = excluded.{name}" for name in names[1:])
    return (
        f"INSERT INTO ThreatIntelligenceIndicator ({', '.join(names)}) "
        f"VALUES ({', '.join('?' for _ in names)}) "
        f"ON CONFLICT (IndicatorId) DO UPDATE SET {updates}"
    )


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


_COMPARISON = re.compile(r"([a-z0-9-]+):([A-Za-z0-9_.'\-]+)\s*=\s*'((?:[^'\\]|\\.)*)'")
_HASH = re.compile(r"^hashes\.'?([A-Za-z0-9-]+)'?$")
_PATTERN_COLUMNS = {
    ("ipv4-addr", "value"): "NetworkIP",
    ("ipv6-addr", "value"): "NetworkIP",
    ("network-traffic", "src_ref.value"): "NetworkSourceIP",
    ("network-traffic", "dst_ref.value"): "NetworkDestinationIP",
    ("domain-name", "value"): "DomainName",
    ("url", "value"): "Url",
    ("email-addr", "value"): "EmailSenderAddress",
    ("email-message", "from_ref.value"): "EmailSenderAddress",
    ("email-message", "subject"): "EmailSubject",
    ("file", "name"): "FileName",
}


def indicator_row(obj: dict[str, Any]) -> tuple[Any, ...]:
    """One ThreatIntelligenceIndicator row for a STIX indicator (observables read from its pattern)."""
    values: dict[str, Any] = {
        "IndicatorId": obj["id"],
        "ExternalIndicatorId": obj["id"],
        "SourceSystem": ((obj.get("extensions") or {}).get(SOURCE_EXTENSION_ID) or {}).get("source_system"),
        "IndicatorProvider": obj.get("created_by_ref"),
        "Description": obj.get("description") or obj.get("name"),
        "ThreatType": ",".join(obj.get("indicator_types") or []) or None,
        "ConfidenceScore": obj.get("confidence"),
        "ExpirationDateTime": obj.get("valid_until"),
        "TimeGenerated": obj.get("modified"),
        "Active": not obj.get("revoked", False),
        "TrafficLightProtocolLevel": tlp_level(obj.get("object_marking_refs")),
        "Tags": ",".join(obj.get("labels") or []) or None,
        "KillChainPhases": ",".join(
            f"{p.get('kill_chain_name')}:{p.get('phase_name')}" for p in obj.get("kill_chain_phases") or []
        ) or None,
    }
    if obj.get("pattern_type", "stix") == "stix":
        for stix_type, prop, value in _COMPARISON.findall(str(obj.get("pattern", ""))):
            column = _PATTERN_COLUMNS.get((stix_type, prop))
            hash_match = _HASH.match(prop) if stix_type == "file" else None
            if column and column not in values:
                values[column] = value
            elif hash_match and "FileHashValue" not in values:
                values["FileHashType"] = hash_match.group(1).replace("-", "")
                values["FileHashValue"] = value
    return tuple(values.get(name) for name, _ in INDICATOR_COLUMNS)
