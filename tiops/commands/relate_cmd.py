"""`tiops relate SOURCE TYPE TARGET...`: the relationship builder."""

from __future__ import annotations

import click

from tiops.authoring import now_timestamp
from tiops.commands.common import handle_errors, no_cache_option, repo_root
from tiops.relating import relate
from tiops.render.names import labelled


@click.command("relate")
@click.argument("source")
@click.argument("relationship_type", metavar="TYPE")
@click.argument("targets", nargs=-1, required=True, metavar="TARGET...")
@click.option("--description", help="The description of every relationship added.")
@click.option("--remove", is_flag=True, help="Take the relationships away instead of adding them.")
@click.option("--time", "time", metavar="TIMESTAMP",
              help="created/modified of standalone relationship files (default: now).")
@no_cache_option
@click.pass_context
@handle_errors
def relate_command(ctx: click.Context, source: str, relationship_type: str, targets: tuple[str, ...],
                   description: str | None, remove: bool, time: str | None, no_cache: bool = False) -> None:
    """Add relationships SOURCE --TYPE--> TARGET, one per TARGET (or take them away with --remove).

    SOURCE and each TARGET are an id, a unique start of an id, or a unique name.
    Every triple is checked against the relationship table and every target must
    exist before anything is written. The team's objects get inline entries in
    their file; a partner (imported) object gets a standalone relationship file.
    """
    edits = relate(repo_root(ctx), source, relationship_type, list(targets), time=time or now_timestamp(),
                   description=description, remove=remove, cache=not no_cache)
    signs = {"add": "+", "remove": "-", "unchanged": "="}
    for edit in edits:
        note = f"  ({edit.note})" if edit.note else ""
        click.echo(f"  {signs[edit.action]} {labelled(edit.source_id, edit.source_name)} {edit.relationship_type} "
                   f"{labelled(edit.target_id, edit.target_name)}: {edit.file}{note}")
    added = sum(1 for e in edits if e.action == "add")
    removed = sum(1 for e in edits if e.action == "remove")
    click.echo(f"{added} added, {removed} removed, {len(edits) - added - removed} already there")
