"""`adabench convert adallava SRC --out DIR`: import official checkpoints into adabench's format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adabench.commands import user_errors
from adabench.commands.options import Json


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Convert checkpoints from other code bases.", no_args_is_help=True)
    app.add_typer(sub, name="convert")

    @sub.command("adallava")
    @user_errors
    def adallava_cmd(
        src: Annotated[
            str,
            typer.Argument(help="Official AdaLLaVA checkpoint: folder or hub id in the HF cache."),
        ],
        out: Annotated[Path, typer.Option(help="Output folder (an adabench AdaLLaVA model).")],
        dtype: Annotated[
            str, typer.Option(help="Weight dtype written: float16 | bfloat16 | float32.")
        ] = "float16",
        vision_tower: Annotated[
            str | None,
            typer.Option(
                help="CLIP folder or hub id when SRC lacks the vision tower (default: its mm_vision_tower)."
            ),
        ] = None,
        processor: Annotated[
            str | None,
            typer.Option(
                help="Llava processor folder or hub id (default: SRC, then llava-hf/llava-1.5-7b-hf)."
            ),
        ] = None,
        json_: Json = False,
    ) -> None:
        """Convert an official AdaLLaVA checkpoint (LLaVA layout + scheduler.*) to an HF Llava
        folder plus adallava_config.json / adallava.safetensors.

        Example: adabench convert adallava zhuoyanxu/ada-llava-L-v1.5-7b --out models/adallava-l-7b
        """
        from adabench import console
        from adabench.convert import convert_adallava

        summary = convert_adallava(
            src, out, dtype=dtype, vision_tower=vision_tower, processor=processor
        )
        if json_:
            console.print_json(summary)
        else:
            console.print_table([{"key": k, "value": v} for k, v in summary.items()], "converted")
