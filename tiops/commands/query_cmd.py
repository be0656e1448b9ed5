"""`tiops query [EXPR] [BUNDLE.json]`: find and count compiled intel (docs/query.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from tiops.commands.common import handle_errors, no_cache_option, repo_root
from tiops.errors import UsageError
from tiops.query import Query, Row, group_counts, parse_query, query_fields, rows_without, select
from tiops.query.sources import file_view, repository_view, target_view
from tiops.render.csvcells import csv_text
from tiops.render.names import printable
from tiops.rules.conditions import MISSING, field_getter
from tiops.where import parse_where

FORMATS = ("table", "json", "csv", "ids")


@click.command("query")
@click.argument("arguments", nargs=-1, metavar="[EXPR] [BUNDLE.json]")
@click.option("--type", "types", multiple=True, metavar="TYPE", help="Only objects of this STIX type. Repeatable.")
@click.option("--sort", metavar="FIELD[:desc]", help="Sort by a field (missing values last), e.g. --sort confidence:desc.")
@click.option("--limit", type=int, metavar="N", help="At most N results (N groups with --group-by).")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True,
              help="table; json (a list of STIX objects, or of {value, count}); csv; ids (one id per line).")
@click.option("--group-by", "group_by", metavar="FIELD",
              help="Count the matching objects by a field's value instead of listing them. A list-valued field "
                   "(labels, observable, external_id...) counts each element: an object with two labels counts once "
                   "under each. Objects without the field are not counted. Sorted by count, most first, then value.")
@click.option("--target", metavar="NAME", help="Query a store's current objects instead of the repository (a target in tiops.yaml).")
@no_cache_option
@click.pass_context
@handle_errors
def query_command(ctx: click.Context, arguments: tuple[str, ...], types: tuple[str, ...], sort: str | None,
                  limit: int | None, output_format: str, group_by: str | None, target: str | None,
                  no_cache: bool = False) -> None:
    """Find and count objects with the --where language.

    Searches the compiled intel (after defaults and ingestion rules, the latest version of
    each object), a bundle file given as BUNDLE.json, or with --target a store. EXPR is the
    --where language plus observable, observable_type and external_id, e.g.

        tiops query "observable = 203.0.113.45"

        tiops query "external_id = T0865" --format json

        tiops query --type indicator --group-by indicator_types

    The language is described in docs/query.md. Exit status 0 (also when nothing
    matches), 1 when the repository does not validate, 2 for a mistake in the
    expression or options.
    """
    expression, bundle = _split_arguments(arguments)
    root: Path | None
    if bundle is not None:
        bundle = bundle if bundle.is_absolute() else Path.cwd() / bundle
        try:  # a bundle needs no repository; inside one, its kept view goes to .tiops/cache
            root = repo_root(ctx, near=[bundle.parent])
        except UsageError:
            root = None
    else:
        root = repo_root(ctx)
    if bundle is not None and target is not None:
        raise UsageError("give either a BUNDLE.json or --target, not both")
    if group_by is not None and output_format == "ids":
        raise UsageError("--group-by counts values; it has no ids to print", hint="Use --format table, json or csv.")
    if expression is not None:
        parse_where(expression, fields=None)  # a syntax error is reported before anything is read
    if bundle is not None:
        view = file_view(bundle, root)
    elif target is not None:
        assert root is not None  # only a bundle is read outside a repository
        view = target_view(root, target)
    else:
        assert root is not None
        view, fresh = repository_view(root, cache=not no_cache)
        if not fresh:
            click.echo("tiops: note: compiled the repository in memory; 'tiops compile' first makes queries fast", err=True)
    seen = view.property_names
    seen_types = {t for t in view.column("type") if isinstance(t, str)}  # extension-defined types among them
    query = parse_query(expression, types=types, sort=sort, limit=None if group_by else limit, seen=seen,
                        seen_types=seen_types)
    if group_by is not None:
        parse_query(None, sort=group_by, seen=seen)  # checks the field name
    rows = view.rows(query_fields(query, group_by), only=view.candidates(query.condition))
    if group_by is not None:
        matched = select(rows, Query(query.condition))
        counts = group_counts(matched, group_by, limit)
        click.echo(_render_counts(counts, output_format), nl=False)
        uncounted = rows_without(matched, group_by) if output_format == "table" else 0
        if uncounted:  # an empty or short table would otherwise read as "nothing matched"
            click.echo(f"{uncounted} matching object(s) without {group_by}, not counted")
        return
    click.echo(_render_rows(select(rows, query), output_format, query.sort), nl=False)


def _split_arguments(arguments: tuple[str, ...]) -> tuple[str | None, Path | None]:
    expression: str | None = None
    bundle: Path | None = None
    for argument in arguments:
        if argument.lower().endswith(".json") and not any(c.isspace() for c in argument):
            if bundle is not None:
                raise UsageError("give one BUNDLE.json at most")
            bundle = Path(argument)
        elif expression is None:
            expression = argument
        else:
            raise UsageError(f"one expression at most; quote it as one argument: tiops query \"{' '.join(arguments)}\"")
    return expression, bundle


def _label(obj: dict[str, Any]) -> str:
    for key in ("name", "value", "pattern", "relationship_type"):
        value = obj.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return printable(str(value) if key != "relationship_type"
                             else f"{obj.get('source_ref')} {value} {obj.get('target_ref')}")
    return ""


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as STIX, JSON and the query language write it, not Python's True
    if isinstance(value, (list, dict)):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return "" if value is None else printable(str(value))


def _render_rows(rows: list[Row], output_format: str, sort: str | None) -> str:
    if output_format == "ids":
        return "".join(f"{row.id}\n" for row in rows)
    if output_format == "json":
        return orjson.dumps([row.obj for row in rows], option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode() + "\n"
    header = ["id", "type", "name"]
    extra = sort if sort is not None and sort not in header else None
    table = [[row.id, str(row.obj.get("type", "")), _label(row.obj)] for row in rows]
    if extra is not None:
        header.append(extra)
        getter = field_getter(extra)
        for line, row in zip(table, rows, strict=True):
            value = getter(row)
            line.append("" if value is MISSING else _cell(value))
    if output_format == "csv":
        return csv_text([header, *table])
    if not rows:
        return "no objects match\n"
    return _table([[h.upper() for h in header], *table]) + f"{len(rows)} object(s)\n"


def _render_counts(counts: list[tuple[Any, int]], output_format: str) -> str:
    if output_format == "json":
        return orjson.dumps([{"value": v, "count": n} for v, n in counts], option=orjson.OPT_INDENT_2).decode() + "\n"
    table = [[_cell(v), str(n)] for v, n in counts]
    if output_format == "csv":
        return csv_text([["value", "count"], *table])
    return _table([["VALUE", "COUNT"], *table])


def _table(lines: list[list[str]]) -> str:
    widths = [min(max(len(line[i]) for line in lines), 80) for i in range(len(lines[0]))]
    out = []
    for line in lines:
        cells = [(c if len(c) <= 80 else c[:79] + "…").ljust(w) for c, w in zip(line, widths, strict=True)]
        out.append("  ".join(cells).rstrip() + "\n")
    return "".join(out)
