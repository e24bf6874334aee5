"""Command groups. Each module defines `register(app)`; heavy imports stay inside command bodies."""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable

import typer

from adabench.errors import UserError
from adabench.files import write_failure

_MODULES = [
    "env",
    "suites",
    "models",
    "methods",
    "eval",
    "train",
    "contention",
    "sweep",
    "analysis",
    "table",
    "flops",
    "convert",
]


def user_errors(func: Callable) -> Callable:
    """Wraps a command so a UserError prints one line and exits 2 (traceback with ADABENCH_DEBUG=1)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            if os.environ.get("ADABENCH_DEBUG"):
                raise
            typer.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:  # a write the user can fix: disk full, read-only, permissions
            failed = write_failure(exc)
            if os.environ.get("ADABENCH_DEBUG") or failed is None:
                raise
            where = f" {failed.filename}" if failed.filename else ""
            typer.echo(f"error: cannot write{where}: {failed.strerror or failed}", err=True)
            sys.exit(2)

    return wrapper


def register_all(app: typer.Typer) -> None:
    """Registers every command module that exists (modules land issue by issue)."""
    for name in _MODULES:
        try:
            module = importlib.import_module(f"adabench.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"adabench.commands.{name}":
                continue
            raise
        module.register(app)
