"""`tiops report`: the static HTML report of the compiled intel."""

from __future__ import annotations

from pathlib import Path

import click

from tiops.commands.common import (
    handle_errors,
    no_cache_option,
    progress_bar,
    refuse_repository_source,
    repo_root,
    shown_path,
)
from tiops.report import build_report


@click.command("report")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              help="The folder to write the site into (default: <output>/report from tiops.yaml, i.e. dist/report).")
@click.option("--as-of", "as_of", help="The moment rules and the expiry charts compare with "
              "(default: the HEAD commit's time), e.g. 2025-06-01.")
@click.option("--allow-invalid", is_flag=True,
              help="Write the report even when validation finds errors; every page then says so in a red banner.")
@no_cache_option
@click.pass_context
@handle_errors
def report_command(ctx: click.Context, output: Path | None, as_of: str | None, allow_invalid: bool,
                   no_cache: bool = False) -> None:
    """Write a static HTML report: overview charts, an object browser and an object page.

    The site has no external assets: open index.html from disk, offline.
    Like compile, it refuses when validation finds errors (unless --allow-invalid).
    """
    from tiops.config import load_config

    root = repo_root(ctx)
    config = load_config(root)[0]
    target = output if output is not None else root / config.output_dir / "report"
    if output is not None:
        refuse_repository_source(root, config, target, "the site's pages and data",
                                 hint=f"Write the site elsewhere, e.g. the default {config.output_dir}/report (no -o).")
    with progress_bar(True) as progress:
        result = build_report(root, target, as_of=as_of, progress=progress, allow_invalid=allow_invalid,
                              cache=not no_cache)
    click.echo(f"wrote {shown_path(result.output / 'index.html')} ({result.objects} objects, {result.pages} pages, "
               f"{result.data_files} data files)")
    if result.errors:
        click.echo(f"warning: built from intel with {result.errors} validation error(s); every page carries a banner",
                   err=True)
