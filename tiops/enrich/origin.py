"""Where each enrichment value of an object came from: which lock file, which database or server, when.

Read from the lock only (no network), for ``tiops explain``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiops.enrich.geo import is_private
from tiops.enrich.lock import LOCK_DIR, read_lock_for_build, shard_name
from tiops.enrich.values import object_enrich_values
from tiops.findings import Severity
from tiops.redact import redact

__all__ = ["enrichment_origins", "render_origins"]


def enrichment_origins(intel_path: Path, root: Path, data: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (value, section) the object names, with the lock file and the result's origin."""
    lock, findings = read_lock_for_build(intel_path, root)
    intel = intel_path.relative_to(root).as_posix() if intel_path.is_relative_to(root) else intel_path.as_posix()
    geo_meta = lock.meta.get("geo") or {}
    # A lock file that cannot be read holds no entry the build can use, but that is not "not in
    # the lock": the value may well be in it. Said as such, with the finding validate reports.
    unreadable = {finding.location.file: finding for finding in reversed(findings)
                  if finding.severity is Severity.ERROR}
    # A lock.json of a newer format leaves every shard unread (tiops.enrich.lock.read_lock).
    whole_lock = unreadable.get(f"{intel}/{LOCK_DIR}/lock.json") if lock.newer_format else None
    origins: list[dict[str, Any]] = []
    for kind, value in object_enrich_values(data):
        for section in ("geo", "whois") if kind == "ip" else ("whois",):
            entry = lock.section(section).get(value)
            status = entry.get("status") if entry else "not in the lock"
            if entry is None and section == "whois" and kind == "ip" and is_private(value):
                status = "private (never looked up)"
            lock_file = f"{intel}/{LOCK_DIR}/{section}/{shard_name(value)}.json"
            problem = None if entry is not None else (
                unreadable.get(lock_file) or unreadable.get(f"{intel}/{LOCK_DIR}/{section}") or whole_lock)
            if problem is not None:
                status = "unknown: the lock cannot be read"
            origin: dict[str, Any] = {"value": value, "section": section, "lock_file": lock_file, "status": status}
            if problem is not None:
                origin["problem"] = f"{problem.code} {problem.location.file}:{problem.location.line}:" \
                                    f"{problem.location.column}: {problem.message}"
            if entry is not None and section == "geo":
                origin["source"] = f"{_database_name(geo_meta)}, dated {geo_meta.get('date', '?')}"
            elif entry is not None:
                # A lock written before servers were kept without credentials may hold some: never shown.
                origin["source"] = f"RDAP {redact(str(entry.get('server', '?')))}"
                if entry.get("redirected_from"):  # the server that answered, reached by a redirect (RFC 7480 5.2)
                    origin["source"] += f" (redirected from {redact(str(entry['redirected_from']))})"
                if entry.get("registrant_server"):  # a thin registry's registrant, from the registrar it links to
                    origin["source"] += f"; the registrant from {redact(str(entry['registrant_server']))}"
                elif entry.get("registrant_error"):
                    origin["source"] += f"; no registrant from the registrar ({redact(str(entry['registrant_error']))})"
                origin["retrieved"] = entry.get("retrieved")
                if entry.get("queried"):
                    origin["queried"] = entry["queried"]
                if entry.get("error"):
                    origin["error"] = redact(str(entry["error"]))
            origins.append(origin)
    return origins


def _database_name(meta: dict[str, Any]) -> str:
    """The database a geo result came from, with the backend that read it unless its name says so
    already: the shipped one names its sources ("... (geoip2fast 1.2.2) + ip-location-db asn ...")."""
    database, backend = str(meta.get("database", "?")), str(meta.get("backend", "?"))
    return database if backend in database or backend == "shipped" else f"{database} ({backend})"


def render_origins(origins: list[dict[str, Any]]) -> str:
    if not origins:
        return ""
    lines = ["  enrichment:"]
    for origin in origins:
        line = f"    {origin['section']} {origin['value']}: {origin['status']}"
        if "source" in origin:
            line += f", from {origin['source']}"
        if origin.get("retrieved"):
            line += f", retrieved {origin['retrieved']}"
        if origin.get("queried"):
            line += f", as {origin['queried']}"
        if origin.get("error"):
            line += f" ({origin['error']})"
        # A value with no entry is in no lock file: the shard a lookup would write it to, said as such;
        # a private address is never looked up, so none.
        if "problem" in origin:
            line += f" ({origin['problem']}; 'tiops validate' names every such problem)"
        elif "source" in origin:
            line += f" [{origin['lock_file']}]"
        elif not str(origin["status"]).startswith("private"):
            line += f" [no entry; it would go in {origin['lock_file']}]"
        lines.append(line)
    return "\n".join(lines) + "\n"
