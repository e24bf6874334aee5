"""`adabench sweep`: run a grid of cells into a resumable results folder.

Order: model (outer: loaded once, before any stress starts) → contention level (one stress
start per level, its achieved slowdown measured at the start and stored on each cell) → suite
(samples prepared once per model, reused by every level) → method → budget. Each finished cell is written atomically; Ctrl-C or SIGTERM keeps finished cells,
stops the stress workers and says how to resume.
"""

from __future__ import annotations

import datetime as dt
import math
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from adabench import __version__, console, store
from adabench.config import SweepConfig
from adabench.errors import UserError
from adabench.sweep.cell import CellConfig
from adabench.sweep.grid import expand
from adabench.sweep.group import GroupData
from adabench.sweep.resume import open_run


@dataclass
class SweepState:
    """Where a sweep stands: its folder, its cells, the ones already finished."""

    run_dir: Path
    config: SweepConfig
    cells: list[CellConfig]
    done: set[str] = field(default_factory=set)
    nodes: dict[str, dict] = field(default_factory=dict)
    """hostname → placement and fingerprint of each machine that ran cells (into meta.json)."""

    @property
    def todo(self) -> list[CellConfig]:
        """The cells of the grid not finished yet, in grid order."""
        return [c for c in self.cells if c.cell_id() not in self.done]


@dataclass
class SweepEvent:
    """One step of a running group of cells, streamed to the driver (locally or over Ray).

    kind: "node" (message = this worker's placement, fingerprint in `result`), "note" (a line for
    the log), "start" (cell about to run, `n` samples), "done" (cell finished: `result` is
    (cell row, sample rows), or None when the cell was skipped with a warning note before it).
    """

    kind: str
    cell: CellConfig | None = None
    n: int = 0
    result: tuple[dict, list[dict]] | dict | None = None
    message: str = ""


def iter_cells(
    cfg: SweepConfig,
    run_dir: Path,
    cells: list[CellConfig],
    on_sample: Callable[[int, int], None] | None = None,
) -> Iterator[SweepEvent]:
    """Runs `cells` in this process and yields their SweepEvents.

    Cells must arrive grouped by model, then contention level, then suite (grid order): one
    model load per model (the previous one freed first, no stress running while it loads), one
    stress start per (model, level), one sample preparation per (model, suite); the cells of
    one (level, model, suite) run together as a group (adabench/sweep/group.py). Each finished
    cell row carries where it ran (`hostname`, `device_name`, `gpu_uuid`). `on_sample(done,
    total)` reports progress inside a group.
    """
    from adabench.models.loading import resolve_device
    from adabench.sweep.placement import placement

    device = resolve_device(cfg.device)
    if cfg.threads:  # on CPU, fewer model threads fight less with the stress workers' cores
        import torch

        torch.set_num_threads(cfg.threads)
    where = placement(device)
    yield SweepEvent("node", message=where["hostname"], result=where)
    stress_device = "cpu" if device.type == "cpu" else str(device)
    for loaded, model_cells in one_model_at_a_time(cells, lambda n: _load(n, cfg)):
        yield from _run_model(cfg, run_dir, loaded, model_cells, stress_device, where, on_sample)
        loaded = None  # the next model loads only once nothing here holds this one


def _run_model(cfg: SweepConfig, run_dir: Path, loaded, cells, stress_device, where, on_sample):
    """Yields the events of one model: its contention levels one at a time (a stress started
    per level), each level's suites; a suite's samples are prepared once for all levels."""
    from adabench.contention.controller import Contention

    suites = dict.fromkeys(c.suite for c in cells)  # prepared before any stress starts
    prepared = {name: _prepare(loaded, name, cfg) for name in suites}
    for level, level_cells in groupby(cells, key=lambda c: c.contention):
        with (
            Contention(level, cfg.contention_kind, stress_device) as stress,
            _schedule(stress, cfg) as driver,
        ):
            yield SweepEvent(
                "note",
                message=f"contention {level:g} ({cfg.contention_kind}) on {where['hostname']}: "
                f"workers {stress.pids or 'none'}",
            )
            for suite_name, suite_cells in groupby(level_cells, key=lambda c: c.suite):
                yield from _run_suite(cfg, run_dir, loaded, prepared[suite_name],
                                      list(suite_cells), stress, driver, where,
                                      on_sample)  # fmt: skip


def _run_suite(cfg: SweepConfig, run_dir: Path, loaded, suite_data: tuple, cells, stress, driver,
               where, on_sample):  # fmt: skip
    """Yields the events of one (level, model, suite): its cells as one group, then SLO cells.
    `suite_data` is `_prepare`'s (spec, samples, prepared samples) of the suite."""
    spec, samples, prepared = suite_data
    served = [c for c in cells if c.rate_per_s is not None]
    if served:
        yield from _run_server_events(loaded, spec, samples, prepared, served, stress, run_dir,
                                      where, on_sample)  # fmt: skip
        return
    plain = [c for c in cells if c.slo_ms is None]
    if plain:
        data = GroupData(loaded, spec, samples, prepared,
                         cfg.max_new_tokens or int(spec.max_new_tokens),
                         swap_heads=cfg.no_weights)  # fmt: skip
        yield from _run_group(cfg, run_dir, data, plain, stress, where, on_sample)
    for cell in (c for c in cells if c.slo_ms is not None):
        yield from _run_slo_event(
            loaded, spec, samples, prepared, cell, stress, driver, run_dir, where
        )


def one_model_at_a_time(cells, load: Callable[[str], object]) -> Iterator[tuple[object, list]]:
    """Yields (loaded model, its cells) per run of cells of one model; the previous model is
    released (and the CUDA cache emptied) before the next is loaded, so two never coexist."""
    for name, model_cells in groupby(cells, key=lambda c: c.model):
        model_cells = list(model_cells)
        loaded = load(name)
        yield loaded, model_cells
        del loaded
        _free_device_memory()


def _free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _run_group(cfg: SweepConfig, run_dir: Path, data, cells, stress, where, on_sample):
    """Yields the events of one group: its arms measured together, paired sample by sample."""
    from adabench.contention.calibrate import measure_slowdown
    from adabench.measure.machine_speed import machine_probe, probe_columns
    from adabench.sweep import chunks
    from adabench.sweep.group import assemble, group_id, iter_arms

    arms, notes = _arms(cfg, data, cells)
    yield from notes
    if not arms:
        return
    level, gid = cells[0].contention, group_id(cells[0], cfg.order)
    stress.check()
    probe = machine_probe(str(data.loaded.device))
    probe_start = probe.probe(contention=stress)
    start = measure_slowdown(stress) if level > 0 else 1.0
    start_decode = measure_slowdown(stress, kind="decode") if level > 0 else 1.0
    label = f"{cells[0].model} · {cells[0].suite} · c={level:g} · {len(arms)} arms"
    yield SweepEvent("start", cells[0], n=len(data.samples) * cfg.repeats * len(arms),
                     message=label)  # fmt: skip
    run = iter_arms(data, arms, order=cfg.order, warmup=cfg.warmup, repeats=cfg.repeats,
                    seed=cfg.seed, gid=gid, done=chunks.read_chunks(run_dir, gid),
                    chunk=cfg.chunk, target_ci=cfg.target_ci, max_rounds=cfg.max_rounds,
                    max_time_s=cfg.max_time_s)  # fmt: skip
    while True:
        try:
            item = next(run)
        except StopIteration as stop:
            result = stop.value
            break
        if item[0] == "chunk":
            stress.check()
            yield SweepEvent("chunk", message=gid, result={"name": item[1], "rows": item[2]})
        elif item[0] == "round":
            yield SweepEvent("note", message=f"{label}: round {item[1]} done, worst latency-ratio "
                             f"CI ±{item[2]:.3f} (target ±{cfg.target_ci:g})")  # fmt: skip
        elif on_sample is not None:
            on_sample(item[1], item[2])
    end = measure_slowdown(stress) if level > 0 else 1.0
    probe_end = probe.probe(contention=stress)
    if level > 0 and abs(end / start - 1) > 0.10:
        yield SweepEvent("note", message=f"[yellow]warning:[/] {label}: the stress slowdown "
                         f"moved from {start:.2f}x to {end:.2f}x during the group; the load was "
                         "not steady (other programs?)")  # fmt: skip
    if result.rounds > 1 or cfg.target_ci is not None:
        yield SweepEvent("note", message=f"{label}: {result.rounds} round(s), {result.stop_reason}")
    extra = {"mps_active": bool(stress.mps_active), "achieved_slowdown_decode": start_decode,
             **probe_columns(probe_start, probe_end)}  # fmt: skip
    for arm, row, rows in assemble(data, arms, result, order=cfg.order, seed=cfg.seed,
                                 slowdown=(start, end), extra_columns=extra):  # fmt: skip
        row.update({k: where[k] for k in PLACEMENT_COLUMNS})
        yield SweepEvent("done", arm.cell, result=(row, rows))
    yield SweepEvent("group_done", message=gid)


def _arms(cfg: SweepConfig, data, cells: list[CellConfig]):
    """Returns (arms, skip notes): one arm per cell whose method can run here, the `full`
    partner (hidden when the `full` cell is not among them) and the hidden A/A arm."""
    from dataclasses import replace

    from adabench.models.factory import build_method
    from adabench.sweep.group import AA, REF, Arm

    arms, notes = [], []
    for cell in cells:
        try:
            head = (
                _attach_random_head(data.loaded, cell, data.prepared, cfg)
                if cfg.no_weights
                else None
            )
            method = build_method(
                cell.method, data.loaded, cell.budget, cell.method_args, cell.seed
            )
        except UserError as exc:  # e.g. a budget the method cannot reach here
            notes += [
                SweepEvent("note", message=f"[yellow]warning:[/] skipped {cell.model} · "
                           f"{cell.method}@{cell.budget:g}: {exc}"),
                SweepEvent("done", cell),
            ]  # fmt: skip
            continue
        arms.append(Arm(cell.cell_id(), cell, method, adallava=head))
    if not arms or "full" not in cfg.methods:
        return arms, notes
    full_cell = replace(cells[0], method="full", budget=1.0, method_args={})
    if not any(a.cell.method == "full" for a in arms):
        arms.append(
            Arm(REF, full_cell, build_method("full", data.loaded, 1.0, {}, cfg.seed), hidden=True)
        )
    if cfg.aa:
        arms.append(
            Arm(AA, full_cell, build_method("full", data.loaded, 1.0, {}, cfg.seed), hidden=True)
        )
    return arms, notes


PLACEMENT_COLUMNS = ("hostname", "device_name", "gpu_uuid")
"""Extra cell columns saying where a cell ran (one GPU model per `device_name`)."""


def dispatch(
    event: SweepEvent,
    on_cell: Callable[[dict, list[dict]], None],
    progress,
    run_dir: Path | None = None,
) -> None:
    """Applies one SweepEvent to the driver: progress lines, chunks of a group in progress
    written into `run_dir` (atomically), and `on_cell` for finished cells."""
    from adabench.sweep import chunks

    if event.kind == "note":
        progress.note(event.message)
    elif event.kind == "start":
        progress.start_group(event.message, event.n)
    elif event.kind == "chunk" and run_dir is not None:
        store.check_run_folder(run_dir)
        chunks.write_chunk(run_dir, event.message, event.result["name"], event.result["rows"])
    elif event.kind == "group_done" and run_dir is not None:
        chunks.remove_group(run_dir, event.message)
    elif event.kind == "done":
        if event.result is None:
            progress.cell_done()
        else:
            on_cell(*event.result)


class LocalExecutor:
    """Runs cells in this process, in grid order. The interface a distributed executor implements:
    `run(state, on_cell, progress)` calling `on_cell(cell_row, sample_rows)` once per finished
    cell (see `adabench.sweep.ray_executor` for the Ray one)."""

    name = "local"

    def run(self, state: SweepState, on_cell: Callable[[dict, list[dict]], None], progress) -> None:
        """Runs the todo cells group by group in this process, calling `on_cell(cell row, sample
        rows)` as each cell finishes."""
        for event in iter_cells(state.config, state.run_dir, state.todo, progress.sample):
            if event.kind == "node":
                state.nodes[event.message] = event.result
            dispatch(event, on_cell, progress, state.run_dir)


def _run_slo_event(loaded, spec, samples, prepared, cell, stress, driver, run_dir, where):
    """Yields the events of one SLO cell (its own sequential group, with the controller's
    choose/observe hooks in the same sample loop)."""
    from adabench.contention.calibrate import measure_slowdown

    stress.check()
    slowdown = measure_slowdown(stress) if cell.contention > 0 and driver is None else 1.0
    yield SweepEvent("start", cell, n=len(samples) * cell.repeats,
                     message=f"{cell.model} · {cell.method} · SLO {cell.slo_ms:g} ms")  # fmt: skip
    try:
        row, rows = _run_slo(
            loaded, spec, samples, prepared, cell, slowdown, stress, driver, run_dir
        )
    except UserError as exc:
        yield SweepEvent("note", message=f"[yellow]warning:[/] skipped {cell.model} · "
                         f"{cell.method} SLO {cell.slo_ms:g}: {exc}")  # fmt: skip
        yield SweepEvent("done", cell)
        return
    row.update({k: where[k] for k in PLACEMENT_COLUMNS})
    yield SweepEvent("done", cell, result=(row, rows))


@contextmanager
def _schedule(stress, cfg: SweepConfig):
    """Yields a ScheduleDriver changing the stress level over time (SLO mode), or None."""
    if not cfg.contention_schedule:
        yield None
        return
    from adabench.slo.schedule import ScheduleDriver, parse_schedule

    with ScheduleDriver(stress, parse_schedule(cfg.contention_schedule)) as driver:
        yield driver


def _latency_model(loaded, spec, samples, prepared, cell: CellConfig, stress, run_dir: Path):
    """Returns the LatencyModel of a budgeted method (None for `full`): profiled once per
    (model, method, suite) with the stress paused, cached as JSON in RUN_DIR/latency/."""
    from adabench.slo.latency_model import LatencyModel
    from adabench.sweep.latency_profile import profile_latency
    from adabench.sweep.slo_cell import is_budgeted

    if not is_budgeted(cell.method):
        return None
    safe = "-".join(x.replace("/", "_") for x in (cell.model, cell.method, cell.suite))
    path = run_dir / "latency" / f"{safe}.json"
    if path.exists():
        return LatencyModel.load(path)
    with stress.paused():
        model = profile_latency(
            loaded,
            cell.method,
            spec,
            samples[:3],
            prepared[:3],
            method_args=cell.method_args,
            seed=cell.seed,
            max_new_tokens=cell.max_new_tokens,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model


def _run_server_events(loaded, spec, samples, prepared, cells, stress, run_dir, where, on_sample):
    """Yields the events of the server-scenario cells of one (level, model, suite): the stress's
    achieved slowdown measured once, then each (rate, policy) cell on its rate's arrivals."""
    from adabench.contention.calibrate import measure_slowdown
    from adabench.sweep.server_cell import run_server_cell

    stress.check()
    slowdown = measure_slowdown(stress) if cells[0].contention > 0 else 1.0
    for cell in cells:
        model = None
        if cell.policy == "controller":
            model = _latency_model(loaded, spec, samples, prepared, cell, stress, run_dir)
        yield SweepEvent("start", cell, n=1, message=f"{cell.model} · {cell.method} · "
                         f"{cell.policy} @ {cell.rate_per_s:g}/s")  # fmt: skip
        row, rows = run_server_cell(loaded, spec, samples, prepared, cell, model, slowdown,
                                    on_request=on_sample)  # fmt: skip
        stress.check()
        row.update({k: where[k] for k in PLACEMENT_COLUMNS})
        yield SweepEvent("done", cell, result=(row, rows))


def _run_slo(
    loaded,
    spec,
    samples,
    prepared,
    cell: CellConfig,
    slowdown: float,
    stress,
    driver,
    run_dir: Path,
):
    """Runs one SLO cell; the latency model is profiled once per (model, method, suite) with the
    stress paused and cached as JSON in RUN_DIR/latency/."""
    from adabench.sweep.slo_cell import run_slo_cell

    model = _latency_model(loaded, spec, samples, prepared, cell, stress, run_dir)
    return run_slo_cell(
        loaded,
        spec,
        samples,
        prepared,
        cell,
        cell.slo_ms,
        model,
        achieved_slowdown=slowdown,
        schedule_driver=driver,
    )


def _attach_random_head(loaded, cell: CellConfig, prepared, cfg: SweepConfig):
    """--no-weights: gives the random model the random AdaLLaVA head the cell's method needs
    and returns it (None for methods without one)."""
    from adabench.models.catalog import adallava_settings_for
    from adabench.models.no_weights import build_random_head, center_random_scheduler_
    from adabench.sweep.grid import needs_adallava

    variant = needs_adallava(cell.method)
    heads = loaded.random_heads
    if variant and variant not in heads:
        heads[variant] = build_random_head(
            loaded.config,
            variant,
            loaded.device,
            loaded.dtype,
            cfg.seed + 1,
            **adallava_settings_for(loaded.name),
        )
        loaded.adallava = heads[variant]
        center_random_scheduler_(loaded, prepared)
    loaded.adallava = heads.get(variant) if variant else None
    return loaded.adallava


def _load(model_name: str, cfg: SweepConfig):
    if cfg.no_weights:
        from adabench.models.no_weights import build_no_weights

        return build_no_weights(model_name, device=cfg.device, dtype=cfg.dtype, seed=cfg.seed)
    from adabench.models.loading import load_model

    return load_model(model_name, device=cfg.device, dtype=cfg.dtype)


def _prepare(loaded, suite_name: str, cfg: SweepConfig):
    from adabench.data.suites import get_spec, load_suite
    from adabench.sweep.cell import prepare_samples
    from adabench.sweep.suite_data import skipped_ids

    spec = get_spec(suite_name)
    samples = load_suite(suite_name, split=cfg.split, limit=cfg.limit, seed=0)
    drop = skipped_ids(suite_name, cfg)  # unreadable images, with --skip-bad-samples
    samples = [s for s in samples if s.id not in drop]
    return spec, samples, prepare_samples(loaded, spec, samples, cfg.max_new_tokens)


class Progress:
    """Rich progress on stderr: overall cells with ETA, and the timed generations of the
    current group."""

    def __init__(self, total_cells: int, enabled: bool = True) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console.err,
            disable=not enabled,
            transient=False,
        )
        self.overall = self.bar.add_task("cells", total=total_cells, status="")
        self.current = self.bar.add_task("cell", total=1, status="")

    def __enter__(self) -> Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def note(self, message: str) -> None:
        """Prints `message` above the progress lines (stderr)."""
        self.bar.console.print(message)

    def start_group(self, label: str, n: int) -> None:
        """Starts the line of a group: `n` timed generations."""
        self.bar.reset(self.current, total=n, description=label, status="")

    def sample(self, done: int, total: int) -> None:
        """Moves the group's line to `done` of `total` timed generations."""
        self.bar.update(self.current, completed=done, total=total)

    def cell_done(self) -> None:
        """Advances the overall line by one finished cell."""
        self.bar.advance(self.overall)

    def add_worker(self, label: str, total: int) -> int:
        """Adds a line for one remote task (distributed executors); returns its id."""
        return self.bar.add_task(label, total=total, status="")

    def update_worker(self, row: int, label: str | None, completed: int | None = None) -> None:
        """Updates a remote task's line: its label (None keeps it) and cells completed."""
        fields = {} if label is None else {"description": label}
        if completed is not None:
            fields["completed"] = completed
        self.bar.update(row, **fields)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C during the sweep, so finished cells are kept and stress stops."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _code_version() -> dict:
    from adabench.measure.env import git_commit

    return {"adabench": __version__, **git_commit()}


def run_sweep(
    cfg: SweepConfig,
    out: Path,
    name: str,
    resume: Path | None = None,
    force: bool = False,
    as_json: bool = False,
    argv: list[str] | None = None,
    cli_overrides: dict | None = None,
    executor=None,
    config_path: Path | None = None,
    extend: bool = False,
) -> Path:
    """Runs (or resumes) a sweep while holding the run folder's lock (a second process on the
    same folder is refused); prints the summary; returns the results folder."""
    args = (cfg, out, name, resume, force, argv or sys.argv, cli_overrides or {})
    with open_run(*args, config_path=config_path, extend=extend) as (run_dir, cfg):
        return _run_locked(run_dir, cfg, as_json, executor)


def _run_locked(run_dir: Path, cfg: SweepConfig, as_json: bool, executor) -> Path:
    """The body of `run_sweep`, with the run folder open and locked."""
    cells, skipped = expand(cfg)
    if skipped:
        console.warn(
            "skipping pairs that do not fit: "
            + "; ".join(f"{s.model} × {s.method} ({s.reason})" for s in skipped)
        )
    if not cells:
        raise UserError("the grid is empty after skipping pairs that do not fit")
    state = SweepState(run_dir, cfg, cells, store.finished_cells(run_dir))
    _card(state)
    executor = executor or LocalExecutor()
    interrupted = False
    failure: BaseException | None = None
    with Progress(len(state.todo)) as progress, _sigterm_as_interrupt():

        def on_cell(row: dict, rows: list[dict]) -> None:
            store.check_run_folder(run_dir)
            store.write_cell(run_dir, row, rows)
            state.done.add(row["cell_id"])
            progress.cell_done()
            if row.get("spread_warning"):
                progress.note(
                    f"[yellow]warning:[/] {row['method']}@{row['budget']:g}: {row['spread_warning']}"
                )

        try:
            executor.run(state, on_cell, progress)
        except KeyboardInterrupt:
            interrupted = True
        except store.RunFolderGone:
            raise  # nothing left to consolidate into
        except Exception as exc:  # finished cells are on disk: consolidate them, then re-raise
            failure = exc
    cells_df = store.consolidate(run_dir)
    meta = store.read_meta(run_dir)
    meta["end"] = dt.datetime.now().isoformat(timespec="seconds")
    meta["complete"] = not interrupted and failure is None and not state.todo
    meta["executor"] = executor.name
    meta["order"] = cfg.order
    meta["aa"] = cfg.aa
    meta.setdefault("nodes", {}).update(state.nodes)
    if cfg.skip_bad_samples:
        from adabench.sweep.suite_data import skipped_samples

        meta["skipped_samples"] = skipped_samples(cfg)
    meta.update(getattr(executor, "meta", {}))
    store.write_meta(run_dir, meta)
    if failure is not None:
        raise failure
    if interrupted:
        console.log(
            f"interrupted: {len(state.done)} finished cells kept in {run_dir}; "
            f"resume with: adabench sweep --resume {run_dir}"
        )
        raise SystemExit(130)
    from adabench.sweep.summary import print_summary

    print_summary(cells_df, as_json, cfg.no_weights, store.load_run(run_dir).samples)
    if "throttled" in cells_df.columns and cells_df["throttled"].fillna(False).astype(bool).any():
        hot = cells_df[cells_df["throttled"].fillna(False).astype(bool)]
        console.warn(
            f"{len(hot)} cell(s) ran while the GPU throttled "
            f"({', '.join(sorted(set(hot['throttle_reasons'].astype(str))))}): their latency "
            "includes lowered clocks; check cooling/power limits or rerun"
        )
    for line in aa_warnings(cells_df):
        console.warn(line)
    console.log(f"results: {run_dir}")
    return run_dir


def _validate_names(cfg: SweepConfig) -> None:
    """Raises UserError for unknown names or an unusable device (see `resume.validate`)."""
    from adabench.sweep.resume import validate

    validate(cfg)


def _card(state: SweepState) -> None:
    cfg = state.config
    from adabench.models.loading import resolve_device
    from adabench.sweep.resume import run_weights_label

    device = resolve_device(cfg.device)
    lines = [
        f"run       {state.run_dir}",
        f"device    {device} · dtype {cfg.dtype} · weights {run_weights_label(cfg)}",
        f"grid      {len(state.cells)} cells ({len(state.todo)} to run): models {', '.join(cfg.models)}; "
        f"methods {', '.join(cfg.methods)}; budgets {', '.join(f'{b:g}' for b in cfg.budgets)}; "
        f"contention {', '.join(f'{c:g}' for c in cfg.contention)} ({cfg.contention_kind}); suites {', '.join(cfg.suites)}",
        f"per cell  {cfg.limit or 'all'} samples × {cfg.repeats} repeats, {cfg.warmup} warm-up",
        f"order     {cfg.order}"
        + (
            " (every arm once per sample, seeded random order; ratios paired to full"
            + (", A/A arm" if cfg.aa else "")
            + ")"
            if cfg.order == "interleaved"
            else ""
        )
        + (f"; rounds until CI ±{cfg.target_ci:g} (≤ {cfg.max_rounds})" if cfg.target_ci else ""),
    ]
    console.err.print("\n".join(lines))


def aa_warnings(cells) -> list[str]:
    """Returns one warning per (suite, model, contention) group whose A/A ratio CI is weak
    (`analysis.findings.aa_is_weak`), with what to do about it."""
    from adabench.analysis.findings import aa_is_weak

    if "aa_ratio" not in cells.columns:
        return []
    out = []
    keys = ["suite", "model", "contention"]
    for (suite, model, level), g in cells.groupby(keys, sort=True):
        aa, lo, hi = g[["aa_ratio", "aa_ratio_ci_low", "aa_ratio_ci_high"]].iloc[0]
        if not (math.isfinite(lo) and math.isfinite(hi)):
            continue
        if aa_is_weak(lo, hi):
            out.append(
                f"{model} · {suite} · c={level:g}: the A/A ratio of two identical `full` arms is "
                f"{aa:.3f} (95% CI {lo:.3f}–{hi:.3f}): ratios within that band of 1.0 are noise. "
                "Use more samples (--limit), --repeats 3, --target-ci 0.02, or a quieter machine"
            )
    return out
