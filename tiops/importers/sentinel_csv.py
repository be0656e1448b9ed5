"""Microsoft Sentinel's bulk-import CSV template: one indicator per row.

Columns: threatTypes, tags, name, description, confidence, revoked, validFrom,
validUntil, tlpLevel, severity, observableType, observableValue (only validFrom,
observableType and observableValue are required), plus MD5 / SHA1 / SHA256 /
SHA512 hash columns in the file-hash template. Rows whose first cell starts with
'#' (the template's comment row) are skipped.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from typing import Any

from tiops.importers import Candidate, ParsedInput, Rejection
from tiops.importers.repairs import normalise_timestamp
from tiops.stix import TIOPS_NAMESPACE, TLP2_MARKINGS, timestamp_key

REQUIRED_COLUMNS = ("validFrom", "observableType", "observableValue")
# observableType -> the object path its value goes in (STIX 2.1 section 9, Appendix of SCO properties).
OBSERVABLE_PATHS = {
    "ipv4-addr": "ipv4-addr:value",
    "ipv6-addr": "ipv6-addr:value",
    "domain-name": "domain-name:value",
    "url": "url:value",
    "email-addr": "email-addr:value",
    "mac-addr": "mac-addr:value",
    "user-account": "user-account:account_login",
    "windows-registry-key": "windows-registry-key:key",
    "mutex": "mutex:name",
    "directory": "directory:path",
    "file": "file:name",
    "autonomous-system": "autonomous-system:number",
}
# Hash columns of the file-hash template, normalised (case and dashes ignored) -> STIX hash name.
HASH_COLUMNS = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "sha512": "SHA-512"}
# Sentinel's TLP levels are TLP 1.0 names; 'white' became 'clear' in TLP 2.0.
TLP_LEVELS = {"white": "clear", "clear": "clear", "green": "green", "amber": "amber",
              "amber+strict": "amber+strict", "red": "red"}


def parse(raw: bytes, source: str) -> ParsedInput:
    result = ParsedInput()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        result.rejections.append(Rejection("file", (f"not UTF-8 ({error.reason} at byte {error.start})",)))
        return result
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        result.rejections.append(Rejection("file", ("the file is empty",)))
        return result
    columns = [name.strip() for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        result.rejections.append(Rejection("row 1", (f"the header has no column {', '.join(missing)}",)))
        return result
    for row_number, row in enumerate(reader, 2):
        if not any(cell.strip() for cell in row) or (row and row[0].lstrip().startswith("#")):
            continue
        result.total += 1
        position = f"row {row_number}"
        if len(row) > len(columns):
            result.rejections.append(Rejection(position, (f"{len(row)} cells but the header has {len(columns)} columns",)))
            continue
        cells = {name: value.strip() for name, value in zip(columns, row, strict=False)}
        indicator, reasons = _indicator(cells, source)
        if reasons:
            result.rejections.append(Rejection(position, tuple(reasons)))
        else:
            result.candidates.append(Candidate(position, indicator, versioned=False))
    return result


def _indicator(cells: dict[str, str], source: str) -> tuple[dict[str, Any], list[str]]:
    reasons: list[str] = []
    for name in REQUIRED_COLUMNS:
        if not cells.get(name):
            reasons.append(f"{name} is empty (required)")
    pattern = _pattern(cells, reasons) if cells.get("observableType") else None
    # Timestamps of any RFC 3339 precision and offset are written as STIX ones naming the
    # same instant; created and modified need milliseconds (STIX 2.1 section 3.2).
    times: dict[str, str] = {}
    for column in ("validFrom", "validUntil"):
        value = cells.get(column, "")
        normalised = normalise_timestamp(value) if value else None
        if value and (normalised is None or timestamp_key(normalised) is None):
            reasons.append(f"{column}: {value!r} is not an RFC 3339 timestamp like 2024-05-01T12:00:00.000Z")
        elif normalised:
            times[column] = normalised
    valid_from = times.get("validFrom", "")
    indicator: dict[str, Any] = {"type": "indicator", "spec_version": "2.1"}
    if pattern and valid_from:
        # The id depends on the source and the observable, so re-importing a row finds its file.
        seed = f"sentinel-csv|{source}|{pattern}"
        indicator["id"] = f"indicator--{uuid.uuid5(TIOPS_NAMESPACE, seed)}"
        # A row has no version of its own: validFrom stands in for created and modified.
        indicator["created"] = indicator["modified"] = normalise_timestamp(valid_from, milliseconds=True)
    if cells.get("name"):
        indicator["name"] = cells["name"]
    if cells.get("description"):
        indicator["description"] = cells["description"]
    if pattern:
        indicator["pattern"] = pattern
        indicator["pattern_type"] = "stix"
    indicator["valid_from"] = valid_from
    if times.get("validUntil"):
        indicator["valid_until"] = times["validUntil"]
    if threat_types := _list(cells.get("threatTypes", "")):
        indicator["indicator_types"] = threat_types
    if tags := _list(cells.get("tags", "")):
        indicator["labels"] = tags
    if confidence := cells.get("confidence"):
        if re.fullmatch(r"\d{1,3}", confidence) and int(confidence) <= 100:
            indicator["confidence"] = int(confidence)
        else:
            reasons.append(f"confidence: {confidence!r} is not a whole number from 0 to 100 (STIX 2.1 section 3.2)")
    if revoked := cells.get("revoked"):
        if revoked.lower() in ("true", "false"):
            indicator["revoked"] = revoked.lower() == "true"
        else:
            reasons.append(f"revoked: {revoked!r} is not true or false")
    if tlp := cells.get("tlpLevel"):
        level = TLP_LEVELS.get(tlp.lower().removeprefix("tlp:"))
        if level is None:
            reasons.append(f"tlpLevel: {tlp!r} is not one of white, clear, green, amber, amber+strict, red")
        else:
            indicator["object_marking_refs"] = [TLP2_MARKINGS[level][0]]
    if severity := cells.get("severity"):
        if severity.isdigit():
            indicator["x_severity"] = int(severity)  # no STIX property; kept as a custom one
        else:
            reasons.append(f"severity: {severity!r} is not a whole number")
    return indicator, reasons


def _pattern(cells: dict[str, str], reasons: list[str]) -> str | None:
    observable_type = cells["observableType"].lower()
    value = cells.get("observableValue", "")
    hashes = {
        HASH_COLUMNS[key]: cell
        for column, cell in cells.items()
        if (key := column.lower().replace("-", "").replace("_", "")) in HASH_COLUMNS and cell
    }
    if observable_type in ("file", "file-hash") and hashes:
        comparisons = [f"file:hashes.'{name}' = '{_escape(digest)}'" for name, digest in sorted(hashes.items())]
        return "[" + " OR ".join(comparisons) + "]"
    path = OBSERVABLE_PATHS.get(observable_type)
    if path is None:
        reasons.append(f"observableType: {cells['observableType']!r} is not one of {', '.join(sorted(OBSERVABLE_PATHS))}")
        return None
    if not value:
        return None
    if observable_type == "autonomous-system":
        if not value.isdigit():
            reasons.append(f"observableValue: {value!r} is not an autonomous system number")
            return None
        return f"[{path} = {value}]"
    return f"[{path} = '{_escape(value)}']"


def _escape(value: str) -> str:
    # STIX 2.1 section 9.3: in pattern string literals, ' and \ are escaped with \.
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _list(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(",") if part.strip()]
