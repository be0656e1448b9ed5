"""`tiops diff BASE [HEAD]`: what a change to the intel means, object by object."""

from __future__ import annotations

from pathlib import Path

import click

from tiops.commands.common import (
    handle_errors,
    no_cache_option,
    progress_bar,
    repo_root,
    write_output,
)
from tiops.diff import diff_revisions
from tiops.memory import end_without_freeing, hold_until_exit
from tiops.render.diff import DIFF_RENDERERS
from tiops.revision import compile_pair


@click.command("diff")
@click.argument("base")
@click.argument("head", required=False)
@click.option("--format", "fmt", type=click.Choice(sorted(DIFF_RENDERERS)), default="text", show_default=True,
              help="text for people, markdown for a pull-request comment, json for tools.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of standard output.")
@click.option("--exit-code", is_flag=True, help="Exit with status 2 when there are changes (0 when there are none).")
@no_cache_option
@click.pass_context
@handle_errors
def diff_command(ctx: click.Context, base: str, head: str | None, fmt: str, output: Path | None, exit_code: bool,
                 no_cache: bool = False) -> None:
    """Compare the compiled intel of git revision BASE with HEAD (default: the working tree).

    Lists objects added, changed (field by field), revoked and removed, relationships
    added and removed, and objects that compile differently only because an ingestion
    rule or a _defaults.yaml changed, grouped by that rule or file.

    BASE and HEAD each name one commit (a branch, tag, sha, HEAD~1): for git's A...B,
    give the merge base, `tiops diff $(git merge-base A B) B`. Exit status: 0, 1 when
    tiops.yaml (of the working tree or HEAD) has an error, 2 a usage error such as an
    unknown revision (or, with --exit-code, changes), 3 an internal error.
    """
    root = repo_root(ctx)
    if head is None:
        from tiops.config import usable_config

        usable_config(root, "compared")  # the working tree's tiops.yaml: with errors it would read as all defaults
    with progress_bar(fmt == "text" and output is None) as progress:
        before, after = compile_pair(root, base, head, progress=progress, cache=not no_cache)
    diff = diff_revisions(before, after)
    rendered = DIFF_RENDERERS[fmt](diff)
    # Only writing the text follows: the two compiled revisions (100k objects each) are not
    # freed one by one, the process's end gives their memory back at once (tiops.memory).
    end_without_freeing()
    hold_until_exit(before, after, diff)
    if output is not None:
        write_output(output, rendered, "diff")
    else:
        click.echo(rendered, nl=False)
    if exit_code and not diff.empty:
        ctx.exit(2)
