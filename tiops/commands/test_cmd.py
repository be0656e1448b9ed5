"""`tiops test`: run every ingestion rule's examples and report pass/fail with a diff."""

from __future__ import annotations

import sys

import click

from tiops.commands.common import EXIT_FINDINGS, handle_errors, repo_root
from tiops.config import usable_config
from tiops.render.names import printable
from tiops.rules import RulesInvalid, load_rules, resolve_as_of
from tiops.rules.testing import run_rule_tests


@click.command("test")
@click.option("--as-of", "as_of", metavar="TIMESTAMP",
              help="The as-of time for tests without their own as_of (default: HEAD commit time).")
@click.pass_context
@handle_errors
def test_command(ctx: click.Context, as_of: str | None) -> None:
    """Run the tests written on the ingestion rules (rules/ingestion/*.yaml). Exit 1 when one fails."""
    root = repo_root(ctx)
    config = usable_config(root, "tested")
    rule_set, findings = load_rules(config)
    errors = [f for f in findings if f.severity.name == "ERROR"]
    if errors:
        raise RulesInvalid(errors)
    results = run_rule_tests(rule_set, resolve_as_of(root, as_of).moment)
    for result in results:
        status = "PASS" if result.passed else "FAIL"
        disabled = " (rule disabled)" if result.disabled else ""  # a pass says nothing of what builds do
        # Rule and test names are the repository's text: a control character or a line break in
        # one is written out, never sent to the terminal or to the start of a CI log line.
        click.echo(f"{status} {printable(result.file)}:{result.line}: {printable(result.rule)}{disabled} :: "
                   f"{printable(result.test)}")
        for line in result.diff:
            click.echo(f"    {printable(line)}")
    failed = sum(1 for r in results if not r.passed)
    click.echo(f"{len(results) - failed} passed, {failed} failed")
    if failed:
        sys.exit(EXIT_FINDINGS)
