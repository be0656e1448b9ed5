"""The command line: parse arguments, call the library, render results.

Nothing here decides anything about intel; that is the library's job.
"""

from __future__ import annotations

from pathlib import Path

import click

from tiops import __version__
from tiops.commands import (
    apply_cmd,
    bump_cmd,
    compile_cmd,
    diff_cmd,
    explain_cmd,
    force_unlock_cmd,
    import_cmd,
    new_cmd,
    plan_cmd,
    report_cmd,
    tag_cmd,
    test_cmd,
    validate_cmd,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tiops")
@click.option("-C", "directory", type=click.Path(file_okay=False, exists=True, path_type=Path), default=Path("."),
              help="Run as if tiops was started in this directory (the repository root).")
@click.pass_context
def main(ctx: click.Context, directory: Path) -> None:
    """tiops: threat intelligence as code.

    STIX 2.1 intel lives as YAML in git; tiops validates it, compiles it into a
    deterministic bundle and syncs it to stores.
    """
    ctx.obj = {"root": directory.resolve()}


# Commands are registered explicitly (no discovery): one module per command.
for _command in (validate_cmd.validate, compile_cmd.compile_command, import_cmd.import_command, new_cmd.new_command,
                 plan_cmd.plan_command, apply_cmd.apply_command, force_unlock_cmd.force_unlock_command,
                 tag_cmd.tag_command, explain_cmd.explain_command, test_cmd.test_command,
                 diff_cmd.diff_command, bump_cmd.bump_command, report_cmd.report_command):
    main.add_command(_command)
