"""The one output sink: results to stdout (table or JSON), logs, warnings and progress to stderr."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

# No `file=`: rich looks the stream up at each write, so CliRunner's captured streams work.
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, highlight=False)


def jsonable(value: Any) -> Any:
    """Returns `value` as plain JSON/YAML data: NaN and ±inf become None, paths strings, numpy
    and torch scalars and arrays Python numbers and lists, tuples lists, dict keys strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:  # numpy / torch arrays
        return jsonable(value.tolist())
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return jsonable(value.item())
    return value


def print_json(obj: Any) -> None:
    """Prints `obj` as one JSON document on stdout (NaN/inf become null so the JSON stays valid)."""
    sys.stdout.write(json.dumps(jsonable(obj), indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_table(rows: list[dict[str, Any]], title: str | None = None) -> None:
    """Prints a list of homogeneous dicts as a rich table on stdout."""
    table = Table(title=title, show_lines=False)
    columns = list(rows[0].keys()) if rows else []
    for col in columns:
        table.add_column(col, overflow="fold")  # wrap a long name rather than cut it to "adall…"
    for row in rows:
        table.add_row(*[_fmt(row.get(c)) for c in columns])
    out.print(table)


def width() -> int:
    """Returns the output width: the terminal's, else $COLUMNS, else 80 (piped output, CI logs)."""
    return shutil.get_terminal_size((80, 24)).columns


def fit_columns(
    rows: list[dict[str, str]],
    right: set[str] = frozenset(),
    optional: list[str] = (),
    max_width: int | None = None,
    gap: int = 2,
) -> list[str]:
    """Returns `rows` as aligned text lines (a header, then one line per row) no wider than
    `max_width` when possible: the `optional` columns are dropped, last first, until the table
    fits. Cells are never cut, so names stay whole; columns in `right` are right-aligned."""
    if not rows:
        return []
    max_width = max_width or width()
    columns = list(rows[0])
    sizes = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    dropped = list(optional)
    while sum(sizes[c] for c in columns) + gap * (len(columns) - 1) > max_width and dropped:
        columns.remove(dropped.pop())

    def line(values: dict[str, str]) -> str:
        cells = [values[c].rjust(sizes[c]) if c in right else values[c].ljust(sizes[c])
                 for c in columns]  # fmt: skip
        return (" " * gap).join(cells).rstrip()

    return [line({c: c for c in columns}), *(line(r) for r in rows)]


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
