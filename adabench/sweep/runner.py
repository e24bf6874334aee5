"""`adabench sweep`: run a grid of cells into a resumable results folder.

Order: contention level (outer: one stress start per level, its achieved slowdown measured at
the start and stored on each cell) → model (loaded once) → suite (samples prepared once) →
method → budget. Each finished cell is written atomically; Ctrl-C or SIGTERM keeps finished cells,
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

from adabench import __version__, console
from adabench.config import SweepConfig
from adabench.errors import UserError
from adabench.sweep import store
from adabench.sweep.cell import CellConfig
from adabench.sweep.grid import expand


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
    on_sample: Callable[[int, float, float], None] | None = None,
) -> Iterator[SweepEvent]:
    """Runs `cells` in order in this process and yields their SweepEvents.

    Cells must arrive grouped by contention level, then model, then suite (grid order): one
    stress start per level, one model load per model, one sample preparation per suite. Each
    finished cell row carries where it ran (`hostname`, `device_name`, `gpu_uuid`).
    `on_sample(done, running_accuracy, running_latency_ms)` reports progress inside a cell.
    """
    from adabench.contention.calibrate import measure_slowdown
    from adabench.contention.controller import Contention
    from adabench.models.loading import resolve_device
    from adabench.sweep.placement import placement

    device = resolve_device(cfg.device)
    if cfg.threads:  # on CPU, fewer model threads fight less with the stress workers' cores
        import torch

        torch.set_num_threads(cfg.threads)
    where = placement(device)
    yield SweepEvent("node", message=where["hostname"], result=where)
    stress_device = "cpu" if device.type == "cpu" else str(device)
    for level, level_cells in groupby(cells, key=lambda c: c.contention):
        level_cells = list(level_cells)
        with (
            Contention(level, cfg.contention_kind, stress_device) as stress,
            _schedule(stress, cfg) as driver,
        ):
            slowdown = measure_slowdown(stress) if level > 0 else 1.0
            yield SweepEvent(
                "note",
                message=f"contention {level:g} ({cfg.contention_kind}) on {where['hostname']}: "
                f"achieved slowdown {slowdown:.2f}x, workers {stress.pids or 'none'}",
            )
            for model_name, model_cells in groupby(level_cells, key=lambda c: c.model):
                loaded = _load(model_name, cfg)
                for suite_name, suite_cells in groupby(model_cells, key=lambda c: c.suite):
                    spec, samples, prepared = _prepare(loaded, suite_name, cfg)
                    for cell in suite_cells:
                        stress.check()
                        if cfg.no_weights:
                            _attach_random_head(loaded, cell, prepared, cfg)
                        yield SweepEvent("start", cell, n=len(samples))
                        try:
                            result = _run_cell(
                                loaded, spec, samples, prepared, cell, slowdown, stress,
                                driver, run_dir, on_sample,
                            )  # fmt: skip
                        except UserError as exc:  # e.g. a budget the method cannot reach here
                            yield SweepEvent(
                                "note",
                                message=f"[yellow]warning:[/] skipped {cell.model} · "
                                f"{cell.method}@{cell.budget:g}: {exc}",
                            )
                            yield SweepEvent("done", cell)
                            continue
                        row, sample_rows = result
                        row.update({k: where[k] for k in PLACEMENT_COLUMNS})
                        yield SweepEvent("done", cell, result=(row, sample_rows))


PLACEMENT_COLUMNS = ("hostname", "device_name", "gpu_uuid")
"""Extra cell columns saying where a cell ran (one GPU model per `device_name`)."""


def dispatch(event: SweepEvent, on_cell: Callable[[dict, list[dict]], None], progress) -> None:
    """Applies one SweepEvent to the driver: progress lines, and `on_cell` for finished cells."""
    if event.kind == "note":
        progress.note(event.message)
    elif event.kind == "start":
        progress.start_cell(event.cell, event.n)
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
        for event in iter_cells(state.config, state.run_dir, state.todo, progress.sample):
            if event.kind == "node":
                state.nodes[event.message] = event.result
            dispatch(event, on_cell, progress)


def _run_cell(
    loaded, spec, samples, prepared, cell: CellConfig, slowdown, stress, driver, run_dir, on_sample
):
    """Returns (cell row, sample rows); raises UserError when the cell cannot run here."""
    if cell.slo_ms is not None:
        return _run_slo(loaded, spec, samples, prepared, cell, slowdown, stress, driver, run_dir)
    return _run_one(loaded, spec, samples, prepared, cell, slowdown, on_sample)


@contextmanager
def _schedule(stress, cfg: SweepConfig):
    """Yields a ScheduleDriver changing the stress level over time (SLO mode), or None."""
    if not cfg.contention_schedule:
        yield None
        return
    from adabench.slo.schedule import ScheduleDriver, parse_schedule

    with ScheduleDriver(stress, parse_schedule(cfg.contention_schedule)) as driver:
        yield driver


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
    from adabench.slo.cell import is_budgeted, run_slo_cell
    from adabench.slo.latency_model import LatencyModel, profile_latency

    model = None
    if is_budgeted(cell.method):
        safe = "-".join(x.replace("/", "_") for x in (cell.model, cell.method, cell.suite))
        path = run_dir / "latency" / f"{safe}.json"
        if path.exists():
            model = LatencyModel.load(path)
        else:
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


def _attach_random_head(loaded, cell: CellConfig, prepared, cfg: SweepConfig) -> None:
    """--no-weights: give the random model the random AdaLLaVA head the cell's method needs."""
    from adabench.models.no_weights import (
        adallava_settings_for,
        build_random_head,
        center_random_scheduler_,
    )
    from adabench.sweep.grid import needs_adallava

    variant = needs_adallava(cell.method)
    heads = loaded.__dict__.setdefault("_random_heads", {})
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


def _load(model_name: str, cfg: SweepConfig):
    if cfg.no_weights:
        from adabench.models.no_weights import build_no_weights

        return build_no_weights(model_name, device=cfg.device, dtype=cfg.dtype, seed=cfg.seed)
    from adabench.models.loading import load_model

    return load_model(model_name, device=cfg.device, dtype=cfg.dtype)


def _prepare(loaded, suite_name: str, cfg: SweepConfig):
    from adabench.data.suites import get_spec, load_suite
    from adabench.sweep.cell import prepare_samples

    spec = get_spec(suite_name)
    samples = load_suite(suite_name, split=cfg.split, limit=cfg.limit, seed=0)
    return spec, samples, prepare_samples(loaded, spec, samples)


def _run_one(loaded, spec, samples, prepared, cell: CellConfig, slowdown: float, on_sample=None):
    from adabench.sweep.cell import run_cell

    scores: list[float] = []
    lat: list[float] = []

    def sample_done(i: int, row: dict) -> None:
        scores.append(row["score"])
        lat.append(row["latency_ms"])
        if on_sample is not None:
            on_sample(i + 1, sum(scores) / len(scores), sum(lat) / len(lat))

    return run_cell(
        loaded, spec, samples, prepared, cell, achieved_slowdown=slowdown, on_sample=sample_done
    )


class Progress:
    """Rich progress on stderr: overall cells with ETA, the current cell's samples, running accuracy/latency."""

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
        self.bar.console.print(message)

    def start_cell(self, cell: CellConfig, n: int) -> None:
        desc = f"{cell.model} · {cell.method}@{cell.budget:g} · c={cell.contention:g}"
        self.bar.reset(self.current, total=n, description=desc, status="")

    def sample(self, done: int, accuracy: float, latency_ms: float) -> None:
        self.bar.update(
            self.current, completed=done, status=f"acc {accuracy:.2f} · {latency_ms:.1f} ms"
        )

    def cell_done(self) -> None:
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
    from adabench.measure.env import _git_commit

    return {"adabench": __version__, **_git_commit()}


def open_run(
    cfg: SweepConfig,
    out: Path,
    name: str,
    resume: Path | None,
    force: bool,
    argv: list[str],
    cli_overrides: dict,
) -> tuple[Path, SweepConfig]:
    """Returns (run folder, config): a new folder, or the resumed one with its stored config."""
    if resume is None:
        run_dir = store.new_run_dir(Path(out), name)
        store.write_config(run_dir, cfg.to_dict())
        from adabench.measure.env import fingerprint

        store.write_meta(
            run_dir,
            {
                "adabench_version": __version__,
                "code": _code_version(),
                "command": argv,
                "start": dt.datetime.now().isoformat(timespec="seconds"),
                "seed": cfg.seed,
                "weights": "random" if cfg.no_weights else "trained",
                "fingerprint": fingerprint(),
            },
        )
        return run_dir, cfg
    run_dir = Path(resume)
    if not (run_dir / "config.yaml").exists():
        raise UserError(f"--resume: {run_dir} is not a results folder (no config.yaml)")
    stored = SweepConfig(**store.read_config(run_dir))
    meta = store.read_meta(run_dir)
    problems = []
    if meta.get("code", {}).get("adabench") != __version__:
        problems.append(f"adabench version {meta.get('code', {}).get('adabench')} → {__version__}")
    changed = {
        k: v for k, v in cli_overrides.items() if v is not None and getattr(stored, k, None) != v
    }
    if changed:
        problems.append(f"config differs from the stored one in {', '.join(sorted(changed))}")
    if problems and not force:
        raise UserError(
            f"cannot resume {run_dir}: {'; '.join(problems)} — results would not be comparable. "
            "Pass --force to resume anyway."
        )
    return run_dir, stored


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
) -> Path:
    """Runs (or resumes) a sweep; prints the summary; returns the results folder."""
    if cfg is not None:
        _validate_names(
            cfg
        )  # before a new folder is made: a typo must not leave an empty run behind
    run_dir, cfg = open_run(cfg, out, name, resume, force, argv or sys.argv, cli_overrides or {})
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
        except Exception as exc:  # finished cells are on disk: consolidate them, then re-raise
            failure = exc
    cells_df = store.consolidate(run_dir)
    meta = store.read_meta(run_dir)
    meta["end"] = dt.datetime.now().isoformat(timespec="seconds")
    meta["complete"] = not interrupted and failure is None and not state.todo
    meta["executor"] = executor.name
    meta.setdefault("nodes", {}).update(state.nodes)
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
    _summary(cells_df, as_json, random_weights=cfg.no_weights)
    console.log(f"results: {run_dir}")
    return run_dir


def _validate_names(cfg: SweepConfig) -> None:
    from adabench.data.suites import get_spec
    from adabench.models.loading import resolve
    from adabench.models.methods import METHODS

    for suite in cfg.suites:
        get_spec(suite)
    for method in cfg.methods:
        if method not in METHODS:
            from adabench.models.combine import split_name

            split_name(method)  # validates both parts with did-you-mean
    for model in cfg.models:
        resolve(model)


def _card(state: SweepState) -> None:
    cfg = state.config
    from adabench.models.loading import resolve_device

    device = resolve_device(cfg.device)
    lines = [
        f"run       {state.run_dir}",
        f"device    {device} · dtype {cfg.dtype} · weights {'random' if cfg.no_weights else 'trained'}",
        f"grid      {len(state.cells)} cells ({len(state.todo)} to run): models {', '.join(cfg.models)}; "
        f"methods {', '.join(cfg.methods)}; budgets {', '.join(f'{b:g}' for b in cfg.budgets)}; "
        f"contention {', '.join(f'{c:g}' for c in cfg.contention)} ({cfg.contention_kind}); suites {', '.join(cfg.suites)}",
        f"per cell  {cfg.limit or 'all'} samples × {cfg.repeats} repeats, {cfg.warmup} warm-up",
    ]
    console.err.print("\n".join(lines))


def _summary(cells, as_json: bool, random_weights: bool = False) -> None:
    if as_json:
        console.print_json(cells.to_dict(orient="records"))
        return
    rows = []
    for _, c in cells.sort_values(["contention", "model", "method", "budget"]).iterrows():
        ratio = c["latency_ratio"]
        rows.append(
            {
                "contention": f"{c['contention']:g}",
                "model": c["model"],
                "method": c["method"],
                "budget": f"{c['budget']:g}",
                "accuracy": f"{c['accuracy']:.3f}",
                "flops_ratio": f"{c['flops_ratio']:.3f}",
                "latency_ms": f"{c['latency_ms_mean']:.2f} ± {c['latency_ms_std']:.2f}",
                "vs full": "n/a" if math.isnan(ratio) else f"{ratio:.2f}x",
                "slowdown": f"{c['achieved_slowdown']:.2f}x",
            }
        )
    console.print_table(
        rows,
        "sweep summary (latency relative to `full` at the same model and contention)"
        + (" · weights: random — latency/FLOPs only, no accuracy" if random_weights else ""),
    )
