"""`adabench plot`, `adabench report` and `adabench compare`: read results folders, never a model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from adabench.commands import user_errors

RunDir = Annotated[
    Path, typer.Argument(help="A results folder, e.g. results/20250101-120000-demo.")
]


def register(app: typer.Typer) -> None:
    """Adds the top-level commands plot, report and compare to `app`."""

    @app.command("plot")
    @user_errors
    def plot_cmd(
        run_dir: RunDir,
        out: Annotated[
            Path | None, typer.Option(help="Folder for the figures [default: RUN_DIR/plots].")
        ] = None,
        format: Annotated[
            str, typer.Option("--format", help="Comma-separated: png, pdf, svg.")
        ] = "png,pdf",
        x: Annotated[str, typer.Option(help="Pareto cost axis: flops | latency.")] = "flops",
        suite: Annotated[str | None, typer.Option(help="Only this suite.")] = None,
        style: Annotated[
            str,
            typer.Option(
                help="default | paper (3.3 in single-column / 7 in double-column widths, "
                "8-9 pt fonts)."
            ),
        ] = "default",
        json: Annotated[
            bool, typer.Option("--json", help="Print the written files as JSON.")
        ] = False,
    ) -> None:
        """Write paper-ready figures (Pareto, budget adherence, latency CDF, per-family accuracy).

        Example: adabench plot results/20250101-120000-demo --format png,svg --x latency
        Example: adabench plot results/20250101-120000-demo --style paper --format pdf
        """
        from adabench.commands.options import check_out_folder
        from adabench.console import print_json
        from adabench.plots import make_plots

        check_out_folder(out)
        written = make_plots(
            run_dir, out=out, formats=format.split(","), x=x, suite=suite, style=style
        )
        if json:
            print_json([str(p) for p in written])
        else:
            for path in written:
                typer.echo(str(path))

    @app.command("report")
    @user_errors
    def report_cmd(run_dir: RunDir) -> None:
        """Write RUN_DIR/report.md, a self-contained RUN_DIR/report.html (figures inlined) and the
        paper table RUN_DIR/table.tex (LaTeX; `adabench table` for other layouts).

        Example: adabench report results/20250101-120000-demo
        """
        from adabench.report import write_report

        for path in write_report(run_dir):
            typer.echo(str(path))

    @app.command("compare")
    @user_errors
    def compare_cmd(
        baseline: Annotated[Path, typer.Argument(help="The baseline results folder.")],
        new: Annotated[Path, typer.Argument(help="The results folder to check.")],
        max_acc_drop: Annotated[
            float, typer.Option(help="Tolerated accuracy drop (absolute, 0..1).")
        ] = 0.01,
        threshold: Annotated[
            float,
            typer.Option(
                "--threshold",
                "--max-slowdown",
                help="Smallest latency ratio new/baseline that counts as a regression (> 1; "
                "asv-style: the change must also be significant).",
            ),
        ] = 1.10,
        alpha: Annotated[
            float,
            typer.Option(
                help="Significance level: a cell is marked when its q-value < alpha (0..1)."
            ),
        ] = 0.01,
        correction: Annotated[
            str,
            typer.Option(
                help="How cells' accuracy p-values become q-values: tarone-bh (BH over the cells "
                "whose test can reach alpha), bh (over every cell), none (each cell alone)."
            ),
        ] = "tarone-bh",
        gate_contended: Annotated[
            bool,
            typer.Option(
                "--gate-contended",
                help="Also gate `full`'s absolute latency under contention (by default it is "
                "reported only: it measures the stress more than the code).",
            ),
        ] = False,
        format: Annotated[
            str, typer.Option("--format", help="table | markdown | json | junit.")
        ] = "table",
    ) -> None:
        """Compare two runs cell by cell; exit 1 on a significant regression, 0 otherwise.

        Marks: + worse, - better, ~ not significant, x not comparable. Accuracy: McNemar exact
        (0/1 scores) or a sign-flip permutation (fractional scores) on the same samples, with
        q-values over cells (--correction); latency of non-`full` cells: the paired latency
        ratios, a change only when both runs' CIs are apart by more than the A/A noise floor
        and past --threshold; `full` cells: the per-sample latency ratio between the runs
        divided by their machine-speed probe ratio, significant and past --threshold; FLOPs:
        exact (reported, not a regression).

        Example: adabench compare ci/baseline results/ci --format markdown
        """
        from adabench.analysis.compare import (
            CORRECTIONS,
            compare_runs,
            summary_rows,
            to_json,
            to_junit,
            to_markdown,
            verdict,
        )
        from adabench.console import print_json
        from adabench.errors import check_range, did_you_mean
        from adabench.store import load_run

        formats = ["table", "markdown", "json", "junit"]
        if format not in formats:
            raise did_you_mean(format, formats, "format")
        if correction not in CORRECTIONS:
            raise did_you_mean(correction, list(CORRECTIONS), "correction")
        check_range(max_acc_drop, 0.0, 1.0, "--max-acc-drop")
        check_range(threshold, 1.0, float("inf"), "--threshold", low_open=True)
        check_range(alpha, 0.0, 1.0, "--alpha", low_open=True)
        result = compare_runs(load_run(baseline), load_run(new), max_acc_drop, threshold, alpha,
                              correction, gate_contended)  # fmt: skip
        for line in result.settings:
            typer.echo(f"warning: the runs differ in {line}: their cells may not be comparable.",
                       err=True)  # fmt: skip
        if format == "json":
            print_json(to_json(result))
        elif format == "junit":
            sys.stdout.write(to_junit(result))
        elif format == "markdown":
            sys.stdout.write(to_markdown(result) + "\n")
        else:
            _print_rows(
                summary_rows(result), title=f"{baseline.resolve().name} → {new.resolve().name}"
            )
        for label in result.only_base + result.only_new:
            typer.echo(f"warning: cell {label} is in one run only: not compared (x).", err=True)
        if result.regressed:
            typer.echo(verdict(result), err=True)
            sys.exit(1)  # not typer.Exit: the entry point runs click with standalone_mode=False


def _print_rows(rows: list[dict[str, str]], title: str) -> None:
    """Prints rows as a rich table that never truncates cell names (CI logs are wide enough)."""
    import shutil

    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD)
    for col in rows[0]:
        table.add_column(col, no_wrap=True)
    for row in rows:
        table.add_row(*row.values())
    # a console of our own, bound to the current stdout and wide enough for full cell names
    width = max(shutil.get_terminal_size().columns, 150)
    wide = Console(file=sys.stdout, width=width, highlight=False)
    wide.print(table)
