"""Microsoft Sentinel's bulk-import CSV template: one indicator per row.

Columns: threatTypes, tags, name, description, confidence, revoked, validFrom,
validUntil, tlpLevel, severity, observableType, observableValue (only validFrom,
observableType and observableValue are required), plus MD5 / SHA1 / SHA256 /
SHA512 hash columns in the file-hash template. Column names are read ignoring case
(partner exports write ``ValidFrom`` or ``OBSERVABLETYPE``). A row right under the
header whose first cell starts with '#' (the template's comment row) is skipped; any
other such row is rejected, so nothing is dropped without a word.

Cells keep their bytes (RFC 4180 section 2: spaces are part of a field), but where the
value's own syntax has no room for whitespace around it; taking it off there is a repair,
reported per cell (:func:`_cells`). A file is UTF-8, or UTF-16 or UTF-32 when it starts
with that encoding's byte order mark (:func:`_encoding`).
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from tiops.importers import Candidate, ParsedInput, Rejection
from tiops.importers.repairs import normalise_timestamp
from tiops.limits import MAX_FILE_BYTES, STIX_INTEGER_MAX
from tiops.stix import TIOPS_NAMESPACE, TLP2_MARKINGS, timestamp_key

REQUIRED_COLUMNS = ("validFrom", "observableType", "observableValue")
# Every column of Sentinel's templates tiops reads (the hash columns apart, HASH_COLUMNS).
KNOWN_COLUMNS = (*REQUIRED_COLUMNS, "validUntil", "name", "description", "threatTypes", "tags", "confidence",
                 "revoked", "tlpLevel", "severity")
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
# A known column whatever its case: the header name as partners write it -> the template's.
_COLUMN_NAMES = {name.lower(): name for name in KNOWN_COLUMNS}
# The hash an observableValue of a file row is, by its length in hex digits (STIX 2.1
# section 10.7, hash-algorithm-ov): a digest there is no file name.
_DIGEST_LENGTHS = {32: "MD5", 40: "SHA-1", 64: "SHA-256", 128: "SHA-512"}
_HASH_LENGTHS = {name: length for length, name in _DIGEST_LENGTHS.items()}
_HEX_DIGEST = re.compile("[0-9a-fA-F]{32}(?:[0-9a-fA-F]{8}|[0-9a-fA-F]{32}(?:[0-9a-fA-F]{64})?)?")
_FILE_TYPES = ("file", "file-hash")
# Sentinel's TLP levels are TLP 1.0 names; 'white' became 'clear' in TLP 2.0.
TLP_LEVELS = {"white": "clear", "clear": "clear", "green": "green", "amber": "amber",
              "amber+strict": "amber+strict", "red": "red"}


# A cell may be this long (Sentinel's own limit is far lower); longer ones reject their row.
MAX_CELL_CHARACTERS = 131_072
# The csv module stops with an error at its field size limit (131,072 by default), which
# would end the whole import; it reads up to the file size limit and the row check reports.
csv.field_size_limit(MAX_FILE_BYTES)


@dataclass(frozen=True)
class _Record:
    number: int  # counting the header as row 1
    first_line: int
    last_line: int
    cells: list[str] | None  # None: the record could not be parsed
    error: str = ""

    @property
    def position(self) -> str:
        lines = f" (lines {self.first_line}-{self.last_line})" if self.last_line > self.first_line else ""
        return f"row {self.number}{lines}"


def parse(raw: bytes, source: str) -> ParsedInput:
    result = ParsedInput()
    encoding = _encoding(raw)
    if encoding.refusal:
        return _refused(raw.decode(encoding.codec, "replace"), result, encoding.refusal)
    try:
        text = raw.decode(encoding.codec)
        undecodable = False
        if encoding.codec != "utf-8-sig":
            result.notes.append(f"the file is {encoding.name}, {encoding.order} as its byte order mark says: "
                                "read as such")
    except UnicodeDecodeError as error:
        if encoding.codec != "utf-8-sig":
            # A byte order mark, then no such text: every row is in doubt.
            return _refused(raw.decode(encoding.codec, "replace"), result,
                            f"the file starts with the byte order mark of {encoding.name} but is no {encoding.name} "
                            f"text from byte {error.start} on: save it again, as UTF-8")
        # One bad byte rejected every row before: the rows holding one are rejected, the others read.
        text = raw.decode(encoding.codec, "surrogateescape")
        undecodable = True
    records = _records(text)
    header = next(records, None)
    while header is not None and header.cells is not None and not any(cell.strip() for cell in header.cells):
        header = next(records, None)  # blank lines before the header are no header
    if header is None:
        result.rejections.append(Rejection("file", ("the file is empty",), rows=0))
        return result
    problems: list[str] = []
    written: list[str] = []
    if undecodable and header.cells is not None and any(_NOT_UTF8.search(cell) for cell in header.cells):
        problems = [f"the header is not {encoding.name}"]
    elif header.cells is None:
        problems = [f"the header cannot be read: {header.error}"]
    else:
        written = [name.strip() for name in header.cells]
        problems = _header_problems([_column_name(name) for name in written], written)
    if problems:
        # Without a header no row can be read: every row is rejected with it, so each is in
        # one figure of the summary (total = created + ... + rejected).
        if header.cells is None:  # a quote left open swallowed the rows below it into the header
            rows = sum(1 for line in text.splitlines()[header.first_line:] if line.strip())
        else:
            rows = sum(1 for record in records if _is_data(record))
        if rows:
            problems.append(f"every row under the header ({rows}) is rejected with it")
        result.total = rows
        result.rejections.append(Rejection("row 1", tuple(problems), rows=rows))
        return result
    columns = [_column_name(name) for name in written]
    ignored = [name for name in columns if name and name not in KNOWN_COLUMNS and name not in _HASH_NAMES]
    if ignored:  # said, never dropped without a word
        result.notes.append(f"column(s) {', '.join(map(_show, ignored))} of the header are not Sentinel's and are "
                            f"not imported (the columns read: {', '.join(KNOWN_COLUMNS)} and the hash columns)")
    digests_read = hashes_left = 0
    for record in records:
        if not _is_data(record):
            continue
        row = record.cells
        result.total += 1
        reasons = _record_problems(record, len(columns))
        if undecodable and row is not None and (bad := _undecodable_cells(row, encoding.name)):
            reasons = [*reasons, *bad]
        if reasons or row is None:
            result.rejections.append(Rejection(record.position, tuple(reasons)))
            continue
        cells, trimmed = _cells(columns, row)
        indicator, reasons = _indicator(cells, source)
        if reasons:
            result.rejections.append(Rejection(record.position, tuple(reasons)))
        else:
            result.candidates.append(Candidate(record.position, indicator, versioned=False, repairs=trimmed))
            if _digest_as_value(cells):
                digests_read += 1
            elif cells.get("observableType", "").lower() not in _FILE_TYPES and _hashes(cells):
                hashes_left += 1
    if hashes_left:  # said, never dropped without a word
        result.notes.append(f"{hashes_left} row(s) of another observableType than file have hash cells, which only "
                            "file rows read: those cells are not imported")
    if digests_read:
        result.notes.append(f"{digests_read} file row(s) hold a hash in observableValue (32, 40, 64 or 128 hex "
                            "digits): read as file:hashes.'MD5', 'SHA-1', 'SHA-256' or 'SHA-512', not as a file name")
    return result


def _is_data(record: _Record) -> bool:
    """Whether a record is a row to import: not blank, and not the template's comment row right under the header."""
    row = record.cells
    if row is None:
        return True
    return any(cell.strip() for cell in row) and not (record.number == 2 and row[0].lstrip().startswith("#"))


# The hash columns by their STIX names, which _column_name gives them.
_HASH_NAMES = frozenset(HASH_COLUMNS.values())


def _column_name(written: str) -> str:
    """The template's name of a header cell: known columns whatever their case, hash columns by their STIX name."""
    lowered = written.lower()
    return _COLUMN_NAMES.get(lowered) or HASH_COLUMNS.get(lowered.replace("-", "").replace("_", ""), written)


def _records(text: str) -> Iterator[_Record]:
    """Every record with the lines it spans; a record the csv module cannot parse comes with its error.

    ``strict`` makes a quote that is never closed, or text after a closing quote, an
    error instead of silently swallowing the rows that follow into one cell.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    number, line = 0, 0
    while True:
        first = line + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            number, line = number + 1, reader.line_num
            yield _Record(number, first, line, None, f"{error} (check the quotes: a quote opened in this row "
                                                     "is not closed where the row ends)")
            continue
        number, line = number + 1, reader.line_num
        yield _Record(number, first, line, row)


def _header_problems(columns: list[str], written: list[str]) -> list[str]:
    problems = []
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        problem = f"the header has no column {', '.join(missing)}"
        separator = next((mark for mark in (";", "\t", "|") if len(written) == 1 and mark in written[0]), None)
        if separator is not None:
            # Spreadsheets in many locales save "CSV" with semicolons; the template's separator is a comma.
            problem += (f" (it is one cell holding {separator!r}: the file looks separated by {separator!r}; "
                        "save it with commas, as Sentinel's template is)")
        problems.append(problem)
    seen: dict[str, int] = {}
    for index, name in enumerate(columns, 1):
        if name and name in seen:
            first = seen[name]
            also = "" if written[first - 1] == written[index - 1] else \
                f" (written {_show(written[first - 1])} and {_show(written[index - 1])})"
            problems.append(f"the header names column {_show(name)} twice{also} (columns {first} and {index}): "
                            "which one holds the value is ambiguous")
        seen.setdefault(name, index)
    return problems


def _record_problems(record: _Record, width: int) -> list[str]:
    row = record.cells
    if row is None:
        return [f"cannot be read as CSV: {record.error}"]
    if row[0].lstrip().startswith("#"):
        return ["starts with '#' but is not the template's comment row (row 2); it is not skipped: "
                "remove it, or move the comment to row 2"]
    if len(row) > width:
        return [f"{len(row)} cells but the header has {width} columns"]
    reasons = []
    for index, cell in enumerate(row, 1):
        if len(cell) > MAX_CELL_CHARACTERS:
            reasons.append(f"cell {index} has {len(cell)} characters, more than the limit of {MAX_CELL_CHARACTERS}")
        elif "\n" in cell and any(line.count(",") >= width - 1 for line in cell.splitlines()[1:]):
            # A cell may hold line breaks, but a line of it that reads like a whole row
            # usually means a quote was left open and swallowed the rows below it.
            reasons.append(f"cell {index} runs over lines {record.first_line}-{record.last_line} and holds what "
                           "looks like whole rows: a quote opened in this row is probably not closed")
    return reasons


# A byte that is not UTF-8, as surrogateescape decoding keeps it.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


def _undecodable_cells(row: list[str], encoding: str) -> list[str]:
    return [f"cell {index} is not {encoding} (byte 0x{ord(found[0]) - 0xDC00:02x})"
            for index, cell in enumerate(row, 1) if (found := _NOT_UTF8.search(cell)) is not None]


class _Encoding(NamedTuple):
    codec: str  # the Python codec that reads the file
    name: str  # as messages name it: UTF-8, UTF-16 or UTF-32
    order: str = ""  # "little endian" or "big endian" (UTF-16 and UTF-32)
    refusal: str = ""  # why the file is not read, when it is not


# Byte order marks (the Unicode Standard, section 23.8), UTF-32's first: its little-endian
# mark starts with UTF-16's. The codecs named read the mark and leave it out of the text.
_BYTE_ORDER_MARKS = ((b"\xff\xfe\x00\x00", _Encoding("utf-32", "UTF-32", "little endian")),
                     (b"\x00\x00\xfe\xff", _Encoding("utf-32", "UTF-32", "big endian")),
                     (b"\xff\xfe", _Encoding("utf-16", "UTF-16", "little endian")),
                     (b"\xfe\xff", _Encoding("utf-16", "UTF-16", "big endian")))


def _encoding(raw: bytes) -> _Encoding:
    """How the file's text is encoded: UTF-8 (with or without a byte order mark), or UTF-16 or
    UTF-32 as a byte order mark says.

    RFC 4180 lets a CSV file be in any character set (its MIME type's charset parameter),
    and spreadsheets save "Unicode text" as UTF-16 with a byte order mark (Excel: little
    endian), which says the encoding and the byte order: reading it so is no guess.
    Without a mark, a NUL beside the first character (no CSV text holds NUL) is UTF-16 or
    UTF-32 whose byte order would be a guess: refused, its codec the one that counts its rows.
    """
    for mark, encoding in _BYTE_ORDER_MARKS:
        if raw.startswith(mark):
            return encoding
    if len(raw) >= 2 and (raw[0] == 0) != (raw[1] == 0):
        order = "big endian" if raw[0] == 0 else "little endian"
        return _Encoding(f"utf-16-{order[0]}e", "UTF-16", order, (
            f"the file looks like UTF-16 or UTF-32 text ({order}) without a byte order mark, whose byte order "
            "would be a guess: save it as UTF-8, or as UTF-16 with its byte order mark (Excel's \"Unicode Text\")"))
    return _Encoding("utf-8-sig", "UTF-8")


def _refused(text: str, result: ParsedInput, problem: str) -> ParsedInput:
    """The whole file rejected for ``problem``, each of its rows counted (as read from ``text``)."""
    rows = max(sum(1 for record in _records(text.replace("\0", "")) if _is_data(record)) - 1, 0)  # less the header
    reasons = (problem, f"every row under the header ({rows}) is rejected with it") if rows else (problem,)
    result.total = rows
    result.rejections.append(Rejection("row 1", reasons, rows=rows))
    return result


def _show(value: str, limit: int = 80) -> str:
    """A cell value quoted for a message, cut short: cells can be long. As written when every
    character is printable (a backslash stays one); otherwise as Python escapes it, so a
    control character or a line break shows."""
    shown = value if len(value) <= limit else value[:limit]
    quoted = f"'{shown}'" if shown.isprintable() and "'" not in shown else repr(shown)
    return quoted if shown is value else f"{quoted}... ({len(value)} characters)"


# Columns whose values have a syntax with no room for whitespace around them: RFC 3339
# timestamps, whole numbers, true/false, names from a fixed list, hex digests.
_SYNTAX_COLUMNS = frozenset({"validFrom", "validUntil", "confidence", "revoked", "tlpLevel", "severity",
                             "observableType", *_HASH_NAMES})
# Observable types whose values hold no whitespace at their ends (STIX 2.1 section 6: addresses,
# domain names, RFC 3986 URLs, AS numbers). A file or directory name, a mutex, an account login or
# a registry key may begin or end with a space: their values are kept as written.
_TRIMMED_OBSERVABLES = frozenset({"ipv4-addr", "ipv6-addr", "domain-name", "url", "email-addr", "mac-addr",
                                  "autonomous-system"})


def _cells(columns: list[str], row: list[str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """The row's cells by column, and the repairs made to them.

    Free text (name, description) keeps every byte as written: a space there is the
    partner's (RFC 4180 section 2: "Spaces are considered part of a field and should not
    be ignored"). Whitespace around a value whose syntax has no room for it (a timestamp, a
    number, an IP address, a digest: :data:`_SYNTAX_COLUMNS`, :data:`_TRIMMED_OBSERVABLES`)
    is a spreadsheet's, not part of the value: it is removed, and each such cell is reported
    as a repair (docs/import.md). A cell of whitespace only is an empty cell there. The
    lists (threatTypes, tags) are split at commas, the spaces around each item being part
    of the separator (Sentinel's own example writes "demo, csv").
    """
    cells = dict(zip(columns, row, strict=False))
    kind = cells.get("observableType", "").strip().lower()
    repairs: list[str] = []
    for name, value in cells.items():
        if name in _SYNTAX_COLUMNS or (name == "observableValue" and (
                kind in _TRIMMED_OBSERVABLES or (kind in _FILE_TYPES and _HEX_DIGEST.fullmatch(value.strip())))):
            stripped = value.strip()
            if stripped != value:
                cells[name] = stripped
                if stripped:
                    repairs.append(f"{name}: whitespace around {_show(stripped)} removed")
    return cells, tuple(repairs)


def _digest_as_value(cells: dict[str, str]) -> bool:
    """Whether a file row's observableValue is a hash digest, with no hash column filled."""
    return (cells.get("observableType", "").lower() in _FILE_TYPES and not _hashes(cells)
            and _HEX_DIGEST.fullmatch(cells.get("observableValue", "")) is not None)


def _hashes(cells: dict[str, str]) -> dict[str, str]:
    """The filled hash columns of a row, by STIX hash name."""
    return {name: cell for name, cell in cells.items() if name in _HASH_NAMES and cell}


def _indicator(cells: dict[str, str], source: str) -> tuple[dict[str, Any], list[str]]:
    reasons: list[str] = []
    for name in REQUIRED_COLUMNS:
        if name == "observableValue" and cells.get("observableType", "").lower() in _FILE_TYPES and _hashes(cells):
            continue  # the file-hash template: the hashes are the observable, a file name is optional
        if not cells.get(name, "").strip():  # a name of spaces only names nothing
            reasons.append(f"{name} is {'blank' if cells.get(name) else 'empty'} (required)")
    pattern = _pattern(cells, reasons) if cells.get("observableType") else None
    # Timestamps of any RFC 3339 precision and offset are written as STIX ones naming the
    # same instant; created and modified need milliseconds (STIX 2.1 section 3.2).
    times: dict[str, str] = {}
    for column in ("validFrom", "validUntil"):
        value = cells.get(column, "")
        normalised = normalise_timestamp(value) if value else None
        if value and (normalised is None or timestamp_key(normalised) is None):
            reasons.append(f"{column}: {_show(value)} is not an RFC 3339 timestamp like 2024-05-01T12:00:00.000Z")
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
        if re.fullmatch(r"[0-9]{1,3}", confidence) and int(confidence) <= 100:
            indicator["confidence"] = int(confidence)
        else:
            reasons.append(f"confidence: {_show(confidence)} is not a whole number from 0 to 100 (STIX 2.1 section 3.2)")
    if revoked := cells.get("revoked"):
        if revoked.lower() in ("true", "false"):
            indicator["revoked"] = revoked.lower() == "true"
        else:
            reasons.append(f"revoked: {_show(revoked)} is not true or false")
    if tlp := cells.get("tlpLevel"):
        level = TLP_LEVELS.get(tlp.lower().removeprefix("tlp:"))
        if level is None:
            reasons.append(f"tlpLevel: {_show(tlp)} is not one of white, clear, green, amber, amber+strict, red")
        else:
            indicator["object_marking_refs"] = [TLP2_MARKINGS[level][0]]
    if severity := cells.get("severity"):
        # ASCII digits only: str.isdigit() accepts '²', which int() refuses.
        if re.fullmatch(r"[0-9]{1,16}", severity) and int(severity) <= STIX_INTEGER_MAX:
            indicator["x_severity"] = int(severity)  # no STIX property; kept as a custom one
        else:
            reasons.append(f"severity: {_show(severity)} is not a whole number from 0 to {STIX_INTEGER_MAX}")
    return indicator, reasons


def _pattern(cells: dict[str, str], reasons: list[str]) -> str | None:
    observable_type = cells["observableType"].lower()
    value = cells.get("observableValue", "")
    hashes = _hashes(cells)
    if observable_type in _FILE_TYPES and not hashes and _HEX_DIGEST.fullmatch(value):
        hashes, value = {_DIGEST_LENGTHS[len(value)]: value}, ""
    if observable_type in _FILE_TYPES and hashes:
        wrong = [f"{name}: {_show(digest)} is not {'an' if name == 'MD5' else 'a'} {name} hash ({_HASH_LENGTHS[name]} hexadecimal digits)"
                 for name, digest in sorted(hashes.items())
                 if len(digest) != _HASH_LENGTHS[name] or not _HEX_DIGEST.fullmatch(digest)]
        if wrong:  # said of the cell as written, not of the pattern it would have been escaped into
            reasons.extend(wrong)
            return None
        comparisons = [f"file:hashes.'{name}' = '{_escape(digest)}'" for name, digest in sorted(hashes.items())]
        any_hash = " OR ".join(comparisons)
        if not value or value.lower() in (digest.lower() for digest in hashes.values()):
            return f"[{any_hash}]"
        # The row names the file as well: the pattern describes that file, by any of its
        # hashes and by its name (STIX 2.1 section 9.5: AND binds tighter than OR).
        named = f"({any_hash})" if len(comparisons) > 1 else any_hash
        return f"[{named} AND file:name = '{_escape(value)}']"
    if observable_type == "file-hash":
        reasons.append("observableType 'file-hash' needs a hash column (MD5, SHA1, SHA256 or SHA512) filled")
        return None
    path = OBSERVABLE_PATHS.get(observable_type)
    if path is None:
        reasons.append(f"observableType: {_show(cells['observableType'])} is not one of {', '.join(sorted(OBSERVABLE_PATHS))}")
        return None
    if not value:
        return None
    if observable_type == "autonomous-system":
        if not re.fullmatch(r"[0-9]{1,10}", value) or int(value) > 2**32 - 1:
            # RFC 6793: AS numbers are 32-bit; ASCII digits only ('²'.isdigit() is True).
            reasons.append(f"observableValue: {_show(value)} is not an autonomous system number")
            return None
        return f"[{path} = {value}]"
    return f"[{path} = '{_escape(value)}']"


def _escape(value: str) -> str:
    # STIX 2.1 section 9.3: in pattern string literals, ' and \ are escaped with \.
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _list(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(",") if part.strip()]
