"""`tiops bump --base REF`: give every object whose content changed a later `modified`."""

from __future__ import annotations

import click

from tiops.bump import bump_repo
from tiops.commands.common import handle_errors, no_cache_option, repo_root


@click.command("bump")
@click.option("--base", "base_ref", required=True, help="The git revision to compare with, e.g. origin/main.")
@click.option("--at", "at", help="The new modified timestamp (default: the HEAD commit's time, "
              "or the base version's modified plus 1 ms when that is later).")
@click.option("--dry-run", is_flag=True, help="Show what would change without writing.")
@no_cache_option
@click.pass_context
@handle_errors
def bump_command(ctx: click.Context, base_ref: str, at: str | None, dry_run: bool, no_cache: bool = False) -> None:
    """Set `modified` on every object whose content changed against BASE.

    Only `modified:` values are edited (an unchanged inline relationship of a bumped object
    gets a `modified:` line pinning its version); the rest of every file stays as written.
    """
    root = repo_root(ctx)
    bumps = bump_repo(root, base_ref, at, write=not dry_run, cache=not no_cache,
                      note=lambda text: click.echo(f"note: {text}", err=True))
    for bump in bumps:
        if bump.column:
            click.echo(f"{bump.file}:{abs(bump.line)}: {bump.id} unchanged, modified kept at {bump.after}")
        else:
            click.echo(f"{bump.file}:{abs(bump.line)}: {bump.id} modified {bump.before or '(none)'} -> {bump.after}")
    verb = "would bump" if dry_run else "bumped"
    kept = sum(1 for bump in bumps if bump.column)
    click.echo(f"{verb} {len(bumps) - kept} object(s)" + (f"; {kept} unchanged inline relationship(s) keep their version" if kept else ""))
