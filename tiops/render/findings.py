"""Render findings as text for people, JSON for scripts, GitHub workflow commands and SARIF.

Every renderer is a pure function from findings to a string: it sorts the findings
itself, so the output does not depend on the order validators produced them in, and
rendering the same findings twice gives the same bytes (CI diffs and code scanning rely
on that).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Protocol
from urllib.parse import quote

from tiops.codes import CODES
from tiops.errors import UsageError
from tiops.findings import Finding, Severity, count_by_severity
from tiops.render.markdown import markdown_code, markdown_text
from tiops.render.names import printable

# --- shared helpers -----------------------------------------------------------------


def _full_sort_key(finding: Finding) -> tuple[str, int, int, str, str, int, str, str]:
    # Finding.sort_key orders by file, line, column, code and message; the extra fields
    # break the remaining ties so that no two distinct findings depend on input order.
    return (
        *finding.sort_key(),
        int(finding.severity),
        finding.stix_id or "",
        finding.hint,
    )


def _sorted(findings: Sequence[Finding]) -> list[Finding]:
    return sorted(findings, key=_full_sort_key)


def _slug(code: str) -> str:
    entry = CODES.get(code)
    return entry.slug if entry else ""


def _code_label(code: str) -> str:
    """``TI204 invalid-timestamp``; just the code for one missing from the catalogue."""
    slug = _slug(code)
    return f"{code} {slug}" if slug else code


def _dump_json(document: Any) -> str:
    # Sorted keys and a fixed indent make the output byte-for-byte reproducible;
    # ensure_ascii=False keeps non-ASCII names readable (the output is UTF-8).
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# --- text -----------------------------------------------------------------------------

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_SEVERITY_COLORS: dict[Severity, str] = {
    Severity.ERROR: "\x1b[1;31m",
    Severity.WARNING: "\x1b[1;33m",
    Severity.INFO: "\x1b[1;36m",
}
_TEXT_INDENT = "    "


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def _text_summary(findings: Sequence[Finding]) -> str:
    if not findings:
        return "no findings"
    counts = count_by_severity(list(findings))
    files = len({finding.location.file for finding in findings})
    return (
        f"{_plural(counts[Severity.ERROR], 'error', 'errors')}, "
        f"{_plural(counts[Severity.WARNING], 'warning', 'warnings')}, "
        f"{counts[Severity.INFO]} info in {_plural(files, 'file', 'files')}"
    )


# From this many findings on, text output ends with their count by code before the summary line.
TEXT_TALLY_FROM = 50


def render_text(findings: Sequence[Finding], *, color: bool = False) -> str:
    """One block per finding, then a summary line (after a count by code, past :data:`TEXT_TALLY_FROM`).

    ``intel/x.yaml:12:5: error TI204 invalid-timestamp: MESSAGE (indicator--…)`` followed
    by an indented ``hint:`` line. ANSI colours are added only when ``color`` is true.
    """

    def paint(text: str, style: str) -> str:
        return f"{style}{text}{_RESET}" if color else text

    lines: list[str] = []
    for finding in _sorted(findings):
        # One line per finding, and the hint's below it. Every part can hold intel's own text
        # (a file name, a value, an id): a control character in it, a line break among them, is
        # written out, never sent to the terminal or the CI log (tiops.render.names). A value's
        # line break kept as one put partner text at the start of a line, where a CI runner reads
        # workflow commands ("::add-mask::", "::error file=...::"; GitHub's runner trims the
        # indentation before it looks).
        message = printable(finding.message)
        subject = f" ({printable(finding.stix_id)})" if finding.stix_id else ""
        severity = paint(str(finding.severity), _SEVERITY_COLORS[finding.severity])
        lines.append(
            f"{paint(printable(str(finding.location)), _BOLD)}: {severity} "
            f"{paint(_code_label(finding.code), _BOLD)}: {message}{subject}"
        )
        if finding.hint:
            hint = printable(finding.hint.replace("\n", " "))
            lines.append(paint(f"{_TEXT_INDENT}hint: {hint}", _DIM))
    if len(findings) > TEXT_TALLY_FROM:
        # More than a screen: the end of the output, where a reader and a CI log's tail look,
        # says which codes they are (most first), so thousands of one partner warning read as one line.
        tally = ", ".join(f"{_code_label(code)} {count:,}" for code, count in _by_code(findings).items())
        lines.append(f"by code: {tally}")
    summary = _text_summary(findings)
    lines.append(paint(summary, _BOLD) if findings else summary)
    return "\n".join(lines) + "\n"


# --- JSON -----------------------------------------------------------------------------


def _finding_record(finding: Finding) -> dict[str, Any]:
    return {
        "code": finding.code,
        "slug": _slug(finding.code),
        "severity": str(finding.severity),
        "message": finding.message,
        "hint": finding.hint,
        "file": finding.location.file,
        "line": finding.location.line,
        "column": finding.location.column,
        "stix_id": finding.stix_id,
    }


def render_json(findings: Sequence[Finding], *, summary: bool = True) -> str:
    """``{"findings": [...], "summary": {"error": n, "warning": n, "info": n}}``."""
    document: dict[str, Any] = {"findings": [_finding_record(f) for f in _sorted(findings)]}
    if summary:
        counts = count_by_severity(list(findings))
        document["summary"] = {str(severity): count for severity, count in counts.items()}
    return _dump_json(document)


# --- GitHub Actions workflow commands -------------------------------------------------

_GITHUB_COMMANDS: dict[Severity, str] = {
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.INFO: "notice",
}


def escape_github_data(value: str) -> str:
    """Escape a workflow command's message the way @actions/core's ``escapeData`` does."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_github_property(value: str) -> str:
    """Escape a workflow command property the way @actions/core's ``escapeProperty`` does."""
    return escape_github_data(value).replace(":", "%3A").replace(",", "%2C")


# GitHub Actions turns at most this many workflow commands of each kind (error, warning,
# notice) of one step into annotations, the first ones printed; the others only reach the
# step's log (actions/toolkit, docs/problem-matchers.md, "Limitations": 10 of each kind
# per step, 50 per job).
GITHUB_ANNOTATIONS_PER_KIND = 10
# Codes named in an overflow annotation's message before "and N more codes".
_CODES_NAMED = 12


_LINE_BREAK = re.compile(r"(\r|\n)")


def _github_command(kind: str, properties: list[tuple[str, str]], data: str) -> str:
    rendered_properties = ",".join(f"{name}={escape_github_property(value)}" for name, value in properties)
    return f"::{kind} {rendered_properties}::{escape_github_data(data)}"


def _annotation(finding: Finding) -> str:
    location = finding.location
    properties: list[tuple[str, str]] = []
    if location.file:
        # Written out as the text format writes it: click drops an ANSI sequence from what it
        # prints to a pipe, and a file name with one would annotate another file.
        properties.append(("file", printable(location.file)))
    if location.line:
        properties.append(("line", str(location.line)))
        if location.column:
            properties.append(("col", str(location.column)))
    properties.append(("title", _code_label(finding.code)))
    data = finding.message
    if finding.stix_id:
        data += f" [{finding.stix_id}]"
    if finding.hint:
        data += f" ({finding.hint})"
    # Line breaks stay (escaped as %0A, they cannot end the command); every other control is written
    # out, as the text format writes it (click drops ANSI sequences from what it prints to a pipe).
    data = "".join(part if part in ("\r", "\n") else printable(part) for part in _LINE_BREAK.split(data))
    return _github_command(_GITHUB_COMMANDS[finding.severity], properties, data)


def _by_code(findings: Sequence[Finding]) -> dict[str, int]:
    """How many of ``findings`` each code has, most first (ties by code)."""
    return dict(sorted(Counter(finding.code for finding in findings).items(), key=lambda item: (-item[1], item[0])))


def _overflow_annotation(severity: Severity, findings: Sequence[Finding], changed_files: Collection[str]) -> str:
    """The annotation that opens a kind with more findings than GitHub shows: how many, by code,
    and which of them the annotations that follow are."""
    kind = _GITHUB_COMMANDS[severity]
    noun = {Severity.ERROR: "errors", Severity.WARNING: "warnings", Severity.INFO: "notices"}[severity]
    counts = _by_code(findings)
    named = ", ".join(f"{code} x{count:,}" for code, count in list(counts.items())[:_CODES_NAMED])
    if len(counts) > _CODES_NAMED:
        named += f" and {len(counts) - _CODES_NAMED} more codes"
    first = "those in files this change touches first, then " if changed_files else ""
    data = (f"GitHub annotates {GITHUB_ANNOTATIONS_PER_KIND} {noun} per step; tiops found {len(findings):,}, "
            f"so the next {GITHUB_ANNOTATIONS_PER_KIND - 1} are {first}the first of each code. By code: {named}. "
            f"Every finding is in this step's log, and 'tiops validate' lists them all.")
    return _github_command(kind, [("title", f"tiops: {len(findings):,} {noun}")], data)


def render_github(findings: Sequence[Finding], *, changed_files: Collection[str] = ()) -> str:
    """One ``::error file=…,line=…,col=…,title=…::message`` command per finding.

    Info findings become ``::notice``. ``line`` and ``col`` are left out when unknown (0),
    which makes GitHub annotate the file as a whole.

    GitHub annotates only the first :data:`GITHUB_ANNOTATIONS_PER_KIND` commands of each
    kind in a step. While every kind fits, the commands are in file, line and column order.
    A kind with more findings starts with one annotation saying how many there are, by code,
    and its findings follow in the order that makes the annotated ones worth reading: those
    in ``changed_files`` (paths as findings name them: the files a pull request touches),
    then the first finding of each code, then the rest, each group in file order.
    """
    ordered = _sorted(findings)
    by_kind: dict[Severity, list[Finding]] = {}
    for finding in ordered:
        by_kind.setdefault(finding.severity, []).append(finding)
    overflowing = [severity for severity in sorted(by_kind, reverse=True)
                   if len(by_kind[severity]) > GITHUB_ANNOTATIONS_PER_KIND]
    commands = [_overflow_annotation(severity, by_kind[severity], changed_files) for severity in overflowing]
    if overflowing:
        changed = frozenset(changed_files)
        codes_seen: set[tuple[Severity, str]] = set()

        def rank(finding: Finding) -> int:
            """0: annotated first (a kind that fits, a changed file), 1: its code's first, 2: the rest."""
            if finding.severity not in overflowing or finding.location.file in changed:
                return 0
            code = (finding.severity, finding.code)
            if code in codes_seen:
                return 2
            codes_seen.add(code)
            return 1

        ranks = [rank(finding) for finding in ordered]
        # Limits are per kind, so one order over all kinds gives each kind its own best first.
        ordered = [ordered[position] for position in sorted(range(len(ordered)), key=lambda p: (ranks[p], p))]
    commands.extend(_annotation(finding) for finding in ordered)
    return "".join(command + "\n" for command in commands)


def render_github_summary(findings: Sequence[Finding], *, title: str = "tiops validate") -> str:
    """A Markdown summary of ``findings`` for a GitHub Actions job's summary page
    (``$GITHUB_STEP_SUMMARY``): the counts, then one row per code with its first place.

    The annotations of a step stop at :data:`GITHUB_ANNOTATIONS_PER_KIND` of each kind; this
    table counts every finding. File names are intel's own text, so they are written as code
    spans (tiops.render.markdown)."""
    lines = [f"### {markdown_text(title)}: {_text_summary(findings)}", ""]
    if not findings:
        return "\n".join(lines)
    lines += ["| code | severity | findings | first at |", "|---|---|--:|---|"]
    first: dict[tuple[Severity, str], Finding] = {}
    counts: dict[tuple[Severity, str], int] = {}
    for finding in _sorted(findings):
        key = (finding.severity, finding.code)
        first.setdefault(key, finding)
        counts[key] = counts.get(key, 0) + 1
    for key in sorted(counts, key=lambda k: (-int(k[0]), -counts[k], k[1])):
        severity, code = key
        place = str(first[key].location)
        shown = markdown_code(place) if place else "(no file)"
        lines.append(f"| {markdown_text(_code_label(code))} | {severity} | {counts[key]:,} | {shown} |")
    return "\n".join(lines) + "\n"


# --- SARIF 2.1.0 ----------------------------------------------------------------------

SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
# partialFingerprints key; bump the version suffix only when the hash input changes,
# since that makes GitHub close every open alert and reopen it under the new hash.
FINGERPRINT_KEY = "tiopsFindingHash/v1"

# SARIF 2.1.0 section 3.27.10 (result.level): "error", "warning", "note" or "none".
_SARIF_LEVELS: dict[Severity, str] = {
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.INFO: "note",
}


BACKSLASH_SEPARATES = os.sep == "\\" or os.altsep == "\\"


def _sarif_uri(file: str) -> tuple[str, bool]:
    """The artifact URI for ``file`` and whether it is relative to the source root."""
    # Not under %SRCROOT%: an absolute file URI is the only faithful reference.
    if PurePosixPath(file).is_absolute():
        return PurePosixPath(file).as_uri(), False
    if PureWindowsPath(file).is_absolute():
        return PureWindowsPath(file).as_uri(), False
    # A backslash separates folders only where the system says so; on POSIX it is a character
    # a file name may hold (percent-encoded below), not a folder of a different path.
    posix = PureWindowsPath(file).as_posix() if BACKSLASH_SEPARATES and "\\" in file else file
    # SARIF 2.1.0 section 3.4.4: uri is a URI reference, so spaces and the like are
    # percent-encoded. ":" is encoded too: in a relative reference's first segment it
    # would read as a scheme (RFC 3986 section 4.2). Other sub-delims stay readable.
    return quote(str(PurePosixPath(posix)), safe="/!$&'()*+,;=@"), True


def _fingerprint(finding: Finding) -> str:
    # Line and column are left out on purpose: editing lines above a finding moves it
    # without making it a different finding.
    digest = hashlib.sha256()
    for part in (finding.code, finding.location.file, finding.stix_id or "", finding.message):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def _sarif_rules(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for entry in sorted(CODES.values(), key=lambda code: code.code):
        rules.append(
            {
                "id": entry.code,
                "name": entry.slug,
                "shortDescription": {"text": entry.title},
                "help": {"text": entry.hint},
                "defaultConfiguration": {"level": _SARIF_LEVELS[entry.severity]},
            }
        )
    # A finding built outside the catalogue still needs a rule for its ruleIndex.
    for code in sorted({f.code for f in findings} - CODES.keys()):
        rules.append({"id": code, "shortDescription": {"text": code}})
    return rules


def _sarif_result(finding: Finding, rule_index: int, fingerprint: str) -> dict[str, Any]:
    location = finding.location
    uri, under_source_root = _sarif_uri(location.file)
    artifact: dict[str, Any] = {"uri": uri}
    if under_source_root:
        artifact["uriBaseId"] = "%SRCROOT%"
    physical: dict[str, Any] = {"artifactLocation": artifact}
    if location.line:
        region: dict[str, int] = {"startLine": location.line}
        if location.column:
            region["startColumn"] = location.column
        physical["region"] = region
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "ruleIndex": rule_index,
        "level": _SARIF_LEVELS[finding.severity],
        "message": {"text": finding.message},
        "locations": [{"physicalLocation": physical}],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
    }
    if finding.stix_id:
        result["properties"] = {"stixId": finding.stix_id}
    return result


# GitHub code scanning rejects a run with more results than this ("SARIF results exceed
# limit": results per run, 25,000; of those it keeps the first 5,000 by severity).
SARIF_RESULTS_LIMIT = 25_000
_SEVERITY_FIRST = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


def render_sarif(findings: Sequence[Finding], *, tool_version: str, changed_files: Collection[str] = (),
                 limit: int = SARIF_RESULTS_LIMIT) -> str:
    """A SARIF 2.1.0 log with one run whose rules are the whole catalogue of codes.

    A run holds at most ``limit`` results (:data:`SARIF_RESULTS_LIMIT`, what code scanning
    accepts): beyond it, errors are kept before warnings and warnings before notes, and
    within a severity the findings in ``changed_files`` first; the run's invocation then
    says how many were left out (SARIF 2.1.0 section 3.20.21, toolExecutionNotifications).
    The results kept are in file order, with the fingerprints they have in the whole log.
    """
    rules = _sarif_rules(findings)
    rule_indexes = {rule["id"]: index for index, rule in enumerate(rules)}
    occurrences: dict[str, int] = {}
    fingerprinted: list[tuple[Finding, str]] = []
    for finding in _sorted(findings):
        digest = _fingerprint(finding)
        occurrences[digest] = occurrences.get(digest, 0) + 1
        # The ":N" suffix tells apart findings that hash the same (the same message for
        # the same object twice in one file), the way CodeQL numbers its line hashes.
        fingerprinted.append((finding, f"{digest}:{occurrences[digest]}"))
    left_out = max(0, len(fingerprinted) - limit)
    if left_out:
        changed = frozenset(changed_files)
        first = sorted(range(len(fingerprinted)), key=lambda position: (
            _SEVERITY_FIRST[fingerprinted[position][0].severity],
            fingerprinted[position][0].location.file not in changed, position))
        fingerprinted = [fingerprinted[position] for position in sorted(first[:limit])]
    results = [_sarif_result(finding, rule_indexes[finding.code], fingerprint) for finding, fingerprint in fingerprinted]
    driver: dict[str, Any] = {"name": "tiops", "rules": rules}
    if tool_version:
        driver["version"] = tool_version
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        # Columns come from the YAML parser, which counts Unicode code points.
        "columnKind": "unicodeCodePoints",
        "results": results,
    }
    if left_out:
        kept = "errors first, then warnings, then notes" + (
            ", those in files this change touches first" if changed_files else "")
        run["invocations"] = [{
            "executionSuccessful": True,
            "toolExecutionNotifications": [{
                "level": "warning",
                "message": {"text": f"{left_out:,} of {len(findings):,} findings are left out: a run holds at most "
                                    f"{limit:,} results ({kept}). 'tiops validate --format json' lists them all."},
            }],
        }]
    log = {
        "$schema": SARIF_SCHEMA_URI,
        "version": SARIF_VERSION,
        "runs": [run],
    }
    return _dump_json(log)


# --- registry -------------------------------------------------------------------------


class FindingRenderer(Protocol):
    """The uniform signature of every entry in :data:`FINDING_RENDERERS`.

    ``changed_files``: the files a pull request touches, as findings name them; the formats
    that must choose what to show first (github, sarif) put their findings first."""

    def __call__(self, findings: Sequence[Finding], *, color: bool, tool_version: str,
                 changed_files: Collection[str] = ()) -> str: ...


def _text_renderer(findings: Sequence[Finding], *, color: bool, tool_version: str,
                   changed_files: Collection[str] = ()) -> str:
    return render_text(findings, color=color)


def _json_renderer(findings: Sequence[Finding], *, color: bool, tool_version: str,
                   changed_files: Collection[str] = ()) -> str:
    return render_json(findings)


def _github_renderer(findings: Sequence[Finding], *, color: bool, tool_version: str,
                     changed_files: Collection[str] = ()) -> str:
    return render_github(findings, changed_files=changed_files)


def _sarif_renderer(findings: Sequence[Finding], *, color: bool, tool_version: str,
                    changed_files: Collection[str] = ()) -> str:
    return render_sarif(findings, tool_version=tool_version, changed_files=changed_files)


# Options a format does not use are accepted and ignored, so callers such as the CLI
# can pass the same keywords whatever format the user chose.
FINDING_RENDERERS: dict[str, FindingRenderer] = {
    "text": _text_renderer,
    "json": _json_renderer,
    "github": _github_renderer,
    "sarif": _sarif_renderer,
}


def render_findings(
    findings: Sequence[Finding], fmt: str, *, color: bool = False, tool_version: str = ""
) -> str:
    """Render ``findings`` in the format named ``fmt`` (a key of :data:`FINDING_RENDERERS`)."""
    renderer = FINDING_RENDERERS.get(fmt)
    if renderer is None:
        known = ", ".join(sorted(FINDING_RENDERERS))
        raise UsageError(f"unknown findings format {fmt!r}", hint=f"Use one of: {known}.")
    return renderer(findings, color=color, tool_version=tool_version)
