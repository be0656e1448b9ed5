"""`tiops relationships`: print the effective relationship table, as rules/relationships.yaml would hold it."""

from __future__ import annotations

import click

from tiops.commands.common import EXIT_FINDINGS, handle_errors, repo_root
from tiops.config import load_config
from tiops.locate import resolve_locations
from tiops.render.findings import render_text
from tiops.validate.relationships import load_relationship_table


@click.command("relationships")
@click.pass_context
@handle_errors
def relationships_command(ctx: click.Context) -> None:
    """Print the allowed (source, type, target) relationship triples in effect, each with the table it comes from.

    The table is STIX 2.1 Appendix B, plus the tables tiops.yaml enables under
    relationship_tables, plus rules/relationships.yaml (which adds to them unless it
    says replace_builtin: true). The output is valid rules/relationships.yaml content.
    """
    root = repo_root(ctx)
    config, findings = load_config(root)
    table, table_findings = load_relationship_table(config)
    findings = resolve_locations(findings + table_findings, root)  # at their line and column, as validate shows them
    if findings:
        click.echo(render_text(findings), err=True, nl=False)
        ctx.exit(EXIT_FINDINGS)
    origins = sorted(set(table.origins.values()))
    lines = [f"# Effective relationship table ({len(table.triples)} triples) from: {', '.join(origins)}",
             "relationships:"]
    lines += [f'  - {{source: "{source}", type: {relationship_type}, target: "{target}"}}  # {origin}'
              for (source, relationship_type, target), origin in sorted(table.origins.items())]
    click.echo("\n".join(lines))
