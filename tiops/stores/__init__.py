"""Stores: the places ``tiops apply`` publishes compiled intel to.

One small interface (:class:`Store`) and an explicit registry (:data:`STORE_TYPES`).
The interface is shaped for remote stores too (a TAXII 2.1 collection, Microsoft
Sentinel): writes come in batches, the current state is read as a cheap manifest
(id -> version, content digest), errors are reported per object, and a store that
can only revoke says so with ``supports_delete = False``.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

from tiops.errors import TiopsError, UsageError
from tiops.forkwork import boot_id as boot_id  # the stores' lock holders
from tiops.forkwork import process_alive as process_alive
from tiops.forkwork import process_start_ticks as process_start_ticks
from tiops.redact import register_secret
from tiops.stix import canonical_json


class StoredVersion(NamedTuple):
    """What a store holds as the current version of one object.

    ``digest`` is :func:`content_digest` of that version. ``by_tiops`` says the
    current version was written by tiops; ``managed`` that tiops wrote some version
    of the object (only managed objects are revoked when they leave the repository).

    ``object_digest`` is :func:`object_digest` of the stored object exactly as it is
    stored (``modified`` included), when the store keeps one: a compiled object with
    the same object digest is the stored version, so a plan needs neither its content
    digest nor its timestamps. It is a shortcut, not part of the version: it is left
    out of comparisons and of the plan file.

    A named tuple, not a frozen dataclass: a plan reads one per object the target holds, and a
    frozen dataclass sets each field through ``object.__setattr__``: reading the manifest of a
    100k-object SQLite store took 0.28 s that way against 0.23 s (docs/performance.md, "Other
    layouts of the 100k objects, and costs per file"). As the dataclass, it equals only another
    StoredVersion and has no order.
    """

    modified: str
    digest: str
    revoked: bool = False
    by_tiops: bool = True
    managed: bool = True
    object_digest: str | None = None

    # The version is the first five fields: object_digest is left out, as a dataclass field with
    # compare=False would be.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StoredVersion):
            # Not NotImplemented for a plain tuple: its own __eq__ would then compare the six fields.
            return False if isinstance(other, tuple) else NotImplemented
        return self[:_VERSION_FIELDS] == other[:_VERSION_FIELDS]

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(self[:_VERSION_FIELDS])

    # No order, as the dataclass had none: a tuple's would sort by the object digest too.
    def __lt__(self, other: object) -> bool:
        return NotImplemented

    def __le__(self, other: object) -> bool:
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        return NotImplemented

    def to_json(self) -> list[Any]:
        return [self.modified, self.digest, self.revoked, self.by_tiops, self.managed]

    @classmethod
    def from_json(cls, data: list[Any]) -> StoredVersion:
        modified, digest, revoked, by_tiops, managed = data
        return cls(str(modified), str(digest), bool(revoked), bool(by_tiops), bool(managed))


_VERSION_FIELDS = 5  # StoredVersion's fields that make the version: all but object_digest


Manifest = Mapping[str, StoredVersion]


@dataclass(frozen=True)
class ObjectError:
    """A store refused one object of a batch; the rest of the batch went through."""

    stix_id: str
    message: str


class StoreError(TiopsError):
    """The store failed in a way a retry will not fix."""


class TransientStoreError(StoreError):
    """The store failed in a way a retry may fix (HTTP 429/5xx, a dropped connection).

    ``retry_after`` is the delay in seconds the server asked for (HTTP Retry-After), if any.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LockHeld(TiopsError):
    """Another apply holds the target's lock."""


class Holder(NamedTuple):
    """A lock holder as a store records it.

    ``boot`` (the machine's boot id) and ``started`` (the process's start, in clock ticks since
    that boot) tell the holder apart from a later process given the same id; stores that record
    them say so, and a row written before they did has None in both.
    """

    holder: str
    host: str
    pid: int
    boot: str | None = None
    started: int | None = None


# The largest id a process can have (pid_t is a 32-bit signed integer): kill(2) of a larger one fails.
_PID_MAX = 2**31 - 1


def this_holder(holder: str) -> Holder:
    """This process as a lock holder: what a store records when it takes a lock."""
    pid = os.getpid()
    return Holder(holder, socket.gethostname(), pid, boot_id(), process_start_ticks(pid))


def holder_running(held: Holder, *, records_start: bool) -> bool:
    """Whether the lock holder ``held`` is a process still running on this host (a lock of one that is
    not is a dead apply's, to take over or break).

    A live process id alone does not say so: ids are handed out again. In a container an apply
    is PID 1 on every run, so the lock a killed one left named the next one's own id, and a
    long-lived machine gives a dead apply's id to some unrelated process; either way the lock
    was held for good and force-unlock refused to break it. So the holder is gone when:

    * it ran on another boot of this machine (``boot`` recorded and not this one);
    * it names this very process, which takes no lock twice, unless the recorded start is this
      process's own (another store object of this process holds it). ``records_start`` says the
      store records starts: a row of a store that records none (PostgreSQL, whose advisory lock
      is the lock itself) keeps the plain rule below;
    * no process has its id, or the one that has it started at another time than the one
      recorded (an id reused). Without a recorded start (a row written before tiops recorded
      one, or a system without /proc) a live id is taken to be the holder.

    A holder on another host is never running here: its lock is not for this host to judge.
    """
    if held.host != socket.gethostname() or not 0 < held.pid <= _PID_MAX:  # no process has 0, -1 or 2**70
        return False
    this_boot = boot_id()
    if held.boot is not None and this_boot is not None and held.boot != this_boot:
        return False
    if held.pid == os.getpid():
        return not records_start or held.started == process_start_ticks(held.pid)
    if not process_alive(held.pid):
        return False
    if held.started is not None:
        now = process_start_ticks(held.pid)
        if now is not None and now != held.started:
            return False
    return True


def whole_number(value: object) -> int | None:
    """A lock row's number as an int; None when it is none (SQLite keeps what another tool wrote: 'abc').

    A pid that is no number names no process, so its lock is nobody's (holder_running); before, such
    a row made every apply and force-unlock an internal error."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().removeprefix("-").isdigit():
        return int(value)
    return None


def refuse_a_running_holder(target: str, held: Sequence[Any] | None) -> None:
    """For force-unlock, which breaks only a lock whose holder is gone: raise StoreError when ``held``
    (holder, host, pid as a store records them; boot and start too from a store that records them,
    :class:`Holder`) is a process still running on this host (:func:`holder_running`)."""
    if held is None:
        return
    records_start = len(held) >= len(Holder._fields)
    boot, started = (held[3], held[4]) if records_start else (None, None)
    pid = whole_number(held[2])
    holder = Holder(str(held[0]), str(held[1]), -1 if pid is None else pid, None if boot is None else str(boot),
                    whole_number(started))
    if holder_running(holder, records_start=records_start):
        raise StoreError(f"target {target!r}: the apply holding the lock, {holder.holder} (pid {holder.pid} on this host), "
                         "is still running",
                         hint=f"Let it finish, or stop it first (kill {holder.pid}): force-unlock breaks only a lock "
                              "whose holder is gone.")


class Store(Protocol):
    """A target store. Writes of a version already present are no-ops (idempotent)."""

    #: False for stores that can only revoke (for example Microsoft Sentinel).
    supports_delete: bool

    def manifest(self) -> dict[str, StoredVersion]:
        """The current version of every object in the store."""
        ...

    def current_objects(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The current version of the given objects (for field-level diffs)."""
        ...

    def write_versions(self, objects: Sequence[dict[str, Any]], digests: Sequence[str] | None = None) -> list[ObjectError]:
        """Store one batch of object versions; a version already present is skipped.

        ``digests``: the :func:`content_digest` of each object, when the caller has
        them (a plan carries them), so a store that keeps them need not compute them again.
        """
        ...

    def delete_objects(self, ids: Sequence[str]) -> list[ObjectError]:
        """Remove every version of the given objects; absent ids are not an error."""
        ...

    def acquire_lock(self, holder: str) -> None:
        """Take the target's apply lock or raise :class:`LockHeld` naming the holder."""
        ...

    def refresh_active(self) -> None:
        """Bring what depends on the as-of time (Sentinel's IsActive) to it; apply calls it, under the
        lock, once its plan has been checked, also when the plan has no change."""
        ...

    def release_lock(self) -> None: ...

    def force_unlock(self) -> str | None:
        """Break the lock whoever holds it; returns the holder it broke, if any."""
        ...

    def close(self) -> None: ...


#: One batch's rows built before its transaction (:class:`PreparesRows`): plain lists of tuples,
#: which a forked helper's marshal data carries (tiops.stores.sentinel_tables.prepared_rows).
PreparedRows = tuple[list[tuple[Any, ...]], ...]


@runtime_checkable
class PreparesRows(Protocol):
    """A store whose batches' rows are built apart from their writing (the SQL stores).

    ``write_versions(objects, digests)`` is ``write_prepared(objects, prepared_rows(objects, digests))``.
    :func:`prepared_rows` reads nothing from the store and changes nothing, so apply may
    have a forked helper build later batches' rows while this process writes the earlier
    ones (tiops.apply); what it returns is plain lists and tuples, which marshal carries.
    """

    def prepared_rows(self, objects: Sequence[dict[str, Any]],
                      digests: Sequence[str] | None = None) -> PreparedRows:
        """Every row a write of ``objects`` may need, from the objects alone."""
        ...

    def write_prepared(self, objects: Sequence[dict[str, Any]],
                       prepared: PreparedRows) -> list[ObjectError]:
        """:meth:`Store.write_versions` of ``objects`` with their rows built beforehand."""
        ...


def content_digest(obj: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of an object without ``modified``.

    ``modified`` is left out so that a version whose timestamp tiops had to move
    forward (see docs/plan-apply.md, "Versions") still compares equal to the
    compiled content it came from.
    """
    content = {key: value for key, value in obj.items() if key != "modified"}
    return hashlib.sha256(canonical_json(content)).hexdigest()


def object_digest(canonical: bytes) -> str:
    """SHA-256 of an object's canonical JSON (:func:`tiops.stix.canonical_json`), ``modified`` included.

    The SQL stores keep it beside each current object's text, so that an unchanged
    object is recognised by one comparison (see :class:`StoredVersion`).
    """
    return hashlib.sha256(canonical).hexdigest()


TIMESTAMP_PATTERN = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z$")


def parse_timestamp(text: str) -> tuple[datetime, Decimal] | None:
    """A STIX timestamp (section 3.2) as (whole seconds, fraction), or None when invalid.

    The fraction stays a Decimal: STIX allows any number of digits.
    """
    match = TIMESTAMP_PATTERN.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction = Decimal("0" + match.group(7)) if match.group(7) else Decimal(0)
    try:
        # RFC 3339 allows a leap second (60); datetime does not, so it counts as 59 + 1 s.
        return datetime(year, month, day, hour, minute, min(second, 59)), fraction + (second == 60)
    except ValueError:
        return None


def version_key(obj: Mapping[str, Any]) -> str:
    """The version an object row is stored under: ``modified``, else ``created``, else ''.

    Objects without ``modified`` (SCOs, marking definitions) are not versioned in
    STIX 2.1 (sections 3.6, 7.2.1): a content change replaces them in place.
    """
    return str(obj.get("modified") or obj.get("created") or "")


DEFAULT_BATCH_SIZE = 500
#: Targets whose writes are cheaper in larger batches. A SQLite commit writes every page the
#: batch touched to the write-ahead log, and the index pages (ids, observable values) are
#: touched again by every batch: 5,000 objects a batch took about 7 % less CPU than 500 for
#: 100k objects (docs/performance.md, "Plan and apply"). An interrupted apply still keeps
#: every committed batch.
DEFAULT_BATCH_SIZES = {"sqlite": 5000}


@dataclass(frozen=True)
class TargetSettings:
    """The settings every target shares, read from its entry in tiops.yaml."""

    name: str
    type: str
    on_remove: str = "revoke"
    max_remove_share: float = 0.2
    batch_size: int = DEFAULT_BATCH_SIZE

    @classmethod
    def from_config(cls, name: str, entry: Mapping[str, Any]) -> TargetSettings:
        on_remove = entry.get("on_remove", "revoke")
        if on_remove not in ("revoke", "delete"):
            raise UsageError(f"target {name!r}: on_remove must be 'revoke' or 'delete', not {on_remove!r}")
        share = entry.get("max_remove_share", 0.2)
        batch_size = entry.get("batch_size", DEFAULT_BATCH_SIZES.get(str(entry.get("type")), DEFAULT_BATCH_SIZE))
        if not isinstance(share, int | float) or not 0 <= share <= 1:
            raise UsageError(f"target {name!r}: max_remove_share must be a number from 0 to 1")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(f"target {name!r}: batch_size must be a positive integer")
        return cls(name, str(entry["type"]), on_remove, float(share), batch_size)


class StoreFactory(Protocol):
    """Opens a target's store. ``create``: False for a plan, which never writes to the target: a
    store that does not exist yet is read as an empty one rather than made."""

    def __call__(self, name: str, entry: Mapping[str, Any], root: Path, *, create: bool = True) -> Store: ...


def _open_sqlite(name: str, entry: Mapping[str, Any], root: Path, *, create: bool = True) -> Store:
    from tiops.stores.sqlite import SqliteStore

    return SqliteStore(root / str(entry.get("path", ".tiops/store.sqlite")), target=name, as_of=_as_of(root),
                       create=create)


def _open_postgres(name: str, entry: Mapping[str, Any], root: Path, *, create: bool = True) -> Store:
    from tiops.stores.postgres import PostgresStore

    variable = entry.get("dsn_env")
    if not variable:
        raise UsageError(f"target {name!r}: a postgres target needs 'dsn_env', the environment variable holding its DSN")
    dsn = os.environ.get(str(variable))
    if not dsn:
        raise UsageError(
            f"target {name!r}: environment variable {variable} is not set",
            hint=f"export {variable}='postgresql://user@host:5432/dbname' (credentials never go in tiops.yaml)",
        )
    check_dsn(name, str(variable), dsn)
    return PostgresStore(dsn, target=name, as_of=_as_of(root), create=create)


def _as_of(root: Path) -> str | None:
    """The build's as-of time (the HEAD commit's time, as compile uses): the moment
    ThreatIntelIndicators.IsActive compares valid_until with."""
    from tiops.gitrepo import head_commit_time

    return head_commit_time(root)


def check_dsn(name: str, variable: str, dsn: str) -> None:
    """Register the DSN and its password as secrets; a DSN libpq cannot parse is a clear error.

    psycopg's own parse error quotes the DSN, password included, so it is never shown.
    """
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    register_secret(dsn)
    try:
        parts = conninfo_to_dict(dsn)
    except ProgrammingError:
        raise TiopsError(
            f"target {name!r}: the connection string in {variable} cannot be parsed",
            hint="Write it as a URI, postgresql://USER:PASSWORD@HOST:5432/DBNAME (IPv6 hosts in [brackets]), "
                 "or as key=value pairs (host=... dbname=...).",
        ) from None
    register_secret(str(parts.get("password") or ""))
    if _stray_at(dsn):
        # libpq ends the user and password at the first '@' (before the first '/'): the rest of a
        # password holding a raw '@' or '/' becomes the host, port or database name, which its
        # errors quote ("failed to resolve host 'tail-of-password@db'"). Refused before connecting.
        raise TiopsError(
            f"target {name!r}: the connection string in {variable} has an '@' that libpq does not read as the end "
            "of the user name and password, so part of the password would be taken for the host, port or database",
            hint="In a postgresql:// URI, write '@' as %40, '/' as %2F and ':' as %3A inside the password "
                 "(RFC 3986), or use key=value pairs: password='...'.",
        )


_URI_PREFIXES = ("postgresql://", "postgres://")


def _stray_at(dsn: str) -> bool:
    """Whether a URI DSN holds an '@' after the one that ends its userinfo (as libpq reads it:
    the first '@' before the first '/'), before its query string."""
    if not dsn.startswith(_URI_PREFIXES):
        return False
    rest = dsn.split("://", 1)[1].split("?", 1)[0]
    slash, at = rest.find("/"), rest.find("@")
    if at != -1 and (slash == -1 or at < slash):
        rest = rest[at + 1:]
    return "@" in rest


def _open_taxii(name: str, entry: Mapping[str, Any], root: Path, *, create: bool = True) -> Store:
    from tiops.stores.taxii import open_taxii

    return open_taxii(name, entry, root)


def _open_sentinel(name: str, entry: Mapping[str, Any], root: Path, *, create: bool = True) -> Store:
    from tiops.stores.sentinel import open_sentinel

    return open_sentinel(name, entry, root)


# The explicit registry: a target's `type` picks the factory. Remote stores add theirs here.
STORE_TYPES: dict[str, StoreFactory] = {
    "sqlite": _open_sqlite,
    "postgres": _open_postgres,
    "taxii": _open_taxii,
    "sentinel": _open_sentinel,
}


def open_store(name: str, entry: Mapping[str, Any], root: Path, *, create: bool = True) -> Store:
    """Connect to the store a target entry of tiops.yaml describes (``create``: see :class:`StoreFactory`)."""
    factory = STORE_TYPES.get(str(entry.get("type")))
    if factory is None:
        known = ", ".join(sorted(STORE_TYPES))
        raise UsageError(f"target {name!r}: type {entry.get('type')!r} is not supported yet (supported: {known})")
    return factory(name, entry, root, create=create)
