"""`tiops report`: a static HTML site about the compiled intel, readable offline from file://.

* ``index.html``: the overview, like Microsoft Sentinel's threat-intelligence workbook
  (counts by type, indicator type, source, TLP, tag, confidence band; indicators
  expiring soon; objects created per month), as inline SVG bar charts.
* ``browse.html``: every object (one row each, the compiled, i.e. latest, version),
  searched, filtered, sorted and paged by a small script over the compact index
  ``data/index.js``, so no page ever holds more than one page of rows.
* ``object.html``: the one object page; the id is in the address (``object.html#<id>``)
  and the page draws the object from its shard ``data/objects/<key>.js``
  (:mod:`tiops.report.shards`): properties, relationships as a graph and a list, provenance.

The site stays a few hundred files whatever the number of objects, and opens from
``file://``: the data files are scripts, since a page on disk may not ``fetch()``.
The pages are rendered by Jinja2 with autoescaping, the object page by DOM calls (text,
never markup); text from intel is shown as the CLI prints it, controls and bidirectional
overrides escaped (tiops.render.names.printable, static/data.js). CSS and JavaScript are
inlined (no network, no CDN); output depends only on the content (no clock). Every file
is made before the first is written, so a failed run leaves the previous site as it was.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import jinja2
import markupsafe
import orjson

from tiops.compile import blocking_errors, compiled_objects
from tiops.diff import display_name
from tiops.enrich.attach import enrichment_of
from tiops.enrich.fields import ENRICHMENT_FIELDS, ENRICHMENT_SUBFIELDS, field_path
from tiops.enrich.lock import lock_directory
from tiops.errors import TiopsError
from tiops.findings import Finding
from tiops.jsonschemas import property_kinds
from tiops.load import IntelObject, Repo
from tiops.memory import paused_gc
from tiops.outputs import replace_whole, sweep_abandoned
from tiops.pipeline import load_and_validate
from tiops.progress import Progress, no_progress
from tiops.query import Row, rows_from_objects
from tiops.render.names import printable
from tiops.report import links
from tiops.report.panels import Panel, load_panels, month_counts, panel_data
from tiops.report.shards import (
    INDEX_FIELDS,
    index_row,
    index_script,
    shard_key,
    shard_script,
    shard_width,
)
from tiops.rules import apply_repo_rules, resolve_as_of
from tiops.stix import (
    ALL_TYPES,
    SCO_TYPES,
    TLP1_MARKINGS,
    TLP2_MARKINGS,
    tlp_level,
)
from tiops.where import QUERY_FIELDS

_HERE = Path(__file__).parent
_TLP_NAMES = {marking_id: name for marking_id, name in TLP2_MARKINGS.values()} | {
    marking_id: f"TLP:{level.upper()} (1.0)" for level, marking_id in TLP1_MARKINGS.items()
}
_EXPIRY_WINDOWS = (7, 30, 90)
_PAGE = 50  # rows per page of the browser (static/browser.js PAGE)
_CASEFOLD_PLACEHOLDER = "var CASEFOLD = {};"
#: Past the last character with a case (Adlam, U+1E900-1E94B): nothing there folds (tests/report hold it to that).
CASED_UP_TO = 0x1E950


@lru_cache(maxsize=1)
def casefold_table() -> str:
    """Every character ``str.casefold`` changes and what it folds to, as the JSON object static/query.js folds
    text with, so the browser compares text as ``tiops query`` does (ASCII-escaped: safe in a script)."""
    table = {ch: folded for ch in map(chr, range(CASED_UP_TO)) if (folded := ch.casefold()) != ch}
    return json.dumps(table, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
_CHART_ROWS = 15
# The most values a chart's "and N more" unfolds: a panel counting by a field of a value per
# object (group-by: id) would otherwise put every object into index.html, and a link per value
# costs a parse of its query (about 20 us) at build time.
_UNFOLDED = 1000


@dataclass(frozen=True)
class ReportResult:
    output: Path
    objects: int
    pages: int
    as_of: str | None
    errors: int = 0  # validation errors of a report written with allow_invalid
    data_files: int = 0  # data/index.js and the object shards


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
                 allow_invalid: bool = False, cache: bool = False) -> ReportResult:
    """Write the report for the repository at ``root`` into ``output`` (created; existing pages replaced).

    ``as_of`` (like ``--as-of``) is the moment rules and the expiry charts compare with;
    by default the HEAD commit's time. Validation errors refuse the report, as they refuse
    compilation; with ``allow_invalid`` every page carries a banner saying so instead.
    ``cache``: reuse and update the build cache in ``.tiops/build-cache/`` (tiops.buildcache),
    as compile does; the site is the same bytes either way.
    """
    # Like compile: the data built is big and acyclic, so the cyclic collector only costs time.
    with paused_gc():
        try:
            return _build_report(root, output, as_of=as_of, progress=progress, allow_invalid=allow_invalid, cache=cache)
        except OSError as error:
            # Only a failure to write the site is the user's to fix here; any other is a bug.
            # The output folder, a file in it, or a folder above it that mkdir had to create.
            failed = Path(os.path.abspath(os.fspath(error.filename or "")))
            wanted = Path(os.path.abspath(output))
            if not error.filename or not (failed.is_relative_to(wanted) or wanted.is_relative_to(failed)):
                raise
            raise TiopsError(f"cannot write the report to {output}: {error.strerror or error}",
                             hint="Name a folder tiops can create or write, like dist/report "
                                  "(not a file, a device or a read-only place).") from None


def _build_report(root: Path, output: Path, *, as_of: str | None, progress: Progress, allow_invalid: bool,
                  cache: bool) -> ReportResult:
    repo, findings = load_and_validate(root, progress=progress, cache=cache)
    errors = blocking_errors(findings)
    if errors and not allow_invalid:
        raise ReportRefused(errors)
    if errors:
        _leave_out_unreadable(repo)
    outcome, _rules, moment = apply_repo_rules(repo, resolve_as_of(root, as_of), record=True)
    objects = [_reportable(obj) for obj in compiled_objects(repo, rules=outcome)]
    origins = _origins(root, repo.objects, {k: tuple(a.rule for a in v if a.changes) for k, v in outcome.applied.items()})
    as_of_text = moment.text or _latest_modified(objects)
    environment = _environment()
    css = (_HERE / "static" / "report.css").read_text(encoding="utf-8")
    banner = (f"Built from intel with {len(errors)} validation error(s) (tiops report --allow-invalid): "
              "objects may be missing or wrong. Run 'tiops validate'.") if errors else None
    common = {"css": css, "as_of": as_of_text, "total": len(objects), "banner": banner}

    names = _names(objects)
    query_rows = rows_from_objects(objects)
    seen = {key for row in query_rows for key in row.data}
    seen_types = frozenset(t for row in query_rows if isinstance(t := row.data.get("type"), str))
    panels = load_panels(root, seen, seen_types)  # before anything is written
    overview = _overview(panels, query_rows, objects, as_of_text, names, seen, seen_types, repo.config.intel_path)
    # Every file is made before the first is written: a run that fails part way (a bug, an
    # object the report cannot read) leaves the previous site as it was, never half of each.
    files: dict[str, bytes] = {"index.html": _page(environment, "overview.html", root="", charts=overview, **common)}
    width = shard_width(len(query_rows))
    first_page = _data_files(files, query_rows, objects, names, origins, width, progress)
    browser_js = (_HERE / "static" / "browser.js").read_text(encoding="utf-8")
    query_js = (_HERE / "static" / "query.js").read_text(encoding="utf-8")
    assert query_js.count(_CASEFOLD_PLACEHOLDER) == 1
    query_js = query_js.replace(_CASEFOLD_PLACEHOLDER, f"var CASEFOLD = {casefold_table()};")
    object_js = (_HERE / "static" / "object.js").read_text(encoding="utf-8")
    data_js = (_HERE / "static" / "data.js").read_text(encoding="utf-8")
    files["browse.html"] = _page(
        environment, "browse.html", root="", script=browser_js, query_script=query_js, data_script=data_js, operators=_OPERATORS, fields=_BUILDER_FIELDS,
        catalogue=_script_json(_catalogue(seen, seen_types)), first_page=_script_json(first_page), width=width, **common)
    # The shards there are: a report with few objects has none for some UUID digits, and the object
    # page must tell "no such object" (no shard for its digits) from a shard file that went missing.
    shard_keys = " ".join(sorted(name[len(_SHARDS) + 1:-3] for name in files if name.startswith(f"{_SHARDS}/")))
    files["object.html"] = _page(environment, "object.html", root="", script=object_js, data_script=data_js, width=width,
                                 shards=shard_keys, **common)
    data_files = _write_site(output, files)
    return ReportResult(output, len(objects), 3, as_of_text, len(errors), data_files)


def _names(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The name the report shows for each object (tiops.diff.display_name). A sighting has no
    name, and its id says nothing: it is shown as "sighting of" the name of what was sighted."""
    names = {obj["id"]: display_name(obj) for obj in objects}
    for obj in objects:
        if obj["type"] == "sighting" and names[obj["id"]] == obj["id"]:
            sighted = obj.get("sighting_of_ref")
            if isinstance(sighted, str) and sighted:
                names[obj["id"]] = f"sighting of {names.get(sighted, sighted)}"
    return names


# What compiling reads as STIX shapes it (tiops.compile: the source extension goes into
# ``extensions``, built-in markings are looked up by their ids), for intel with errors.
_SHAPES: dict[str, Callable[[Any], bool]] = {
    "extensions": lambda value: isinstance(value, dict),
    "object_marking_refs": lambda value: isinstance(value, list) and all(isinstance(ref, str) for ref in value),
    "granular_markings": lambda value: isinstance(value, list) and all(
        not isinstance(item, dict) or isinstance(item.get("marking_ref"), str | None) for item in value),
}


def _leave_out_unreadable(repo: Repo) -> None:
    """Leave out of ``repo`` (intel with errors, ``--allow-invalid``) the properties that compiling
    cannot read in the shape they have (``extensions: [1]``, ``object_marking_refs: 5``): the report
    shows the rest of the object, and its banner says the intel has errors."""
    for position, intel in enumerate(repo.objects):
        data = intel.data
        wrong = [key for key, fits in _SHAPES.items() if key in data and not fits(data[key])]
        if wrong:
            repo.objects[position] = dataclasses.replace(
                intel, data={key: value for key, value in data.items() if key not in wrong})


def _reportable(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with an ``id`` and a ``type`` the report can key and show: text. Only intel with
    errors (``--allow-invalid``) has another value there (``id: [a]``), then shown as its JSON text."""
    if obj.get("id").__class__ is str and obj.get("type").__class__ is str:
        return obj  # the usual case: no copy
    shown = dict(obj)
    for key in ("id", "type"):
        value = obj.get(key)
        if value.__class__ is not str:
            shown[key] = "" if value is None else _dumps(value).decode()
    return shown


def _showable(value: Any) -> Any:
    """``value`` as JSON can hold it: an integer beyond 64 bits (which orjson refuses), a key
    that is not text or a value that is not JSON's becomes its text; the same value, the same result."""
    if isinstance(value, dict):
        return {key if isinstance(key, str) else str(_showable(key)): _showable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_showable(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return value if -(2 ** 63) <= value < 2 ** 64 else str(value)
    return str(value)


def _dumps(value: Any) -> bytes:
    """``value`` as JSON; what JSON cannot hold as it is (only intel with errors has it) as text (:func:`_showable`)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: walk the value only when it needs it
        return orjson.dumps(_showable(value))


def _data_files(files: dict[str, bytes], query_rows: list[Row], objects: list[dict[str, Any]], names: dict[str, str],
                origins: dict[str, _Origin], width: int, progress: Progress) -> dict[str, Any]:
    """Add data/index.js and the object shards to ``files``. Returns the first page of the
    browser's default view (by name, then id, as static/browser.js sorts) for browse.html."""
    relationships: dict[str, list[tuple[str, bool, str, str]]] = {}
    for obj in objects:
        if obj["type"] == "relationship":
            kind, source, target = str(obj.get("relationship_type")), str(obj.get("source_ref")), str(obj.get("target_ref"))
            relationships.setdefault(source, []).append((kind, True, target, obj["id"]))
            relationships.setdefault(target, []).append((kind, False, source, obj["id"]))
    referrers = _referrers(objects)
    pages = _own_pages(objects)
    index_rows: list[list[Any]] = []
    shards: dict[str, list[dict[str, Any]]] = {}
    reference_names = _ReferenceNames(names)
    for done, row in enumerate(query_rows, 1):
        obj = row.obj
        object_id = row.id
        name = names.get(object_id, object_id)
        tlp = tlp_level(row.data.get("object_marking_refs"))
        index_rows.append(index_row(row.data, name, row.source, tlp))
        related = relationships.get(object_id)  # most objects have none: no sort, no list to build
        entry: dict[str, Any] = {
            "o": obj, "n": name,  # the query language's own fields (observable...) are in the index row
            "r": reference_names(obj),
            "l": [[kind, outgoing, other, names.get(other, other), other in names, rel_id]
                  for kind, outgoing, other, rel_id in sorted(related, key=_link_order)] if related else [],
            "p": _origin_list(origins.get(object_id)),
        }
        referred = referrers.get(object_id)
        if referred:  # only then: most objects have none, and the shards stay small
            entry["b"] = [[key, other, names.get(other, other)] for key, other in sorted(referred)]
        if pages and (linked := _linked_pages(obj, pages)):
            entry["u"] = {url: [other, names.get(other, other)] for url, other in linked.items()}
        shards.setdefault(shard_key(object_id, width), []).append(entry)
        if done % 1000 == 0 or done == len(query_rows):
            progress("report", done, len(query_rows))
    for key, entries in shards.items():
        # One dumps call per shard: the same bytes as one per object joined, without holding
        # every object's JSON at once (half the report's peak memory at 100k objects); the
        # shard is kept packed (deflated) until it is written.
        files[f"{_SHARDS}/{key}.js"] = shard_script(key, _dumps(entries))
    fields = ["n", "s", "t", *INDEX_FIELDS]
    index = {"fields": fields, "rows": index_rows, "width": width, "shards": sorted(shards)}
    files["data/index.js"] = index_script(_dumps(index))
    ids = [row.id for row in query_rows]
    # Compared as JavaScript compares strings (UTF-16 code units), as static/browser.js sorts.
    order = heapq.nsmallest(_PAGE, range(len(index_rows)), key=lambda i: (
        _utf16(names.get(ids[i], ids[i]).lower()), _utf16(ids[i])))
    return {"fields": fields, "rows": [index_rows[i] for i in order], "total": len(index_rows)}


def _utf16(text: str) -> bytes:
    """``text`` in the order JavaScript's < compares strings: by UTF-16 code units."""
    return text.encode("utf-16-be", "surrogatepass")


# References every object of a source carries (its author, its markings, ATT&CK's last editor):
# the object they name would list thousands of referrers, and its page says nothing by them.
_NOT_BACK_LINKED = frozenset({"created_by_ref", "object_marking_refs", "x_mitre_modified_by_ref"})


def _referrers(objects: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    """Id -> (property, id) of each object that names it in a top-level ``*_ref``/``*_refs``
    property: a sighting's ``sighting_of_ref`` and ``where_sighted_refs``, a report's or note's
    ``object_refs``, a language-content's ``object_ref``, an SCO's ``resolves_to_refs``. STIX
    relates objects by these as much as by relationship objects (a sighting is one, STIX 2.1
    section 5.2), so the named object's page links back to them. A relationship's own ends are
    in the relationships list already."""
    found: dict[str, list[tuple[str, str]]] = {}
    # As _ReferenceNames: a few hundred shapes; with the type, since a relationship's ends are left out.
    shapes: dict[tuple[str, tuple[str, ...]], tuple[tuple[str, bool], ...]] = {}
    for obj in objects:
        shape = (obj["type"], tuple(obj))
        properties = shapes.get(shape)
        if properties is None:
            skipped = _NOT_BACK_LINKED | ({"source_ref", "target_ref"} if obj["type"] == "relationship" else set())
            properties = shapes[shape] = tuple(
                (key, key.endswith("_refs")) for key in shape[1] if key.endswith(("_ref", "_refs")) and key not in skipped)
        if not properties:
            continue
        object_id = obj["id"]
        for key, many in properties:
            value = obj[key]
            named: Iterable[Any] = {ref for ref in value if isinstance(ref, str)} if many and isinstance(value, list) \
                else (value,)
            for ref in named:  # once per property, however often the list names it
                if isinstance(ref, str) and ref != object_id:
                    found.setdefault(ref, []).append((key, object_id))
    return found


#: The Markdown link targets of a description as static/object.js reads them ("[text](url)", a
#: URL that may hold one level of parentheses, as Wikipedia's do).
_MARKDOWN_TARGET = re.compile(r"\]\((https?://[^\s()\x00-\x1f]+(?:\([^\s()\x00-\x1f]*\)[^\s()\x00-\x1f]*)*)\)", re.IGNORECASE)
#: The properties whose Markdown static/object.js shows as links.
_MARKDOWN_PROPERTIES = ("description", "x_mitre_detection")


def _own_pages(objects: list[dict[str, Any]]) -> dict[str, str]:
    """URL -> id of the object whose own page it is: the URL of an object's first external
    reference that has an ``external_id`` (ATT&CK's ``mitre-attack``, CAPEC's ``capec``: the
    source's page of that very object). ATT&CK's descriptions link to other objects by these
    URLs ("[Mimikatz](https://attack.mitre.org/software/S0002)"); the object page links to the
    object in this report instead, which works offline and shows the intel as compiled.

    Where several objects claim a URL, the current one wins (not revoked, not deprecated: ATT&CK
    keeps the URL on the object a revoked one was merged into), then the least id."""
    claims: dict[str, tuple[bool, str]] = {}
    for obj in objects:
        references = obj.get("external_references")
        if not references or not isinstance(references, list):
            continue
        first = references[0]
        if not isinstance(first, dict):
            continue
        url, external_id = first.get("url"), first.get("external_id")
        if not isinstance(url, str) or not isinstance(external_id, str) or not url.startswith(("https://", "http://")):
            continue
        claim = (obj.get("revoked") is True or obj.get("x_mitre_deprecated") is True, obj["id"])
        key = url.rstrip("/")
        if key not in claims or claim < claims[key]:
            claims[key] = claim
    return {url: object_id for url, (_, object_id) in claims.items()}


def _linked_pages(obj: dict[str, Any], pages: dict[str, str]) -> dict[str, str]:
    """The Markdown link targets in ``obj``'s descriptions that are an object's own page: URL as
    written -> that object's id."""
    linked: dict[str, str] = {}
    for key in _MARKDOWN_PROPERTIES:
        text = obj.get(key)
        if text.__class__ is not str or "](" not in text:
            continue
        for url in _MARKDOWN_TARGET.findall(text):
            other = pages.get(url.rstrip("/"))
            if other is not None:
                linked[url] = other
    return linked


def _link_order(link: tuple[str, bool, str, str]) -> tuple[str, str]:
    return link[0], link[2]  # relationship type, then the other end's id


class _ReferenceNames:
    """What the object page shows for each id an object references: its name (a TLP
    marking by its TLP name) and whether the report has it. Kept per id, since at 100k
    objects most share their creator and marking, and the reference properties per
    shape (the object's property names in order), since a few hundred shapes cover them all."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.shown: dict[str, list[Any]] = {}
        self.shapes: dict[tuple[str, ...], tuple[tuple[str, bool], ...]] = {}  # -> (property, is a list of refs)

    def __call__(self, obj: dict[str, Any]) -> dict[str, list[Any]]:
        shape = tuple(obj)
        properties = self.shapes.get(shape)
        if properties is None:
            properties = self.shapes[shape] = tuple(
                (key, key.endswith("_refs")) for key in shape if key.endswith(("_ref", "_refs")))
        found: dict[str, list[Any]] = {}
        for key, many in properties:
            value = obj[key]
            for ref in value if many and isinstance(value, list) else (value,):
                if isinstance(ref, str):
                    shown = self.shown.get(ref)
                    if shown is None:
                        shown = self.shown[ref] = [_TLP_NAMES.get(ref) or self.names.get(ref) or ref, ref in self.names]
                    found[ref] = shown
        return found


def _origin_list(origin: _Origin | None) -> list[Any] | None:
    if origin is None:
        return None
    return [origin.file, origin.line, origin.source, list(origin.defaults_files), list(origin.rules)]


# --- Data ---------------------------------------------------------------------------

# The fields offered by the browser's condition builder (any other field can be typed).
_BUILDER_FIELDS = ["name", "type", "observable", "observable_type", "external_id", "source", "tlp", "tags",
                   "confidence", "indicator_types", "created", "modified", "valid_until", "revoked", "id",
                   "description", "pattern", "x_mitre_deprecated"]


def _catalogue(seen: set[str], seen_types: frozenset[str] = frozenset()) -> dict[str, Any]:
    """What makes typos errors in the browser's query engine (static/query.js) too."""
    kinds = {**property_kinds(), "labels": "any", "type": "stix-type", **QUERY_FIELDS.own}
    # Sorted: property_kinds() is built from sets, whose order changes from one process to the next.
    return {"kinds": dict(sorted(kinds.items())), "seen": sorted(seen), "stixTypes": sorted(ALL_TYPES | seen_types),
            "scoTypes": sorted(SCO_TYPES), "paths": {top: field_path(top) for top in ENRICHMENT_FIELDS},
            # What may follow enrichment. and whois.: a misspelt name is an error, as in tiops query.
            "subfields": {top: sorted(ENRICHMENT_SUBFIELDS[top]) for top in ENRICHMENT_FIELDS}}

# The operator vocabulary of ingestion rules (docs/rules.md), those that make sense on a table.
_OPERATORS = ["contains", "equals", "not-equals", "starts-with", "ends-with", "matches", "in", ">", ">=", "<", "<=",
              "exists", "not-exists"]


def _href(object_id: str, root: str) -> str:
    """The object page of ``object_id``: one page for every object, the id in the fragment."""
    return f"{root}object.html#{quote(object_id, safe='')}"  # as browser.js links it: static/object.js decodes it


def _overview(panels: list[Panel], query_rows: list[Row], objects: list[dict[str, Any]], as_of: str | None,
              names: dict[str, str], seen: set[str], seen_types: frozenset[str],
              intel_path: Path | None = None) -> list[dict[str, Any]]:
    """One chart per panel (report.yaml or the defaults), then the expiry chart of the as-of time.
    Each bar or counted row links to the browser with the query of the objects it counts
    (tiops.report.links): the browser's count is the bar's."""
    charts = []
    selected: dict[str, list[Row]] = {}

    def href(test: str | None, base: str | None = None) -> str | None:
        """The link for a bar's ``test`` (None: the bar has none) within a panel's query ``base``."""
        if test is None:
            return None
        expression = links.joined(base, test)
        return links.browse_href(expression) if links.checked(expression, seen, seen_types) else None

    for panel in panels:
        data = panel_data(panel, query_rows, selected)
        matching = selected[repr(panel.query)]
        if data["kind"] == "table" and "rows" in data:
            charts.append({"title": panel.title, "kind": "objects", "hidden": data["hidden"], "bars": [],
                           "rows": [{"name": names.get(o["id"], o["id"]), "type": o["type"], "href": _href(o["id"], "")}
                                    for o in data["rows"]],
                           "more": _browse_all(panel, seen, seen_types) if data["hidden"] else None})
            continue
        tests = _bar_tests(panel, matching, data)
        rest = data.get("rest", [])[:_UNFOLDED]
        hrefs = {label: href(tests.get(label), panel.text) for label, _ in (*data["items"], *rest)}
        # Past what unfolds (a panel counting by a field of many values): the objects that have one.
        beyond = href(f"{panel.group_by} exists", panel.text) if panel.group_by and len(data.get("rest", [])) > len(rest) \
            else None
        if data["kind"] == "table":
            charts.append({"title": panel.title, "kind": "counts", "hidden": data["hidden"], "bars": [],
                           "rows": [{"label": label, "count": count, "href": hrefs[label]} for label, count in data["items"]],
                           "rest": _rows(rest, hrefs), "beyond": beyond})
        else:
            charts.append(_bars(panel.title, data["items"], data.get("hidden", 0), data["total"], hrefs, rest, beyond))
    indicators = [o for o in objects if o["type"] == "indicator"]
    if as_of is not None:
        moment = _parse(as_of)
        # Timestamps compare as text (RFC 3339, seconds cut): no datetime per indicator.
        now = _stamp(moment)
        ends = [(f"within {days} days", _later_stamp(moment, days)) for days in _EXPIRY_WINDOWS]
        expiring: Counter[str] = Counter()
        for obj in indicators:
            until = _until(obj.get("valid_until"))
            if until < now or obj.get("revoked") is True:
                continue
            for label, end in ends:
                if until <= end:
                    expiring[label] += 1
        expiry_links = {}
        for days in _EXPIRY_WINDOWS:
            # valid_until, its seconds cut, at most the end: before the second after the end.
            # (At the ends of time the stamps are no timestamps, the query does not parse: no link.)
            after = _later_stamp(moment, days, seconds=1)
            expiry_links[f"within {days} days"] = href(
                f"type = indicator and valid_until >= {now}Z and valid_until < {after}Z and revoked != true")
        charts.append(_chart(f"Indicators expiring (as of {as_of})", expiring, keep_order=True,
                             order=[f"within {d} days" for d in _EXPIRY_WINDOWS], show_zero=True, hrefs=expiry_links))
    charts.extend(_enrichment_charts(objects, href, credit=_as_credit(intel_path)))
    return charts


# DB-IP's licence (CC BY 4.0, with its own terms for web pages) asks a page that shows its
# data for a link back; the shipped AS table takes most organisation names from DB-IP's
# IP to ASN Lite (tiops/data/asn/NOTICE).
_SHIPPED_AS_CREDIT: Final = {
    "text": "AS numbers and names from RouteViews, the NRO and DB-IP (CC BY 4.0), as shipped with tiops:",
    "link": "IP Geolocation by DB-IP", "href": "https://db-ip.com"}


def _as_credit(intel_path: Path | None) -> dict[str, str] | None:
    """The credit the AS panel carries: the shipped table's sources, when the lock's geo results
    came from it (a team's own .mmdb file has its own terms, which the team knows)."""
    if intel_path is None:
        return None
    try:
        meta = orjson.loads((lock_directory(intel_path) / "lock.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    geo = meta.get("geo") if isinstance(meta, dict) else None
    return _SHIPPED_AS_CREDIT if isinstance(geo, dict) and geo.get("backend") == "shipped" else None


def _bar_tests(panel: Panel, matching: list[Row], data: dict[str, Any]) -> dict[str, str]:
    """The test of each bar of a panel (by label), to be joined to the panel's own query."""
    if panel.bars:
        return {label: text for (label, _), text in zip(panel.bars, panel.bar_texts, strict=True)}
    assert panel.group_by is not None
    if panel.chart == "timeline":
        # A month whose every value is a timestamp is a range of moments; one holding other
        # text (intel with errors) counts what no range finds, and gets no link.
        clean = month_counts(matching, panel.group_by, timestamps_only=True)
        return {month: test for month, count in (*data["items"], *data["rest"])
                if clean.get(month) == count and (test := links.month_test(panel.group_by, month)) is not None}
    return links.group_tests(matching, panel.group_by)


def _enrichment_charts(objects: list[dict[str, Any]], href: Callable[[str | None], str | None], *,
                       credit: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Country and AS panels from the locked enrichment (tiops.enrich), when the bundle carries any.

    Each counts objects, once in every country (system) its values fall in, as ``tiops query
    --group-by enrichment.country_code`` (``enrichment.asn``) counts them: a chart and the command
    agree (docs/review.md), and each bar links to the query of its objects. A country is counted
    by its code and an AS by its number (an AS without one by its organisation), each labelled
    with the name the lock gives it (the first in order, should two lookups differ).
    """
    countries: Counter[Any] = Counter()
    systems: Counter[tuple[str, Any]] = Counter()
    country_names: dict[Any, str] = {}
    system_names: dict[tuple[str, Any], str] = {}
    # The objects with an organisation in any lookup, by the key '=' compares: an AS counted by
    # its organisation alone links to its query only when that finds the same objects.
    organisations: Counter[tuple[str, Any]] = Counter()
    for obj in objects:
        # Intel with errors (--allow-invalid) may hold anything there: what is not an
        # enrichment record (a mapping) is left out, as tiops query leaves it out.
        extension = enrichment_of(obj) if isinstance(obj.get("extensions"), dict) else None
        items = (extension or {}).get("enrichment")
        its_countries: set[Any] = set()
        its_systems: set[tuple[str, Any]] = set()
        its_organisations: set[tuple[str, Any]] = set()
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict):
                continue
            code, asn, organisation = item.get("country_code"), item.get("asn"), item.get("as_organization")
            if code and _hashable(code):
                its_countries.add(code)
                country_names.setdefault(code, f"{item.get('country') or code} ({code})")
            if organisation is not None and _hashable(organisation):
                its_organisations.add(links.equality_key(organisation))
            if (asn or organisation) and _hashable(asn) and _hashable(organisation):
                key = ("asn", asn) if asn else ("organisation", organisation)
                its_systems.add(key)
                number = f"AS{asn} " if asn else ""
                system_names.setdefault(key, f"{number}{organisation or ''}".strip())
        countries.update(its_countries)
        systems.update(its_systems)
        organisations.update(its_organisations)
    charts = []
    if countries:
        tests = links.value_tests("enrichment.country_code", countries)
        shown, shown_links = _labelled(countries, country_names, {code: href(tests.get(code)) for code in countries})
        charts.append(_chart("Enriched objects by country", shown, hrefs=shown_links))
    if systems:
        numbers = links.value_tests("enrichment.asn", [value for kind, value in systems if kind == "asn"])
        named = links.value_tests("enrichment.as_organization", [value for kind, value in systems if kind != "asn"])
        system_links: dict[Any, str | None] = {}
        for key, count in systems.items():
            kind, value = key
            if kind == "asn":
                system_links[key] = href(numbers.get(value))
            elif organisations[links.equality_key(value)] == count:
                system_links[key] = href(named.get(value))
        shown, shown_links = _labelled(systems, system_names, system_links)
        charts.append(_chart("Enriched objects by autonomous system", shown, hrefs=shown_links) | {"credit": credit})
    return charts


def _hashable(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _labelled(counts: Counter[Any], labels: dict[Any, str], hrefs: dict[Any, str | None]) -> tuple[Counter[str], dict[str, str | None]]:
    """The counts by label, and the link of each label; a label two keys share (two AS without a
    number whose organisations read alike) adds their counts and gets no link, which would find one."""
    shown: Counter[str] = Counter()
    keys: Counter[str] = Counter()
    for key, count in counts.items():
        shown[labels[key]] += count
        keys[labels[key]] += 1
    return shown, {labels[key]: hrefs.get(key) if keys[labels[key]] == 1 else None for key in counts}


def _bars(title: str, items: list[tuple[str, int]], hidden: int, total: int,
          hrefs: dict[str, str | None] | None = None, rest: list[tuple[str, int]] | None = None,
          beyond: str | None = None) -> dict[str, Any]:
    """A bar chart of ``items``; ``rest``: the ``hidden`` values left out of it, which its
    "and N more" unfolds as a table (each linked as a bar is), so no value is out of reach; at
    most :data:`_UNFOLDED` of them, ``beyond`` the browser's link for the objects past those."""
    top = max((count for _, count in items), default=0) or 1
    bar_width = 420
    bars = [{"label": label, "count": count, "y": index * 24, "width": round(bar_width * count / top, 1),
             "href": (hrefs or {}).get(label)}
            for index, (label, count) in enumerate(items)]
    return {"title": title, "kind": "bars", "bars": bars, "height": max(24, 24 * len(bars)), "hidden": hidden,
            "total": total, "rest": _rows((rest or [])[:_UNFOLDED], hrefs or {}), "beyond": beyond}


def _rows(items: list[tuple[str, int]], hrefs: dict[str, str | None]) -> list[dict[str, Any]]:
    return [{"label": label, "count": count, "href": hrefs.get(label)} for label, count in items]


# The browser's sort columns (static/browser.js COLUMNS), to which a panel's sort carries over.
_BROWSE_SORTS = frozenset({"name", "type", "source", "tlp", "confidence", "labels", "modified"})


def _browse_all(panel: Panel, seen: set[str], seen_types: frozenset[str]) -> str | None:
    """The browser showing every object of a table panel, in the panel's order where the browser
    has it: where its "and N more" leads (None: a query the browser cannot read, no link)."""
    expression = panel.text or ""
    if expression and links.checked(expression, seen, seen_types) is None:
        return None
    address = links.browse_href(expression) if expression else links.BROWSE
    sort = panel.query.sort
    if sort in _BROWSE_SORTS and (sort != "name" or panel.query.descending):  # by name is the browser's default
        address += ("&" if expression else "#") + f"sort={sort}" + ("&desc=1" if panel.query.descending else "")
    return address


def _chart(title: str, counts: Counter[str], *, keep_order: bool = False, order: Iterable[str] = (),
           show_zero: bool = False, newest: bool = False, hrefs: dict[str, str | None] | None = None) -> dict[str, Any]:
    if keep_order:
        items = [(label, counts.get(label, 0)) for label in order if show_zero or counts.get(label, 0)]
    else:
        items = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    hidden = max(0, len(items) - _CHART_ROWS)
    shown, rest = (items[-_CHART_ROWS:], items[:-_CHART_ROWS]) if newest else (items[:_CHART_ROWS], items[_CHART_ROWS:])
    return _bars(title, shown, hidden, sum(counts.values()), hrefs, rest)


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
    # A top-level item starts with a dash in the first column followed by a space, a tab or the end
    # of the line (YAML 1.2 section 8.2.1). Content nested in an item is indented, so no line of it
    # starts with a dash in the first column. The object is where its content starts, as
    # tiops explain places it: on the dash's line, or on the next line with content after a dash alone.
    lines = text.splitlines()
    found: list[int] = []
    for number, line in enumerate(lines, 1):
        if not line.startswith("-") or (len(line) > 1 and line[1] not in " \t"):
            continue
        content = line[1:].strip()
        if content and not content.startswith("#"):
            found.append(number)
            continue
        following = number
        while following < len(lines) and (not (rest := lines[following].strip()) or rest.startswith("#")):
            following += 1
        found.append(following + 1 if following < len(lines) else number)
    return found


def _latest_modified(objects: list[dict[str, Any]]) -> str | None:
    stamps = [str(o["modified"]) for o in objects if o.get("modified")]
    return max(stamps) if stamps else None


def _stamp(moment: datetime) -> str:
    return "0000-00-00T00:00:00" if moment == datetime.min.replace(tzinfo=UTC) else (
        "9999-99-99T99:99:99" if moment == datetime.max.replace(tzinfo=UTC) else moment.strftime("%Y-%m-%dT%H:%M:%S"))


def _later_stamp(moment: datetime, days: int, seconds: int = 0) -> str:
    try:
        return _stamp(moment + timedelta(days=days, seconds=seconds))
    except OverflowError:  # an as-of time at the end of time
        return _stamp(datetime.max.replace(tzinfo=UTC))


def _until(value: Any) -> str:
    """valid_until as _parse reads it, as comparable text: empty is the earliest moment,
    text that is not a timestamp the latest (never expiring)."""
    text = str(value or "")[:19]
    if not text:
        return "0000-00-00T00:00:00"
    if len(text) == 19 and text[4] == "-" and text[7] == "-" and text[10] == "T" and text[13] == ":" and text[16] == ":" \
            and text.replace("-", "").replace("T", "").replace(":", "").isdigit():
        return text
    return _stamp(_parse(text))


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
        finalize=_shown,
    )


def _script_json(data: Any) -> str:
    """JSON safe inside <script type="application/json">: no '<', '>' or '&' can end or open a tag."""
    text = _dumps(data).decode()
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    # The same JSON, no control or bidirectional character raw in the page (orjson escapes only C0 ones).
    return _RAW_IN_JSON.sub(lambda match: f"\\u{ord(match[0]):04x}", text)


_RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _shown(value: Any) -> Any:
    """What a ``{{ value }}`` of a template writes: text from intel as the CLI prints it
    (tiops.render.names.printable: controls, bidirectional overrides and isolates escaped, so a
    name cannot reorder what is read, Trojan Source, nor put a NUL or a control into the page)."""
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return printable(value)
    return value


def _page(environment: jinja2.Environment, template: str, **context: Any) -> bytes:
    return environment.get_template(template).render(**context).encode("utf-8")


_SHARDS = "data/objects"


def _write_site(output: Path, files: dict[str, bytes]) -> int:
    """Write ``files`` (path in the site -> bytes) into ``output``, each whole or not at all, the
    data first and the pages that load it last; remove shards of an earlier build that no object
    names any more. Returns how many data files the site has."""
    output.mkdir(parents=True, exist_ok=True)
    (output / _SHARDS).mkdir(parents=True, exist_ok=True)
    for name in sorted(files, key=lambda name: (name.endswith(".html"), name)):
        _write_bytes(output / name, files[name])
    for stale in (output / _SHARDS).glob("*.js"):
        if f"{_SHARDS}/{stale.name}" not in files:
            stale.unlink()
    return sum(1 for name in files if name.startswith("data/"))


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # What a report killed while writing left here goes, also when every file is unchanged (and so
    # never rewritten below): it would be published with the site.
    sweep_abandoned(path.parent)
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return  # unchanged: leave the file (and its mtime) alone
    except OSError:
        pass
    replace_whole(path, data)  # a dot name beside it, removed again when the write fails
