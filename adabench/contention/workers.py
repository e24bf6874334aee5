"""Stress worker processes: duty-cycled compute / memory / mixed loops on CPU or on a CUDA GPU.

A worker is started by `adabench.contention.controller` as
`python -m adabench.contention.workers --kind K --level L --device D ...`. It allocates its
buffers, runs one chunk of work, prints its `ready` line on stdout (the handshake, see
`ready_line`) and then loops: in each period (default 10 ms) it is busy for `level × period`
and sleeps for the rest. A CUDA worker's ready line names its GPU's UUID and whether it reaches
the GPU through MPS, so the controller can check both instead of trusting them.

A worker never outlives its parent: it asks the kernel for SIGKILL when the parent dies
(Linux `PR_SET_PDEATHSIG`), a watchdog thread exits on EOF of stdin (a pipe whose only writer
is the parent) and the loop checks `os.getppid()` every period. It ignores SIGINT, so a
Ctrl-C in the terminal reaches only the parent, which then stops its workers cleanly.

CPU workers use numpy with one BLAS thread (importing torch would cost ~2.5 s and ~290 MB
per worker); CUDA workers use torch on the given device.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

KINDS = ("compute", "memory", "mixed", "sm")
CPU_KINDS = ("compute", "memory", "mixed")
READY = "ready"
_PR_SET_PDEATHSIG = 1
# Environment that keeps each CPU worker on one thread (set before numpy is imported).
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


def _die_with_parent(parent_pid: int, levels: list[float]) -> None:
    """Makes this process exit when `parent_pid` dies (PDEATHSIG, stdin EOF watchdog); a
    `level X` line on stdin sets `levels[0]`, so the parent can change the level live."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(3)

    def watch_stdin() -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in sys.stdin.buffer:
                parts = line.split()
                if len(parts) == 2 and parts[0] == b"level":
                    levels[0] = min(1.0, max(0.0, float(parts[1])))
        os._exit(0)

    threading.Thread(target=watch_stdin, name="parent-watchdog", daemon=True).start()


def _batch_policy() -> None:
    """Puts this process under SCHED_BATCH (no privilege needed): a waking worker then does not
    preempt the measured process, so a duty cycle below 50 % does not already take a whole fair
    share of the core and the slowdown keeps growing with the level up to 1.0."""
    if hasattr(os, "SCHED_BATCH"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def _cpu_steps(kind: str) -> Callable[[], None]:
    """Returns a function doing one ~0.3 ms chunk of CPU stress of `kind`."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.random((256, 256), dtype=np.float32)
    b = rng.random((256, 256), dtype=np.float32)
    out = np.empty_like(a)
    # 64 MiB buffers are far beyond any last-level cache, so the copy loop is bandwidth-bound.
    chunk, total = 4 << 20, 64 << 20
    src = np.ones(total, dtype=np.uint8)
    dst = np.zeros(total, dtype=np.uint8)
    offset = [0]

    def compute() -> None:
        np.matmul(a, b, out=out)

    def memory() -> None:
        i = offset[0]
        np.copyto(dst[i : i + chunk], src[i : i + chunk])
        offset[0] = (i + chunk) % total

    def mixed() -> None:
        compute()
        memory()

    return {"compute": compute, "memory": memory, "mixed": mixed}[kind]


def cuda_device(device: str, current: int = 0):
    """Returns the torch device of "cuda" / "cuda:i" with an index (`current` for bare "cuda"):
    torch.cuda.set_device refuses a device without one."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        raise ValueError(f"a CUDA stress worker needs a cuda device, got {device!r}")
    return dev if dev.index is not None else torch.device("cuda", current)


def _cuda_steps(kind: str, device: str) -> Callable[[], None]:
    """Returns a function doing one synchronised chunk (~0.2-1 ms on a datacenter GPU)."""
    import torch

    dev = cuda_device(device)
    torch.cuda.set_device(dev)
    dtype = torch.float16
    a = torch.randn(4096, 4096, device=dev, dtype=dtype)
    b = torch.randn(4096, 4096, device=dev, dtype=dtype)
    out = torch.empty_like(a)
    src = torch.ones(256 << 20, device=dev, dtype=torch.float32)  # 1 GiB
    dst = torch.empty_like(src)

    def compute() -> None:
        torch.matmul(a, b, out=out)
        torch.cuda.synchronize(dev)

    def memory() -> None:
        dst.copy_(src)
        torch.cuda.synchronize(dev)

    def mixed() -> None:
        torch.matmul(a, b, out=out)
        dst.copy_(src)
        torch.cuda.synchronize(dev)

    # `sm` is compute at full duty cycle, its share limited by CUDA_MPS_ACTIVE_THREAD_PERCENTAGE.
    return {"compute": compute, "memory": memory, "mixed": mixed, "sm": compute}[kind]


def ready_line(pid: int, uuid: str | None = None, mps: str | None = None) -> str:
    """Returns the handshake line: `ready PID` on CPU, `ready PID uuid=GPU-… mps=STATE` on CUDA
    (STATE as in adabench.measure.device.mps_client_state)."""
    extra = f" uuid={uuid or '?'} mps={mps or 'unknown'}" if uuid is not None else ""
    return f"{READY} {pid}{extra}\n"


def parse_ready(line: str) -> dict[str, str] | None:
    """Returns {"pid", and "uuid"/"mps" for CUDA workers} of a handshake line, None if it is not one."""
    parts = line.split()
    if len(parts) < 2 or parts[0] != READY or not parts[1].isdigit():
        return None
    info = {"pid": parts[1]}
    for part in parts[2:]:
        key, _, value = part.partition("=")
        info[key] = value
    return info


def _cuda_identity(device: str) -> tuple[str, str]:
    """Returns (UUID, MPS state) of this process's CUDA device, after its context exists."""
    from adabench.measure import device as devices

    index = cuda_device(device).index
    uuid = devices.gpu_uuid(index)
    return uuid, devices.mps_state_of(os.getpid(), uuid)


def duty_cycle(
    step: Callable[[], None], levels: list[float], period_s: float, parent_pid: int | None = None
) -> None:
    """Runs `step` for `levels[0] × period_s` of every period and sleeps for the rest, forever
    (`levels[0]` is read each period, so another thread may change it).

    Returns only when `parent_pid` is given and is no longer this process's parent.
    """
    next_start = time.perf_counter()
    while True:
        start = next_start
        busy_s = levels[0] * period_s
        while time.perf_counter() - start < busy_s:
            step()
        if parent_pid is not None and os.getppid() != parent_pid:
            return
        next_start = start + period_s
        now = time.perf_counter()
        if next_start > now:
            time.sleep(next_start - now)
        else:  # behind (level 1.0, or the worker was paused): restart the clock, no catch-up
            next_start = now


def main(argv: list[str] | None = None) -> None:
    """Entry point of one stress worker process (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parser = argparse.ArgumentParser(
        description="adabench stress worker (started by the controller)"
    )
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--level", type=float, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--period-ms", type=float, default=10.0)
    parser.add_argument("--core", type=int, default=-1, help="CPU core to pin to (-1: none)")
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)

    levels = [1.0 if args.kind == "sm" else args.level]
    _die_with_parent(args.parent_pid, levels)
    if args.core >= 0 and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {args.core})
    if args.device == "cpu":
        _batch_policy()
        step = _cpu_steps(args.kind)
    else:
        step = _cuda_steps(args.kind, args.device)
    step()  # warm-up: buffers touched, kernels loaded, before we say we are running
    identity = (None, None) if args.device == "cpu" else _cuda_identity(args.device)
    sys.stdout.write(ready_line(os.getpid(), *identity))
    sys.stdout.flush()
    duty_cycle(step, levels, args.period_ms / 1000.0, args.parent_pid)
    os._exit(0)


if __name__ == "__main__":
    main()
