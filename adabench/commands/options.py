"""Shared CLI options, declared once and reused by eval and sweep."""

from __future__ import annotations

from typing import Annotated

import typer

Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only on stdout.")]
Device = Annotated[str, typer.Option(help="auto | cpu | cuda[:i]")]
Dtype = Annotated[
    str, typer.Option(help="auto (float32 on CPU, float16 on GPU) | float32 | float16 | bfloat16")
]
Limit = Annotated[int | None, typer.Option(help="Use the first N samples of the split.")]
Repeats = Annotated[int, typer.Option(help="Timed runs per sample.")]
Warmup = Annotated[int, typer.Option(help="Untimed generations at the start of each cell.")]
MaxNewTokens = Annotated[
    int | None, typer.Option(help="Greedy tokens per answer (default: the suite's).")
]
Seed = Annotated[int, typer.Option(help="Seed for random plans and bootstrap CIs.")]
MethodArgs = Annotated[
    list[str] | None,
    typer.Option("--method-arg", help="Method argument key=value (repeatable), e.g. k=2."),
]
Plugins = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        help="Plugin with methods: a .py file or a module name (repeatable; docs/methods.md).",
    ),
]
