"""`adabench eval`: one cell (model × method × budget × suite), the primitive the sweep repeats."""

from __future__ import annotations

from typing import Annotated

import typer

from adabench.commands import user_errors
from adabench.commands.options import (
    Device,
    Dtype,
    Json,
    Limit,
    MaxNewTokens,
    MethodArgs,
    Repeats,
    Seed,
    Warmup,
)


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
        json_: Json = False,
    ) -> None:
        """Evaluate one cell: accuracy (with CI), latency (mean ± σ, percentiles), FLOPs, memory.

        Example: adabench eval --model tiny --method layer-drop --budget 0.5 --suite shapes --limit 100 --json
        """
        from adabench.sweep.evaluate import evaluate_one

        evaluate_one(
            model=model,
            method=method,
            budget=budget,
            suite=suite,
            split=split,
            limit=limit,
            repeats=repeats,
            warmup=warmup,
            max_new_tokens=max_new_tokens,
            device=device,
            dtype=dtype,
            seed=seed,
            method_args=method_arg or [],
            samples_out=samples_out,
            as_json=json_,
            no_weights=no_weights,
        )
