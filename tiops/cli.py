"""The command line: parse arguments, call the library, render results.

Nothing here decides anything about intel; that is the library's job.
"""

from __future__ import annotations

import importlib
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


class LazyCommands(click.Group):
    """A group whose subcommands are imported from ``COMMANDS`` when first needed."""

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
@click.option("-C", "directory", type=click.Path(file_okay=False, exists=True, path_type=Path), default=Path("."),
              help="Run as if tiops was started in this directory (the repository is found there or above).")
@click.pass_context
def main(ctx: click.Context, directory: Path) -> None:
    """tiops: threat intelligence as code.

    STIX 2.1 intel lives as YAML in git; tiops validates it, compiles it into a
    deterministic bundle and syncs it to stores.
    """
    ctx.obj = {"start": directory.resolve()}
