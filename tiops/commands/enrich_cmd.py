"""`tiops enrich`: look up GeoLocation, ASN and WHOIS (RDAP) data into the repository's lock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from tiops.commands.common import (
    EXIT_FINDINGS,
    handle_errors,
    no_cache_option,
    progress_bar,
    repo_root,
)
from tiops.enrich.run import LockCheck, check_lock, enrich_repo
from tiops.errors import UsageError
from tiops.rules.conditions import parse_duration

# What a bare --refresh stands for: every RDAP result and every geo result read again.
_EVERYTHING = "\0everything"
# Before an age that starts with a dash (below).
_DASHED = "\0dashed:"


class _EnrichCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # click reads the value of '--refresh=-1d' as an option of its own ("No such option '-1'").
        # Marked, the value reaches the command, which refuses it as it refuses any other age it
        # cannot read: "tiops: error: --refresh: ...", not click's usage text.
        return super().parse_args(ctx, ["--refresh=" + _DASHED + arg[len("--refresh="):] if arg.startswith("--refresh=-") else arg
                                        for arg in args])


@click.command("enrich", cls=_EnrichCommand)
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--offline", is_flag=True,
              help="Use only the offline GeoLocation/ASN database; no RDAP (WHOIS) query.")
@click.option("--refresh", "refresh", is_flag=False, flag_value=_EVERYTHING, default=None, metavar="[=AGE]",
              help="Look up again results at least AGE old (30d, 12h, 2w); alone: all of them.")
@click.option("--check", is_flag=True,
              help="Look nothing up and write nothing: exit 1 when the lock lacks a result for a value the "
                   "intel names or holds one nothing names (with --offline: GeoLocation only). For CI.")
@no_cache_option
@click.pass_context
@handle_errors
def enrich_command(ctx: click.Context, paths: tuple[Path, ...], offline: bool, refresh: str | None,
                   check: bool = False, no_cache: bool = False) -> None:
    """Enrich the IPs, domains and URL hosts the intel names; write intel/.enrichment/.

    Results are data in the repository: review and commit the lock. 'tiops compile'
    reads only the lock. Values nothing names any more are pruned. Failures are
    recorded in the lock and retried by the next run; they never stop the run.
    """
    root = repo_root(ctx)
    if check:
        if paths or refresh is not None:
            raise UsageError("--check looks at the whole lock: it takes no PATH and no --refresh")
        checked = check_lock(root, offline=offline, cache=not no_cache)
        _render_check(checked, offline)
        if not checked.up_to_date:
            ctx.exit(EXIT_FINDINGS)
        return
    if refresh is not None and refresh.startswith(_DASHED):
        raise UsageError(f"--refresh: {refresh[len(_DASHED):]!r} is not an age: an age is a whole number and one "
                         "of s, m, h, d, w, such as 30d")
    try:
        # A bare 0 needs no unit (zero of any unit is no time): it is 0d, every RDAP result.
        age = (None if refresh is None else timedelta(0) if refresh in (_EVERYTHING, "0")
               else parse_duration(refresh))
    except ValueError as error:
        raise UsageError(f"--refresh: {error}") from None
    relative = []
    for path in paths:
        absolute = path if path.is_absolute() else Path.cwd() / path
        try:
            relative.append(absolute.resolve().relative_to(root).as_posix())
        except ValueError:
            raise UsageError(f"{path} is not inside the repository {root}") from None
    with progress_bar(True) as progress:
        report = enrich_repo(root, offline=offline, refresh=age, refresh_geo=refresh == _EVERYTHING,
                             paths=relative or None, progress=progress,
                             cache=not no_cache)
    for finding in report.findings:
        click.echo(f"{finding.location.file}:{finding.location.line}: {finding.code} {finding.message} (rewritten)", err=True)
    whois = ", ".join(f"{count} {status}" for status, count in sorted(report.whois_by_status.items()))
    # --offline: how many values RDAP would have been asked about (what a run online would do), not 0.
    asked = report.whois_skipped if offline else report.whois_queried
    click.echo(f"enriched {report.values} value(s): {report.geo_looked_up} geo lookup(s) ({report.database}), "
               f"{asked} RDAP quer{'y' if asked == 1 else 'ies'}"
               f"{f' ({whois}; {report.whois_requests} request(s))' if whois else ''}"
               f"{' skipped (--offline)' if offline else ''}"
               f"{f', {report.kept_after_failure} earlier answer(s) kept (the lookup failed)' if report.kept_after_failure else ''}"
               f"{f', {report.dropped_foreign} earlier answer(s) about another name or network replaced by the failure' if report.dropped_foreign else ''}, "
               f"{report.pruned} pruned, {len(set(report.files))} lock file(s) written")
    if report.unloaded:
        shown = ", ".join(report.unloaded[:3]) + (f" and {len(report.unloaded) - 3} more" if len(report.unloaded) > 3 else "")
        click.echo(f"nothing pruned: {len(report.unloaded)} intel file(s) did not load ({shown}), so the values they "
                   "name are not known; 'tiops validate' shows why", err=True)
    if report.rules_not_applied:
        click.echo(f"values the ingestion rules write were not looked up, and nothing pruned: {report.rules_not_applied}",
                   err=True)


def _listed(values: list[str], limit: int = 5) -> str:
    return ", ".join(values[:limit]) + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _render_check(checked: LockCheck, offline: bool) -> None:
    if checked.up_to_date:
        sections = "GeoLocation" if offline else "GeoLocation and WHOIS"
        failed = (f"; {checked.failed_whois} failed RDAP lookup(s) recorded, retried by the next 'tiops enrich'"
                  if checked.failed_whois else "")
        click.echo(f"the enrichment lock is up to date: {sections} results for the {checked.values} value(s) "
                   f"the intel names{failed}")
        return
    click.echo("the enrichment lock is not what 'tiops enrich' would write for the intel as it is:")
    if checked.missing_geo:
        click.echo(f"  {len(checked.missing_geo)} IP value(s) have no GeoLocation result: {_listed(checked.missing_geo)}")
    if checked.missing_whois:
        click.echo(f"  {len(checked.missing_whois)} value(s) have no WHOIS (RDAP) result: {_listed(checked.missing_whois)}")
    if checked.foreign_whois:
        click.echo(f"  {len(checked.foreign_whois)} WHOIS (RDAP) result(s) are about another name or network than "
                   f"their value: {_listed(checked.foreign_whois)}")
    if checked.locked_database:
        click.echo(f"  its GeoLocation results come from {checked.locked_database}; this tiops reads "
                   f"{checked.database}")
    if checked.stale:
        click.echo(f"  {len(checked.stale)} result(s) are for values nothing names any more: {_listed(checked.stale)}")
    if checked.unloaded:
        click.echo(f"  {len(checked.unloaded)} intel file(s) did not load ({_listed(checked.unloaded, 3)}): what "
                   "they name is not known ('tiops validate' shows why)")
    if checked.rules_not_applied:
        click.echo(f"  the values ingestion rules write are not known: {checked.rules_not_applied}")
    command = "tiops enrich --offline" if offline else "tiops enrich"
    click.echo(f"  hint: run '{command}' and commit intel/.enrichment/ with the change.")
