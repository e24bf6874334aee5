"""`adabench eval`: one cell (model × method × budget × suite), the primitive the sweep repeats."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from adabench.commands import user_errors
from adabench.commands.options import (
    CudaGraphs,
    Device,
    Dtype,
    Json,
    Limit,
    MaxNewTokens,
    MethodArgs,
    Plugins,
    Repeats,
    Seed,
    SkipBadSamples,
    Warmup,
)
from adabench.errors import UserError


def register(app: typer.Typer) -> None:
    @app.command("eval")
    @user_errors
    def eval_cmd(
        model: Annotated[
            str, typer.Option(help="Model alias (tiny, tiny-adallava-l, ...), folder or hub id.")
        ] = "tiny",
        method: Annotated[str, typer.Option(help="Method (see `adabench methods list`).")] = "full",
        budget: Annotated[
            float, typer.Option(help="Fraction of decoder-block compute, in (0, 1].")
        ] = 1.0,
        suite: Annotated[str, typer.Option(help="Suite name.")] = "shapes",
        split: Annotated[str, typer.Option(help="Suite split.")] = "test",
        limit: Limit = None,
        repeats: Repeats = 1,
        warmup: Warmup = 1,
        max_new_tokens: MaxNewTokens = None,
        device: Device = "auto",
        dtype: Dtype = "auto",
        seed: Seed = 0,
        method_arg: MethodArgs = None,
        plugin: Plugins = None,
        samples_out: Annotated[
            str | None, typer.Option(help="Also write per-sample rows to this parquet file.")
        ] = None,
        no_weights: Annotated[
            bool,
            typer.Option(
                "--no-weights",
                help="Random weights from the config: latency/FLOPs only, accuracy NaN.",
            ),
        ] = False,
        skip_bad_samples: SkipBadSamples = False,
        cuda_graphs: CudaGraphs = False,
        json_: Json = False,
    ) -> None:
        """Evaluate one cell: accuracy (with CI), latency (mean ± σ, percentiles), FLOPs, memory.

        A hub model or dataset missing from the HF cache is downloaded into it, unless
        HF_HUB_OFFLINE=1 (then it is an error).

        Examples:
          adabench eval --model tiny --method layer-drop --budget 0.5 --suite shapes --limit 100 --json
          adabench eval --plugin examples/plugins/skip_odd.py --method skip-odd --budget 0.75
        """
        from adabench.config import check_cuda_graphs
        from adabench.models.methods import parse_method_args
        from adabench.models.plugins import load_plugins
        from adabench.sweep.cell_config import CellConfig
        from adabench.sweep.evaluate import evaluate_one

        check_cuda_graphs(cuda_graphs, device)
        if samples_out is not None:
            check_samples_out(Path(samples_out))
        load_plugins(plugin)
        cfg = CellConfig(
            model=model,
            method=method,
            budget=budget,
            suite=suite,
            split=split,
            limit=limit,
            repeats=repeats,
            warmup=warmup,
            max_new_tokens=max_new_tokens,
            seed=seed,
            method_args=parse_method_args(method_arg or []),
            cuda_graphs=cuda_graphs,
        )
        evaluate_one(
            cfg,
            device,
            dtype,
            samples_out,
            as_json=json_,
            no_weights=no_weights,
            skip_bad_samples=skip_bad_samples,
        )


RUN_TABLES = ("cells.parquet", "samples.parquet")


def check_samples_out(path: Path) -> None:
    """Raises UserError unless `path` can take the per-sample parquet file: checked before any
    measuring, so a bad path never costs a run (and a results folder's own tables are safe)."""
    if path.is_dir():
        raise UserError(
            f"--samples-out {path} is a folder; give a file such as {path / 'samples-eval.parquet'}"
        )
    parent = path.parent
    if not parent.is_dir():
        raise UserError(f"--samples-out {path}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise UserError(f"--samples-out {path}: folder {parent} is not writable")
    is_run = any((parent / name).exists() for name in ("config.yaml", "meta.json", "parts"))
    if path.name in RUN_TABLES and is_run:
        raise UserError(
            f"--samples-out {path} would overwrite the results table of run {parent}; "
            "give another file name"
        )
