"""`tiops new TYPE`: scaffold an object file that validates as written."""

from __future__ import annotations

from pathlib import Path

import click

from tiops.authoring import now_timestamp, scaffold
from tiops.commands.common import handle_errors, no_cache_option, repo_root, write_output
from tiops.errors import UsageError


@click.command("new")
@click.argument("stix_type", metavar="TYPE")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Set a property (the value is read as YAML: 80 is a number, [a, b] a list). Repeatable.")
@click.option("--relationship", "relationships", multiple=True, metavar="TYPE:TARGET_ID",
              help="Add an inline relationship, e.g. indicates:malware--…. Repeatable.")
@click.option("--like", metavar="ID", help="Copy the shared metadata (author, markings, labels, confidence, …) of this object.")
@click.option("--time", "time", metavar="TIMESTAMP", help="created/modified (default: now), e.g. 2025-03-04T10:00:00.000Z.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Where to write (default: the team's folder for TYPE).")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the file instead of writing it.")
@no_cache_option
@click.pass_context
@handle_errors
def new_command(ctx: click.Context, stix_type: str, settings: tuple[str, ...], relationships: tuple[str, ...],
                like: str | None, time: str | None, output: Path | None, to_stdout: bool,
                no_cache: bool = False) -> None:
    """Scaffold a new STIX 2.1 object file of TYPE with its required properties filled."""
    root = repo_root(ctx)
    pairs: dict[str, str] = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {setting!r} is not KEY=VALUE")
        pairs[key.strip()] = value
    new = scaffold(root, stix_type, time=time or now_timestamp(), settings=pairs, relationships=list(relationships),
                   like=like, output=None if output is None else (Path.cwd() / output), cache=not no_cache,
                   for_writing=not to_stdout)
    if to_stdout:
        click.echo(new.text, nl=False)
        return
    if new.path.exists():
        raise UsageError(f"{new.path} already exists", hint="Choose another file with -o.")
    write_output(new.path, new.text, "new object")
    click.echo(f"wrote {new.path.relative_to(root) if new.path.is_relative_to(root) else new.path} ({new.data['id']})")
