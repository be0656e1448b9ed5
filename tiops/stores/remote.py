"""What remote stores share: a local apply lock, a cache of version digests, HTTP error mapping.

A remote store's manifest endpoint names each object's current version but not
its content, so the store keeps the content digest of every version it wrote or
read in a small SQLite cache under ``.tiops/cache/``. A STIX version (id,
modified) never changes content (STIX 2.1 section 3.6), so an entry is never
stale; a missing entry is filled by reading that object once.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import json
import os
import re
import secrets
import socket
import sqlite3
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final, NamedTuple

from tiops.errors import UsageError
from tiops.forkwork import remove_abandoned
from tiops.inputs import read_regular_file
from tiops.outputs import kept_out_of_git
from tiops.redact import redact, register_secret, server_text
from tiops.stores import (
    Holder,
    LockHeld,
    StoreError,
    TransientStoreError,
    content_digest,
    holder_running,
    refuse_a_running_holder,
    this_holder,
    version_key,
    whole_number,
)

if sys.platform != "win32":  # flock(2): LocalLock
    import fcntl


def secret_from_env(target: str, entry: Mapping[str, object], key: str, *, required: bool = True) -> str | None:
    """The value of the environment variable that ``entry[key]`` names (never the value itself in tiops.yaml)."""
    variable = entry.get(key)
    if not variable:
        if required:
            raise UsageError(f"target {target!r}: '{key}' must name the environment variable holding the secret")
        return None
    value = os.environ.get(str(variable))
    if not value:
        raise UsageError(f"target {target!r}: environment variable {variable} is not set",
                         hint="Secrets are read from the environment only; export it before running tiops.")
    register_secret(value)
    # A secret mounted from a file (a Kubernetes secret, `export TOKEN=$(cat file)` in some shells)
    # often ends in a line break, which no HTTP header may hold (RFC 9110 section 5.5): requests then
    # failed deep inside with an internal error. One at the end is dropped; any other control character
    # is a mistake to name, without the value.
    value = value.rstrip("\r\n")
    if not value or any((ord(character) < 0x20 and character != "\t") or ord(character) == 0x7F for character in value):
        raise UsageError(f"target {target!r}: environment variable {variable} holds a line break or another "
                         "control character inside the secret",
                         hint="A token or password is one line of text: set the variable to it alone.")
    register_secret(value)
    return value


def http_failure(what: str, status: int, retry_after: str | None, reason: str = "") -> StoreError:
    """The error for an HTTP answer: transient for 408/429/5xx (retried), final otherwise.

    The message names the status with its standard phrase (RFC 9110 section 15), never
    the server's own reason phrase (``reason`` is accepted and not shown): a server can
    echo the Authorization header in it.
    """
    message = f"{redact(what)}: HTTP {status} {status_phrase(status)}".strip()
    if status in (408, 429) or status >= 500:
        return TransientStoreError(message, retry_after=retry_after_seconds(retry_after))
    return StoreError(message)


# Longer than any delay-seconds a server could mean: a text of more digits reads as this.
_FOREVER: Final = 10.0**9
# delay-seconds is 1*DIGIT; a decimal fraction, which some servers send, is read too.
_DELAY_SECONDS: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """The wait an HTTP Retry-After value asks for, in seconds (RFC 9110 section 10.2.3), or None.

    The value is delay-seconds (``1*DIGIT``, a decimal fraction read too) or an HTTP-date,
    counted from ``now``; a date in the past asks for no wait. Anything else (a sign, an
    exponent, ``inf``, ``nan``, text) is None: the caller backs off as without the header.
    A server's figure is read, never trusted: a huge one comes back as "forever" for the
    caller to refuse (tiops.apply caps the wait), never as a float ``time.sleep`` cannot take.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELAY_SECONDS.fullmatch(text):
        return float(text) if len(text.partition(".")[0]) <= 9 else _FOREVER
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # an HTTP-date is always GMT (RFC 9110 section 5.6.7)
        moment = moment.replace(tzinfo=UTC)
    try:
        return max(0.0, moment.timestamp() - now())
    except (OverflowError, ValueError):
        return None


def readable_object(obj: dict[str, Any], where: str) -> dict[str, Any]:
    """An object a server sent, if tiops can digest it; a clear error otherwise (never an internal one).

    A server may send what no repository could hold: nesting beyond orjson's 254 levels,
    integers beyond 64 bits.
    """
    try:
        content_digest(obj)
    except (TypeError, ValueError) as error:
        raise StoreError(f"{redact(where)} sent object {server_text(obj.get('id'), 120)} that tiops cannot read "
                         f"({server_text(error, 80)})") from None
    return obj


def status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


#: How long after it was last written an unreadable lock file (empty, torn JSON) is taken to be one
#: being written. This tiops writes its lock whole (:meth:`LocalLock._fresh`), but a tiops before it
#: wrote the JSON into the file it had just made, and one killed in between left it empty, "locked
#: by unknown" for good. Its writer needed microseconds; older than this, the file is nobody's.
_UNREADABLE_GRACE_SECONDS = 5.0

# flock(2) errors of a file system that keeps no such locks (some network and FUSE file systems).
_NO_FLOCK = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS})

# link(2) errors of a file system without hard links (exFAT, SMB without unix extensions, some FUSE):
# the lock is then made in place with O_EXCL, written and flock(2)ed at once (_place_in_place).
_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS})

# Flags of every open of a lock file: not inherited by a command tiops runs, a link at the path
# not followed (a link is not tiops' lock: _foreign), a named pipe not waited on. 0 where the
# system has no such flag.
_LOCK_OPEN = (getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))

# How many times a take-over looks again at a path that changed under it before it gives up: each
# time another apply released or replaced the lock in between, which cannot go on for long.
_MAX_LOOKS = 1000


class LocalLock:
    """An apply lock for a remote target, as a file under ``.tiops/locks/`` (remote APIs have none).

    It guards against two applies from the same checkout; a lock whose holder is gone (killed,
    an id reused, another boot: :func:`tiops.stores.holder_running`) is taken over.

    The file names its holder (JSON: holder, host, pid, boot, start) and is put in place whole
    (link(2) of a file already written), and its holder keeps an flock(2) on it for as long as
    it runs, which the kernel drops when the process dies. Whoever replaces or removes the file
    at the path holds that flock at the time. So two applies that find one stale lock cannot
    both take it: before, each read the stale file and then removed whatever was at the path,
    so the slower one removed the lock the faster one had just made. Now the first to lock the
    stale file replaces it with its own by one rename(2), and the other then finds the path
    naming another file and looks again. For the same reason a release removes only its own
    file. A free flock does not settle it alone: a holder on another host (a shared folder) or
    a tiops before this one (which took no flock) still running here keeps its lock.
    """

    def __init__(self, root: Path, target: str) -> None:
        self.path = root / ".tiops" / "locks" / f"{target}.lock"
        self.target = target
        self._descriptor: int | None = None  # the lock file, flock(2)ed, while this object holds it

    def acquire(self, holder: str) -> None:
        try:
            self._acquire(holder)
        except OSError as error:  # a folder tiops cannot write, a lock path that is a folder
            raise StoreError(f"target {self.target!r}: cannot take the apply lock {self.path}: {error}",
                             hint=f"Check that tiops can write {self.path.parent} and that nothing but "
                                  "tiops' lock file is at that path.") from None

    def _acquire(self, holder: str) -> None:
        kept_out_of_git(self.path.parent.parent)  # .tiops/
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # What an apply killed between writing its lock and putting it in place left beside it.
        remove_abandoned(self.path.parent, f".{self.path.name}.", ".tmp")
        me = this_holder(holder)
        fresh, descriptor = self._fresh(me)
        try:
            for _ in range(_MAX_LOOKS):
                try:
                    os.link(fresh, self.path)
                    break
                except FileExistsError:
                    pass
                except OSError as error:
                    if error.errno not in _NO_LINKS:
                        raise
                    os.close(descriptor)
                    descriptor = -1  # closed: nothing to close if the lock cannot be made in place either
                    fresh.unlink(missing_ok=True)
                    descriptor = self._place_in_place(me)
                    break
                if self._replaced_a_stale_lock(fresh):
                    break
                # The path changed while it was looked at (a release, another apply's take-over): again.
            else:
                raise self._held(self._read())
        except BaseException:
            if descriptor >= 0:
                os.close(descriptor)
            raise
        finally:
            fresh.unlink(missing_ok=True)  # linked, the lock stays at self.path; renamed, the name is gone
        self._descriptor = descriptor

    def _place_in_place(self, me: Holder) -> int:
        """The lock made at its path (O_EXCL), flock(2)ed and written, on a file system without hard links.

        It is empty for the moment between its creation and its write; an apply finding it so waits
        out :data:`_UNREADABLE_GRACE_SECONDS` before it takes it for a killed writer's. A lock already
        there is judged as ever, a stale one removed under its flock first.
        """
        for _ in range(_MAX_LOOKS):
            try:
                descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _LOCK_OPEN, 0o644)
            except FileExistsError:
                self._remove_a_stale_lock()
                continue
            try:
                _flock(descriptor)
                data = json.dumps(me._asdict()).encode()
                while data:
                    data = data[os.write(descriptor, data):]
            except BaseException:
                os.close(descriptor)
                self.path.unlink(missing_ok=True)
                raise
            return descriptor
        raise self._held(self._read())

    def _remove_a_stale_lock(self) -> None:
        """Remove the lock at the path if its holder is gone; raise LockHeld naming a running one."""
        descriptor = self._open_existing()
        if descriptor is None:
            return
        try:
            found = self._judged(descriptor)
            if found is not None:
                self.path.unlink(missing_ok=True)
        finally:
            os.close(descriptor)

    def _fresh(self, me: Holder) -> tuple[Path, int]:
        """This process's lock, written whole beside its place and flock(2)ed: its name and descriptor."""
        fresh = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.{me.pid}.tmp")
        descriptor = os.open(fresh, os.O_RDWR | os.O_CREAT | os.O_EXCL | _LOCK_OPEN, 0o644)
        try:
            _flock(descriptor)  # a new file: nobody else has it open
            data = json.dumps(me._asdict()).encode()
            while data:
                data = data[os.write(descriptor, data):]
        except BaseException:
            os.close(descriptor)
            fresh.unlink(missing_ok=True)
            raise
        return fresh, descriptor

    def _replaced_a_stale_lock(self, fresh: Path) -> bool:
        """With a lock file at the path: put ``fresh`` in its place if its holder is gone (True), or
        raise LockHeld naming the holder; False when the path no longer names the file looked at."""
        descriptor = self._open_existing()
        if descriptor is None:
            return False  # released meanwhile
        try:
            if self._judged(descriptor) is None:
                return False  # replaced or removed between the open and the flock
            # The stale file goes and this one takes its place in one step, under the stale file's flock.
            os.replace(fresh, self.path)
            return True
        finally:
            os.close(descriptor)

    def _open_existing(self) -> int | None:
        """The lock file at the path, opened for judging; None when nothing is there.

        What is there and is no regular file (a symbolic link, leading anywhere or nowhere, a folder, a
        named pipe) is no lock of tiops': StoreError. Before, a link leading nowhere had a take-over
        look again for ever.
        """
        try:
            descriptor = os.open(self.path, os.O_RDONLY | _LOCK_OPEN)
        except FileNotFoundError:
            return None
        except OSError:
            if os.path.lexists(self.path):
                raise _foreign(self.target, self.path) from None
            return None
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            raise _foreign(self.target, self.path)
        return descriptor

    def _judged(self, descriptor: int) -> os.stat_result | None:
        """The stat of the stale lock file open at ``descriptor``, now flock(2)ed by this process; None when the path
        no longer names it. Raises LockHeld while its holder runs (or a file without a holder is being written)."""
        free = _flock(descriptor)
        found = os.fstat(descriptor)
        if not _names(self.path, found):
            return None
        current = self._read()  # the file just locked: only its flock's holder replaces it
        if not free:
            raise self._held(current)
        recorded = None if current is None else _recorded_holder(current)
        if recorded is None:  # unreadable, or naming no holder: nobody's once it is not being written
            if time.time() - found.st_mtime < _UNREADABLE_GRACE_SECONDS:
                raise self._held(current)
        elif not _holder_gone(recorded):
            raise self._held(current)
        return found

    def _held(self, current: dict[str, Any] | None) -> LockHeld:
        who = str(current.get("holder", "unknown")) if current else "unknown"
        where = f" (pid {current.get('pid')} on {current.get('host')})" if current else ""
        return LockHeld(f"target {self.target!r} is locked by {who}{where}: {self.path}",
                        hint="Wait for that apply to finish; if it is gone, run "
                             f"'tiops force-unlock --target {self.target}'.")

    def release(self) -> None:
        descriptor = self._descriptor
        if descriptor is None:
            return
        self._descriptor = None
        try:
            # Only a file that is still this lock: after a force-unlock the path may name another apply's.
            if _names(self.path, os.fstat(descriptor)):
                self.path.unlink(missing_ok=True)
        finally:
            os.close(descriptor)  # drops the flock, after the file left the path

    def force(self) -> str | None:
        """Break the lock unless its holder is a process still running on this host: the holder broken, if any."""
        try:
            descriptor = self._open_existing()
        except StoreError:
            # Something that is no lock file of tiops' is at the path (a link, a folder): nobody holds it.
            if self.path.is_dir() and not self.path.is_symlink():
                raise
            self.path.unlink(missing_ok=True)
            return "unknown"
        if descriptor is None:
            return None
        try:
            free = _flock(descriptor)  # when free: no taker replaces the file while it is judged and removed
            current = self._read()
            recorded = None if current is None else _recorded_holder(current)
            if not free:  # its holder runs here, whatever the file says (it may be a lock still being written)
                raise StoreError(f"target {self.target!r}: the apply holding the lock {self.path} is still running",
                                 hint="Let it finish, or stop it first: force-unlock breaks only a lock whose "
                                      "holder is gone.")
            refuse_a_running_holder(self.target, recorded)
            if _names(self.path, os.fstat(descriptor)):
                self.path.unlink(missing_ok=True)
        finally:
            os.close(descriptor)
        return "unknown" if current is None else str(current.get("holder", "unknown"))  # a file was there

    def _read(self) -> dict[str, Any] | None:
        content = read_regular_file(self.path)  # None for a link, a pipe or a folder: no lock of tiops'
        try:
            data = json.loads(content) if content is not None else None
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes: nobody's
            return None
        return data if isinstance(data, dict) else None


def _foreign(target: str, path: Path) -> StoreError:
    return StoreError(f"target {target!r}: {path} is not an apply lock of tiops' (a symbolic link, a folder "
                      "or another kind of file is there)",
                      hint=f"Remove it; 'tiops force-unlock --target {target}' removes anything but a folder there.")


def _flock(descriptor: int) -> bool:
    """Take an exclusive flock(2) on ``descriptor`` without waiting: False when another holds it.

    True also on a file system that keeps no flocks: the lock is then judged by the holder it names
    alone, as before tiops took them, and two take-overs of one stale lock may both succeed. (tiops
    runs on Linux and macOS; Windows, which has no flock(2), is not among the systems it supports.)
    """
    if sys.platform == "win32":
        return True
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in _NO_FLOCK:
            return True
        raise
    return True


def _names(path: Path, found: os.stat_result) -> bool:
    """Whether ``path`` still names the file ``found`` describes."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (found.st_dev, found.st_ino)


def _recorded_holder(current: Mapping[str, Any]) -> Holder | None:
    """The holder a lock file names; None when it names none tiops can read (no host or pid)."""
    pid, host, boot = whole_number(current.get("pid")), current.get("host"), current.get("boot")
    if pid is None or host is None:
        return None
    return Holder(str(current.get("holder", "unknown")), str(host), pid, boot if isinstance(boot, str) else None,
                  whole_number(current.get("started")))


def _holder_gone(held: Holder) -> bool:
    """Whether a lock naming ``held`` is left by a dead apply: one of this host that no longer runs. A
    file without a start is a tiops' before this one, never this process's own (holder_running)."""
    return held.host == socket.gethostname() and not holder_running(held, records_start=True)


class LocallyLocked:
    """Lock handling shared by remote stores, which have no server-side lock of their own."""

    _lock: LocalLock

    def acquire_lock(self, holder: str) -> None:
        self._lock.acquire(holder)

    def refresh_active(self) -> None:
        """Nothing here depends on the as-of time: the server keeps its own view of expiry."""

    def release_lock(self) -> None:
        self._lock.release()

    def force_unlock(self) -> str | None:
        return self._lock.force()




class CachedVersion(NamedTuple):
    digest: str
    by_tiops: bool
    revoked: bool


class DigestCache:
    """(id, version) -> content digest, in ``.tiops/cache/<target>.sqlite``."""

    def __init__(self, root: Path, target: str) -> None:
        path = root / ".tiops" / "cache" / f"{target}.sqlite"
        kept_out_of_git(path.parent.parent)  # .tiops/
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS digests (id TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL,"
            " written_by_tiops INTEGER NOT NULL, revoked INTEGER NOT NULL, PRIMARY KEY (id, version))"
        )

    def lookup(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], CachedVersion]:
        wanted = set(keys)
        found: dict[tuple[str, str], CachedVersion] = {}
        for stix_id, version, digest, by_tiops, revoked in self._db.execute(
            "SELECT id, version, digest, written_by_tiops, revoked FROM digests"
        ):
            if (stix_id, version) in wanted:
                found[(stix_id, version)] = CachedVersion(digest, bool(by_tiops), bool(revoked))
        return found

    def written_ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT DISTINCT id FROM digests WHERE written_by_tiops")}

    def record(self, objects: Iterable[Mapping[str, Any]], *, by_tiops: bool,
               versions: Mapping[str, str] | None = None) -> None:
        """Remember the digest of each object version (``by_tiops``: tiops wrote it), keyed by
        :func:`version_key`, or by ``versions[id]``: the version a server names it by."""
        rows = [(o["id"], versions[o["id"]] if versions is not None else version_key(o), content_digest(o), by_tiops,
                 bool(o.get("revoked", False))) for o in objects]
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT INTO digests VALUES (?, ?, ?, ?, ?) ON CONFLICT (id, version) DO UPDATE SET"
            " written_by_tiops = max(written_by_tiops, excluded.written_by_tiops)", rows)
        self._db.execute("COMMIT")

    def forget(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """Forget the versions of ``objects``: recorded as tiops' before they were sent (:meth:`record`),
        then refused by the server, which does not hold them."""
        keys = [(o["id"], version_key(o)) for o in objects]
        if keys:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM digests WHERE id = ? AND version = ?", keys)
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def sending(self, objects: Sequence[Mapping[str, Any]]) -> Iterator[None]:
        """Around one request that sends ``objects``: they are recorded as tiops' before it (an apply
        killed between sending and recording would otherwise find them on the server as written by
        someone else, never revoke them, and call its own saved plan stale), and forgotten again when
        the server refuses the request as a whole (400, 401, 403, 413...: none of it landed; kept as
        tiops', an object another writer holds would count as managed and be revoked once it left
        the repository). A transient failure keeps them: the request may have landed, and is retried."""
        self.record(objects, by_tiops=True)
        try:
            yield
        except TransientStoreError:
            raise
        except StoreError:
            self.forget(objects)
            raise

    def close(self) -> None:
        self._db.close()
