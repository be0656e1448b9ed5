"""`tiops apply`: make a target match the repository, or exactly a saved plan."""

from __future__ import annotations

import os
from pathlib import Path

import click

from tiops.apply import apply_plan, open_session, settle_target
from tiops.commands.common import (
    confirm,
    handle_errors,
    no_cache_option,
    progress_bar,
    repo_root,
    require_terminal,
    show_config_warnings,
)
from tiops.commands.plan_cmd import render_plan
from tiops.errors import UsageError
from tiops.inputs import InputProblem, read_input
from tiops.plan import Plan, compiled_ids
from tiops.render.names import NamesOf

# Seconds to pause after each committed batch: lets tests interrupt an apply midway.
PAUSE_VARIABLE = "TIOPS_APPLY_BATCH_PAUSE"
APPROVAL_QUESTION = "Apply these changes?"


@click.command("apply")
@click.argument("plan_file", required=False, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--target", help="Target name from tiops.yaml (default: default_target, or the plan's target).")
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation (for CI).")
@click.option("--force", is_flag=True, help="Allow removing more of the target than max_remove_share.")
@no_cache_option
@click.pass_context
@handle_errors
def apply_command(ctx: click.Context, plan_file: Path | None, target: str | None, auto_approve: bool, force: bool,
                  no_cache: bool = False) -> None:
    """Apply changes to a target: a saved plan exactly, or a fresh plan after confirmation.

    A saved plan is refused when the target or the repository changed since it was made.
    An interrupted apply is finished by running the same command again.
    """
    if plan_file is None and not auto_approve:
        require_terminal(APPROVAL_QUESTION, flag="--auto-approve")  # before compiling or reading the target
    saved = Plan.from_json(_plan_bytes(plan_file)) if plan_file is not None else None
    if saved is not None and saved.refresh_only:
        raise UsageError(f"{plan_file} was made by 'tiops plan --refresh-only': it shows drift, it is not applied",
                         hint="Make a plan to apply with 'tiops plan -o FILE' (without --refresh-only).")
    if saved is not None and target is not None and target != saved.target:
        raise UsageError(f"the plan is for target {saved.target!r}, not {target!r}")
    try:
        pause = float(os.environ.get(PAUSE_VARIABLE, "0"))
    except ValueError as error:
        raise UsageError(f"{PAUSE_VARIABLE} must be a number of seconds") from error
    show_config_warnings(repo_root(ctx))
    with progress_bar(True) as progress:
        session = open_session(repo_root(ctx), saved.target if saved else target, progress=progress,
                               cache=not no_cache)
        try:
            plan = saved or session.plan(progress)
            if saved is None:
                click.echo(render_plan(plan, names=NamesOf(session.compiled, compiled_ids(session.compiled)) if plan.has_changes else None), nl=False)
                if not plan.has_changes:
                    settle_target(session.store)  # expiries since the last apply (IsActive) still count
                    return
                if not auto_approve and not confirm(APPROVAL_QUESTION, flag="--auto-approve"):
                    click.echo("Nothing applied.")
                    return
            result = apply_plan(
                plan, session.store, progress=progress, force=force,
                max_remove_share=session.settings.max_remove_share, batch_size=session.settings.batch_size,
                bundle_digest=session.bundle_digest, pause_between_batches=pause,
                compiled=session.compiled if saved is not None else None, settings=session.settings,
            )
        finally:
            session.close()
    click.echo(
        f"Applied to {plan.target}: {result.written} version(s) written, {result.deleted} deleted"
        + (f", {result.already_applied} already present." if result.already_applied else ".")
    )


# A saved plan carries every object it creates: far larger than an intel file may be.
_PLAN_LIMIT = 1 << 34


def _plan_bytes(path: Path) -> bytes:
    """A saved plan's bytes, from a regular file only: a device such as /dev/zero never ends."""
    try:
        return read_input(os.fspath(path), limit=_PLAN_LIMIT)
    except InputProblem as problem:
        raise UsageError(f"cannot read the plan {path}: {problem.message}",
                         hint="Give the file 'tiops plan --out FILE' wrote.") from None
