"""`tiops validate`: check intel files or STIX bundles and report every finding."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from tiops import __version__
from tiops.commands.common import (
    color_enabled,
    handle_errors,
    no_cache_option,
    progress_bar,
    repo_root,
    start_folder,
    write_output,
)
from tiops.discover import find_repo_root
from tiops.findings import Finding, Severity, fails, sort_findings
from tiops.memory import end_without_freeing
from tiops.render.findings import FINDING_RENDERERS, render_github_summary
from tiops.validate import is_bundle_path, validate_paths


@click.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path), callback=lambda _c, _p, paths: _existing(paths))
@click.option("--format", "fmt", type=click.Choice(sorted(FINDING_RENDERERS)), default="text", show_default=True,
              help="text for people, json for tools, github for workflow annotations, sarif for code scanning.")
@click.option("--strict", is_flag=True, default=None, help="Fail on warnings too (also 'validation: {strict: true}' in tiops.yaml).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the report to a file instead of standard output.")
@click.option("-q", "--quiet", is_flag=True, help="Leave out info findings (such as derived ids).")
@click.option("--base", "base_ref", help="Also check STIX versioning against this git revision (TI8xx): "
              "changed objects need a later modified, ids and created never change, deleted objects should be revoked.")
@no_cache_option
@click.pass_context
@handle_errors
def validate(ctx: click.Context, paths: tuple[Path, ...], fmt: str, strict: bool | None, output: Path | None, quiet: bool,
             base_ref: str | None = None, no_cache: bool = False) -> None:
    """Validate the repository (default), files inside it, or STIX bundles (*.json).

    Exit status: 0 clean, 1 findings at the failing level, 2 usage error, 3 internal error.
    """
    bundles_only = bool(paths) and all(is_bundle_path(p) for p in paths)
    # A bundle someone sent is linted wherever it lies; anything else needs its repository.
    root = (find_repo_root(start_folder(ctx)) or start_folder(ctx)) if bundles_only else repo_root(ctx, near=list(paths))
    if base_ref is None:
        end_without_freeing()  # only rendering the findings follows
    with progress_bar(fmt == "text" and output is None) as progress:
        findings = validate_paths(root, list(paths), progress=progress, cache=not no_cache)
    if base_ref is not None:
        # Only --base reads another revision: its git and compile code is not imported otherwise.
        from tiops.validate import findings_under
        from tiops.versioning import versioning_findings

        # Named files: their versioning findings, as for every other check (pre-commit names the changed files).
        versions = findings_under(versioning_findings(root, base_ref, _deleted_severity(root), cache=not no_cache,
                                                      note=lambda text: click.echo(f"note: {text}", err=True)),
                                  root, list(paths))
        findings = sort_findings([*findings, *versions])
    if strict is None:
        from tiops.config import load_config

        strict = load_config(root)[0].strict
    shown = [f for f in findings if not (quiet and f.severity is Severity.INFO)]
    changed = _changed_files(root, base_ref) if base_ref is not None and fmt in ("github", "sarif") else ()
    rendered = FINDING_RENDERERS[fmt](shown, color=color_enabled() and output is None, tool_version=__version__,
                                      changed_files=changed)
    if output is not None:
        write_output(output, rendered, "findings")
    else:
        click.echo(rendered, nl=False)
    if fmt == "github":
        _write_step_summary(shown)
    sys.exit(1 if fails(findings, strict=strict) else 0)


def _existing(paths: tuple[Path, ...]) -> tuple[Path, ...]:
    """``paths``, each of which must be there; a symbolic link leading nowhere is (click's ``exists``
    follows links): the load reports it, TI108, as the whole validate does."""
    for path in paths:
        if not os.path.lexists(path):
            raise click.BadParameter(f"Path {click.format_filename(path)!r} does not exist.", param_hint="'PATHS...'")
    return paths


def _changed_files(root: Path, base_ref: str) -> frozenset[str]:
    """The files that differ from ``--base`` (GitHub annotates few findings per step, and SARIF
    runs are capped: theirs come first); none when git cannot tell, which only changes the order."""
    from tiops.gitrepo import GitFailed, changed_paths, fork_point, resolve_revision

    try:
        sha = resolve_revision(root, base_ref)[0]
        return changed_paths(root, fork_point(root, sha) or sha)
    except (GitFailed, LookupError):
        return frozenset()


def _write_step_summary(findings: list[Finding]) -> None:
    """Add the findings' counts by code to the job's summary page when run by GitHub Actions, which
    names the file to append to in GITHUB_STEP_SUMMARY (annotations stop at ten of a kind; this
    counts them all). A summary that cannot be written is said on standard error, never fatal."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    summary = render_github_summary(findings)
    try:
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(summary + "\n")
    except OSError as error:
        click.echo(f"tiops: warning: cannot add to the step summary {path}: {error.strerror or error}", err=True)


def _deleted_severity(root: Path) -> Severity:
    from tiops.config import load_config

    return Severity.ERROR if load_config(root)[0].deleted_objects == "error" else Severity.WARNING
