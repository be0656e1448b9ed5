"""What the SQLite and PostgreSQL stores share: the schema, the SQL and the row mapping.

Tables (the same in both stores):

* ``stix_versions``: every version of every object, keyed by (id, version) where
  version is the object's ``modified`` (``created`` or '' for unversioned objects).
* ``stix_current``: the current version of each object, kept in step by tiops in
  the same transaction as ``stix_versions``.
* ``object_digest`` (both tables): SHA-256 of the ``object`` text of the row, so a
  plan recognises an unchanged object by one comparison. A trigger on each table clears
  it, and ``digest`` likewise, when another tool changes ``object`` without setting it,
  so a stale one is never trusted.
* ``ThreatIntelIndicators``, ``ThreatIntelObjects`` and the legacy
  ``ThreatIntelligenceIndicator`` view: Microsoft Sentinel's tables, views over
  tables of their own rows and ``stix_current`` (tiops.stores.sentinel_tables).
* ``tiops_lock``: who holds a target's apply lock.
* ``tiops_store_schema``: the version of this schema the store has (one row). A store
  is brought to :data:`SCHEMA_VERSION` when it is opened; one from a newer tiops is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from tiops.stores import (
    TIMESTAMP_PATTERN,
    StoredVersion,
    StoreError,
    content_digest,
    object_digest,
    parse_timestamp,
    version_key,
)

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
    object_digest TEXT,
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
    object TEXT NOT NULL,
    object_digest TEXT
);
CREATE INDEX IF NOT EXISTS stix_current_type ON stix_current (type);
CREATE TABLE IF NOT EXISTS tiops_lock (
    target TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tiops_store_schema (
    version INTEGER NOT NULL
)
"""

#: 1: the Sentinel tables held a copy of each object's JSON (Data); stores without
#: ``tiops_store_schema`` are this version. 2: they are views that read it from stix_current.
#: 3: the legacy view ThreatIntelligenceIndicator pairs each hash type with its own value.
#: 4: the digest triggers, on both object tables, also clear ``digest`` (see DIGEST_TRIGGER_TABLES).
SCHEMA_VERSION = 4
SELECT_SCHEMA_VERSION = "SELECT MAX(version) FROM tiops_store_schema"


def schema_version_statements(found: int | None) -> list[str]:
    """Record :data:`SCHEMA_VERSION` after the store was brought to it from ``found``."""
    if found == SCHEMA_VERSION:
        return []
    return ["DELETE FROM tiops_store_schema", f"INSERT INTO tiops_store_schema (version) VALUES ({SCHEMA_VERSION})"]


def check_schema_version(found: object, where: str) -> None:
    """Refuse a store made by a newer tiops: its tables may mean something this one does not know.

    ``found`` is what the store holds, unchecked: another tool may have written text there
    (SQLite keeps 'v3' as text in an INTEGER column), and such a store is refused too, since
    which tables and triggers it has cannot be told.
    """
    if found is not None and (not isinstance(found, int) or isinstance(found, bool)):
        raise StoreError(
            f"{where} has an unreadable store schema version {found!r} in tiops_store_schema (an integer is expected)",
            hint="Another tool changed the table tiops_store_schema: set its one row back to the version the store "
                 f"is at (this tiops writes version {SCHEMA_VERSION}; docs/targets.md, 'The schema').",
        )
    if found is not None and found > SCHEMA_VERSION:
        raise StoreError(
            f"{where} has store schema version {found}; this tiops knows versions up to {SCHEMA_VERSION}",
            hint="Upgrade tiops to apply to this store.",
        )

#: The hint of a write refused by one of the store's keys: tiops writes each key once, so the row in the
#: way is most likely one another tool wrote or left behind.
INTEGRITY_HINT = ("A row another tool wrote or left behind probably disagrees with what tiops writes: docs/targets.md, "
                  "'The schema', says how another tool may change the store.")

INSERT_VERSION = """
INSERT INTO stix_versions (id, version, version_sort, type, revoked, digest, written_by, object, object_digest)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id, version) DO UPDATE SET
    revoked = excluded.revoked, digest = excluded.digest,
    written_by = excluded.written_by, object = excluded.object, object_digest = excluded.object_digest
WHERE stix_versions.digest IS NULL OR stix_versions.digest <> excluded.digest
"""

UPSERT_CURRENT = """
INSERT INTO stix_current (id, version, version_sort, type, revoked, digest, written_by, managed, object, object_digest)
VALUES (?, ?, ?, ?, ?, ?, ?, {true}, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    version = excluded.version, version_sort = excluded.version_sort, type = excluded.type,
    revoked = excluded.revoked, digest = excluded.digest, written_by = excluded.written_by,
    managed = {true}, object = excluded.object, object_digest = excluded.object_digest
WHERE excluded.version_sort >= stix_current.version_sort
"""

# The object text is only fetched for rows another tool wrote without a digest.
SELECT_MANIFEST = (
    "SELECT id, version, digest, revoked, written_by, managed, object_digest,"
    " CASE WHEN digest IS NULL THEN object END FROM stix_current"
)

# Stores made before object_digest existed: the column is added and filled once.
OBJECT_DIGEST_COLUMNS = ("stix_versions", "stix_current")

# Another tool that rewrites `object` without setting `object_digest` leaves a digest of the old
# text behind, and one that does not set `digest` a content digest of the old object, which a plan
# would trust: "no changes" for ever, the other tool's text kept. The triggers clear each digest the
# same update did not set, so a plan falls back to the content digest, computed from the text.
# Each table has one (stix_versions: a write of the same version by tiops then replaces the row).
DIGEST_TRIGGER_TABLES = {"stix_current": "stix_current_object_digest", "stix_versions": "stix_versions_object_digest"}

_SQLITE_DIGEST_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS {name} AFTER UPDATE OF object ON {table}
FOR EACH ROW WHEN NEW.object IS NOT OLD.object AND (NEW.object_digest IS OLD.object_digest OR NEW.digest IS OLD.digest)
BEGIN UPDATE {table} SET
    object_digest = CASE WHEN NEW.object_digest IS OLD.object_digest THEN NULL ELSE NEW.object_digest END,
    digest = CASE WHEN NEW.digest IS OLD.digest THEN NULL ELSE NEW.digest END
WHERE rowid = NEW.rowid; END
"""


def sqlite_digest_triggers(found: int | None) -> list[str]:
    """The SQLite digest triggers; those of a store at an older schema version are replaced (they
    cleared ``object_digest`` only, schema version 3 and before), with :data:`CLEAR_STALE_DIGESTS`."""
    statements = []
    if found != SCHEMA_VERSION:
        statements += [f"DROP TRIGGER IF EXISTS {name}" for name in DIGEST_TRIGGER_TABLES.values()]
        statements += CLEAR_STALE_DIGESTS
    return statements + [_SQLITE_DIGEST_TRIGGER.format(table=table, name=name)
                         for table, name in DIGEST_TRIGGER_TABLES.items()]


# A row whose `object_digest` the old trigger cleared had its object rewritten by another tool, which
# may have left `digest` stale: it is recomputed from the text by the next plan (SELECT_MANIFEST).
CLEAR_STALE_DIGESTS = [f"UPDATE {table} SET digest = NULL WHERE object_digest IS NULL AND digest IS NOT NULL"
                       for table in DIGEST_TRIGGER_TABLES]

# The function is replaced at each migration (CREATE OR REPLACE FUNCTION takes no lock on the tables);
# each table's trigger is made once: replacing it would lock the table against running applies.
POSTGRES_DIGEST_FUNCTION = """
CREATE OR REPLACE FUNCTION tiops_stale_object_digest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.object IS DISTINCT FROM OLD.object THEN
        IF NEW.object_digest IS NOT DISTINCT FROM OLD.object_digest THEN
            NEW.object_digest := NULL;
        END IF;
        IF NEW.digest IS NOT DISTINCT FROM OLD.digest THEN
            NEW.digest := NULL;
        END IF;
    END IF;
    RETURN NEW;
END $$
"""
POSTGRES_DIGEST_TRIGGER = """
CREATE TRIGGER {name} BEFORE UPDATE OF object ON {table}
FOR EACH ROW EXECUTE FUNCTION tiops_stale_object_digest()
"""


def schema_statements(bool_type: str, true: str, false: str) -> list[str]:
    text = SCHEMA.format(bool=bool_type, false=false)
    return [statement.strip() for statement in text.split(";") if statement.strip()]


#: The common shape: ASCII digits, at most nine fraction digits (compare TIMESTAMP_PATTERN).
_COMMON_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z")


def version_sort_key(version: str) -> str:
    """A fixed-width text that sorts like the STIX timestamp it comes from (the text itself
    when it is not one: :func:`timestamp_sort_key`)."""
    return timestamp_sort_key(version) or version


def timestamp_sort_key(text: str) -> str | None:
    """A fixed-width text that sorts like the STIX timestamp ``text`` (section 3.2), or None
    when it is not one (where :func:`parse_timestamp` gives None).

    The common case (a four-digit year from 1000, no leap second, at most nine
    fraction digits) is the text itself with the fraction padded to nine digits;
    the rest goes through :func:`parse_timestamp`. Fractions beyond nine digits are cut,
    so two keys that differ order their timestamps, and equal keys may hide a difference
    below a nanosecond.
    """
    match = _COMMON_TIMESTAMP.fullmatch(text)
    # fromisoformat of exactly YYYY-MM-DDTHH:MM:SS checks the date as datetime() does, without
    # six int() calls; hour 24 is left to the slow path (newer Pythons read it as the next day).
    if match is not None and text[0] != "0" and text[17:19] != "60" and text[11:13] != "24":
        try:
            datetime.fromisoformat(text[:19])
        except ValueError:
            return None  # not a real date: parse_timestamp refuses it too
        return text[:19] + (match.group(1) or ".").ljust(10, "0")
    if TIMESTAMP_PATTERN.match(text) is None:
        return None
    return _parsed_sort_key(text)


def _parsed_sort_key(text: str) -> str | None:
    key = parse_timestamp(text)
    if key is None:
        return None
    moment, fraction = key
    # A leap second (RFC 3339 section 5.7) comes back as :59 with a fraction of 1 or more; keyed
    # as :60 it sorts after every fraction of :59 and before the next minute, as its text does.
    # Fractions beyond nine digits are cut, not rounded: rounding .9999999999 up would carry into
    # the seconds and sort the version before :59.5. The year is padded by hand because strftime's
    # %Y does not pad years before 1000 on every platform.
    second = moment.second + int(fraction)
    nanoseconds = int((fraction % 1).scaleb(9))
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
            f"{second:02d}.{nanoseconds:09d}")


#: The columns of a row of :func:`version_rows`.
VERSION_COLUMNS = ("id", "version", "version_sort", "type", "revoked", "digest", "written_by", "object", "object_digest")


def version_rows(objects: Sequence[dict[str, Any]], digests: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
    """Rows for stix_versions and stix_current (same column order, less ``managed``).

    Each object is serialised once: the text is stored and digested (``object_digest``);
    the Sentinel views read it from stix_current as their ``Data`` column. ``digests``
    are the objects' content digests when the caller has them.
    """
    rows = []
    for index, obj in enumerate(objects):
        version = version_key(obj)
        text = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        rows.append((
            obj["id"], version, version_sort_key(version), obj["type"], bool(obj.get("revoked", False)),
            content_digest(obj) if digests is None else digests[index], WRITTEN_BY_TIOPS, text.decode(),
            object_digest(text),
        ))
    return rows


#: How the digest of a stored object that is not a JSON object starts (:func:`manifest_from_rows`).
UNREADABLE_DIGEST = "unreadable:"


def manifest_from_rows(rows: Iterable[Sequence[Any]]) -> dict[str, StoredVersion]:
    manifest: dict[str, StoredVersion] = {}
    for stix_id, version, digest, revoked, written_by, managed, stored_digest, text in rows:
        if digest is None:  # a row written by another tool: compute what tiops would have stored
            digest = _digest_of_text(text)
        manifest[stix_id] = StoredVersion(
            version, digest, bool(revoked), written_by == WRITTEN_BY_TIOPS, bool(managed), stored_digest
        )
    return manifest


def _digest_of_text(text: str) -> str:
    """The content digest of a stored object's text; for text that is not a JSON object (another tool
    wrote '{bad' or '[1,2]'), a digest no object has, made from the text so that the state's fingerprint
    follows any change of it. Its content is unknown: it differs from every compiled object, so a plan
    writes the repository's version of an id the repository has, and leaves any other alone."""
    obj = readable_object(text)
    return content_digest(obj) if obj is not None else UNREADABLE_DIGEST + object_digest(str(text).encode())


def readable_object(text: str) -> dict[str, Any] | None:
    """A stored object's text as the object, or None when it is not a JSON object (see :func:`_digest_of_text`)."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None
