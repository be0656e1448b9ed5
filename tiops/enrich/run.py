"""An enrichment run: look values up, write the lock, prune what nothing references.

Resumable: geo results and pruning are written first; RDAP results are written
every few answers (each shard replaced atomically, tiops.enrich.lock). A killed
run keeps what it wrote, and the next run asks only for what is still missing
or failed, so repeated runs converge on the same lock.

An RDAP answer in the lock about another name or network than its value
(tiops.enrich.subject: one an older tiops wrote without checking) counts as no
answer: it is asked again, and a failed lookup replaces it rather than keeping it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tiops.buildcache import load_intel
from tiops.config import usable_config
from tiops.enrich.geo import GeoDatabase, geo_entries, is_private, open_geo_database
from tiops.enrich.lock import (
    EnrichmentLock,
    lock_layout_problems,
    newer_format_message,
    read_lock,
    write_lock,
)
from tiops.enrich.subject import locked_answer_for_other, records_subject
from tiops.enrich.values import EnrichValue, Kind, enrich_values
from tiops.errors import TiopsError, UsageError
from tiops.findings import Finding, Severity
from tiops.load import IntelObject, Repo
from tiops.progress import Progress, no_progress
from tiops.stix import shifted

if TYPE_CHECKING:
    from tiops.enrich.rdap import RdapClient

__all__ = ["EnrichReport", "LockCheck", "check_lock", "enrich_repo"]


@dataclass
class EnrichReport:
    values: int = 0  # values the selected intel names
    geo_looked_up: int = 0
    whois_queried: int = 0  # values looked up over RDAP
    whois_skipped: int = 0  # with --offline: values a run with RDAP would have looked up
    whois_requests: int = 0  # HTTP requests that took (host names under one registered domain share one)
    whois_by_status: dict[str, int] = field(default_factory=dict)
    pruned: int = 0
    # Refreshed values whose lookup failed this time: their earlier answer (found or not-found) stays
    # in the lock, as old as it was, so an outage never turns good results into failures.
    kept_after_failure: int = 0
    # Earlier answers about another name or network than their value (tiops.enrich.subject), or
    # unable to show they were not while the server now answers about another: not kept when the
    # lookup failed, the failure recorded instead.
    dropped_foreign: int = 0
    files: list[Path] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # about the lock as it was read
    database: str = ""
    # Intel files that did not load (a YAML error, an unreadable file): what they name is unknown,
    # so nothing was pruned this run rather than results they may still name.
    unloaded: list[str] = field(default_factory=list)
    # Why the values ingestion rules write were not looked up (invalid rules, no as-of time), or "".
    rules_not_applied: str = ""


# What a server said of a value, as opposed to a lookup that got no usable answer ("failed").
_ANSWERS = frozenset({"found", "not-found"})


def _under(file: str, wanted: list[str]) -> bool:
    return any(w in (".", "") or file == w or file.startswith(w.rstrip("/") + "/") for w in wanted)


def _older_than(entry: dict[str, Any], cutoff: datetime | None) -> bool:
    if cutoff is None:
        return False
    retrieved = entry.get("retrieved")
    try:
        moment = datetime.fromisoformat(str(retrieved).replace("Z", "+00:00"))
    except ValueError:
        return True
    return moment <= cutoff


def enrich_repo(root: Path, *, offline: bool = False, refresh: timedelta | None = None, refresh_geo: bool = False,
                paths: list[str] | None = None,
                geo_database: GeoDatabase | None = None, rdap: RdapClient | None = None,
                now: Callable[[], datetime] = lambda: datetime.now(UTC), flush_seconds: float = 1.0,
                progress: Progress = no_progress, cache: bool = True) -> EnrichReport:
    """Enrich the values named by the intel under ``paths`` (default: all) and rewrite the lock.

    ``refresh`` re-queries RDAP results at least that old (``timedelta(0)``: all of them);
    ``refresh_geo`` reads every geo result again (a bare ``--refresh``).
    Values no object names any more are pruned whatever ``paths`` says. ``cache``: read the
    intel through the build cache (tiops.buildcache.load_intel).
    """
    # With errors, tiops.yaml would load as every default: the public IANA bootstrap instead of
    # the RDAP server the team named, asked about its indicators.
    config = usable_config(root, "looked up")
    repo = load_intel(root, cache=cache)
    intel = repo.config.intel_path
    settings: dict[str, Any] = dict(config.enrichment)
    # One run at a time: two would ask every registry twice, and each would delete the other's
    # half-written shard (write_lock clears what a killed run left), failing it at its next write.
    with _one_run_at_a_time(root):
        in_the_way = lock_layout_problems(intel, root)
        if in_the_way:  # stopped before anything is looked up: its answers could not be kept
            raise UsageError("; ".join(in_the_way), hint="Remove what is in the way (the lock's files and folders "
                                                          "are tiops enrich's own) and run it again.")
        lock, findings = read_lock(intel, root)
        _refuse_newer(lock)
        report = EnrichReport(findings=findings)
        objects, report.rules_not_applied = _as_authored_and_as_ruled(repo)
        every = enrich_values(obj.data for obj in objects)
        wanted = every if not paths else enrich_values(obj.data for obj in objects if _under(obj.file, paths))
        report.values = len(wanted)

        report.unloaded = sorted({f.location.file for f in repo.findings if f.severity is Severity.ERROR})
        if not report.unloaded and not report.rules_not_applied:
            pruned_geo = [v for v in lock.geo if ("ip", v) not in every]
            pruned_whois = [v for v in lock.whois if ("ip", v) not in every and ("domain", v) not in every]
            for value in pruned_geo:
                del lock.geo[value]
            for value in pruned_whois:
                del lock.whois[value]
            report.pruned = len(pruned_geo) + len(pruned_whois)

        database = geo_database or open_geo_database(root, dict(settings.get("geo") or {}))
        identity = {"backend": database.backend, "database": database.database, "date": database.date}
        report.database = f"{database.database}, {database.date}"
        changed_database = lock.meta.get("geo") != identity
        lock.meta = {**lock.meta, "geo": identity}
        # A new database re-reads every IP, not only those under PATH: the lock never mixes two databases.
        ips = sorted(v for kind, v in (every if changed_database else wanted) if kind == "ip")
        # Geo results are dated by their database, not by when they were read: only a bare --refresh
        # reads them again; --refresh=AGE (0d too) is for RDAP answers that age.
        todo = ips if changed_database or refresh_geo else [v for v in ips if v not in lock.geo]
        for done, (value, entry) in enumerate(geo_entries(database, todo), len(ips) - len(todo) + 1):
            lock.geo[value] = entry
            if done % 5000 == 0 or done == len(ips):
                progress("geo", done, len(ips))
        if ips and not todo:
            progress("geo", len(ips), len(ips))
        report.geo_looked_up = len(todo)
        report.files.extend(write_lock(intel, lock))

        if offline:
            report.whois_skipped = len(_whois_todo(lock, wanted, refresh, now))
        else:
            _whois(root, intel, lock, wanted, settings, refresh, now, rdap, flush_seconds, report, progress)
        return report


@dataclass
class LockCheck:
    """Whether the lock holds what ``tiops enrich`` would write for the intel as it is (a CI gate),
    found without the network and without writing: what a run would look up, and what it would prune."""

    values: int = 0  # values the intel names
    missing_geo: list[str] = field(default_factory=list)  # IP values with no GeoLocation result
    missing_whois: list[str] = field(default_factory=list)  # values with no RDAP entry (not checked --offline)
    # Values whose RDAP answer is about another name or network (tiops.enrich.subject): a run asks again.
    foreign_whois: list[str] = field(default_factory=list)
    failed_whois: int = 0  # RDAP entries of failed lookups: kept, and retried by the next run
    stale: list[str] = field(default_factory=list)  # "geo VALUE" / "whois VALUE": results nothing names
    database: str = ""  # the GeoLocation database this tiops reads, "name, date"
    locked_database: str = ""  # the one the lock's results came from, when it is another
    unloaded: list[str] = field(default_factory=list)  # as EnrichReport.unloaded: stale results unknown
    rules_not_applied: str = ""

    @property
    def up_to_date(self) -> bool:
        return not (self.missing_geo or self.missing_whois or self.foreign_whois or self.stale or self.locked_database
                    or self.unloaded or self.rules_not_applied)


@contextmanager
def _one_run_at_a_time(root: Path) -> Iterator[None]:
    """Hold an advisory lock (flock) on the repository's folder while a run reads and writes the lock,
    or stop at once, before anything is read or asked, when another run holds it.

    flock on the folder itself creates no file to commit or leave behind, and the system releases
    it when the run ends in any way (kill -9 included), so no stale lock can stop the next run.
    """
    import fcntl

    descriptor = os.open(root, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError("another 'tiops enrich' is running in this repository; nothing was looked up or "
                             "written", hint="Wait for it to finish: its results are in the lock when it "
                                             "does, and a run after it asks only for what is missing.") from None
        except OSError:
            pass  # a file system that keeps no such locks (some network ones): the run goes unguarded
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _refuse_newer(lock: EnrichmentLock) -> None:
    """Stop before anything is looked up or written when a newer tiops wrote the lock: this one
    would rewrite it in its own, older format and lose what the newer one keeps."""
    if lock.newer_format is not None:
        raise UsageError(f"enrichment lock {newer_format_message(lock.newer_format)}; nothing was looked up or written",
                         hint="Upgrade tiops (pip install -U tiops), or run the tiops that wrote the lock.")


def check_lock(root: Path, *, offline: bool = False, geo_database: GeoDatabase | None = None,
               cache: bool = True) -> LockCheck:
    """What ``tiops enrich`` (``offline``: ``tiops enrich --offline``) would change in the lock now.

    A pull request that adds an indicator without running ``tiops enrich`` compiles without its
    enrichment and rules that read it see nothing: this tells CI so. Nothing is looked up or written.
    """
    config = usable_config(root, "checked")
    repo = load_intel(root, cache=cache)
    intel = repo.config.intel_path
    lock, _ = read_lock(intel, root)
    _refuse_newer(lock)
    check = LockCheck()
    objects, check.rules_not_applied = _as_authored_and_as_ruled(repo)
    every = enrich_values(obj.data for obj in objects)
    check.values = len(every)
    check.unloaded = sorted({f.location.file for f in repo.findings if f.severity is Severity.ERROR})
    if not check.unloaded and not check.rules_not_applied:
        check.stale = [*(f"geo {v}" for v in sorted(lock.geo) if ("ip", v) not in every),
                       *(f"whois {v}" for v in sorted(lock.whois) if ("ip", v) not in every and ("domain", v) not in every)]
    ips = sorted(value for kind, value in every if kind == "ip")
    check.missing_geo = [value for value in ips if value not in lock.geo]
    if ips or lock.geo:
        database = geo_database or open_geo_database(root, dict(dict(config.enrichment).get("geo") or {}))
        identity = {"backend": database.backend, "database": database.database, "date": database.date}
        check.database = f"{database.database}, {database.date}"
        locked = lock.meta.get("geo")
        if lock.geo and locked != identity:
            check.locked_database = (f"{locked.get('database', '?')}, {locked.get('date', '?')}"
                                     if isinstance(locked, dict) else "no recorded database")
    if not offline:
        for kind, value in sorted(every):
            entry = lock.whois.get(value)
            if entry is None and not (kind == "ip" and is_private(value)):
                check.missing_whois.append(value)
            elif entry is not None and entry.get("status") == "failed":
                check.failed_whois += 1
            elif entry is not None and locked_answer_for_other(kind, value, entry) is not None:
                check.foreign_whois.append(value)
    return check


def _as_authored_and_as_ruled(repo: Repo) -> tuple[list[IntelObject], str]:
    """The objects whose values are looked up: as written (rules may read their enrichment) and,
    when an ingestion rule changes what values are read from (a pattern, a value), as the rules
    leave them, whose enrichment the bundle carries; with why the second could not be had."""
    from tiops.enrich.attach import ATTACH_READS
    from tiops.rules import RulesInvalid, apply_repo_rules
    from tiops.rules.engine import changed_properties
    from tiops.rules.model import load_rules

    rule_set, rule_problems = load_rules(repo.config)
    if any(f.severity is Severity.ERROR for f in rule_problems):
        # What a broken rule would write is unknown, as is what a file that does not load names.
        return repo.objects, "the ingestion rules have errors ('tiops validate' shows them)"
    if not changed_properties(rule_set) & (ATTACH_READS - {"extensions"}):
        return repo.objects, ""
    try:
        outcome = apply_repo_rules(repo)[0]
    except (RulesInvalid, TiopsError) as error:
        return repo.objects, str(error)
    authored = {id(obj) for obj in repo.objects}
    return [*repo.objects, *(obj for obj in outcome.objects if id(obj) not in authored)], ""


def _whois_todo(lock: EnrichmentLock, wanted: set[EnrichValue], refresh: timedelta | None,
                now: Callable[[], datetime]) -> list[EnrichValue]:
    """The values to ask RDAP about: those with no answer in the lock, a failed one, one older than
    ``refresh``, or one about another name or network."""
    cutoff = shifted(now(), -refresh) if refresh is not None else None
    todo: list[EnrichValue] = []
    for kind, value in sorted(wanted):
        if kind == "ip" and is_private(value):
            continue  # no registry answers for private and reserved ranges (RFC 6890)
        entry = lock.whois.get(value)
        if (entry is None or entry.get("status") == "failed" or _older_than(entry, cutoff)
                or locked_answer_for_other(kind, value, entry) is not None):  # another name's answer is none
            todo.append((kind, value))
    return todo


def _whois(root: Path, intel: Path, lock: EnrichmentLock, wanted: set[EnrichValue], settings: dict[str, Any],
           refresh: timedelta | None, now: Callable[[], datetime], rdap: RdapClient | None, flush_seconds: float,
           report: EnrichReport, progress: Progress) -> None:
    todo = _whois_todo(lock, wanted, refresh, now)
    if not todo:
        return
    from tiops.enrich.rdap import RdapClient, rdap_settings  # requests only when RDAP is asked

    client = rdap or RdapClient(rdap_settings(root, dict(settings.get("rdap") or {})), now=now)
    last_flush = time.monotonic()
    requests_before = client.requests
    try:
        for done, (kind, value) in enumerate(todo, 1):
            entry = client.lookup(kind, value)
            report.whois_requests = client.requests - requests_before
            earlier = lock.whois.get(value)
            if entry.get("status") == "failed" and earlier is not None and earlier.get("status") in _ANSWERS:
                if _keeps(kind, value, earlier, entry):
                    report.kept_after_failure += 1
                else:
                    report.dropped_foreign += 1
                    lock.whois[value] = entry
            else:
                lock.whois[value] = _with_earlier_registrant(entry, earlier)
            report.whois_queried += 1
            status = str(entry.get("status"))
            report.whois_by_status[status] = report.whois_by_status.get(status, 0) + 1
            if time.monotonic() - last_flush >= flush_seconds or done == len(todo):
                report.files.extend(write_lock(intel, lock))
                last_flush = time.monotonic()
            progress("whois", done, len(todo))
    except KeyboardInterrupt:
        # Ctrl-C: the answers had since the last write are kept too (they cost registry requests);
        # each shard is replaced atomically, so a second Ctrl-C here leaves it whole, old or new.
        write_lock(intel, lock)
        raise


# What a thin registry's answer takes from the registrar it links to (tiops.enrich.rdap).
_REGISTRAR_FIELDS = ("registrant_organization", "registrant_country", "abuse_email")


def _with_earlier_registrant(entry: dict[str, Any], earlier: dict[str, Any] | None) -> dict[str, Any]:
    """``entry``, a registry's new answer whose registrar did not answer this time, with the
    registrant the registrar gave before: as for a failed lookup (:func:`_keeps`), an outage of the
    registrar must not turn a known registrant into none. Anything else is ``entry`` as it is."""
    if (entry.get("status") != "found" or "registrant_error" not in entry or earlier is None
            or earlier.get("status") != "found" or "registrant_server" not in earlier
            or earlier.get("ldh_name") != entry.get("ldh_name")):
        return entry
    kept = {key: earlier[key] for key in _REGISTRAR_FIELDS if key in earlier and key not in entry}
    return {**{key: item for key, item in entry.items() if key != "registrant_error"}, **kept,
            "registrant_server": earlier["registrant_server"]}


def _keeps(kind: Kind, value: str, earlier: dict[str, Any], failure: dict[str, Any]) -> bool:
    """Whether a failed lookup leaves the earlier answer (found or not-found) in the lock.

    It does, as old as it was: an outage must not turn good results into failures. But not an
    answer about another name or network than ``value`` (RFC 9083 sections 5.3, 5.4), which an
    older tiops locked without checking; nor a found answer that cannot show what it was about
    (no ``ldh_name``: written before tiops kept it) when the server now answers about another
    name: that is most likely the answer it was. Either is replaced by the failure, which the
    next run asks again. A found answer that shows it was about ``value`` stays, whatever the
    server says now.
    """
    if locked_answer_for_other(kind, value, earlier) is not None:
        return False
    return not (earlier.get("status") == "found" and not records_subject(kind, earlier)
                and locked_answer_for_other(kind, value, failure) is not None)
