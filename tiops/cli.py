"""The command line: parse arguments, call the library, render results.

Nothing here decides anything about intel; that is the library's job.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click

from tiops import __version__

# Commands are registered explicitly (no discovery): one module per command. Each module
# is imported only when its command runs (or help lists it), so `tiops --version` and a
# quick `tiops validate` do not import the stores, the report or the importers.
COMMANDS: dict[str, str] = {
    "apply": "tiops.commands.apply_cmd:apply_command",
    "bump": "tiops.commands.bump_cmd:bump_command",
    "compile": "tiops.commands.compile_cmd:compile_command",
    "diff": "tiops.commands.diff_cmd:diff_command",
    "enrich": "tiops.commands.enrich_cmd:enrich_command",
    "explain": "tiops.commands.explain_cmd:explain_command",
    "force-unlock": "tiops.commands.force_unlock_cmd:force_unlock_command",
    "import": "tiops.commands.import_cmd:import_command",
    "init": "tiops.commands.init_cmd:init_command",
    "new": "tiops.commands.new_cmd:new_command",
    "plan": "tiops.commands.plan_cmd:plan_command",
    "query": "tiops.commands.query_cmd:query_command",
    "relate": "tiops.commands.relate_cmd:relate_command",
    "relationships": "tiops.commands.relationships_cmd:relationships_command",
    "report": "tiops.commands.report_cmd:report_command",
    "tag": "tiops.commands.tag_cmd:tag_command",
    "test": "tiops.commands.test_cmd:test_command",
    "validate": "tiops.commands.validate_cmd:validate",
}


EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command ended by Ctrl-C


class LazyCommands(click.Group):
    """A group whose subcommands are imported from ``COMMANDS`` when first needed."""

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; Ctrl-C ends it with 130 and says what to do, not click's "Aborted!" and 1,
        the status of "findings" (a CI step or script would read an interrupted validate as findings)."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("\ntiops: interrupted; run the same command again to finish", err=True)
            sys.exit(EXIT_INTERRUPTED)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command), target
        return command


@click.group(cls=LazyCommands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tiops")
@click.option("-C", "directories", type=click.Path(file_okay=False, path_type=Path), multiple=True,
              help="Run as if tiops was started in this directory (the repository is found there or above); "
                   "a second -C is read in the first, as in git.")
@click.pass_context
def main(ctx: click.Context, directories: tuple[Path, ...]) -> None:
    """tiops: threat intelligence as code.

    STIX 2.1 intel lives as YAML in git; tiops validates it, compiles it into a
    deterministic bundle and syncs it to stores.
    """
    # "-C a -C b" is a/b, as git reads it: each -C is read in the folder the one before it names
    # (an absolute one starts again). Checked here, not by click: click checks every -C in the
    # folder tiops was started in, and kept only the last.
    directory = Path()
    for each in directories:
        directory /= each
    if directory != Path("."):
        _enter(ctx, directory)
    ctx.obj = {"start": Path.cwd()}


def _enter(ctx: click.Context, directory: Path) -> None:
    """Work in ``directory`` until the command ends, as ``git -C`` does.

    The subcommand's arguments are parsed after this (click runs the group first), so a
    relative -o, --trace, --errors, PATHS or FILE is read in DIR: the same command writes
    the same files wherever it was started from. The previous folder comes back when the
    command ends, for callers that run tiops in their own process (click's CliRunner).
    """
    try:
        previous: str | None = os.getcwd()
    except OSError:  # started in a folder deleted since: there is nothing to come back to
        previous = None
    try:
        os.chdir(directory)
    except OSError as error:
        reason = "not a directory" if isinstance(error, NotADirectoryError) else (
            "does not exist" if isinstance(error, FileNotFoundError) else error.strerror or str(error))
        raise click.BadParameter(f"cannot work in {directory}: {reason}", ctx=ctx, param_hint="'-C'") from None
    if previous is not None:
        ctx.call_on_close(lambda: os.chdir(previous))


def run() -> None:
    """The ``tiops`` program: :func:`main`, then, after a command that held what it built
    (tiops.memory.hold_until_exit; compile and validate, which end right after their
    pipeline), the end of the process without freeing it.

    The output is flushed first; the exit status is the one ``sys.exit`` would give.
    Nothing tiops runs at exit is skipped: it registers no exit handlers.
    """
    from tiops import memory

    memory.allow_ending_without_freeing()
    try:
        main()
        status: str | int | None = 0
    except SystemExit as done:
        status = done.code
    if not memory.holds_anything():
        sys.exit(status)
    os._exit(_flushed(_exit_code(status)))


def _exit_code(status: str | int | None) -> int:
    """What ``sys.exit(status)`` ends a process with: None is 0, another object than an
    integer is printed to standard error and is 1."""
    if status is None:
        return 0
    if isinstance(status, int):
        return status
    print(status, file=sys.stderr)
    return 1


def _flushed(code: int) -> int:
    """``code`` once standard output and error are flushed; 120 instead of 0 when they
    cannot be, as the interpreter ends a process whose output it cannot flush."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return code or 120
    return code
