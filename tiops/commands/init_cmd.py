"""`tiops init [DIR]`: start a new intel repository that validates and compiles at once."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from tiops import __version__
from tiops.authoring import now_timestamp
from tiops.commands.common import handle_errors, start_folder
from tiops.errors import UsageError
from tiops.initrepo import TLP_LEVELS, init_repo, new_repo_files
from tiops.stix import TIMESTAMP_RE


@click.command("init")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--team", help="Your team's name: the source and creator identity of your intel (default: the folder's name).")
@click.option("--tlp", type=click.Choice(TLP_LEVELS), default="green", show_default=True,
              help="The TLP 2.0 marking every object gets by default (intel/_defaults.yaml).")
@click.option("--time", "time", metavar="TIMESTAMP",
              help="The team identity's created/modified (default: now), e.g. 2025-03-04T10:00:00.000Z: "
                   "the same options then give the same files.")
@click.pass_context
@handle_errors
def init_command(ctx: click.Context, directory: Path | None, team: str | None, tlp: str, time: str | None) -> None:
    """Create a new intel repository in DIRECTORY (default: the current folder).

    \b
    Writes tiops.yaml (commented), intel/_defaults.yaml and your team's identity,
    rules/ (an empty relationship-table extension and one example ingestion rule
    with its tests), a .gitignore for .tiops/ and dist/, and CI recipes (GitHub
    workflow, pre-commit) pinned to this tiops version. Never overwrites a file.
    """
    if time is not None and not TIMESTAMP_RE.match(time):
        raise UsageError(f"--time {time!r} is not a timestamp like 2025-03-04T10:00:00.000Z")
    folder = (start_folder(ctx) / directory).resolve() if directory is not None else start_folder(ctx)
    new = new_repo_files(folder, team=team or folder.name, tlp=tlp, version=__version__, time=time or now_timestamp())
    written = init_repo(new)
    for path in written:
        click.echo(f"wrote {path.relative_to(folder).as_posix()}")
    # A command to copy as it is; none to change to the folder it runs in already ("init .").
    where = "" if directory is None or folder == start_folder(ctx) else f"cd {shlex.quote(str(directory))} && "
    click.echo(f"\nA new tiops repository in {folder}. Next: {where}tiops validate && tiops compile, "
               "then 'tiops new indicator --set name=...' to add intel.")
