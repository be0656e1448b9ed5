"""`tiops import`: bring a Sentinel CSV or a STIX bundle into the repository as YAML files."""

from __future__ import annotations

from pathlib import Path

import click

from tiops.commands.common import EXIT_FINDINGS, handle_errors, progress_bar, repo_root
from tiops.importers import IMPORT_FORMATS
from tiops.importers.write import IMPORT_MODES, ImportReport, import_file, write_rejections


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(IMPORT_FORMATS), required=True, help="The input format.")
@click.option("--source", required=True, help="The source system the intel comes from (names the folder intel/<source>/).")
@click.option("--mode", type=click.Choice(IMPORT_MODES), default="valid-only", show_default=True,
              help="valid-only writes every valid object; all-or-nothing writes nothing if anything fails.")
@click.option("--errors", "errors_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every rejected row or object with its reasons to this file (.csv or .json).")
@click.pass_context
@handle_errors
def import_command(ctx: click.Context, file: Path, fmt: str, source: str, mode: str, errors_file: Path | None) -> None:
    """Import intel from FILE into intel/<source>/ as one YAML file per object.

    Re-importing the same file changes nothing; a newer version of an object
    (same id, later 'modified') updates its file; an older one is ignored.
    Exit status 1 when any row or object was rejected.
    """
    root = repo_root(ctx)
    with progress_bar(True) as progress:
        report = import_file(root, file, fmt, source, mode=mode, progress=progress)
    render_report(report)
    if errors_file is not None:
        write_rejections(errors_file, report.rejections)
        click.echo(f"wrote {report.failed} rejection(s) to {errors_file}")
    if report.rejections:
        ctx.exit(EXIT_FINDINGS)


def render_report(report: ImportReport) -> None:
    for rejection in report.rejections:
        label = f" ({rejection.stix_id})" if rejection.stix_id else ""
        for reason in rejection.reasons:
            click.echo(f"{rejection.position}{label}: {reason}", err=True)
    for note in report.notes:
        click.echo(note)
    click.echo(
        f"{report.folder}: total {report.total}, created {report.created}, updated {report.updated}, "
        f"unchanged {report.unchanged}, older ignored {report.older_ignored}, failed {report.failed}"
    )
    if not report.written:
        click.echo("all-or-nothing: nothing was written because some input failed")
