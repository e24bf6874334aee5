"""`adabench sweep`: budgets × contention × methods × models × suites into a results folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from adabench.commands import user_errors
from adabench.commands.options import CudaGraphs, Json, Plugins


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    @user_errors
    def sweep_cmd(
        config: Annotated[
            Path | None,
            typer.Option(
                help="Sweep YAML file, or a shipped one by name: ci, demo, gpu-latency, paper, server "
                "(adabench/configs/sweeps/). CLI flags override it."
            ),
        ] = None,
        models: Annotated[
            str | None, typer.Option(help="Comma-separated models, e.g. tiny,tiny-adallava-l.")
        ] = None,
        methods: Annotated[
            str | None, typer.Option(help="Comma-separated methods, e.g. full,layer-drop.")
        ] = None,
        suites: Annotated[str | None, typer.Option(help="Comma-separated suites.")] = None,
        budgets: Annotated[str | None, typer.Option(help="Budgets, e.g. 0.5,0.75,1.0.")] = None,
        budget_range: Annotated[
            str | None, typer.Option(help="Budget range start:stop:step, e.g. 0.5:1.0:0.05.")
        ] = None,
        contention: Annotated[
            str | None, typer.Option(help="Stress levels in [0, 1], e.g. 0,0.5.")
        ] = None,
        contention_kind: Annotated[
            str | None, typer.Option(help="compute | memory | mixed | sm.")
        ] = None,
        limit: Annotated[int | None, typer.Option(help="Samples per suite.")] = None,
        repeats: Annotated[int | None, typer.Option(help="Timed runs per sample.")] = None,
        warmup: Annotated[int | None, typer.Option(help="Untimed generations per cell.")] = None,
        max_new_tokens: Annotated[
            int | None, typer.Option(help="Greedy tokens per answer.")
        ] = None,
        device: Annotated[str | None, typer.Option(help="auto | cpu | cuda[:i].")] = None,
        cuda_graphs: CudaGraphs = False,
        dtype: Annotated[
            str | None, typer.Option(help="auto | float32 | float16 | bfloat16.")
        ] = None,
        seed: Annotated[int | None, typer.Option(help="Seed.")] = None,
        threads: Annotated[
            int | None, typer.Option(help="Torch CPU threads for the measured model.")
        ] = None,
        slo_ms: Annotated[
            str | None, typer.Option(help="SLO mode: latency targets in ms, e.g. 120,200.")
        ] = None,
        contention_schedule: Annotated[
            str | None,
            typer.Option(help="SLO mode: changing load level:duration, e.g. 0:30s,1.0:30s."),
        ] = None,
        scenario: Annotated[
            str | None,
            typer.Option(
                help="closed (default: each request starts when the last ends) | server "
                "(requests arrive on their own clock and queue; needs --slo-ms and --rates or "
                "--arrivals; docs/serving.md)."
            ),
        ] = None,
        rates: Annotated[
            str | None,
            typer.Option(help="Server scenario: offered rates in requests/s, e.g. 20,40,80."),
        ] = None,
        duration: Annotated[
            str | None,
            typer.Option(help="Server scenario: arrival window per rate, e.g. 30s (default 30s)."),
        ] = None,
        arrivals: Annotated[
            Path | None,
            typer.Option(help="Server scenario: replay this CSV of arrival times (t_s column)."),
        ] = None,
        no_weights: Annotated[
            bool | None,
            typer.Option(
                "--no-weights",
                help="Random weights from the config: latency/FLOPs only, accuracy NaN.",
            ),
        ] = None,
        skip_unreachable: Annotated[
            bool | None,
            typer.Option(
                "--skip-unreachable",
                help="Drop cells whose budget the method cannot reach (listed in a warning); "
                "without it such a grid is refused before the first cell.",
            ),
        ] = None,
        skip_bad_samples: Annotated[
            bool | None,
            typer.Option(
                "--skip-bad-samples",
                help="Leave out samples whose image cannot be read (listed in a warning and in "
                "meta.json); without it one bad image stops the sweep before the first cell.",
            ),
        ] = None,
        order: Annotated[
            str | None,
            typer.Option(
                help="interleaved (default: every arm once per sample, seeded random order, "
                "paired ratios) | sequential (one cell after another)."
            ),
        ] = None,
        aa: Annotated[
            bool | None,
            typer.Option(
                "--aa/--no-aa", help="Measure a hidden second `full` arm: the A/A noise floor."
            ),
        ] = None,
        target_ci: Annotated[
            float | None,
            typer.Option(help="Add rounds until every latency-ratio CI half-width <= this."),
        ] = None,
        max_rounds: Annotated[
            int | None, typer.Option(help="With --target-ci: rounds at most (default 5).")
        ] = None,
        max_time: Annotated[
            float | None, typer.Option(help="With --target-ci: seconds per group at most.")
        ] = None,
        out: Annotated[Path, typer.Option(help="Parent folder of the run folder.")] = Path(
            "results"
        ),
        name: Annotated[str, typer.Option(help="Run name (folder suffix).")] = "sweep",
        resume: Annotated[
            Path | None,
            typer.Option(
                help="Resume this run folder with its stored config (skips finished cells). "
                "Flags or --config given with it must agree with the stored config."
            ),
        ] = None,
        extend: Annotated[
            bool,
            typer.Option(
                "--extend",
                help="With --resume: add the grid values given (models, methods, suites, "
                "budgets, contention, slo-ms) to the run; the added cells are logged.",
            ),
        ] = False,
        force: Annotated[
            bool,
            typer.Option(
                help="Resume a run made by another adabench version (never a changed grid)."
            ),
        ] = False,
        executor: Annotated[
            str, typer.Option(help="local (this process) | ray (cells spread over a Ray cluster).")
        ] = "local",
        ray_address: Annotated[
            str, typer.Option(help="Ray: auto (running cluster) | local (start one) | HOST:PORT.")
        ] = "auto",
        gpus_per_task: Annotated[
            int, typer.Option(help="Ray: whole GPUs per (model, contention) task.")
        ] = 1,
        cpus_per_task: Annotated[
            int | None, typer.Option(help="Ray, CPU clusters: CPUs per task (default: a node).")
        ] = None,
        max_retries: Annotated[
            int, typer.Option(help="Ray: resubmissions of a task whose worker died.")
        ] = 2,
        plugin: Plugins = None,
        report: Annotated[
            bool, typer.Option(help="Write plots and report.{md,html} at the end.")
        ] = True,
        json_: Json = False,
    ) -> None:
        """Run a sweep. Precedence: CLI flag > --config YAML > defaults. With no arguments it runs the
        embedded demo (tiny models, shapes, budgets 0.5/0.75/1.0, contention 0 and 0.5).

        One sweep per run folder at a time (a second one exits 2 naming the holder). A hub model
        or dataset missing from the HF cache is downloaded into it, unless HF_HUB_OFFLINE=1.

        Examples:
          adabench sweep
          adabench sweep --models tiny --methods full,layer-drop --budgets 0.5,1.0 --contention 0,0.5 --limit 12
          adabench sweep --config paper --device cuda
          adabench sweep --resume results/20260101-120000-demo
          adabench sweep --resume results/20260101-120000-demo --methods early-exit --extend
          adabench sweep --executor ray --ray-address local --models tiny --limit 12
          adabench sweep --plugin examples/plugins/skip_odd.py --methods full,skip-odd --budgets 0.75
        """
        from adabench import console
        from adabench.config import SweepConfig, normalize_plugins, parse_floats, parse_names
        from adabench.errors import UserError
        from adabench.slo.schedule import parse_duration
        from adabench.sweep.runner import run_sweep

        if budgets is not None and budget_range is not None:
            raise UserError("give --budgets or --budget-range, not both")
        overrides = {
            "models": parse_names(models),
            "methods": parse_names(methods),
            "suites": parse_names(suites),
            "budgets": parse_floats(budgets if budgets is not None else budget_range, "budgets"),
            "contention": parse_floats(contention, "contention"),
            "contention_kind": contention_kind,
            "limit": limit,
            "repeats": repeats,
            "warmup": warmup,
            "max_new_tokens": max_new_tokens,
            "device": device,
            "cuda_graphs": cuda_graphs or None,
            "dtype": dtype,
            "seed": seed,
            "threads": threads,
            "no_weights": no_weights,
            "skip_unreachable": skip_unreachable,
            "skip_bad_samples": skip_bad_samples,
            "slo_ms": parse_floats(slo_ms, "slo-ms"),
            "contention_schedule": contention_schedule,
            "scenario": scenario,
            "rates": parse_floats(rates, "rates"),
            "duration_s": None if duration is None else parse_duration(duration, "--duration"),
            "arrivals": None if arrivals is None else str(arrivals),
            "order": order,
            "aa": aa,
            "target_ci": target_ci,
            "max_rounds": max_rounds,
            "max_time_s": max_time,
            "plugins": normalize_plugins(plugin) if plugin else None,
        }
        if extend and resume is None:
            raise UserError("--extend adds grid values to a run: use it with --resume RUN")
        sweep_executor = make_executor(
            executor, ray_address, gpus_per_task, cpus_per_task, max_retries
        )
        if resume is not None:
            cfg = None
        else:
            cfg = SweepConfig.from_layers(config, overrides)
        run_dir = run_sweep(
            cfg,
            out,
            name,
            resume=resume,
            force=force,
            as_json=json_,
            argv=sys.argv,
            cli_overrides=overrides if resume is not None else {},
            executor=sweep_executor,
            config_path=config if resume is not None else None,
            extend=extend,
        )
        if report:
            try:
                from adabench.report import write_report

                for path in write_report(run_dir):
                    console.log(f"{'table' if path.suffix == '.tex' else 'report'}: {path}")
            except Exception as exc:  # the results are safe; a plotting failure must not hide them
                console.warn(
                    f"plots/report failed ({exc}); run `adabench report {run_dir}` to retry"
                )


EXECUTORS = ("local", "ray")


def make_executor(
    name: str, address: str, gpus_per_task: int, cpus_per_task: int | None, max_retries: int
):
    """Returns the executor called `name`; UserError (did-you-mean) for an unknown one."""
    from adabench.errors import did_you_mean

    if name not in EXECUTORS:
        raise did_you_mean(name, EXECUTORS, "executor")
    if name == "local":
        from adabench.sweep.runner import LocalExecutor

        return LocalExecutor()
    from adabench.sweep.ray_executor import RayExecutor, RayOptions

    return RayExecutor(RayOptions(address, gpus_per_task, cpus_per_task, max_retries))
