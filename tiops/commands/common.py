"""What every command shares: error handling at the edge, progress bars, the root.

Exit codes: 0 success, 1 findings at the failing level or a reported error,
2 usage error, 3 internal error (with a log file).
"""

from __future__ import annotations

import functools
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from tiops import __version__
from tiops.errors import TiopsError, UsageError
from tiops.findings import Finding, Severity
from tiops.progress import Progress
from tiops.render.findings import FINDING_RENDERERS

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


def handle_errors(command: F) -> F:
    """Map library exceptions to messages and exit codes at the edge."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UsageError as error:
            _error_message(error)
            sys.exit(EXIT_USAGE)
        except TiopsError as error:
            _error_message(error)
            findings = getattr(error, "findings", None)
            if findings:
                click.echo(FINDING_RENDERERS["text"](_without_info(findings), color=_color(), tool_version=__version__), err=True, nl=False)
            sys.exit(EXIT_FINDINGS)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except Exception:
            with tempfile.NamedTemporaryFile("w", prefix="tiops-crash-", suffix=".log", delete=False) as log:
                traceback.print_exc(file=log)
            click.echo(f"tiops: internal error (this is a bug). Details in {log.name}", err=True)
            sys.exit(EXIT_INTERNAL)

    return wrapper  # type: ignore[return-value]


def _error_message(error: TiopsError) -> None:
    click.echo(f"tiops: error: {error.message}", err=True)
    if error.hint:
        click.echo(f"  hint: {error.hint}", err=True)


def _color() -> bool:
    return sys.stdout.isatty()


def _without_info(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity > Severity.INFO]


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Progress]:
    """A progress callback drawn as a bar on stderr when stderr is a terminal."""
    bars: dict[str, Any] = {}
    if not enabled or not sys.stderr.isatty():
        yield lambda stage, done, total: None
        return

    def report(stage: str, done: int, total: int) -> None:
        if total < 2000:
            return  # small jobs finish before a bar helps
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = click.progressbar(length=total, label=stage.ljust(9), file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)
        if done >= total:
            bar.__exit__(None, None, None)

    try:
        yield report
    finally:
        for bar in bars.values():
            if bar.pos < bar.length:
                bar.__exit__(None, None, None)


def repo_root(ctx: click.Context) -> Path:
    """The repository root chosen with ``tiops -C DIR`` (default: the current directory)."""
    root: Path = ctx.obj["root"]
    return root


def color_enabled() -> bool:
    return _color()
