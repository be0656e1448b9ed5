"""What every command shares: error handling at the edge, progress bars, the root.

Exit codes: 0 success, 1 findings at the failing level or a reported error,
2 usage error, 3 internal error (with a log file), 130 interrupted (Ctrl-C, tiops.cli).
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from tiops import __version__
from tiops.discover import find_repo_root
from tiops.errors import TiopsError, UsageError
from tiops.findings import Finding, Severity
from tiops.outputs import write_whole
from tiops.progress import Progress
from tiops.redact import redact
from tiops.render.findings import FINDING_RENDERERS

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


# Every command that reads the intel through .tiops/build-cache/ takes this switch.
no_cache_option = click.option(
    "--no-cache", "no_cache", is_flag=True, envvar="TIOPS_NO_CACHE",
    help="Parse and check every file again instead of reusing .tiops/build-cache/ (also TIOPS_NO_CACHE=1).")


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
        except BrokenPipeError:
            # The reader went away (`tiops query ... | head`): what it wanted it has, as with any
            # Unix filter. Nothing more can be written there, not even at exit's flush.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            sys.exit(0)
        except (UnicodeEncodeError, ValueError, TypeError) as error:  # orjson.JSONEncodeError is a TypeError
            if not (_undecodable_arguments() and "surrogate" in str(error)):
                _crash()
            # Bytes the locale could not decode reach Python as lone surrogates (PEP 383), which no
            # file or JSON text can hold: the argument, not tiops, is at fault (Python's C locale
            # coercion and UTF-8 mode, PEP 538 and 540, were switched off for this to happen).
            click.echo("tiops: error: an argument holds bytes that are not text in this locale's encoding", err=True)
            click.echo("  hint: Run tiops in a UTF-8 locale (LANG=C.UTF-8, or PYTHONUTF8=1).", err=True)
            sys.exit(EXIT_USAGE)
        except Exception:
            _crash()

    return wrapper  # type: ignore[return-value]


def _undecodable_arguments() -> bool:
    """Whether a command-line argument holds a lone surrogate: bytes the locale could not decode."""
    return any("\udc80" <= character <= "\udcff" for argument in sys.argv[1:] for character in argument)


def _crash() -> NoReturn:
    """The internal error: the traceback, redacted, into a crash log named on stderr; exit 3."""
    with tempfile.NamedTemporaryFile("w", prefix="tiops-crash-", suffix=".log", delete=False) as log:
        # Exception texts can quote a DSN or a server's answer: no secret goes into the log.
        log.write(redact(traceback.format_exc()))
    click.echo(f"tiops: internal error (this is a bug). Details in {log.name}", err=True)
    sys.exit(EXIT_INTERNAL)


def _error_message(error: TiopsError) -> None:
    click.echo(redact(f"tiops: error: {error.message}"), err=True)
    if error.hint:
        click.echo(redact(f"  hint: {error.hint}"), err=True)


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


NOT_A_REPO_HINT = "Create one here with 'tiops init', or point at one with 'tiops -C DIR COMMAND'."


def start_folder(ctx: click.Context) -> Path:
    """The folder the command runs in: ``tiops -C DIR`` or the current directory."""
    start: Path = ctx.obj["start"]
    return start


def repo_root(ctx: click.Context, *, near: list[Path] | None = None) -> Path:
    """The repository the command works on: the nearest folder at or above the start folder
    holding tiops.yaml or intel/ (then, when given, at or above one of ``near``).

    Outside any repository this is a usage error: writing `.tiops/` or `dist/` into a random
    folder, or validating nothing and calling it clean, would hide the mistake.
    """
    start = start_folder(ctx)
    for candidate in (start, *(near or ())):
        root = find_repo_root(candidate)
        if root is not None:
            return root
    raise UsageError(f"{start.as_posix()} is not inside a tiops repository (no tiops.yaml or intel/ folder here "
                     "or in any parent folder)", hint=NOT_A_REPO_HINT)


def write_output(path: Path, data: bytes | str, what: str) -> None:
    """Write a file an option named (``what`` it holds, for the message); an error the user can
    fix, naming the file, when it cannot be written (a missing folder, a read-only place, a device).

    Whole or not at all (tiops.outputs): a plan cut short by Ctrl-C or a full disk is not left for
    ``tiops apply`` to read, nor a SARIF file for code scanning; a failed write leaves the previous
    file as it was. A pipe or a device (``-o /dev/stdout``) is written to as it is.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, data.encode("utf-8") if isinstance(data, str) else data)
    except OSError as error:
        raise UsageError(f"cannot write the {what} to {path}: {error.strerror or error}",
                         hint="Name a file in a folder tiops can create or write.") from None


def refuse_repository_source(root: Path, config: Any, target: Path, what: str, *, hint: str) -> None:
    """-o naming tiops.yaml, or a file or folder under the intel or rules folder: writing ``what`` there would
    replace the team's own source, or add generated files to it, without a word. The configured output
    folder is the command's own, even inside one of them (``output: intel/dist``)."""
    resolved = Path(os.path.realpath(target))
    sources = [Path(os.path.realpath(root / "tiops.yaml")), Path(os.path.realpath(config.intel_path)),
               Path(os.path.realpath(config.rules_path))]
    output_dir = Path(os.path.realpath(root / config.output_dir))
    if resolved.is_relative_to(output_dir) and not any(s.is_relative_to(output_dir) for s in sources):
        return
    if any(resolved == source or resolved.is_relative_to(source) for source in sources):
        raise UsageError(f"-o {shown_path(target)} is part of the repository's own source (tiops.yaml, the intel "
                         f"or rules folder); {what} would be written into it", hint=hint)


def shown_path(path: Path) -> str:
    """A path as the user typed it: relative to the current folder when under it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def show_config_warnings(root: Path) -> None:
    """Print tiops.yaml's warnings (old key spellings) on stderr: plan and apply read it too."""
    from tiops.config import load_config
    from tiops.locate import resolve_locations

    findings = [f for f in load_config(root)[1] if f.severity is Severity.WARNING]
    for finding in resolve_locations(findings, root):
        click.echo(f"warning: {finding.location}: {finding.code} {finding.message}", err=True)


def confirm(question: str, *, flag: str) -> bool:
    """Ask a yes/no question on the terminal; without one, name the flag that answers it.

    A CI job that forgot the flag has no terminal: waiting or guessing would both be wrong.
    """
    require_terminal(question, flag=flag)
    return click.confirm(question, default=False)


def require_terminal(question: str, *, flag: str) -> None:
    """Refuse up front, before any work, when ``question`` could not be asked."""
    if not sys.stdin or not sys.stdin.isatty():
        raise UsageError(f'cannot ask "{question}": standard input is not a terminal',
                         hint=f"Pass {flag} to go ahead without asking.")


def color_enabled() -> bool:
    return _color()
