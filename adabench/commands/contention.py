"""`adabench contention {run,calibrate}`: synthetic co-running stress and its calibration."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from adabench.commands import user_errors
from adabench.errors import UserError

KindOption = Annotated[
    str, typer.Option("--kind", "-k", help="compute, memory, mixed, or sm (CUDA + MPS only).")
]
DeviceOption = Annotated[str, typer.Option("--device", "-d", help="cpu, cuda or cuda:N.")]
PeriodOption = Annotated[
    float, typer.Option("--period-ms", help="Duty-cycle period of each worker, in ms.")
]
WorkersOption = Annotated[
    int | None,
    typer.Option("--workers", help="Worker processes (default: one per core on cpu, 1 on GPU)."),
]


def parse_levels(text: str) -> list[float]:
    """Returns the levels of a comma-separated list such as '0,0.5,1'; raises UserError."""
    try:
        levels = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(
            f"--levels must be comma-separated numbers in [0, 1], got {text!r}."
        ) from None
    if not levels:
        raise UserError("--levels is empty; give e.g. 0,0.5,1.0.")
    return levels


WORKERS_PER_UNIT = 4
"""--workers may be at most this many per usable CPU core (cpu) or per device (GPU)."""


def check_workers(workers: int | None, device: str) -> int | None:
    """Returns `workers` if it lies in [1, WORKERS_PER_UNIT x usable cores (cpu) or per device
    (GPU)], else raises UserError; None (the default count) passes."""
    if workers is None:
        return None
    units = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if device != "cpu":
        units = 1
    limit = WORKERS_PER_UNIT * (units or 1)
    if not 1 <= workers <= limit:
        where = f"{units} usable cores" if device == "cpu" else f"device {device}"
        raise UserError(
            f"--workers must be in [1, {limit}] ({WORKERS_PER_UNIT} per unit, {where}), got {workers}."
        )
    return workers


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stress(contention, duration_s: float | None) -> None:
    """Runs `contention` until `duration_s` passes (None: forever) or SIGINT/SIGTERM arrives."""
    import signal
    import time

    from adabench.console import log
    from adabench.contention.controller import ContentionError

    # Ctrl-C and `kill` both end the run cleanly, even where the shell started us with SIGINT
    # ignored (background jobs of a non-interactive shell); the old handlers come back after.
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    c = contention
    try:
        with c:
            log(f"contention {c.kind} level {c.level:g} on {c.device}: worker pids {c.pids}")
            end = None if duration_s is None else time.monotonic() + duration_s
            while end is None or time.monotonic() < end:
                c.check()
                time.sleep(0.5 if end is None else max(0.0, min(0.5, end - time.monotonic())))
        log("done: stress workers stopped")
    except KeyboardInterrupt:
        log("interrupted: stress workers stopped")
    except ContentionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def register(app: typer.Typer) -> None:
    """Adds the `contention` command group to `app`."""
    sub = typer.Typer(
        help="Co-running stress at a known intensity (separate processes), and its calibration.",
        no_args_is_help=True,
    )
    app.add_typer(sub, name="contention")

    @sub.command("run")
    @user_errors
    def run_cmd(
        level: Annotated[float, typer.Option("--level", "-l", help="Intensity in [0, 1].")],
        kind: KindOption = "compute",
        device: DeviceOption = "cpu",
        duration: Annotated[
            float | None, typer.Option("--duration", help="Seconds to run (default: until Ctrl-C).")
        ] = None,
        period_ms: PeriodOption = 10.0,
        workers: WorkersOption = None,
    ) -> None:
        """Run stress by itself, beside another program, until Ctrl-C or --duration.

        Worker pids are printed to stderr. Example:

            adabench contention run --level 0.5 --kind memory --duration 60
        """
        from adabench.contention.controller import Contention

        if duration is not None and duration < 0:
            raise UserError(f"--duration must be >= 0 seconds, got {duration}.")
        _stress(
            Contention(level, kind, device, period_ms, check_workers(workers, device)), duration
        )

    @sub.command("calibrate")
    @user_errors
    def calibrate_cmd(
        device: DeviceOption = "cpu",
        kind: KindOption = "compute",
        levels: Annotated[
            str, typer.Option("--levels", help="Comma-separated levels in [0, 1].")
        ] = "0,0.25,0.5,0.75,1.0",
        repeats: Annotated[
            int, typer.Option("--repeats", "-r", help="Interleaved alone/stressed pairs per level.")
        ] = 10,
        period_ms: PeriodOption = 10.0,
        workers: WorkersOption = None,
        threads: Annotated[
            int | None,
            typer.Option("--threads", help="torch threads of the reference (default: 1)."),
        ] = None,
        json: Annotated[
            bool, typer.Option("--json", help="Print a JSON list, one per level.")
        ] = False,
    ) -> None:
        """Measure the slowdown each level causes to a fixed reference workload.

        achieved_slowdown = reference time under stress / alone, median over --repeats
        interleaved pairs (min and max give the spread). Example:

            adabench contention calibrate --device cpu --levels 0,0.5,1.0 --json
        """
        from adabench.console import log, print_json, print_table, warn
        from adabench.contention.calibrate import calibrate

        if repeats < 1:
            raise UserError(f"--repeats must be >= 1, got {repeats}.")
        log(f"calibrating {kind} contention on {device} at levels {levels}")
        workers = check_workers(workers, device)
        rows = calibrate(device, kind, parse_levels(levels), repeats, period_ms, workers, threads)
        slowdowns = [r["achieved_slowdown"] for r in sorted(rows, key=lambda r: r["level"])]
        if any(b < a * 0.95 for a, b in zip(slowdowns, slowdowns[1:], strict=False)):
            warn(
                "slowdown is not monotonic in level: the machine is busy; add --repeats "
                "or calibrate on a quiet system"
            )
        if json:
            print_json(rows)
        else:
            print_table(rows, title=f"contention calibration ({kind} on {device})")
