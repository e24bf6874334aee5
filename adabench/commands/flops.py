"""`adabench flops`: analytic FLOPs per budget from a model's config (no weights, no model built)."""

from __future__ import annotations

from typing import Annotated

import typer

from adabench.commands import user_errors
from adabench.commands.options import Json, MethodArgs, Plugins


def register(app: typer.Typer) -> None:
    @app.command("flops")
    @user_errors
    def flops_cmd(
        model: Annotated[
            str,
            typer.Option(
                help="Shipped config (`adabench models list`: llava-1.5-7b, "
                "llava-v1.6-mistral-7b, qwen2.5-vl-3b, smolvlm-256m, ...), embedded alias or folder."
            ),
        ] = "llava-1.5-7b",
        method: Annotated[
            str,
            typer.Option(
                help="full, layer-drop, early-exit, random-skip, adallava-l, adallava-h, head-prune, fastv, "
                "X+fastv, or a plugin's method (its plan on a synthetic prompt)."
            ),
        ] = "full",
        budgets: Annotated[str, typer.Option(help="Comma-separated budgets in (0, 1].")] = "1.0",
        image_size: Annotated[
            str | None,
            typer.Option(
                help="Image WxH px (or N for a square): the model's processor decides tiles "
                "and visual tokens, as in `adabench eval` (default: 336 for llava-1.5, a "
                "448x448 image for LLaVA-NeXT/OneVision, Qwen-VL and SmolVLM)."
            ),
        ] = None,
        image_tokens: Annotated[
            int | None,
            typer.Option(
                "--image-tokens",
                "--visual-tokens",
                help="Visual tokens in the LLM, overriding the image's count (576 for "
                "llava-1.5); the vision side stays the image's.",
            ),
        ] = None,
        prompt_tokens: Annotated[
            int,
            typer.Option(
                help="Text tokens of the prompt (the processor's image markers, e.g. "
                "SmolVLM's tile tags, are added to these)."
            ),
        ] = 64,
        new_tokens: Annotated[int, typer.Option(help="Generated tokens (1 = prefill only).")] = 1,
        method_arg: MethodArgs = None,
        plugin: Plugins = None,
        json_: Json = False,
    ) -> None:
        """Analytic FLOPs of a method's plan per budget, from the config alone (nothing downloaded).

        Sequence = image tokens + prompt tokens (+ 1 latency token for adallava-*); the
        "no lat. token" column gives the same plan without it. FLOP = 2 × MAC.

        Examples:
          adabench flops --model llava-1.5-7b --method adallava-l --budgets 1.0,0.85,0.6
          adabench flops --model llava-1.5-13b --method fastv --method-arg k=2 --method-arg r=0.5 --json
          adabench flops --model llava-qwen2-7b --method adallava-h --budgets 1.0,0.6
          adabench flops --model qwen2.5-vl-3b --image-size 1024x768 --method fastv --budgets 0.6
          adabench flops --plugin examples/plugins/skip_odd.py --method skip-odd --budgets 0.75
        """
        from adabench import console
        from adabench.errors import UserError
        from adabench.flops_table import FlopsQuery, flops_table, parse_image_size, table_rows
        from adabench.models.methods import parse_method_args
        from adabench.models.plugins import load_plugins

        load_plugins(plugin)

        try:
            values = tuple(float(b) for b in budgets.split(",") if b.strip())
        except ValueError as exc:
            raise UserError(f"--budgets must be comma-separated numbers, got {budgets!r}") from exc
        query = FlopsQuery(
            model=model,
            method=method,
            budgets=values,
            image_tokens=image_tokens,
            image_size=parse_image_size(image_size),
            prompt_tokens=prompt_tokens,
            new_tokens=new_tokens,
            method_args=parse_method_args(method_arg or []),
        )
        rows = flops_table(query)
        if json_:
            console.print_json(rows)
            return
        first = rows[0]
        image = "" if first["image_px"] is None else f"{first['image_px']} px image, "
        markers = f" + {first['structure_tokens']} marker" if first["structure_tokens"] else ""
        title = (
            f"{model} · {method} · {image}{first['image_tokens']} visual{markers} + "
            f"{first['prompt_tokens']} prompt + {first['latency_tokens']} latency tokens · "
            f"{new_tokens} new"
        )
        console.print_table(table_rows(rows), title)
