"""`adabench train {base,adallava}`: reproducible training of the embedded tiny checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adabench.commands import user_errors


def _progress():
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from adabench.console import err

    bar = Progress(
        TextColumn("[bold]train[/]"),
        BarColumn(),
        TextColumn("step {task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
        console=err,
    )
    task = bar.add_task("train", total=1, loss=float("nan"))

    def update(step: int, total: int, loss: float, elapsed_s: float) -> None:
        bar.update(task, completed=step, total=max(total, step), loss=loss)

    return bar, update


def register(app: typer.Typer) -> None:
    sub = typer.Typer(
        help="Train the embedded tiny checkpoints (CPU-friendly, seeded).", no_args_is_help=True
    )
    app.add_typer(sub, name="train")

    @sub.command("base")
    @user_errors
    def base_cmd(
        out: Annotated[Path, typer.Option(help="Output folder (HF checkpoint).")],
        suite: Annotated[str, typer.Option(help="Training suite (procedural).")] = "shapes",
        minutes: Annotated[float, typer.Option(help="Wall-clock budget in minutes.")] = 30.0,
        seed: Annotated[int, typer.Option(help="Seed.")] = 0,
        lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 7e-4,
        init_from: Annotated[
            Path | None, typer.Option(help="Continue from this checkpoint (second stage).")
        ] = None,
        spatial_weight: Annotated[
            int, typer.Option(help="Copies of the spatial family in the training mix.")
        ] = 1,
        vision_lr_scale: Annotated[
            float, typer.Option(help="Train the vision tower at lr × this (0 = frozen).")
        ] = 0.0,
        warmup_steps: Annotated[int, typer.Option(help="Linear warm-up steps.")] = 150,
        position_probe: Annotated[
            bool, typer.Option(help="Stage 0 also predicts each visual token's cell.")
        ] = False,
    ) -> None:
        """Train the tiny Llava from scratch. Example: adabench train base --out adabench/assets/tiny --minutes 30"""
        from adabench import console
        from adabench.errors import UserError
        from adabench.models.train_base import BaseTrainConfig, train_base

        if suite != "shapes":
            raise UserError("only the procedural suite 'shapes' can train the tiny model")
        bar, update = _progress()
        with bar:
            summary = train_base(
                BaseTrainConfig(
                    out=out,
                    minutes=minutes,
                    seed=seed,
                    lr=lr,
                    init_from=init_from,
                    spatial_weight=spatial_weight,
                    vision_lr_scale=vision_lr_scale,
                    warmup_steps=warmup_steps,
                    position_probe=position_probe,
                ),
                update,
            )
        console.print_json({"out": str(out), "steps": summary["steps"], "test": summary["test"]})

    @sub.command("adallava")
    @user_errors
    def adallava_cmd(
        out: Annotated[Path, typer.Option(help="Output folder.")],
        variant: Annotated[str, typer.Option(help="L (blocks) or H (heads + MLP groups).")] = "L",
        base: Annotated[str, typer.Option(help="Base checkpoint alias or folder.")] = "tiny",
        suite: Annotated[str, typer.Option(help="Training suite (procedural).")] = "shapes",
        minutes: Annotated[float, typer.Option(help="Wall-clock budget in minutes.")] = 10.0,
        seed: Annotated[int, typer.Option(help="Seed.")] = 0,
        max_steps: Annotated[
            int, typer.Option(min=0, help="Stop after this many steps (0: the minutes decide).")
        ] = 0,
        batch_size: Annotated[int, typer.Option(min=1, help="Samples per step.")] = 32,
        test_size: Annotated[
            int, typer.Option(min=1, help="Test samples scored per budget at the end.")
        ] = 1000,
    ) -> None:
        """Fine-tune a base model (any supported decoder family) into AdaLLaVA-L/H. Example: adabench train adallava --variant L --base tiny --out /tmp/ada-l"""
        from adabench import console
        from adabench.errors import UserError
        from adabench.models.adallava.train import AdaTrainConfig, train_adallava

        if variant not in ("L", "H"):
            raise UserError(f"variant must be L or H, got {variant!r}")
        if suite != "shapes":
            raise UserError("only the procedural suite 'shapes' can train the tiny models")
        bar, update = _progress()
        with bar:
            summary = train_adallava(
                AdaTrainConfig(
                    variant=variant,
                    base=base,
                    out=out,
                    minutes=minutes,
                    seed=seed,
                    max_steps=max_steps,
                    batch_size=batch_size,
                    test_size=test_size,
                ),
                update,
            )
        console.print_json({"out": str(out), "steps": summary["steps"], "test": summary["test"]})
