"""Shared CLI options, declared once and reused by eval and sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adabench.errors import UserError

Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only on stdout.")]
Device = Annotated[str, typer.Option(help="auto | cpu | cuda[:i]")]
Dtype = Annotated[
    str, typer.Option(help="auto (float32 on CPU, float16 on GPU) | float32 | float16 | bfloat16")
]
Limit = Annotated[int | None, typer.Option(help="Use the first N samples of the split.")]
Repeats = Annotated[int, typer.Option(help="Timed runs per sample.")]
Warmup = Annotated[int, typer.Option(help="Untimed generations at the start of each cell.")]
CudaGraphs = Annotated[
    bool,
    typer.Option(
        "--cuda-graphs",
        help="Decode steps as one CUDA graph per plan (static KV buffers); CUDA only, "
        "unverified on GPU until benchmarks/gpu_check.sh has run (docs/measurement.md).",
    ),
]
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


SkipBadSamples = Annotated[
    bool,
    typer.Option(
        "--skip-bad-samples",
        help="Leave out samples whose image cannot be read (listed; in a sweep, in meta.json); "
        "without it one bad image stops the run before anything is measured.",
    ),
]


def check_out_folder(path: Path | None, flag: str = "--out") -> Path | None:
    """Returns `path` when it is a folder or does not exist yet (it is created later); raises
    UserError when it names a file, before any work is done."""
    if path is not None and path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder: give a folder for the outputs")
    return path
