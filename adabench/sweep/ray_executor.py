"""`adabench sweep --executor ray`: cells spread over a Ray cluster, written by the driver.

Unit of work: one (model, contention level) group of cells per Ray task, in the local grid
order. On GPU clusters a task holds `gpus_per_task` whole GPUs (an integer ≥ 1, so Ray's
resource accounting — not luck — keeps two measuring tasks off one GPU; the task's stress
workers run on that GPU). Ray gives each task its GPUs through CUDA_VISIBLE_DEVICES, so inside a
task `cuda:0` is its first GPU; RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES is refused, since
then every task would see every GPU and measure on GPU 0. On CPU-only clusters a task holds `cpus_per_task` CPUs (default: the
smallest node's CPU count, i.e. one measuring task per node).

Each task is a Ray streaming generator of `SweepEvent`s (the same events the local executor
produces): the driver writes each finished cell with the usual atomic per-cell parts, so
`--resume`, `plot`, `report` and `compare` work unchanged. Faults: Ray's own task retries are
off; when a task's worker dies (killed, OOM, node lost) the driver resubmits the group's
*unfinished* cells as a new task, up to `max_retries` times. An exception raised by the cell code
itself is not retried (it would fail again): the other tasks finish, then the sweep reports it.
Ctrl-C cancels every task with force (their stress workers die with their parent, see
`adabench.contention.workers`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from itertools import groupby
from pathlib import Path

from adabench.errors import UserError
from adabench.sweep.cell import CellConfig
from adabench.sweep.runner import SweepEvent, SweepState, dispatch, iter_cells

INSTALL_HINT = "Ray is not installed: pip install 'adabench[ray]' (Ray >= 2.9)"
NOSET_GPUS_ENV = "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"


def refuse_shared_gpus(environ: dict[str, str] | None = None) -> None:
    """Raises UserError when Ray is told not to set CUDA_VISIBLE_DEVICES per task (any
    non-empty value, as Ray reads it): every task would then measure on GPU 0 together."""
    env = os.environ if environ is None else environ
    if env.get(NOSET_GPUS_ENV):
        raise UserError(
            f"{NOSET_GPUS_ENV} is set: Ray would not give each task its own GPU, so every task "
            f"would measure on GPU 0 together. Unset it (on the driver and the cluster nodes)."
        )


def task_device(device: str, gpus_per_task: int) -> str:
    """Returns the device a GPU task uses: `cuda:i` among the task's `gpus_per_task` GPUs
    (Ray renumbers them from 0); "auto" and "cuda" mean the task's first GPU, `cuda:0`."""
    if device in ("auto", "cuda"):
        return "cuda:0"
    index = int(device[5:]) if device.startswith("cuda:") and device[5:].isdigit() else -1
    if not 0 <= index < gpus_per_task:
        raise UserError(
            f"--device {device} with --gpus-per-task {gpus_per_task}: inside a Ray task the "
            f"task's GPUs are cuda:0 … cuda:{gpus_per_task - 1}; use one of those (or cuda)."
        )
    return device


@dataclass
class RayOptions:
    """Settings of `adabench sweep --executor ray`."""

    address: str = field(
        default="auto",
        metadata={"help": "auto (a running cluster), local (start one here) or HOST:PORT"},
    )
    gpus_per_task: int = field(default=1, metadata={"help": "whole GPUs per task (GPU clusters)"})
    cpus_per_task: int | None = field(
        default=None, metadata={"help": "CPUs per task (CPU clusters; default: smallest node)"}
    )
    max_retries: int = field(
        default=2, metadata={"help": "resubmissions of a group whose worker died"}
    )


@dataclass
class _Group:
    """One (model, contention) group: its cells, attempts so far, cells it skipped."""

    key: str
    cells: list[CellConfig]
    attempt: int = 0
    skipped: set[str] = field(default_factory=set)
    row: int | None = None  # its line in the progress view
    host: str = "?"


def group_cells(cells: list[CellConfig]) -> list[tuple[str, list[CellConfig]]]:
    """Returns the (model, contention) groups of `cells` in grid order, as (label, cells)."""
    groups = []
    for (model, level), members in groupby(cells, key=lambda c: (c.model, c.contention)):
        groups.append((f"{model} · c={level:g}", list(members)))
    return groups


def run_group(cfg_dict: dict, run_dir: str, cells: list[CellConfig]):
    """The Ray task body: yields the SweepEvents of `cells` run on this worker."""
    from adabench.config import SweepConfig

    refuse_shared_gpus()  # the node may have been started with it
    nice = _undo_niceness()
    if nice > 0:
        yield SweepEvent(
            "note",
            message=f"[yellow]warning:[/] Ray worker runs at nice {nice}: other processes on the "
            "node get its CPU first and latencies grow; start nodes with RAY_worker_niceness=0.",
        )
    cfg = SweepConfig(**cfg_dict)
    from adabench.models.plugins import load_plugins

    load_plugins(cfg.plugins)  # the driver's plugins, from the same absolute paths / modules
    yield from iter_cells(cfg, Path(run_dir), cells)


def _undo_niceness() -> int:
    """Ray starts workers at nice 15; a measuring task wants 0. Returns the niceness it ends at
    (lowering it needs root or CAP_SYS_NICE; the cluster can set RAY_worker_niceness=0)."""
    current = os.nice(0)
    if current > 0:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, 0)
    return os.nice(0)


class RayExecutor:
    """Runs each (model, contention) group as a Ray task; see the module docstring."""

    name = "ray"

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options or RayOptions()
        if self.options.gpus_per_task < 1:
            raise UserError(
                f"--gpus-per-task must be a whole number >= 1 (two measuring tasks must never "
                f"share a GPU), got {self.options.gpus_per_task}."
            )
        if self.options.cpus_per_task is not None and self.options.cpus_per_task < 1:
            raise UserError(f"--cpus-per-task must be >= 1, got {self.options.cpus_per_task}.")
        if self.options.max_retries < 0:
            raise UserError(f"--max-retries must be >= 0, got {self.options.max_retries}.")
        self.meta: dict = {}

    def run(self, state: SweepState, on_cell: Callable[[dict, list[dict]], None], progress) -> None:
        """Runs the todo cells as one Ray task per group; the driver writes each finished cell's
        parts and calls `on_cell(cell row, sample rows)`."""
        try:
            import ray
        except ImportError:
            raise UserError(INSTALL_HINT) from None
        if not state.todo:
            return
        refuse_shared_gpus()
        self._connect(ray)
        try:
            device, resources = self._resources(ray, state.config.device)
            self.meta = {
                "ray": {
                    "address": self.options.address,
                    "device": device,
                    "task_resources": resources,
                    "cluster": ray.cluster_resources(),
                    "retries": [],
                }
            }
            self._drive(ray, state, on_cell, progress, device, resources)
        finally:
            ray.shutdown()

    def _connect(self, ray) -> None:
        address = self.options.address
        kwargs = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        # Ray starts workers at nice 15: a measured model must not yield its CPU to everything else.
        os.environ.setdefault("RAY_worker_niceness", "0")
        try:
            if address == "local":
                ray.init(address="local", object_store_memory=128 * 2**20, **kwargs)
            else:
                ray.init(address=address, **kwargs)
        except ConnectionError as exc:
            raise UserError(
                f"no Ray cluster at --ray-address {address} ({exc}). Start one with "
                "`ray start --head` (see README), or pass --ray-address local to run on this machine."
            ) from None

    def _resources(self, ray, device: str) -> tuple[str, dict]:
        """Returns (device for the tasks, Ray resources per task); UserError when no node fits."""
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        gpus = [int(n["Resources"].get("GPU", 0)) for n in nodes]
        cpus = [int(n["Resources"].get("CPU", 0)) for n in nodes]
        wants_gpu = device.startswith("cuda") or (device == "auto" and max(gpus, default=0) > 0)
        if device.startswith("cuda") and max(gpus, default=0) == 0:
            raise UserError(
                f"--device {device} but the Ray cluster has no GPU (nodes: {len(nodes)}, "
                f"CPUs {cpus}); use --device cpu or add GPU nodes."
            )
        if device.startswith("mps"):
            raise UserError("the Ray executor runs on cuda or cpu devices, not mps.")
        if wants_gpu:
            need = self.options.gpus_per_task
            if max(gpus) < need:
                raise UserError(
                    f"no Ray node has {need} GPUs (--gpus-per-task); nodes have {sorted(gpus)}."
                )
            return task_device(device, need), {"num_gpus": need, "num_cpus": 1}
        need = self.options.cpus_per_task or min(c for c in cpus if c > 0)
        if max(cpus, default=0) < need:
            raise UserError(
                f"no Ray node has {need} CPUs (--cpus-per-task); nodes have {sorted(cpus)}."
            )
        return "cpu", {"num_cpus": need}

    def _drive(self, ray, state, on_cell, progress, device, resources) -> None:
        cfg_dict = asdict(replace(state.config, device=device))
        remote = ray.remote(num_returns="streaming", max_retries=0, **resources)(run_group)
        run_dir = str(state.run_dir)
        running: dict = {}  # generator → _Group

        def submit(group: _Group) -> None:
            todo = [
                c
                for c in group.cells
                if c.cell_id() not in state.done and c.cell_id() not in group.skipped
            ]
            if not todo:
                return
            name = f"adabench-{group.key.replace(' · ', '-').replace('/', '_')}"
            gen = remote.options(name=name).remote(cfg_dict, run_dir, todo)
            running[gen] = group
            label = f"{group.key}: queued (attempt {group.attempt + 1})"
            if group.row is None:
                group.row = progress.add_worker(label, len(group.cells))
            else:
                progress.update_worker(group.row, label)

        for key, cells in group_cells(state.todo):
            submit(_Group(key, cells))
        failures: list[str] = []
        try:
            while running:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                for gen in ready:
                    group = running[gen]
                    try:
                        event = ray.get(next(gen))
                    except StopIteration:
                        del running[gen]
                        progress.update_worker(group.row, f"{group.key} on {group.host}: done")
                        continue
                    except ray.exceptions.RayTaskError as exc:  # the cell code raised
                        del running[gen]
                        cause = exc.cause if isinstance(exc.cause, Exception) else exc
                        if isinstance(cause, UserError):
                            failures.append(f"{group.key}: {cause}")
                        else:
                            failures.append(f"{group.key}: {type(cause).__name__}: {cause}")
                        progress.update_worker(group.row, f"{group.key}: [red]failed[/]")
                        continue
                    except ray.exceptions.RayError as exc:  # worker/node died: retry the rest
                        del running[gen]
                        self._retry(group, exc, progress, failures, submit)
                        continue
                    self._handle(event, group, state, on_cell, progress)
        except KeyboardInterrupt:
            for gen in running:
                ray.cancel(gen, force=True)
            time.sleep(0.5)  # let the raylet kill the workers (their stress workers die with them)
            raise
        if failures:
            raise UserError(
                "some groups failed (their finished cells are kept; fix and --resume): "
                + "; ".join(failures)
            )

    def _retry(self, group: _Group, exc: Exception, progress, failures, submit) -> None:
        why = type(exc).__name__
        self.meta["ray"]["retries"].append(
            {"group": group.key, "attempt": group.attempt + 1, "host": group.host, "error": why}
        )
        if group.attempt >= self.options.max_retries:
            failures.append(f"{group.key}: worker died {group.attempt + 1} times ({why})")
            progress.update_worker(group.row, f"{group.key}: [red]failed ({why})[/]")
            return
        group.attempt += 1
        progress.note(
            f"[yellow]warning:[/] {group.key}: worker on {group.host} died ({why}); retrying its "
            f"unfinished cells (retry {group.attempt}/{self.options.max_retries})"
        )
        submit(group)

    @staticmethod
    def _handle(event: SweepEvent, group: _Group, state, on_cell, progress) -> None:
        if event.kind == "node":
            group.host = event.message
            state.nodes[event.message] = event.result
            return
        if event.kind == "start":
            done = sum(c.cell_id() in state.done for c in group.cells)
            progress.update_worker(
                group.row,
                f"{group.key} on {group.host}: {event.message}",
                completed=done,
            )
            return
        if event.kind == "done" and event.result is None:
            group.skipped.add(event.cell.cell_id())
        dispatch(event, on_cell, progress, state.run_dir)
        if event.kind == "done":
            done = sum(c.cell_id() in state.done for c in group.cells) + len(group.skipped)
            progress.update_worker(group.row, None, completed=done)
