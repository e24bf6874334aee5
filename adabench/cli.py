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


def run() -> None:
    """Console entry point: user errors exit 2 with one message (ADABENCH_DEBUG=1 for tracebacks)."""
    from adabench.errors import UserError

    try:
        code = app(standalone_mode=False)
    except UserError as exc:
        if os.environ.get("ADABENCH_DEBUG"):
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
