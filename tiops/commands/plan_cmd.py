"""`tiops plan`: show what `tiops apply` would change in a target (read-only)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import orjson

from tiops.apply import open_session
from tiops.commands.common import (
    handle_errors,
    no_cache_option,
    progress_bar,
    repo_root,
    show_config_warnings,
    write_output,
)
from tiops.errors import TiopsError, UsageError
from tiops.plan import Change, Plan, compiled_ids
from tiops.redact import redact_registered
from tiops.render.names import FirstNames, NamesOf, names_of, printable, what

EXIT_CHANGES = 2
_SIGNS = {"create": "+", "update": "~", "revoke": "-", "delete": "-"}


@click.command("plan")
@click.option("--target", help="Target name from tiops.yaml (default: default_target).")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the plan as JSON for 'tiops apply FILE'.")
# The old spelling, kept working: every other command says --output.
@click.option("--out", "out_alias", type=click.Path(dir_okay=False, path_type=Path), hidden=True)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 with no changes, 1 on error, 2 with changes.")
@click.option("--refresh-only", is_flag=True, help="Report only drift: objects changed in the target outside git.")
@no_cache_option
@click.pass_context
@handle_errors
def plan_command(ctx: click.Context, target: str | None, out: Path | None, out_alias: Path | None,
                 output_format: str, detailed_exitcode: bool, refresh_only: bool, no_cache: bool = False) -> None:
    """Compile, read the target's current state and show the changes apply would make.

    Never writes to the target.
    """
    out = out or out_alias
    show_config_warnings(repo_root(ctx))
    try:
        with progress_bar(True) as progress:
            session = open_session(repo_root(ctx), target, progress=progress, cache=not no_cache, create=False)
            try:
                plan = session.plan(progress)
            finally:
                session.close()
    except UsageError as error:
        if not detailed_exitcode:
            raise
        # With --detailed-exitcode, 2 means "changes" (and a CI job applies on it): an error is 1.
        raise TiopsError(error.message, error.hint) from None
    if refresh_only:
        plan = plan.drift_only()
    if out is not None:
        write_output(out, plan.to_json(), "plan")
    if output_format == "json":
        click.echo(plan.to_json().decode(), nl=False)
    else:
        # Names are only shown on change lines: with no change, 100k objects need not be named.
        names = NamesOf(session.compiled, compiled_ids(session.compiled)) if plan.has_changes else None
        click.echo(render_plan(plan, refresh_only=refresh_only, names=names), nl=False)
        if out is not None:
            click.echo(f"saved the plan to {out}; apply it with: tiops apply {out}")
    if detailed_exitcode and plan.has_changes:
        sys.exit(EXIT_CHANGES)


def render_plan(plan: Plan, *, refresh_only: bool = False, names: Mapping[str, str] | None = None) -> str:
    """Terraform-style text: one line per change with the object's name (a relationship's
    ends by name), field diffs under updates. ``names`` maps ids to names of objects the
    plan does not carry itself (a relationship's unchanged ends)."""
    # The names of the objects the plan carries first, then the compiled intel's (asked per id).
    known = FirstNames(names_of(c.object for c in plan.changes if c.object is not None),
                       names if names is not None else {})  # not "names or {}": that would name them all
    lines: list[str] = []
    for change in plan.changes:
        lines.append(_change_line(change, known))
        for field in change.fields:
            if field.op == "+":
                lines.append(f"      + {field.path}: {_short(field.new)}")
            elif field.op == "-":
                lines.append(f"      - {field.path}: {_short(field.old)}")
            else:
                lines.append(f"      ~ {field.path}: {_short(field.old)} -> {_short(field.new)}")
    for warning in plan.warnings:
        lines.append(f"warning: {warning}")
    counts = plan.counts
    if refresh_only:
        lines.append(f"Target {plan.target} ({plan.target_type}): {counts['drift']} object(s) drifted outside git.")
    elif not plan.has_changes:
        lines.append(f"Target {plan.target} ({plan.target_type}): no changes, {counts['unchanged']} unchanged.")
    else:
        lines.append(
            f"Target {plan.target} ({plan.target_type}): {counts['create']} to create, {counts['update']} to update, "
            f"{counts['revoke']} to revoke, {counts['delete']} to delete, {counts['unchanged']} unchanged"
            + (f" ({counts['drift']} drifted outside git)." if counts["drift"] else ".")
        )
    # Stored values come from the target's server, which could hold a secret tiops sent it.
    return redact_registered("\n".join(lines) + "\n")


def _change_line(change: Change, names: Mapping[str, str]) -> str:
    described = what(change.object, change.id, names)
    line = f"  {_SIGNS[change.action]} {described + ' ' if described else ''}{change.id} ({change.action}"
    if change.stored is not None and not change.stored.modified and not change.effective_modified:
        # An object with neither modified nor created (an SCO: STIX 2.1 section 6 gives it no
        # versioning properties) has no version to move; "modified  -> " told the reviewer nothing.
        line += ", unversioned: replaced in place"
    elif change.stored is not None and (change.action == "update" or change.compiled_modified is not None):
        line += f", modified {change.stored.modified} -> {change.effective_modified}"
        if change.compiled_modified and change.compiled_modified != change.effective_modified:
            line += f" (compiled {change.compiled_modified})"
    if change.drift:
        line += ", drift: changed outside git"
    return line + ")"


def _short(value: Any) -> str:
    # The same text however the object was read; JSON escapes C0 controls but not C1 ones or
    # the bidirectional overrides (Trojan Source): a value a partner wrote must not reorder the line.
    text = printable(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode())
    return text if len(text) <= 100 else text[:97] + "..."
