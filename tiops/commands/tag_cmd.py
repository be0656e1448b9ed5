"""`tiops tag add|remove TAG... --where EXPR | --id ID`: tag many objects at once."""

from __future__ import annotations

from pathlib import PurePosixPath

import click

from tiops.commands.common import handle_errors, no_cache_option, repo_root
from tiops.load import OVERLAY_FILE
from tiops.render.names import labelled, printable
from tiops.tagging import tag_objects
from tiops.where import parse_where


@click.command("tag")
@click.argument("action", type=click.Choice(["add", "remove"]))
@click.argument("tags", nargs=-1, required=True)
@click.option("--where", "where", metavar="EXPR",
              help="Which objects, e.g. 'type = indicator and source = \"Abuse feed\" and confidence >= 80'.")
@click.option("--id", "ids", multiple=True, metavar="ID", help="An object id to tag. Repeatable.")
@no_cache_option
@click.pass_context
@handle_errors
def tag_command(ctx: click.Context, action: str, tags: tuple[str, ...], where: str | None, ids: tuple[str, ...],
                no_cache: bool = False) -> None:
    """Add or remove TAGS (STIX labels) on many objects, editing their files in place."""
    condition = parse_where(where) if where is not None else None
    changes = tag_objects(repo_root(ctx), action, list(tags), condition=condition, ids=list(ids), cache=not no_cache)
    for change in changes:
        click.echo(printable(f"{change.file}: {labelled(change.stix_id, change.name)}: "
                             f"labels [{', '.join(change.before)}] -> [{', '.join(change.after)}]"))
    click.echo(f"{len(changes)} object(s) changed in {len({c.file for c in changes})} file(s)")
    own = sum(1 for change in changes if PurePosixPath(change.file).name != OVERLAY_FILE)
    if own:  # a partner object's overlay is no new version; the team's own objects are (STIX 2.1 section 3.6)
        click.echo(f"note: {own} of the team's own objects changed content; 'tiops bump --base REF' gives them a "
                   "later modified, which 'tiops validate --base' checks (TI800)", err=True)
