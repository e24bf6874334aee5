"""adabench command line: a thin Typer app; each command group lives in adabench/commands/."""

from __future__ import annotations

import os
import sys

import click
import typer

from adabench import __version__
from adabench.commands import register_all

app = typer.Typer(
    name="adabench",
    help="Benchmark adaptive multimodal LLMs: budgets x contention x suites -> accuracy, latency, FLOPs, energy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"adabench {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """adabench: measure how adaptive MLLMs trade accuracy for latency under budgets and contention."""


register_all(app)


def _exception_types(name: str) -> tuple[type, ...]:
    """Returns click's exception class `name` and typer's vendored copy of it, where each exists.

    typer >= 0.20 raises its own `typer._click.exceptions.*`, which do not subclass click's, so
    the entry point has to catch both to keep every parse error at one line and exit 2."""
    found = [getattr(click.exceptions, name, None)]
    try:
        from typer._click import exceptions as vendored
    except ImportError:
        vendored = None
    found.append(getattr(vendored, name, None))
    return tuple(t for t in dict.fromkeys(found) if isinstance(t, type))


USAGE_ERRORS = _exception_types("UsageError")
CLICK_ERRORS = _exception_types("ClickException")
ABORTS = _exception_types("Abort")


def usage_line(exc: Exception) -> str:
    """Returns the one-line message for a command-line parsing error, with a --help hint."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "adabench"
    if type(exc).__name__ == "NoArgsIsHelpError":
        names = ctx.command.list_commands(ctx) if hasattr(ctx.command, "list_commands") else []
        message = "missing command" + (f" (one of: {', '.join(names)})" if names else "")
    else:
        message = " ".join(exc.format_message().split()).rstrip(".")
    return f"error: {message}. Try '{path} --help'."


def run() -> None:
    """Console entry point: user errors and parse errors exit 2 with one line (ADABENCH_DEBUG=1
    shows the traceback); Ctrl-C exits 130."""
    from adabench.errors import UserError

    debug = bool(os.environ.get("ADABENCH_DEBUG"))
    try:
        code = app(standalone_mode=False, prog_name="adabench")
    except UserError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ABORTS:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except USAGE_ERRORS as exc:
        if debug:
            raise
        typer.echo(usage_line(exc), err=True)
        sys.exit(2)
    except CLICK_ERRORS as exc:
        if debug:
            raise
        typer.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
