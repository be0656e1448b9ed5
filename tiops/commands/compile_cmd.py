"""`tiops compile`: write the deterministic STIX 2.1 bundle."""

from __future__ import annotations

from pathlib import Path

import click

from tiops import build
from tiops.commands.common import handle_errors, progress_bar, repo_root
from tiops.config import load_config
from tiops.findings import Severity


@click.command("compile")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the bundle (default: <output>/bundle.json from tiops.yaml, i.e. dist/bundle.json).")
@click.pass_context
@handle_errors
def compile_command(ctx: click.Context, output: Path | None) -> None:
    """Validate and compile the repository into one STIX 2.1 bundle.

    Refuses to write anything when validation finds errors.
    """
    root = repo_root(ctx)
    with progress_bar(True) as progress:
        result = build(root, progress=progress)
    target = output if output is not None else root / load_config(root)[0].output_dir / "bundle.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(result.bundle)
    warnings = sum(1 for f in result.findings if f.severity is Severity.WARNING)
    click.echo(f"wrote {target} ({result.object_count} objects, {warnings} warning(s))")
