"""The one output sink: results to stdout (table or JSON), logs, warnings and progress to stderr."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

# No `file=`: rich looks the stream up at each write, so CliRunner's captured streams work.
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, highlight=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _jsonable(value.item())
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    return value


def print_json(obj: Any) -> None:
    """Prints `obj` as one JSON document on stdout (NaN/inf become null so the JSON stays valid)."""
    sys.stdout.write(json.dumps(_jsonable(obj), indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_table(rows: list[dict[str, Any]], title: str | None = None) -> None:
    """Prints a list of homogeneous dicts as a rich table on stdout."""
    table = Table(title=title, show_lines=False)
    columns = list(rows[0].keys()) if rows else []
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[_fmt(row.get(c)) for c in columns])
    out.print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def log(message: str) -> None:
    """Writes one log line to stderr."""
    err.print(message)


def warn(message: str) -> None:
    """Writes one warning line to stderr, in the hyperfine manner: what happened and what to do."""
    err.print(f"[bold yellow]warning:[/] {message}")
