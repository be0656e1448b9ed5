"""`tiops compile`: write the deterministic STIX 2.1 bundle."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from tiops.commands.common import (
    color_enabled,
    handle_errors,
    no_cache_option,
    progress_bar,
    refuse_repository_source,
    repo_root,
    shown_path,
    write_output,
)
from tiops.config import load_config
from tiops.errors import TiopsError, UsageError
from tiops.findings import Severity
from tiops.memory import end_without_freeing
from tiops.outputs import names_stream, replace_whole
from tiops.pipeline import build


@click.command("compile")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the bundle (default: <output>/bundle.json from tiops.yaml, i.e. dist/bundle.json).")
@click.option("--as-of", "as_of", metavar="TIMESTAMP",
              help="The as-of time older-than/newer-than rules compare with (default: the HEAD commit time).")
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write what happened to every object (sources, defaults, ingestion rules) as JSON to this file.")
@no_cache_option
@click.pass_context
@handle_errors
def compile_command(ctx: click.Context, output: Path | None, as_of: str | None, trace_file: Path | None,
                    no_cache: bool = False) -> None:
    """Validate and compile the repository into one STIX 2.1 bundle.

    Refuses to write anything when validation finds errors.
    """
    root = repo_root(ctx)
    end_without_freeing()  # nothing but writing build.json and a line follows the build
    config = load_config(root)[0]
    target = output if output is not None else root / config.output_dir / "bundle.json"
    if output is not None:
        refuse_repository_source(root, config, target, "the bundle",
                                 hint=f"Write the bundle elsewhere, e.g. the default {config.output_dir}/bundle.json (no -o).")
    # A bundle sent to a pipe or a device (-o /dev/stdout) keeps the stream its own: the summary goes to
    # stderr, and no record is written beside it (in /dev).
    # /dev/stdout redirected to a file is a regular file too, but its folder is /dev: no record there.
    # So is /proc/self/fd/1. A folder below /dev (/dev/shm, a tmpfs) holds regular files with a record.
    to_stream = names_stream(target)
    record = None if to_stream else target.parent / "build.json"
    if record is not None and not _is_build_record(record):
        raise UsageError(f"{shown_path(record)} is there and is not a tiops build record; compile writes its record "
                         "beside the bundle and would replace it",
                         hint="Write the bundle to a folder of its own (-o), or move that build.json away.")
    with progress_bar(True) as progress:
        # Streamed to the file: written only once validation passed, complete or not at all.
        result = build(root, progress=progress, as_of=as_of, trace=trace_file is not None, output=target,
                       cache=not no_cache)
    # Build metadata sits next to the bundle: a STIX bundle has no place for it (section 8).
    if record is not None:
        _write_record(record, orjson.dumps(result.metadata, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n")
    if trace_file is not None:
        write_output(trace_file, orjson.dumps(result.traces, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n",
                     "trace")
    warnings = sum(1 for f in result.findings if f.severity is Severity.WARNING)
    # What the rules left behind is known only here (validate runs no rule): shown, not just counted.
    left_by_rules = [f for f in result.findings if f.code == "TI514"]  # tiops.rules.dropped
    if left_by_rules:
        from tiops.render.findings import render_text

        click.echo(render_text(left_by_rules, color=color_enabled()), err=True, nl=False)
    kept = f" and its record {shown_path(record)}" if record is not None else ""
    click.echo(f"wrote {shown_path(target)} ({result.object_count} objects, {warnings} warning(s)){kept}", err=to_stream)


def _write_record(record: Path, data: bytes) -> None:
    """The build record, whole or not at all: a record cut short is "not a tiops build record" to
    the next compile (_is_build_record), which would then refuse to write beside it."""
    try:
        replace_whole(record, data)
    except OSError as error:
        raise TiopsError(f"cannot write the build record {shown_path(record)}: {error.strerror or error}; "
                         "the bundle was written; a record already there is the previous build's, unchanged",
                         hint="Check that the folder is writable and the disk has room, then compile again.") from None


def _is_build_record(path: Path) -> bool:
    """Whether ``path`` may be written as the build record: absent, or a record a compile wrote."""
    if not path.exists() and not path.is_symlink():
        return True
    try:
        data = orjson.loads(path.read_bytes()) if path.is_file() else None
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(data, dict) and "bundle_sha256" in data and "objects" in data


