"""Report panels: the overview's charts, each a query in the --where language.

A panel (docs/review.md#report-panels) is data: a title, a ``query`` (default: every
object), what it counts (``group-by`` a field, or ``bars``, one query per bar), a
chart kind and a limit. ``report.yaml`` at the repository root lists a team's panels;
without it the overview uses :data:`DEFAULT_PANELS_YAML`, written the same way.
Panels count with the query engine (:func:`tiops.query.group_counts`), so a chart and
``tiops query --group-by`` always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiops.codes import make_finding
from tiops.errors import TiopsError, UsageError
from tiops.findings import Finding, Location
from tiops.jsonschemas import property_kinds
from tiops.locate import resolve_locations
from tiops.query import Query, Row, group_counts, parse_query, select
from tiops.rules.conditions import MISSING, fast_timestamp_key, field_getter
from tiops.yamlio import YamlProblem, parse_yaml

PANEL_FILE = "report.yaml"
CHART_KINDS = ("bar", "table", "timeline")
_KEYS = frozenset({"title", "query", "group-by", "bars", "chart", "limit", "sort"})
DEFAULT_LIMIT = 15
TIMELINE_LIMIT = 15

DEFAULT_PANELS_YAML = """\
# The report's overview: one chart per panel, each a query in tiops' query language
# (docs/query.md). chart: bar (default), table or timeline; limit: how many bars or rows.
panels:
  - title: Objects by type
    query: not type in [marking-definition, extension-definition]
    group-by: type
  - title: Indicators by indicator type (threat type)
    query: type = indicator
    group-by: indicator_types
  - title: Objects by source
    query: not type in [marking-definition, extension-definition]
    group-by: source
  - title: Objects by TLP
    query: not type in [marking-definition, extension-definition]
    group-by: tlp
  - title: Objects by tag
    group-by: tags
  - title: Objects by confidence band (STIX 2.1 Appendix A)
    bars:
      High (70-100): confidence >= 70
      Med (30-69): confidence >= 30 and confidence < 70
      Low (1-29): confidence >= 1 and confidence < 30
      None (0): confidence = 0
  - title: Objects created per month
    query: not type in [marking-definition, extension-definition]
    group-by: created
    chart: timeline
"""


@dataclass(frozen=True)
class Panel:
    title: str
    query: Query
    group_by: str | None
    bars: tuple[tuple[str, Query], ...]
    chart: str
    limit: int
    # The expressions as written (None: every object), for the overview's links to the
    # browser (tiops.report.links), which take the panel's query and add the bar's test.
    text: str | None = None
    bar_texts: tuple[str, ...] = ()


class PanelsInvalid(TiopsError):
    def __init__(self, findings: list[Finding]) -> None:
        super().__init__(f"{PANEL_FILE}: {len(findings)} invalid panel definition(s); nothing was written",
                         hint="Fix the panels shown (docs/review.md#report-panels).")
        self.findings = findings


def load_panels(root: Path, seen: set[str], seen_types: frozenset[str] = frozenset()) -> list[Panel]:
    """The panels of ``report.yaml`` (or the defaults); raises :class:`PanelsInvalid`."""
    path = root / PANEL_FILE
    text = path.read_text(encoding="utf-8") if path.is_file() else DEFAULT_PANELS_YAML
    file = PANEL_FILE if path.is_file() else "(default panels)"
    panels, findings = parse_panels(text, file, seen, seen_types)
    if findings:
        raise PanelsInvalid(resolve_locations(findings, root) if path.is_file() else findings)
    return panels


def parse_panels(text: str, file: str, seen: set[str],
                 seen_types: frozenset[str] = frozenset()) -> tuple[list[Panel], list[Finding]]:
    try:
        data = parse_yaml(text)
    except YamlProblem as problem:
        return [], [make_finding(problem.code, problem.message, Location(file, problem.line, problem.column))]
    entries = data.get("panels") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return [], [make_finding("TI140", "report.yaml needs 'panels:', a list of panels", Location(file, path=()))]
    panels: list[Panel] = []
    findings: list[Finding] = []
    for index, entry in enumerate(entries):
        try:
            panels.append(_panel(entry, seen, seen_types))
        except _PanelProblem as problem:
            code = "TI141" if problem.key in ("query", "group-by", "bars", "sort") and problem.query else "TI140"
            findings.append(make_finding(code, f"panel {index + 1}: {problem.message}",
                                         Location(file, path=("panels", index, *problem.where))))
    return panels, findings


class _PanelProblem(Exception):
    def __init__(self, message: str, key: str | None = None, *, query: bool = False, where: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.message, self.key, self.query = message, key, query
        self.where = where or ((key,) if key else ())


def _panel(entry: Any, seen: set[str], seen_types: frozenset[str] = frozenset()) -> Panel:
    if not isinstance(entry, dict):
        raise _PanelProblem("a panel is a mapping with title, query, group-by, chart and limit")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise _PanelProblem(f"unknown key {unknown[0]!r} (panels have {', '.join(sorted(_KEYS))})", unknown[0])
    title = entry.get("title")
    if not isinstance(title, str) or not title.strip():
        raise _PanelProblem("a panel needs a title", "title")
    chart = entry.get("chart", "bar")
    if chart not in CHART_KINDS:
        raise _PanelProblem(f"chart {chart!r} is not one of {', '.join(CHART_KINDS)}", "chart")
    limit = entry.get("limit", TIMELINE_LIMIT if chart == "timeline" else DEFAULT_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise _PanelProblem(f"limit must be a whole number of 1 or more, not {limit!r}", "limit")
    query = _query(entry.get("query"), seen, "query", sort=entry.get("sort"), seen_types=seen_types)
    group_by = entry.get("group-by")
    if group_by is not None:
        if not isinstance(group_by, str):
            raise _PanelProblem("group-by names one field", "group-by")
        _query(None, seen, "group-by", sort=group_by)
    bars_entry = entry.get("bars")
    bars: list[tuple[str, Query]] = []
    if bars_entry is not None:
        if not isinstance(bars_entry, dict) or not bars_entry:
            raise _PanelProblem("bars is a mapping of label: query, one per bar, with at least one bar", "bars")
        if group_by is not None or chart != "bar":
            raise _PanelProblem("bars (label: query, one per bar) go on a bar chart without group-by", "bars")
        bars = [(str(label), _query(text, seen, "bars", where=("bars", label), seen_types=seen_types))
                for label, text in bars_entry.items()]
    if chart == "bar" and group_by is None and not bars:
        raise _PanelProblem("a bar chart needs group-by (a field to count by) or bars", "group-by")
    if chart == "timeline" and (group_by is None or _field_kind(group_by) != "timestamp"):
        raise _PanelProblem(f"a timeline counts by a timestamp field (created, modified, valid_until...), not {group_by!r}",
                            "group-by")
    query_text = entry.get("query")
    return Panel(title.strip(), query, group_by, tuple(bars), chart, limit,
                 query_text if isinstance(query_text, str) and query_text.strip() else None,
                 tuple(str(text) for text in bars_entry.values()) if bars and isinstance(bars_entry, dict) else ())


def _field_kind(name: str) -> str | None:
    """What a field holds: a STIX property's kind, or one of the enrichment fields' (whois.registered...)."""
    from tiops.enrich.fields import ENRICHMENT_KINDS

    return ENRICHMENT_KINDS.get(name) or property_kinds().get(name)


def _query(text: Any, seen: set[str], key: str, *, sort: Any = None, where: tuple[Any, ...] = (),
           seen_types: frozenset[str] = frozenset()) -> Query:
    if text is not None and not isinstance(text, str):
        raise _PanelProblem(f"{key} is an expression in quotes, e.g. \"type = indicator\"", key, where=where)
    if sort is not None and not isinstance(sort, str):
        raise _PanelProblem("sort names a field, e.g. confidence:desc", "sort")
    if sort is not None and key == "query":
        try:  # a bad sort is reported at its own line, not at the query's (or the panel's)
            parse_query(None, sort=sort, seen=seen)
        except UsageError as error:
            raise _PanelProblem(error.message.replace("--sort: ", ""), "sort", query=True) from None
    try:
        return parse_query(text, sort=sort, seen=seen, seen_types=seen_types)
    except UsageError as error:
        raise _PanelProblem(error.message.replace("--where: ", "").replace("--sort: ", ""), key, query=True, where=where) from None


def month_counts(rows: list[Row], field: str, *, timestamps_only: bool = False) -> dict[str, int]:
    """How many rows have a value of ``field`` in each month (``YYYY-MM``): a row once per month,
    however many of its values (``whois.registered`` of several values) fall in it, so that a
    month counts the objects a range query on the month finds (tiops.report.links).
    ``timestamps_only``: count only the values that are timestamps, as the range query reads them."""
    getter = field_getter(field)
    months: dict[str, int] = {}
    for row in rows:
        value = getter(row)
        if value is MISSING or value is None:
            continue
        if value.__class__ is not list:  # the usual case (created, modified): no set per row
            if not timestamps_only or (value.__class__ is str and fast_timestamp_key(value) is not None):
                month = str(value)[:7]
                months[month] = months.get(month, 0) + 1
            continue
        for month in {str(item)[:7] for item in value if item is not None
                      and (not timestamps_only or (item.__class__ is str and fast_timestamp_key(item) is not None))}:
            months[month] = months.get(month, 0) + 1
    return months


def panel_data(panel: Panel, rows: list[Row], selected: dict[str, list[Row]] | None = None) -> dict[str, Any]:
    """What the overview draws for one panel: bars (label, count) or table rows.
    ``selected`` keeps the rows of each query across panels (most share one), by its repr."""
    key = repr(panel.query)
    if selected is None:
        selected = {}
    if key not in selected:
        selected[key] = select(rows, panel.query)
    matching = selected[key]
    if panel.bars:
        counts = [(label, len(select(matching, query))) for label, query in panel.bars]
        return {"kind": "bar", "items": [(label, n) for label, n in counts if n], "total": sum(n for _, n in counts)}
    if panel.group_by is None:  # a table of objects
        shown = matching[: panel.limit]
        return {"kind": "table", "rows": [row.obj for row in shown], "hidden": len(matching) - len(shown)}
    if panel.chart == "timeline":
        months = month_counts(matching, panel.group_by)
        # The newest months are the ones shown; older ones are counted as hidden.
        ordered = sorted(months)
        recent, older = ordered[-panel.limit:], ordered[:-panel.limit]
        # "rest": what "and N more" unfolds on the overview, so that no month is out of reach.
        return {"kind": "timeline", "items": [(m, months[m]) for m in recent], "hidden": len(older),
                "rest": [(m, months[m]) for m in older], "total": sum(months.values())}
    counts = group_counts(matching, panel.group_by)
    items = [(str(value), count) for value, count in counts]
    return {"kind": panel.chart, "items": items[: panel.limit], "hidden": max(0, len(items) - panel.limit),
            "rest": items[panel.limit:], "total": sum(count for _, count in items)}
