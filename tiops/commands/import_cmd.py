"""`tiops import`: bring a Sentinel CSV, a STIX bundle or a TAXII 2.1 collection into the repository."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from tiops.commands.common import EXIT_FINDINGS, handle_errors, progress_bar, repo_root
from tiops.errors import UsageError
from tiops.importers import IMPORT_FORMATS
from tiops.importers.taxii import DEFAULT_PAGE_SIZE, import_taxii
from tiops.importers.write import IMPORT_MODES, ImportReport, import_file, write_rejections
from tiops.progress import Progress
from tiops.render.names import labelled, printable

TAXII = "taxii"


@click.command("import")
@click.argument("file", metavar="FILE | taxii URL")
@click.argument("url", required=False)
@click.option("--format", "fmt", type=click.Choice(IMPORT_FORMATS),
              help="The input format of FILE (default: from its extension, .csv sentinel-csv, .json stix).")
@click.option("--source", required=True, help="The source system the intel comes from (names the folder intel/<source>/).")
@click.option("--collection", "collection_id", metavar="ID", help="taxii: the collection id under the API root URL.")
@click.option("--full", is_flag=True, help="taxii: pull the whole collection, ignoring the stored added_after checkpoint.")
@click.option("--page-size", type=click.IntRange(min=1), default=DEFAULT_PAGE_SIZE, show_default=True,
              help="taxii: objects asked for per request (the server may send fewer).")
@click.option("--mode", type=click.Choice(IMPORT_MODES), default="valid-only", show_default=True,
              help="valid-only writes every valid object; all-or-nothing writes nothing if anything fails.")
@click.option("--strict", is_flag=True,
              help="Repair nothing: reject objects with the defects import otherwise repairs (docs/import.md).")
@click.option("--errors", "errors_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every rejected or repaired row or object with its reasons to this file (.csv or .json).")
@click.pass_context
@handle_errors
def import_command(ctx: click.Context, file: str, url: str | None, fmt: str | None, source: str,
                   collection_id: str | None, full: bool, page_size: int, mode: str, strict: bool,
                   errors_file: Path | None) -> None:
    """Import intel from FILE (or a TAXII 2.1 collection) into intel/<source>/ as one YAML file per object.

    \b
    tiops import FILE [--format sentinel-csv|stix] --source NAME
    tiops import taxii API_ROOT_URL --collection ID --source NAME

    Re-importing the same input changes nothing; a newer version of an object
    (same id, later 'modified') updates its file; an older one is ignored.
    A TAXII pull asks only for objects added since the last pull.
    Exit status 1 when any row or object was rejected.
    """
    root = repo_root(ctx)
    if errors_file is not None:  # checked before anything is imported, not after the intel was written
        if errors_file.suffix.lower() not in (".csv", ".json"):
            raise UsageError(f"--errors {errors_file}: the file's name must end in .csv or .json, which says its format",
                             hint="Name it e.g. rejections.csv (one line per reason) or rejections.json.")
        try:
            errors_file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"--errors {errors_file}: cannot make its folder: {error.strerror or error}",
                             hint="Name a file in a folder tiops can create or write.") from None
    if file == TAXII and url is not None:
        if collection_id is None:
            raise UsageError("'tiops import taxii URL' needs --collection ID")
        with progress_bar(True) as progress, _pull_counter(progress) as report_progress:
            report = import_taxii(root, url, collection_id, source, mode=mode, full=full, page_size=page_size,
                                  strict=strict, progress=report_progress)
    else:
        if url is not None:
            raise UsageError(f"unexpected argument {url!r}", hint="Only 'tiops import taxii URL' takes a second argument.")
        path = Path(file)
        if not path.is_file():
            raise UsageError(f"{file}: no such file" if not path.exists() else
                             f"{file}: not a regular file (a folder, a device or a pipe)",
                             hint="Give a STIX JSON bundle or a CSV file to import.")
        fmt = fmt or _format_from_extension(path)
        with progress_bar(True) as progress:
            report = import_file(root, path, fmt, source, mode=mode, strict=strict, progress=progress)
    render_report(report)
    if errors_file is not None:
        try:
            write_rejections(errors_file, report.rejections, report.repairs)
        except OSError as error:
            raise UsageError(f"cannot write the rejections to {errors_file}: {error.strerror or error}",
                             hint="The intel was imported; name a file tiops can write to keep the rejections.") from None
        click.echo(f"wrote {report.failed} rejection(s) and {len(report.repairs)} repair(s) to {errors_file}")
    if report.rejections:
        ctx.exit(EXIT_FINDINGS)


# What a file's extension says about its format when --format is not given.
FORMAT_BY_EXTENSION = {".csv": "sentinel-csv", ".json": "stix"}


def _format_from_extension(path: Path) -> str:
    fmt = FORMAT_BY_EXTENSION.get(path.suffix.lower())
    if fmt is None or fmt not in IMPORT_FORMATS:
        raise UsageError(f"cannot tell the format of {path.name} from its extension; say it with --format",
                         hint=f"Use one of: {', '.join(IMPORT_FORMATS)} (.csv is read as sentinel-csv, .json as stix).")
    return fmt


@contextmanager
def _pull_counter(progress: Progress) -> Iterator[Progress]:
    """TAXII gives no total, so a pull is drawn as a running count on stderr; other stages go to the bar."""
    drawing = sys.stderr.isatty()
    shown = [False]

    def report(stage: str, done: int, total: int) -> None:
        if stage != "pull":
            progress(stage, done, total)
        elif drawing:
            click.echo(f"\rpull      {done} object(s)", nl=False, err=True)
            shown[0] = True

    try:
        yield report
    finally:
        if shown[0]:
            click.echo("", err=True)


def render_report(report: ImportReport) -> None:
    for rejection in report.rejections:
        label = f" {labelled(rejection.stix_id, rejection.name)}" if rejection.stix_id else (
            f' "{rejection.name}"' if rejection.name else "")
        for reason in rejection.reasons:
            # Names and reasons quote the partner's text: a control character is shown as its escape.
            click.echo(printable(f"{rejection.position}{label}: {reason}"), err=True)
    for repaired in report.repairs:
        click.echo(printable(f"{repaired.position} {labelled(repaired.stix_id, repaired.name)}: repaired: "
                             f"{repaired.description}"), err=True)
    for note in report.notes:
        click.echo(note)
    counts = ", ".join(f"{label} {count}" for label, count in report.counts())
    click.echo(f"{report.folder}: {counts}")
    if not report.written:
        click.echo("all-or-nothing: nothing was written because some input failed")
