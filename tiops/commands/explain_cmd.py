"""`tiops explain ID`: where an object comes from and what the ingestion rules did to it."""

from __future__ import annotations

from typing import Any

import click
import orjson

from tiops.buildcache import load_intel
from tiops.commands.common import handle_errors, no_cache_option, repo_root
from tiops.compile import builtin_object
from tiops.config import usable_config
from tiops.enrich.attach import ENRICHMENT_EXTENSION_OBJECT
from tiops.enrich.origin import enrichment_origins, render_origins
from tiops.errors import UsageError
from tiops.importers.dependents import sharing_sources
from tiops.lookup import find_object, object_name
from tiops.render.names import names_of, what
from tiops.rules import apply_repo_rules, resolve_as_of
from tiops.rules.trace import explain, render_trace
from tiops.stix import BUILTIN_OBJECTS, SOURCE_EXTENSION_OBJECTS


@click.command("explain")
@click.argument("stix_id", metavar="OBJECT")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--as-of", "as_of", metavar="TIMESTAMP", help="The as-of time for older-than/newer-than (default: HEAD commit time).")
@no_cache_option
@click.pass_context
@handle_errors
def explain_command(ctx: click.Context, stix_id: str, output_format: str, as_of: str | None,
                    no_cache: bool = False) -> None:
    """Show the file and line of OBJECT, the defaults merged in, every ingestion rule that matched it,
    and where each of its enrichment results came from.

    OBJECT is an id, a unique start of an id, or a unique name.
    """
    root = repo_root(ctx)
    usable_config(root, "explained")  # with errors tiops.yaml would read as all defaults: other folders, other rules
    repo = load_intel(root, cache=not no_cache)
    builtin = builtin_object(stix_id.strip())
    if builtin is not None and not any(obj.id == builtin["id"] for obj in repo.objects):
        _explain_builtin(builtin, output_format)
        return
    try:
        obj = find_object(repo, stix_id)
    except UsageError:
        builtin = _builtin_named(stix_id.strip())  # 'TLP:RED', an upper-case or shortened id
        if builtin is None:
            raise
        _explain_builtin(builtin, output_format)
        return
    outcome, _, _ = apply_repo_rules(repo, resolve_as_of(root, as_of), record=True)
    trace = explain(repo, outcome, obj.id)
    name = object_name(obj.data)
    # The values of the object as the rules left it (a rule may change its pattern); the authored one if dropped.
    compiled = next((survivor for survivor in outcome.objects if survivor.id == obj.id), obj)
    trace["enrichment"] = enrichment_origins(repo.config.intel_path, root, compiled.data)
    if trace.get("imported_folder"):
        trace["also_imported_by"] = sharing_sources(str(repo.config.intel_path), str(root), obj.id)
    if output_format == "json":
        click.echo(orjson.dumps({**trace, "name": name}, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode())
    else:
        first, _, rest = render_trace(trace).partition("\n")
        names = names_of(o.data for o in repo.objects)
        described = what(obj.data, obj.id, names)
        text = f"{described} ({first})\n{rest}" if described else f"{first}\n{rest}"
        click.echo(text + render_origins(trace["enrichment"]), nl=False)


def _builtin_named(text: str) -> dict[str, Any] | None:
    """The one built-in object ``text`` names by id (any case), id prefix or name; None when
    none does, a usage error when several do (TLP 1.0 and 2.0 share names)."""
    wanted = text.casefold()
    pool = [*SOURCE_EXTENSION_OBJECTS, ENRICHMENT_EXTENSION_OBJECT, *BUILTIN_OBJECTS.values()]
    for matches in ([o for o in pool if str(o["id"]).casefold() == wanted],
                    [o for o in pool if "--" in wanted and str(o["id"]).casefold().startswith(wanted)],
                    [o for o in pool if (object_name(o) or "").casefold() == wanted]):
        if len(matches) > 1:
            listed = "; ".join(f"{object_name(o)} ({o['id']})" for o in matches)
            raise UsageError(f"object {text!r}: {len(matches)} built-in objects match: {listed}",
                             hint="Give the full id.")
        if matches:
            return matches[0]
    return None


def _explain_builtin(builtin: dict[str, object], output_format: str) -> None:
    """An object no file holds: tiops adds it to a bundle whose objects need it."""
    why = ("tiops adds it to the bundle when an object needs it: a TLP marking an object references, "
           "the definition of an extension the bundle's objects use, or the identity that made them")
    if output_format == "json":
        click.echo(orjson.dumps({"id": builtin["id"], "name": object_name(builtin), "builtin": True, "why": why},
                                option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode())
        return
    name = object_name(builtin)
    click.echo(f"{builtin['id']}{f' ({name})' if name else ''}\n  built in: no file holds it; {why}")
