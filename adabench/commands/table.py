"""`adabench table RUN`: the run as a paper table (LaTeX booktabs, CSV, Markdown or JSON)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from adabench.commands import user_errors


def register(app: typer.Typer) -> None:
    """Adds the top-level command `table` to `app`."""

    @app.command("table")
    @user_errors
    def table_cmd(
        run_dir: Annotated[Path, typer.Argument(help="A results folder.")],
        format: Annotated[
            str, typer.Option("--format", help="latex | csv | markdown | json.")
        ] = "latex",
        rows: Annotated[
            str, typer.Option(help="Row keys, comma-separated: model, method, budget, contention.")
        ] = "model,method,budget",
        columns: Annotated[
            str | None, typer.Option(help="Suites to show, comma-separated (default: all).")
        ] = None,
        metric: Annotated[
            str,
            typer.Option(help="official (MME as its perception score, the rest in %) | accuracy."),
        ] = "official",
        contention: Annotated[
            float | None,
            typer.Option(help="The contention level to show (default: the lowest)."),
        ] = None,
        vs: Annotated[
            str | None,
            typer.Option(
                help="Reference row for the significance marks: METHOD or METHOD@BUDGET "
                "(default: full, when the run has it)."
            ),
        ] = None,
        latency: Annotated[
            str, typer.Option(help="ms (mean latency) | ratio (paired ratio to full, ×full).")
        ] = "ms",
        ci: Annotated[bool, typer.Option("--ci", help="Show 95 % CIs beside the values.")] = False,
        out: Annotated[
            Path | None, typer.Option(help="Write the table to this file instead of stdout.")
        ] = None,
    ) -> None:
        """Print a run as the AdaLLaVA paper's Table 1: one row per (model, method, budget) with
        FLOPs, prefill and end-to-end latency, and one column per suite (its official metric),
        best values in bold, † where a value differs from the --vs row (paired test, BH).

        Examples:
          adabench table results/20250101-120000-demo > table.tex
          adabench table results/20250101-120000-demo --format markdown --latency ratio --ci
          adabench table results/x --columns vqav2,mme --contention 0.5 --vs full
        """
        from adabench.analysis.table import build_table
        from adabench.analysis.table_render import FORMATS, render
        from adabench.errors import did_you_mean

        if format not in FORMATS:
            raise did_you_mean(format, FORMATS, "--format")
        run = load_run_or_list(run_dir)
        suites = [s.strip() for s in columns.split(",") if s.strip()] if columns else None
        table = build_table(run, tuple(rows.split(",")), suites, metric, contention, vs, ci,
                            latency)  # fmt: skip
        text = render(table, format)
        if out is None:
            sys.stdout.write(text)
        else:
            out.write_text(text, encoding="utf-8")
            typer.echo(str(out))


def load_run_or_list(run_dir: Path):
    """Returns `store.load_run(run_dir)`; when `run_dir` is not a results folder, the one-line
    error names the results folders inside it (or says there are none)."""
    from adabench.errors import UserError
    from adabench.store import load_run

    if run_dir.is_dir() and not _is_run(run_dir):
        inside = sorted(p.name for p in run_dir.iterdir() if p.is_dir() and _is_run(p))
        where = (f"results folders in it: {', '.join(inside)}" if inside
                 else "it holds no results folder either")  # fmt: skip
        raise UserError(f"{run_dir} is not an adabench results folder (no cells.parquet or "
                        f"parts/); {where}.")  # fmt: skip
    return load_run(run_dir)


def _is_run(path: Path) -> bool:
    return (path / "cells.parquet").is_file() or (path / "parts").is_dir()
