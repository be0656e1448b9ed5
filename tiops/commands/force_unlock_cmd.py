"""`tiops force-unlock`: break a target's apply lock left by an apply that is gone."""

from __future__ import annotations

import click

from tiops.commands.common import confirm, handle_errors, repo_root
from tiops.config import load_config
from tiops.errors import UsageError
from tiops.stores import open_store


@click.command("force-unlock")
@click.option("--target", help="Target name from tiops.yaml (default: default_target).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@handle_errors
def force_unlock_command(ctx: click.Context, target: str | None, yes: bool) -> None:
    """Release a target's apply lock. Only use it when the holder is really gone."""
    root = repo_root(ctx)
    config = load_config(root)[0]
    name = target or config.default_target
    if name not in config.targets:
        raise UsageError(f"no target named {name!r} in tiops.yaml")
    if not yes and not confirm(f"Break the apply lock of target {name!r}?", flag="--yes"):
        return
    store = open_store(name, config.targets[name], root)
    try:
        holder = store.force_unlock()
    finally:
        store.close()
    click.echo(f"released the lock held by {holder}" if holder else f"target {name!r} was not locked")
