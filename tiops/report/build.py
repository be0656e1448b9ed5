"""`tiops report`: a static HTML site about the compiled intel, readable offline from file://.

* ``index.html``: the overview, like Microsoft Sentinel's threat-intelligence workbook
  (counts by type, indicator type, source, TLP, tag, confidence band; indicators
  expiring soon; objects created per month), as inline SVG bar charts.
* ``browse.html``: every object (one row each, the compiled, i.e. latest, version) as a
  JSON blob that a small script searches, filters, sorts and pages, so no page ever
  holds more than one page of rows.
* ``objects/<xx>/<id>.html``: one page per object (sharded by the first two hex digits
  of its UUID): properties, relationships as a graph and a list, provenance.

Everything is rendered by Jinja2 with autoescaping; CSS and JavaScript are inlined
(no network, no CDN); output depends only on the content (no clock).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import orjson

from tiops.compile import blocking_errors, compiled_objects
from tiops.diff import display_name
from tiops.enrich.attach import enrichment_of
from tiops.enrich.fields import ENRICHMENT_FIELDS, field_path
from tiops.errors import TiopsError
from tiops.findings import Finding
from tiops.jsonschemas import property_kinds
from tiops.load import IntelObject, load_repo
from tiops.progress import Progress, no_progress
from tiops.query import Row, rows_from_objects
from tiops.report.panels import Panel, load_panels, panel_data
from tiops.rules import apply_repo_rules, resolve_as_of
from tiops.stix import (
    ALL_TYPES,
    SCO_TYPES,
    TLP1_MARKINGS,
    TLP2_MARKINGS,
    tlp_level,
)
from tiops.validate import validate_repo
from tiops.where import QUERY_FIELDS

_HERE = Path(__file__).parent
_TLP_NAMES = {marking_id: name for marking_id, name in TLP2_MARKINGS.values()} | {
    marking_id: f"TLP:{level.upper()} (1.0)" for level, marking_id in TLP1_MARKINGS.items()
}
_EXPIRY_WINDOWS = (7, 30, 90)
_CHART_ROWS = 15
_GRAPH_NEIGHBOURS = 24


@dataclass(frozen=True)
class ReportResult:
    output: Path
    objects: int
    pages: int
    as_of: str | None
    errors: int = 0  # validation errors of a report written with allow_invalid


@dataclass(frozen=True)
class _Origin:
    file: str
    line: int
    source: str | None
    rules: tuple[str, ...]
    defaults_files: tuple[str, ...]


class ReportRefused(TiopsError):
    """The report was not written because validation found errors (like `tiops compile`)."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__(
            f"validation found {len(blocking_errors(findings))} error(s); no report was written",
            hint="Run 'tiops validate' to see every finding, or 'tiops report --allow-invalid' for a report "
                 "marked as built from intel with errors.",
        )
        self.findings = findings


def build_report(root: Path, output: Path, *, as_of: str | None = None, progress: Progress = no_progress,
                 allow_invalid: bool = False) -> ReportResult:
    """Write the report for the repository at ``root`` into ``output`` (created; existing pages replaced).

    ``as_of`` (like ``--as-of``) is the moment rules and the expiry charts compare with;
    by default the HEAD commit's time. Validation errors refuse the report, as they refuse
    compilation; with ``allow_invalid`` every page carries a banner saying so instead.
    """
    repo = load_repo(root, progress=progress)
    errors = blocking_errors(validate_repo(repo, progress=progress))
    if errors and not allow_invalid:
        raise ReportRefused(errors)
    outcome, _rules, moment = apply_repo_rules(repo, resolve_as_of(root, as_of), record=True)
    objects = compiled_objects(repo, rules=outcome)
    origins = _origins(root, repo.objects, {k: tuple(a.rule for a in v if a.changes) for k, v in outcome.applied.items()})
    as_of_text = moment.text or _latest_modified(objects)
    environment = _environment()
    output.mkdir(parents=True, exist_ok=True)
    css = (_HERE / "static" / "report.css").read_text(encoding="utf-8")
    banner = (f"Built from intel with {len(errors)} validation error(s) (tiops report --allow-invalid): "
              "objects may be missing or wrong. Run 'tiops validate'.") if errors else None
    common = {"css": css, "as_of": as_of_text, "total": len(objects), "banner": banner}

    names = {obj["id"]: display_name(obj) for obj in objects}
    query_rows = rows_from_objects(objects)
    panels = load_panels(root, {key for row in query_rows for key in row.data})  # before anything is written
    overview = _overview(panels, query_rows, objects, as_of_text, names)
    _write(output / "index.html", environment.get_template("overview.html").render(root="", charts=overview, **common))
    browser_data = _script_json(_browser_data(query_rows, names))
    browser_js = (_HERE / "static" / "browser.js").read_text(encoding="utf-8")
    query_js = (_HERE / "static" / "query.js").read_text(encoding="utf-8")
    _write(output / "browse.html", environment.get_template("browse.html").render(
        root="", data=browser_data, script=browser_js, query_script=query_js, operators=_OPERATORS,
        fields=_BUILDER_FIELDS, **common))

    links: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        if obj["type"] == "relationship":
            for end, other in (("source_ref", "target_ref"), ("target_ref", "source_ref")):
                links.setdefault(str(obj.get(end)), []).append(
                    {"relationship": obj, "other": str(obj.get(other)), "outgoing": end == "source_ref"})
    template = environment.get_template("object.html")
    for done, obj in enumerate(objects, 1):
        related = sorted(links.get(obj["id"], ()), key=lambda r: (r["relationship"]["relationship_type"], r["other"]))
        relationships = [
            {"type": r["relationship"]["relationship_type"], "outgoing": r["outgoing"], "other": r["other"],
             "other_name": names.get(r["other"], r["other"]), "other_href": _href(r["other"], "../../") if r["other"] in names else None,
             "href": _href(r["relationship"]["id"], "../../")}
            for r in related
        ]
        page = template.render(
            root="../../", obj=obj, name=names[obj["id"]], properties=_properties(obj, names),
            deprecated=obj.get("x_mitre_deprecated") is True,
            relationships=relationships, graph=_graph(obj["id"], names[obj["id"]], relationships),
            origin=origins.get(obj["id"]), **common,
        )
        _write(output / _href(obj["id"], ""), page)
        if done % 1000 == 0 or done == len(objects):
            progress("report", done, len(objects))
    return ReportResult(output, len(objects), len(objects) + 2, as_of_text, len(errors))


# --- Data ---------------------------------------------------------------------------

# The fields offered by the browser's condition builder (any other field can be typed).
_BUILDER_FIELDS = ["name", "type", "observable", "observable_type", "external_id", "source", "tlp", "tags",
                   "confidence", "indicator_types", "created", "modified", "valid_until", "revoked", "id",
                   "description", "pattern", "x_mitre_deprecated"]


def _browser_data(query_rows: list[Row], names: dict[str, str]) -> dict[str, Any]:
    """What the browser's query engine (static/query.js) searches: every object with the
    query language's fields, and the catalogue that makes typos errors there too."""
    rows = [{"d": row.data, "s": row.source, "t": tlp_level(row.data.get("object_marking_refs")),
             "n": names.get(row.id, row.id), "h": _href(row.id, "")} for row in query_rows]
    kinds = {**property_kinds(), "labels": "any", "type": "stix-type", **QUERY_FIELDS.own}
    seen = sorted({key for row in query_rows for key in row.data})
    return {"rows": rows, "catalogue": {"kinds": kinds, "seen": seen, "stixTypes": sorted(ALL_TYPES),
                                        "scoTypes": sorted(SCO_TYPES),
                                        "paths": {top: field_path(top) for top in ENRICHMENT_FIELDS}}}

# The operator vocabulary of ingestion rules (docs/rules.md), those that make sense on a table.
_OPERATORS = ["contains", "equals", "not-equals", "starts-with", "ends-with", "matches", "in", ">", ">=", "<", "<=",
              "exists", "not-exists"]


def _href(object_id: str, root: str) -> str:
    uuid = object_id.partition("--")[2]
    return f"{root}objects/{uuid[:2] or '00'}/{object_id}.html"


def _overview(panels: list[Panel], query_rows: list[Row], objects: list[dict[str, Any]], as_of: str | None,
              names: dict[str, str]) -> list[dict[str, Any]]:
    """One chart per panel (report.yaml or the defaults), then the expiry chart of the as-of time."""
    charts = []
    for panel in panels:
        data = panel_data(panel, query_rows)
        if data["kind"] == "table" and "rows" in data:
            charts.append({"title": panel.title, "kind": "objects", "hidden": data["hidden"], "bars": [],
                           "rows": [{"name": names.get(o["id"], o["id"]), "type": o["type"], "href": _href(o["id"], "")}
                                    for o in data["rows"]]})
        elif data["kind"] == "table":
            charts.append({"title": panel.title, "kind": "counts", "hidden": data["hidden"], "bars": [],
                           "rows": [{"label": label, "count": count} for label, count in data["items"]]})
        else:
            charts.append(_bars(panel.title, data["items"], data.get("hidden", 0), data["total"]))
    indicators = [o for o in objects if o["type"] == "indicator"]
    if as_of is not None:
        moment = _parse(as_of)
        expiring: Counter[str] = Counter()
        for obj in indicators:
            until = _parse(str(obj.get("valid_until") or ""))
            if until < moment or obj.get("revoked") is True:
                continue
            for days in _EXPIRY_WINDOWS:
                if until <= moment + timedelta(days=days):
                    expiring[f"within {days} days"] += 1
        charts.append(_chart(f"Indicators expiring (as of {as_of})", expiring, keep_order=True,
                             order=[f"within {d} days" for d in _EXPIRY_WINDOWS], show_zero=True))
    charts.extend(_enrichment_charts(objects))
    return charts


def _enrichment_charts(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Country and AS panels from the locked enrichment (tiops.enrich), when the bundle carries any."""
    countries: Counter[str] = Counter()
    systems: Counter[str] = Counter()
    for obj in objects:
        extension = enrichment_of(obj)
        for item in (extension or {}).get("enrichment") or ():
            if item.get("country_code"):
                countries[f"{item.get('country') or item['country_code']} ({item['country_code']})"] += 1
            if item.get("asn") or item.get("as_organization"):
                number = f"AS{item['asn']} " if item.get("asn") else ""
                systems[f"{number}{item.get('as_organization') or ''}".strip()] += 1
    charts = []
    if countries:
        charts.append(_chart("Enriched values by country", countries))
    if systems:
        charts.append(_chart("Enriched values by autonomous system", systems))
    return charts


def _bars(title: str, items: list[tuple[str, int]], hidden: int, total: int) -> dict[str, Any]:
    top = max((count for _, count in items), default=0) or 1
    bar_width = 420
    bars = [{"label": label, "count": count, "y": index * 24, "width": round(bar_width * count / top, 1)}
            for index, (label, count) in enumerate(items)]
    return {"title": title, "kind": "bars", "bars": bars, "height": max(24, 24 * len(bars)), "hidden": hidden,
            "total": total}


def _chart(title: str, counts: Counter[str], *, keep_order: bool = False, order: Iterable[str] = (),
           show_zero: bool = False, newest: bool = False) -> dict[str, Any]:
    if keep_order:
        items = [(label, counts.get(label, 0)) for label in order if show_zero or counts.get(label, 0)]
    else:
        items = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    hidden = max(0, len(items) - _CHART_ROWS)
    items = items[-_CHART_ROWS:] if newest else items[:_CHART_ROWS]
    top = max((count for _, count in items), default=0) or 1
    bar_width = 420
    bars = [{"label": label, "count": count, "y": index * 24, "width": round(bar_width * count / top, 1)}
            for index, (label, count) in enumerate(items)]
    return {"title": title, "kind": "bars", "bars": bars, "height": max(24, 24 * len(bars)), "hidden": hidden,
            "total": sum(counts.values())}


def _properties(obj: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    """Every property as the object page shows it: references as links named after their
    object (TLP markings by their TLP name), external references as a table with
    clickable http(s) URLs, other structured values as JSON."""
    found: list[dict[str, Any]] = []
    for key in sorted(obj):
        value = obj[key]
        refs = value if key.endswith("_refs") and isinstance(value, list) else [value] if key.endswith("_ref") else None
        if refs is not None and all(isinstance(ref, str) for ref in refs):
            found.append({"key": key, "kind": "refs", "refs": [_reference(ref, names) for ref in refs]})
        elif key == "external_references" and isinstance(value, list) and all(isinstance(r, dict) for r in value):
            found.append({"key": key, "kind": "external", "references": [_external(r) for r in value]})
        elif isinstance(value, str):
            found.append({"key": key, "kind": "text", "text": value, "multiline": "\n" in value})
        else:
            text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
            found.append({"key": key, "kind": "text", "text": text, "multiline": "\n" in text})
    return found


def _reference(ref: str, names: dict[str, str]) -> dict[str, Any]:
    name = _TLP_NAMES.get(ref) or names.get(ref) or ref
    return {"id": ref, "name": name, "href": _href(ref, "../../") if ref in names else None}


def _external(reference: dict[str, Any]) -> dict[str, Any]:
    url = reference.get("url")
    # Only web links are clickable: a javascript: or data: URL from intel must never run.
    safe = isinstance(url, str) and url.lower().startswith(("http://", "https://"))
    return {"source_name": str(reference.get("source_name", "")), "external_id": str(reference.get("external_id", "")),
            "url": str(url) if isinstance(url, str) else "", "clickable": safe,
            "description": str(reference.get("description", ""))}


def _graph(center: str, name: str, relationships: list[dict[str, Any]]) -> dict[str, Any]:
    """A radial layout: the object in the middle, the objects it relates to around it."""
    neighbours = relationships[:_GRAPH_NEIGHBOURS]
    size, radius = 640, 170
    nodes = []
    for index, rel in enumerate(neighbours):
        angle = 2 * math.pi * index / max(1, len(neighbours)) - math.pi / 2
        x, y = round(size / 2 + radius * math.cos(angle), 1), round(size / 2 + radius * math.sin(angle), 1)
        # Labels point away from the centre so they stay inside the drawing.
        anchor = "middle" if abs(x - size / 2) < 20 else ("start" if x > size / 2 else "end")
        label_x = x if anchor == "middle" else (x + 11 if anchor == "start" else x - 11)
        label_y = y - 11 if anchor == "middle" and y < size / 2 else (y + 21 if anchor == "middle" else y + 4)
        nodes.append({**rel, "x": x, "y": y, "anchor": anchor, "label_x": label_x, "label_y": label_y,
                      "short": _shorten(rel["other_name"], 22), "other_type": rel["other"].partition("--")[0],
                      "edge_x": round((size / 2 + x) / 2, 1), "edge_y": round((size / 2 + y) / 2, 1)})
    return {"size": size, "center": {"x": size / 2, "y": size / 2, "short": _shorten(name, 28), "id": center,
                                     "type": center.partition("--")[0]},
            "nodes": nodes, "hidden": max(0, len(relationships) - len(neighbours))}


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _origins(root: Path, objects: list[IntelObject], rules: dict[str, tuple[str, ...]]) -> dict[str, _Origin]:
    """File and line of every object; the line comes from a text scan, not a YAML parse, to stay fast at 100k files."""
    item_lines: dict[str, list[int]] = {}
    found: dict[str, _Origin] = {}
    for obj in objects:
        line = 1
        if obj.path and isinstance(obj.path[0], int):
            if obj.file not in item_lines:
                item_lines[obj.file] = _list_item_lines(root / obj.file)
            lines = item_lines[obj.file]
            line = lines[obj.path[0]] if obj.path[0] < len(lines) else 1
        found[obj.id] = _Origin(obj.file, line, obj.source, rules.get(obj.id, ()), obj.defaults_files)
    return found


def _list_item_lines(path: Path) -> list[int]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return [number for number, line in enumerate(text.splitlines(), 1) if line.startswith("- ")]


def _latest_modified(objects: list[dict[str, Any]]) -> str | None:
    stamps = [str(o["modified"]) for o in objects if o.get("modified")]
    return max(stamps) if stamps else None


def _parse(text: str) -> datetime:
    try:
        return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC) if not text else datetime.max.replace(tzinfo=UTC)


# --- Output ---------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,  # every value from intel is text, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _script_json(data: Any) -> str:
    """JSON safe inside <script type="application/json">: no '<', '>' or '&' can end or open a tag."""
    text = orjson.dumps(data).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return  # unchanged: leave the file (and its mtime) alone
    except OSError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
