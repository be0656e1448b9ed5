"""The enrichment lock: looked-up results as reviewable, canonical files in the repository.

Layout, under the intel folder (``intel/.enrichment/``; load skips dot-folders)::

    lock.json          {"format": 1, "geo": {"backend", "database", "date"}}
    geo/<h>.json       value -> GeoLocation/ASN result (IP addresses)
    whois/<h>.json     value -> RDAP result (domains and IP networks)

``<h>`` is the first hex digit of the SHA-256 of the value, so a value always
lands in the same one of at most 16 shards and a refresh touches few files. Each
shard is canonical JSON: keys sorted, one value per line, so a pull request shows
one changed line per changed result. The same results always give the same bytes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol

import orjson

from tiops.codes import make_finding
from tiops.errors import TiopsError, UsageError
from tiops.filesource import FileSource, WorkingTree
from tiops.findings import Finding, Location
from tiops.inputs import InputProblem, display_name
from tiops.memory import paused_gc

__all__ = [
    "CHECK_RECORD",
    "GEO_STATUSES",
    "LOCK_DIR",
    "LOCK_FORMAT",
    "MAX_ASN",
    "SECTIONS",
    "WHOIS_STATUSES",
    "CheckRecords",
    "CheckedElsewhere",
    "EnrichmentLock",
    "LockSource",
    "LockWriteError",
    "checked_elsewhere",
    "kept_checks",
    "lock_digest",
    "lock_directory",
    "lock_findings",
    "lock_layout_problems",
    "lock_signature",
    "lock_size",
    "newer_format_message",
    "read_lock",
    "read_lock_checked",
    "read_lock_for_build",
    "render_shard",
    "shard_name",
    "write_lock",
]

LOCK_DIR: Final = ".enrichment"
LOCK_FORMAT: Final = 1
SECTIONS: Final = ("geo", "whois")
# found: the database/server answered with data; not-found: it knows nothing of the value
# (HTTP 404, a network no database lists); private: a private or reserved range (RFC 6890),
# which no one registers, so nothing is looked up; failed: no usable answer this time.
GEO_STATUSES: Final = frozenset({"found", "not-found", "private"})
WHOIS_STATUSES: Final = frozenset({"found", "not-found", "private", "failed"})
_STATUSES: Final = {"geo": GEO_STATUSES, "whois": WHOIS_STATUSES}
# The JSON shape of each field of a result as tiops writes it (tiops.enrich.geo and
# tiops.enrich.rdap): text, but for the AS number, the RDAP status list and the moments,
# which are UTC timestamps. A result with a field of another shape (a hand edit) would
# travel into the bundle and to the rules as it is, so it is refused.
_TIMESTAMP_FIELDS: Final = frozenset({"registered", "expires", "updated", "retrieved"})
# Seconds up to 59: tiops reads a moment with datetime, which has no leap second, so it never
# writes one (tiops.enrich.rdap._timestamp); the calendar is checked by the date-time format.
# A fraction of a second is the server's (RFC 3339 section 5.6 time-secfrac, RFC 9083 section
# 4.5), kept exactly and written without trailing zeros: one instant, one text, so a lock
# written twice is the same bytes. 2025-01-01T00:00:00.500Z is not what tiops writes.
_TIMESTAMP: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:[0-5]\d(?:\.\d*[1-9])?Z")
_OPTIONS: Final = orjson.OPT_SORT_KEYS
# AS numbers are 32-bit (RFC 6793): a database or hand edit giving another number is wrong about it.
MAX_ASN: Final = 4294967295


@dataclass
class EnrichmentLock:
    """The lock's content: metadata and, per section, value -> result."""

    meta: dict[str, Any] = field(default_factory=lambda: {"format": LOCK_FORMAT})
    geo: dict[str, dict[str, Any]] = field(default_factory=dict)
    whois: dict[str, dict[str, Any]] = field(default_factory=dict)
    # lock.json's format when a newer tiops wrote it (greater than LOCK_FORMAT): nothing else was read,
    # and write_lock refuses to write over it (which would rewrite it as this format, losing what it holds).
    newer_format: int | None = None

    def section(self, name: str) -> dict[str, dict[str, Any]]:
        return self.geo if name == "geo" else self.whois

    def __len__(self) -> int:
        return len(self.geo) + len(self.whois)


def lock_directory(intel_path: Path) -> Path:
    return intel_path / LOCK_DIR


def shard_name(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[0]


def render_shard(entries: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Canonical bytes of one shard: a JSON object, one value per line, sorted."""
    lines = [orjson.dumps(value) + b":" + orjson.dumps(entries[value], option=_OPTIONS) for value in sorted(entries)]
    return b"{\n" + b",\n".join(lines) + b"\n}\n"


def _render_meta(meta: Mapping[str, Any]) -> bytes:
    return orjson.dumps(meta, option=_OPTIONS | orjson.OPT_INDENT_2) + b"\n"


class LockSource(Protocol):
    """What :func:`read_lock` reads files through: a tiops.filesource.FileSource, or the lock's files read already."""

    def read(self, path: str) -> bytes: ...

    def lexists(self, path: str) -> bool: ...

    def is_dir(self, path: str) -> bool: ...

    def listdir(self, path: str) -> list[str]: ...


def read_lock(intel_path: Path, root: Path, source: LockSource | None = None) -> tuple[EnrichmentLock, list[Finding]]:
    """The lock under ``intel_path`` (empty when there is none) and findings about its files.

    A file with errors contributes nothing (TI150); a file that is valid but not in
    canonical form is used and reported (TI151).
    """
    files: LockSource = source if source is not None else WorkingTree(root)
    directory = lock_directory(intel_path)
    lock, findings = EnrichmentLock(), list[Finding]()
    if not files.is_dir(os.fspath(directory)):
        return lock, findings
    meta_path = directory / "lock.json"
    meta_present = files.lexists(os.fspath(meta_path))
    if meta_present:  # anything there is read as an input, and reported if it is not a file
        data, problem, text = _parse(meta_path, root, files)
        if problem is not None:
            findings.append(problem)
        elif isinstance(data, dict) and type(data.get("format")) is int and data["format"] > LOCK_FORMAT:
            # A newer tiops's lock: its shards may mean what this one cannot tell, so none is read.
            lock.newer_format = data["format"]
            findings.append(_invalid(meta_path, root, 1, 1, newer_format_message(data["format"])))
            return lock, findings
        elif not isinstance(data, dict) or type(data.get("format")) is not int or data["format"] != LOCK_FORMAT:
            findings.append(_invalid(meta_path, root, 1, 1, f"lock.json must be an object with \"format\": {LOCK_FORMAT}"))
        else:
            lock.meta = data
            canonical = _render_meta(data)
            if text != canonical:
                findings.append(_not_canonical(meta_path, root, text, canonical))
    first_geo_shard: Path | None = None
    for section in SECTIONS:
        folder = directory / section
        if not files.is_dir(os.fspath(folder)):
            if files.lexists(os.fspath(folder)):  # its results would be silently missing from every build
                findings.append(_invalid(folder, root, 1, 1, f"{section} must be a folder of lock shards; "
                                                             f"remove it and run 'tiops enrich' again"))
            continue
        target = lock.section(section)
        for path in [folder / name for name in files.listdir(os.fspath(folder))]:
            if not path.name.endswith(".json"):
                continue
            entries, shard_findings = _read_shard(path, root, section, files)
            findings.extend(shard_findings)
            target.update(entries)
            if section == "geo" and entries and (first_geo_shard is None or path.name < first_geo_shard.name):
                first_geo_shard = path
    if first_geo_shard is not None and not meta_present:
        # lock.json deleted, or left out of a commit: the results still travel, but which database
        # gave them, and of which date, is lost to review and to 'tiops explain'.
        findings.append(make_finding(
            "TI152", "the enrichment lock holds GeoLocation results, but its lock.json, which names the database "
            "and date they came from, is missing", Location(_relative(first_geo_shard, root), 1, 1)))
    return lock, findings


# What a section's place holds when it is not a folder (a file, a link): its lock files are none.
_NOT_A_FOLDER: Final = InputProblem("TI150", "not a folder")


class _LockFiles:
    """The lock's files exactly as :func:`read_lock` reads them, each read once, and their digest.

    A build first reads the bytes (to know whether this lock was checked before: see
    :func:`checked_lock`), then parses them from here when it must, without reading again.
    """

    def __init__(self, intel_path: Path, files: FileSource) -> None:
        self._dirs: dict[str, list[str] | None] = {}  # folder -> its names (None: not a folder)
        self._present: dict[str, bool] = {}
        self._read: dict[str, bytes | InputProblem] = {}
        self._named: list[tuple[str, str]] = []  # (name in the lock, path) of each file read, in order
        directory = lock_directory(intel_path)
        self.exists = self._list(files, directory) is not None
        if self.exists:
            meta = os.fspath(directory / "lock.json")
            self._present[meta] = files.lexists(meta)
            if self._present[meta]:
                self._take(files, meta, "lock.json")
            for section in SECTIONS:
                names = self._list(files, directory / section)
                if names is None:
                    folder = os.fspath(directory / section)
                    self._present[folder] = files.lexists(folder)
                    if self._present[folder]:
                        self._named.append((section, folder))  # in the digest: its finding is the lock's
                for name in sorted(names or ()):
                    if name.endswith(".json"):
                        self._take(files, os.fspath(directory / section / name), f"{section}/{name}")

    @functools.cached_property
    def digest(self) -> str:
        """SHA-256 of every file's name and bytes ("" when there is no lock); worked out only when asked
        (a build without the cache never asks)."""
        if not self.exists:
            return ""
        digest = hashlib.sha256()
        for name, path in self._named:
            content = self._read.get(path, _NOT_A_FOLDER)
            body = content if isinstance(content, bytes) else f"{content.code}\0{content.message}".encode()
            # name, kind and length first, so no two different sets of files give the same digest;
            # a name need not be UTF-8 (a file made by hand), and is hashed as the bytes it is
            digest.update(f"{name}\0{isinstance(content, bytes)}\0{len(body)}\0".encode("utf-8", "surrogateescape"))
            digest.update(body)
        return digest.hexdigest()

    def _list(self, files: FileSource, folder: Path) -> list[str] | None:
        path = os.fspath(folder)
        names = files.listdir(path) if files.is_dir(path) else None
        self._dirs[path] = names
        return names

    def _take(self, files: FileSource, path: str, name: str) -> None:
        try:
            content: bytes | InputProblem = files.read(path)
        except InputProblem as problem:
            content = problem
        self._read[path] = content
        self._named.append((name, path))

    # The part of tiops.filesource.FileSource that read_lock uses, answered from what was read.
    def is_dir(self, path: str) -> bool:
        return self._dirs.get(path) is not None

    def listdir(self, path: str) -> list[str]:
        return list(self._dirs.get(path) or ())

    def lexists(self, path: str) -> bool:
        return self._present.get(path, False)

    def read(self, path: str) -> bytes:
        content = self._read[path]
        if isinstance(content, InputProblem):
            raise content
        return content


class _Read(NamedTuple):
    """One read of the lock kept for the rest of the process (see :func:`read_lock_for_build`)."""

    signature: tuple[tuple[str, int, int], ...]
    digest: str | None  # of the lock's files ("" when there is none; None: not worked out, no build cache)
    findings: list[Finding]
    lock: EnrichmentLock | None  # None: checked before (its findings kept) and not parsed yet
    files: _LockFiles | None  # the bytes, while the lock is not parsed


_CACHE: dict[str, _Read] = {}


class CheckRecords(Protocol):
    """Where checks of earlier builds are kept: tiops.buildcache.BuildCache's records."""

    def read_record(self, name: str) -> dict[str, Any] | None: ...

    def write_record(self, name: str, body: dict[str, Any]) -> None: ...


CHECK_RECORD: Final = "enrichment-lock"
# The build cache a build keeps its lock checks in, while it runs (kept_checks).
_KEPT: list[CheckRecords] = []


@contextlib.contextmanager
def kept_checks(records: CheckRecords) -> Iterator[None]:
    """While the block runs, a lock checked by an earlier build with the same cache is not parsed or
    checked again to know its findings, and a lock checked now is remembered in ``records``.

    The record holds the lock's digest (SHA-256 of every lock file's name and bytes) and its
    findings; ``records`` checks its own integrity and context (tiops.buildcache: a damaged
    or foreign record is ignored), and the digest is of the bytes read now, so a changed or
    damaged shard is always parsed and checked again.
    """
    _KEPT.append(records)
    try:
        yield
    finally:
        _KEPT.remove(records)


def _stored(findings: list[Finding]) -> list[tuple[str, str, str, int, int]]:
    return [(f.code, f.message, f.location.file, f.location.line, f.location.column) for f in findings]


def _kept_findings(digest: str) -> list[Finding] | None:
    """The findings an earlier build recorded for the lock with ``digest`` (None: none kept)."""
    record = _KEPT[-1].read_record(CHECK_RECORD)
    if record is None or record.get("digest") != digest:
        return None
    try:
        return [make_finding(code, message, Location(file, line, column))
                for code, message, file, line, column in record["findings"]]
    except (KeyError, TypeError, ValueError):
        return None


Signature = tuple[tuple[str, int, int], ...]


def lock_signature(intel_path: Path) -> Signature:
    """Each lock file's path, size and modification time: a read stays good while they stay the same."""
    directory = lock_directory(intel_path)
    if not directory.is_dir():
        return ()
    paths = sorted(directory.rglob("*.json"))
    # A section that is not a folder (a finding of its own) has no shards to list.
    paths.extend(folder for section in SECTIONS if os.path.lexists(folder := directory / section) and not folder.is_dir())
    return tuple((p.as_posix(), (stat := _stat(p)).st_size, stat.st_mtime_ns) for p in paths)


def _stat(path: Path) -> os.stat_result:
    """What a lock file's read depends on: its target's stat, or the link's own when it leads nowhere."""
    try:
        return path.stat()
    except OSError:
        return path.lstat()


def lock_size(intel_path: Path) -> int:
    """The bytes of the lock's files (0 when there is none)."""
    return sum(size for _, size, _ in lock_signature(intel_path))


class CheckedElsewhere(NamedTuple):
    """The lock read and checked by another process of the same build (tiops.enrich.beside)."""

    signature: Signature  # of the files that process read (lock_signature)
    digest: str  # lock_digest of those files
    findings: list[Finding]


# Where the check of a lock is being done elsewhere, by key (_current): a call that waits for
# it and gives it, or None when it could not be done there.
_ELSEWHERE: dict[str, Callable[[], CheckedElsewhere | None]] = {}


@contextlib.contextmanager
def checked_elsewhere(intel_path: Path, root: Path, fetch: Callable[[], CheckedElsewhere | None]) -> Iterator[None]:
    """While the block runs, the lock's findings and digest come from ``fetch`` instead of a parse
    here, when it gives them for the files as they are then (the same :func:`lock_signature`).

    Only the check: a reader that needs the results (:func:`read_lock_for_build`) still parses
    the lock here. Anything ``fetch`` cannot give, or gives for other files, is read here as ever.
    """
    key = f"{intel_path}|{root}"
    _ELSEWHERE[key] = fetch
    try:
        yield
    finally:
        _ELSEWHERE.pop(key, None)


def _current(intel_path: Path, root: Path, *, parsed: bool) -> _Read:
    """The lock under ``intel_path`` in the working tree: read once per process while no file changes."""
    signature = lock_signature(intel_path)
    key = f"{intel_path}|{root}"
    cached = _CACHE.get(key)
    elsewhere = _ELSEWHERE.get(key) if not parsed and (cached is None or cached.signature != signature) else None
    checked = elsewhere() if elsewhere is not None else None
    if checked is not None and checked.signature == signature:
        # The findings of a parse and check done elsewhere, of these very files (checked_elsewhere).
        cached = _Read(signature, checked.digest, list(checked.findings), None, None)
        _CACHE.clear()
        _CACHE[key] = cached
        if _KEPT:
            _KEPT[-1].write_record(CHECK_RECORD, {"digest": checked.digest, "findings": _stored(checked.findings)})
    elif cached is None or cached.signature != signature:
        files = _LockFiles(intel_path, WorkingTree(root))
        if not files.exists:  # no lock: nothing to parse, check or keep
            cached = _Read(signature, "", [], EnrichmentLock(), None)
        elif _KEPT:  # a build through the cache: the digest tells whether this lock was checked before
            findings = None if parsed else _kept_findings(files.digest)
            cached = _Read(signature, files.digest, findings or [], None, files)
            if findings is None:
                cached = _parsed(cached, intel_path, root, files)
                _KEPT[-1].write_record(CHECK_RECORD, {"digest": files.digest, "findings": _stored(cached.findings)})
        else:
            cached = _parsed(_Read(signature, None, [], None, files), intel_path, root, files)
        _CACHE.clear()  # one repository at a time: a cache, not a store
        _CACHE[key] = cached
    elif parsed and cached.lock is None:
        # checked by an earlier build or elsewhere; the results are needed now (the same findings come again)
        files = cached.files if cached.files is not None else _LockFiles(intel_path, WorkingTree(root))
        cached = _CACHE[key] = _parsed(cached, intel_path, root, files)
    return cached


def read_lock_checked(intel_path: Path, root: Path) -> tuple[Signature, str, EnrichmentLock, list[Finding]]:
    """The working tree's lock as a build reads it when nothing was kept: its :func:`lock_signature`
    (taken before reading), :func:`lock_digest`, results and findings."""
    signature = lock_signature(intel_path)
    files = _LockFiles(intel_path, WorkingTree(root))
    if not files.exists:
        return signature, "", EnrichmentLock(), []
    with paused_gc():  # a dict per locked value, no cycles (tiops.memory)
        lock, findings = read_lock(intel_path, root, files)
    return signature, files.digest, lock, findings


def _parsed(read: _Read, intel_path: Path, root: Path, files: _LockFiles) -> _Read:
    with paused_gc():  # a dict per locked value, no cycles (tiops.memory)
        lock, findings = read_lock(intel_path, root, files)
    return read._replace(lock=lock, findings=findings, files=None)


def lock_findings(intel_path: Path, root: Path, source: FileSource | None = None) -> list[Finding]:
    """The lock's findings (TI150, TI151, unreadable files), without parsing it when an earlier build
    through the same build cache checked the same bytes (:func:`kept_checks`); the results are
    parsed when first asked for (:func:`read_lock_for_build`)."""
    if source is not None and not isinstance(source, WorkingTree):
        return read_lock(intel_path, root, source)[1]
    return list(_current(intel_path, root, parsed=False).findings)


def lock_digest(intel_path: Path, root: Path, source: FileSource | None = None) -> str:
    """SHA-256 of the lock's files, their names and bytes ("" when there is no lock): the same digest,
    the same results (what the bundle record of tiops.bundlereuse is keyed by)."""
    if source is not None and not isinstance(source, WorkingTree):
        return _LockFiles(intel_path, source).digest
    read = _current(intel_path, root, parsed=False)
    if read.digest is None:  # read by a build without the cache: read again
        return _LockFiles(intel_path, WorkingTree(root)).digest
    return read.digest


def read_lock_for_build(intel_path: Path, root: Path, source: FileSource | None = None) -> tuple[EnrichmentLock, list[Finding]]:
    """:func:`read_lock` for readers that never change the lock (validate, rules, compile).

    One build reads the lock twice (validation reports on it, the rules use it); the
    second read is skipped while no lock file changed (same names, sizes and mtimes).
    Callers must not modify what it returns. A lock read from another ``source`` than the
    working tree (a git revision) is not kept.
    """
    if source is not None and not isinstance(source, WorkingTree):
        return read_lock(intel_path, root, source)
    read = _current(intel_path, root, parsed=True)
    assert read.lock is not None
    return read.lock, list(read.findings)


def _read_shard(path: Path, root: Path, section: str, files: LockSource) -> tuple[dict[str, dict[str, Any]], list[Finding]]:
    data, problem, text = _parse(path, root, files)
    if problem is not None:
        return {}, [problem]
    if not isinstance(data, dict):
        return {}, [_invalid(path, root, 1, 1, "a lock shard must be a JSON object: value -> result")]
    # One pass that checks nothing but what a build relies on: each result an object with a
    # known status (and a retrieval time for RDAP), each value in its shard and in the
    # canonical form values are looked up by (tiops.enrich.values). Kept in one loop without
    # calls per entry: a build reads every entry of a lock (docs/enrich.md, Speed).
    name = path.name.removesuffix(".json")
    shard = int(name, 16) if len(name) == 1 and name in "0123456789abcdef" else -1
    statuses = _STATUSES[section]
    needs_retrieved = section == "whois"
    sha256 = hashlib.sha256
    # The shape of every field, checked in one call (0.02 s per 84k values, against 0.1-0.16 s
    # for a Python pass); only a shard that fails it has its errors listed.
    misshapen = {} if _result_shapes().is_valid(data) else _misshapen_fields(data)
    bad: list[str] = []
    for value, entry in data.items():
        # A status of another type than a string (a list, an object) cannot even be looked up.
        if (entry.__class__ is not dict or (status := entry.get("status")).__class__ is not str
                or status not in statuses
                or (needs_retrieved and entry.get("retrieved").__class__ is not str)
                or (misshapen and value in misshapen)
                or sha256(value.encode()).digest()[0] >> 4 != shard):  # shard_name(), without the hex text
            bad.append(value)
    values = list(data)
    bad.extend(value for value in _not_canonical_values(values) if value not in bad)
    if not bad:
        # Rendering again settles layout, spacing, key order, escapes and number forms at once,
        # about 0.06 s per 84k values, and only when a build reads the lock afresh (a warm build
        # keeps the checked findings). A shard read by a build is nearly always canonical, so a
        # cheaper first test of the layout would only add its own cost to the render.
        canonical = render_shard(data)
        if canonical == text:
            return data, []
        duplicated = _duplicated_values(text)  # canonical text names each value once
        if not duplicated:
            return data, [_not_canonical(path, root, text, canonical)]
        bad = sorted(duplicated)
    else:
        duplicated = _duplicated_values(text)
        bad.extend(value for value in sorted(duplicated) if value not in bad)
    findings = [_invalid(path, root, _line_of(text, value), 1,
                         f"{value!r} is given more than one result; which one holds is unclear, so neither is used"
                         if value in duplicated else
                         _entry_problem(section, path, value, data[value], misshapen.get(value)))
                for value in bad]
    rejected = set(bad)
    return {value: entry for value, entry in data.items() if value not in rejected}, findings


def _duplicated_values(text: bytes) -> set[str]:
    """The values a shard's JSON names more than once (a JSON parser keeps the last one silently,
    while a reviewer reads the first: RFC 8259 section 4 leaves names that are not unique undefined)."""
    import json

    objects: list[list[str]] = []

    def names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        objects.append([name for name, _ in pairs])
        return {}

    try:
        json.loads(text, object_pairs_hook=names)
    except ValueError:
        return set()
    counts = Counter(objects[-1] if objects else ())  # the shard's own object is the last one closed
    return {value for value, count in counts.items() if count > 1}


def _not_canonical_values(values: list[str]) -> list[str]:
    """The keys of a shard that are not written as tiops.enrich.values writes values, in order.

    Nearly every key is a lower-case name or a dotted-decimal address: one regular expression
    over the keys joined by line breaks finds the few others (IPv6, CIDR blocks, anything
    odd), which alone are read one by one (a call per key cost a build 0.05 s per 84k keys).
    """
    from tiops.enrich.values import NOT_PLAIN_CANONICAL_LINE, is_canonical

    if not values:
        return []
    joined = "\n".join(values)
    if joined.count("\n") != len(values) - 1:  # a key with a line break: one by one
        return [value for value in values if not is_canonical(value)]
    return [value for match in NOT_PLAIN_CANONICAL_LINE.finditer(joined) if not is_canonical(value := match[0])]


@functools.cache
def _result_shapes() -> Any:
    """A JSON Schema validator for a shard's results: each field of the shape tiops writes it in."""
    import jsonschema_rs

    # The format settles the calendar (no 2025-02-30, no hour 24: RFC 3339 section 5.7), which a
    # rule's age_days and the bundle's timestamps need; the pattern, the shape tiops writes.
    timestamp = {"type": "string", "pattern": "^" + _TIMESTAMP.pattern + "$", "format": "date-time"}
    return jsonschema_rs.validator_for({
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "properties": {"asn": {"type": "integer", "minimum": 0, "maximum": MAX_ASN}, "rdap_status": {"type": "array", "items": {"type": "string"}},
                           **dict.fromkeys(sorted(_TIMESTAMP_FIELDS), timestamp)},
            "additionalProperties": {"type": "string"},
        },
    }, validate_formats=True)


def _misshapen_fields(data: dict[str, Any]) -> dict[str, str]:
    """Value -> the first field of its result that is not of the shape tiops writes it in."""
    found: dict[str, str] = {}
    for error in _result_shapes().iter_errors(data):
        where = list(error.instance_path)
        if len(where) >= 2 and isinstance(where[0], str):  # [value, field, ...]; a result that is no object is told apart
            found.setdefault(where[0], str(where[1]))
    return found


def result_shape_problem(value: str, entry: dict[str, Any]) -> str | None:
    """Why a result written by hand (a rule test's ``enrichment``) is not of the shape tiops writes, or None."""
    misshapen = _misshapen_fields({value: entry}).get(value)
    if misshapen is None:
        return None
    return f"{misshapen!r} of {value!r} is {str(entry[misshapen])[:40]!r}; tiops writes {_expected_shape(misshapen)}"


def _expected_shape(name: str) -> str:
    if name == "asn":
        return f"an integer from 0 to {MAX_ASN} (RFC 6793)"
    if name == "rdap_status":
        return "a list of strings"
    if name in _TIMESTAMP_FIELDS:
        return ("a UTC timestamp such as 2025-01-01T00:00:00Z (a fraction of a second without trailing zeros: "
                "2025-01-01T00:00:00.25Z)")
    return "a string"


def _entry_problem(section: str, path: Path, value: str, entry: Any, misshapen: str | None = None) -> str:
    if not isinstance(entry, dict):
        return f"the result for {value!r} must be an object"
    status = entry.get("status")
    if not isinstance(status, str) or status not in _STATUSES[section]:
        return f"the result for {value!r} has status {status!r}; expected one of {', '.join(sorted(_STATUSES[section]))}"
    if section == "whois" and not isinstance(entry.get("retrieved"), str):
        return f"the result for {value!r} has no 'retrieved' timestamp"
    if misshapen is not None:
        return (f"the result for {value!r} has {misshapen!r} of the wrong shape ({str(entry[misshapen])[:40]!r}); "
                f"tiops writes {_expected_shape(misshapen)}")
    if shard_name(value) + ".json" != path.name:
        return f"{value!r} belongs in {section}/{shard_name(value)}.json"
    from tiops.enrich.values import canonical_value

    written = canonical_value(value)
    if written is None:
        return f"{value!r} is not an IP address, CIDR block or domain name"
    return f"{value!r} is not in canonical form: write it {written!r}"


def _parse(path: Path, root: Path, files: LockSource) -> tuple[Any, Finding | None, bytes]:
    """A lock file's JSON, or the finding that says why not, and its bytes.

    Read like every input (tiops.inputs): a pipe or device in its place is a finding,
    never a hang.
    """
    try:
        text = files.read(os.fspath(path))
    except InputProblem as problem:
        return None, make_finding(problem.code, problem.message, Location(_relative(path, root), 1, 1)), b""
    try:
        return orjson.loads(text), None, text
    except orjson.JSONDecodeError as error:
        try:
            text.decode("utf-8")
        except UnicodeDecodeError as bad:
            # orjson names no place for a byte that is not UTF-8 (RFC 8259 section 8.1): the byte's own
            # line and column (characters before it on its line, plus one), so an editor can find it.
            line_start = text.rfind(b"\n", 0, bad.start) + 1
            column = len(text[line_start:bad.start].decode("utf-8", "replace")) + 1
            return None, _invalid(path, root, text.count(b"\n", 0, bad.start) + 1, column,
                                  f"not valid JSON: byte 0x{text[bad.start]:02x} is not UTF-8 (RFC 8259 section 8.1)"), text
        return None, _invalid(path, root, error.lineno, error.colno, f"not valid JSON: {error.msg}"), text


def _line_of(text: bytes, value: str) -> int:
    match = re.search(re.escape(orjson.dumps(value)) + rb":", text)
    return text.count(b"\n", 0, match.start()) + 1 if match else 1


def _relative(path: Path, root: Path) -> str:
    """``path`` as findings and messages name it: from the root, and printable (a name made by hand need not be UTF-8)."""
    return display_name(path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix())


def _invalid(path: Path, root: Path, line: int, column: int, message: str) -> Finding:
    return make_finding("TI150", f"enrichment lock {display_name(path.name)}: {message}",
                        Location(_relative(path, root), line, column))


def _not_canonical(path: Path, root: Path, text: bytes, canonical: bytes) -> Finding:
    """TI151 at the first byte where ``text`` differs from what tiops enrich writes (``canonical``)."""
    at = next((i for i, (a, b) in enumerate(zip(text, canonical, strict=False)) if a != b), min(len(text), len(canonical)))
    line_start = text.rfind(b"\n", 0, at) + 1
    column = len(text[line_start:at].decode("utf-8", "replace")) + 1
    return make_finding("TI151", f"enrichment lock {display_name(path.name)} is not in canonical form: it differs from what "
                        "'tiops enrich' writes (one value per line, sorted, compact JSON) from here on",
                        Location(_relative(path, root), text.count(b"\n", 0, at) + 1, column))


def newer_format_message(found: int) -> str:
    """What is said of a lock.json whose format is newer than this tiops reads."""
    return (f"lock.json has \"format\": {found}, written by a newer tiops (this one reads format {LOCK_FORMAT}); "
            "upgrade tiops to read or write this lock")


def write_lock(intel_path: Path, lock: EnrichmentLock) -> list[Path]:
    """Write ``lock`` in canonical form; only files whose bytes change are written.

    Each file is replaced atomically (write, then rename), so a run killed at any
    moment leaves every shard either as it was or as it was meant to be. Returns the
    files written or removed. Raises UsageError for a lock a newer tiops wrote (never
    downgraded: its results would be lost).
    """
    if lock.newer_format is not None:
        raise UsageError(f"enrichment lock {newer_format_message(lock.newer_format)}; it is left as it is",
                         hint="Upgrade tiops (pip install -U tiops).")
    directory = lock_directory(intel_path)
    touched: list[Path] = []
    if len(lock) == 0 and not directory.exists():
        return touched
    _make_folder(directory, parents=True)
    # lock.json's own file beside too: a run killed while writing it left .lock.json.PID.tmp here for good,
    # and `git add -A` after the run (the lock is committed) took it along.
    for leftover in directory.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
    for section in SECTIONS:
        shards: dict[str, dict[str, dict[str, Any]]] = {}
        for value, entry in lock.section(section).items():
            shards.setdefault(shard_name(value), {})[value] = entry
        folder = directory / section
        for leftover in folder.glob(".*.tmp") if folder.is_dir() else ():
            leftover.unlink(missing_ok=True)  # from a run killed while writing (see _replace)
        existing = {p.name for p in folder.glob("*.json")} if folder.is_dir() else set()
        for name, entries in shards.items():
            _make_folder(folder)
            if _replace(folder / f"{name}.json", render_shard(entries)):
                touched.append(folder / f"{name}.json")
        for stale in sorted(existing - {f"{name}.json" for name in shards}):
            (folder / stale).unlink()
            touched.append(folder / stale)
    # lock.json last: it names the database the geo results come from, and a run stopped between
    # (kill -9, a full disk) with it written first left the old database's results under the new
    # name, which the next run took as done (the lock mixed two databases for good). Written last,
    # the old name makes the next run read every geo result again.
    if _replace(directory / "lock.json", _render_meta(lock.meta)):
        touched.append(directory / "lock.json")
    return touched


def _make_folder(folder: Path, *, parents: bool = False) -> None:
    try:
        folder.mkdir(parents=parents, exist_ok=True)
    except OSError as error:  # a file where the folder goes (lock_layout_problems), or no write access
        raise LockWriteError(f"cannot make the enrichment lock folder {folder}: {error.strerror or error}") from None


def lock_layout_problems(intel_path: Path, root: Path) -> list[str]:
    """What stands where the lock's files and folders go and cannot be written over: a folder where a
    file goes, a file (or a link) where a folder goes. ``tiops enrich`` stops on them before it looks
    anything up, rather than losing its answers at the write; a link where a file goes is replaced."""
    directory = lock_directory(intel_path)
    problems: list[str] = []

    def folder_expected(path: Path) -> bool:
        if os.path.lexists(path) and (path.is_symlink() or not path.is_dir()):
            problems.append(f"{_relative(path, root)} is not a folder: the lock's files go in it")
            return False
        return path.is_dir()

    if not folder_expected(directory):
        return problems
    files = [directory / "lock.json"]
    for section in SECTIONS:
        if folder_expected(directory / section):
            files.extend(path for path in (directory / section).iterdir() if path.name.endswith(".json"))
    problems.extend(f"{_relative(path, root)} is a folder where a lock file goes"
                    for path in files if path.is_dir() and not path.is_symlink())
    return problems


def _replace(path: Path, content: bytes) -> bool:
    """Write ``content`` at ``path`` atomically, unless the file holds it already. A link there is
    replaced by the file (the lock holds files of its own, never links: TI108)."""
    if not path.is_symlink():
        try:
            if path.read_bytes() == content:
                return False
        except OSError:
            pass
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(content)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise LockWriteError(f"cannot write the enrichment lock file {path}: {error.strerror or error}") from None
    return True


class LockWriteError(TiopsError):
    """A lock file or folder could not be written (:func:`write_lock`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="Make the lock's place writable (see 'tiops validate' for what is in the way) "
                                       "and run 'tiops enrich' again: the results already written are kept.")
