"""Opening a run folder: a new one, or `--resume` of an old one, always under the folder's lock.

Resume semantics: `--resume RUN` runs the config stored in RUN/config.yaml and skips finished
cells. Flags (or `--config X.yaml`) given with it must agree with the stored config; where the
grid differs (models, methods, suites, budgets, contention, slo-ms) `--extend` adds the new
values on purpose — the added cells are logged and recorded in meta.json under `extensions` —
and without it the resume is refused naming what differs. Other settings (limit, repeats,
device, ...) never change on resume: the cells would not be comparable. `--force` only allows
resuming a run made by another adabench version. Parts that do not read back whole are moved
to ``parts/damaged/`` and their cells run again.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adabench import __version__, console, store
from adabench.config import SweepConfig, checked_values
from adabench.errors import UserError
from adabench.sweep.lock import RunLock

GRID_KEYS = ("models", "methods", "suites", "budgets", "contention", "slo_ms")
"""Config keys `--extend` may add values to on resume; every other key must stay as stored."""


@contextmanager
def open_run(
    cfg: SweepConfig | None,
    out: Path,
    name: str,
    resume: Path | None,
    force: bool,
    argv: list[str],
    cli_overrides: dict,
    config_path: Path | None = None,
    extend: bool = False,
) -> Iterator[tuple[Path, SweepConfig]]:
    """Yields (run folder, config) while holding the folder's lock: a new folder for `cfg`, or
    the folder `resume` with its stored config (checked against `cli_overrides` and
    `config_path`, extended when `extend`). A UserError raised inside a new folder that holds
    no finished cell removes the folder, so a mistake found late leaves nothing behind."""
    if resume is None:
        if extend:
            raise UserError("--extend adds grid values to a run: use it with --resume RUN")
        load_run_plugins(cfg)
        validate(cfg)
        run_dir = store.new_run_dir(Path(out), name)
        lock = RunLock(run_dir).acquire()
        _write_new(run_dir, cfg, argv)
        store.update_latest_link(run_dir, name)
    else:
        run_dir = Path(resume)
        _check_results_folder(run_dir)
        lock = RunLock(run_dir).acquire()
    created = resume is None
    discard = False
    try:
        if not created:
            cfg = resumed_config(run_dir, config_path, cli_overrides, extend=extend, force=force)
            store.quarantine_damaged(run_dir)
        yield run_dir, cfg
    except UserError:
        discard = created and not store.finished_cells(run_dir)
        raise
    finally:
        lock.release()
        if discard:
            shutil.rmtree(run_dir, ignore_errors=True)
            store.drop_latest_link(run_dir, name)


def validate(cfg: SweepConfig) -> None:
    """Raises UserError for an unknown suite, method or model, or an unusable device — before
    a run folder is made."""
    from adabench.data.suites import get_spec
    from adabench.models.catalog import config_for, resolve
    from adabench.models.loading import check_model, resolve_device
    from adabench.models.methods import METHODS

    for suite in cfg.suites:
        get_spec(suite)
    for method in cfg.methods:
        if method not in METHODS:
            from adabench.models.combine import split_name

            split_name(method)  # validates both parts with did-you-mean
    for model in cfg.models:  # config files only: an unsupported model is refused here
        resolve(model)  # an unknown name: did you mean ...
        if cfg.no_weights:
            config_for(model)  # shipped, embedded or local config, checked
        else:
            check_model(model)
    device = resolve_device(cfg.device)
    if any(level > 0 for level in cfg.contention):
        from adabench.contention.controller import check_kind

        check_kind(cfg.contention_kind, "cpu" if device.type == "cpu" else str(device))
    from adabench.sweep.reachability import check_grid

    check_grid(cfg)  # every (model, suite, method, budget) can meet its budget, or is skipped
    from adabench.sweep.suite_data import check_suite_data

    check_suite_data(cfg)  # every image decodes (or is skipped), every prompt fits the context
    if cfg.scenario == "server":
        from adabench.slo.server import check_window, read_trace

        if cfg.arrivals:
            read_trace(cfg.arrivals)  # every timestamp a sorted, non-negative number
        else:
            check_window(cfg.rates, float(cfg.duration_s))  # enough requests to be valid


def resumed_config(
    run_dir: Path,
    config_path: Path | None,
    overrides: dict,
    *,
    extend: bool = False,
    force: bool = False,
) -> SweepConfig:
    """Returns the config to resume `run_dir` with: the stored one, extended by the grid values
    of `overrides` / `config_path` when `extend` (written back to config.yaml, logged, and
    recorded in meta.json). Raises UserError when they differ otherwise."""
    path = run_dir / "config.yaml"
    stored = SweepConfig(**checked_values(store.read_config(run_dir), str(path)))
    meta = store.read_meta(run_dir)
    check_plugins_unchanged(run_dir, meta, load_run_plugins(stored), force)
    if config_path is not None:
        given = SweepConfig.from_layers(Path(config_path), overrides).to_dict()
        source = f"--config {config_path}"
    else:
        given = {k: v for k, v in overrides.items() if v is not None}
        SweepConfig(**{**stored.to_dict(), **given})  # the values themselves must be valid
        source = "the flags"
    _check_version(run_dir, meta, force)
    differs = {k: v for k, v in given.items() if not _same(k, getattr(stored, k), v)}
    fixed = {k: v for k, v in differs.items() if k not in GRID_KEYS}
    if fixed:
        raise UserError(
            f"cannot resume {run_dir}: {source} would change {_changes(fixed, stored)}; only "
            f"grid values ({', '.join(GRID_KEYS)}) can be added on resume, with --extend. "
            "Start a new run for other settings."
        )
    if not differs:
        return stored
    if not extend:
        raise UserError(
            f"cannot resume {run_dir}: the grid given ({source}) differs from the stored one in "
            f"{_changes(differs, stored)}. Pass --extend to add the new values, or resume "
            "without them."
        )
    return _extend(run_dir, stored, differs, meta, source)


def _extend(
    run_dir: Path, stored: SweepConfig, differs: dict, meta: dict, source: str
) -> SweepConfig:
    """Returns `stored` with the new values of `differs` appended to its grid lists; writes the
    new config.yaml, records the extension in meta.json and logs the added cells."""
    from adabench.sweep.grid import expand

    merged, added = {}, {}
    for key, values in differs.items():
        old = list(getattr(stored, key))
        new = [v for v in values if not any(_same(key, [v], [o]) for o in old)]
        if new:
            merged[key], added[key] = old + new, new
    if not added:  # a subset of the stored values: nothing to add, nothing removed
        console.log(f"--extend: {source} adds nothing to the grid of {run_dir}")
        return stored
    extended = SweepConfig(**{**stored.to_dict(), **merged})
    validate(extended)
    before = {c.cell_id() for c in expand(stored)[0]}
    new_cells = [c for c in expand(extended)[0] if c.cell_id() not in before]
    store.write_config(run_dir, extended.to_dict())
    meta.setdefault("extensions", []).append(
        {
            "at": dt.datetime.now().isoformat(timespec="seconds"),
            "added": added,
            "cells_added": len(new_cells),
        }
    )
    store.write_meta(run_dir, meta)
    what = "; ".join(f"{k} +{', '.join(_show(v) for v in vals)}" for k, vals in added.items())
    console.log(f"--extend: grid of {run_dir} extended by {what}: {len(new_cells)} cells added")
    return extended


def load_run_plugins(cfg: SweepConfig) -> list[dict]:
    """Loads the entry-point plugins and the plugins of `cfg` (files or modules); returns the
    records meta.json keeps: the given plugins, and the entry points whose methods the run uses."""
    from adabench.models.plugins import load_plugins

    records = load_plugins(cfg.plugins)
    used = {part for name in cfg.methods for part in name.split("+")}
    return [r for r in records if r["kind"] != "entry point" or used & set(r["methods"])]


def check_plugins_unchanged(run_dir: Path, meta: dict, records: list[dict], force: bool) -> None:
    """Raises UserError when a plugin the run recorded now has other code (file hash or
    version), unless `force` (then a warning): its cells would mix two methods."""
    from adabench.analysis.compare import changed_plugin_code

    changed = [
        f"{name} ({key} {str(old)[:12]} → {str(now)[:12]})"
        for name, key, old, now in changed_plugin_code(meta.get("plugins"), records)
    ]
    if not changed:
        return
    what = "; ".join(changed)
    if not force:
        raise UserError(
            f"cannot resume {run_dir}: plugin code changed since the run started: {what}. "
            "Restore it, start a new run, or pass --force to mix the two"
        )
    console.warn(f"resuming {run_dir} with changed plugin code (--force): {what}")


def _check_results_folder(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise UserError(f"--resume: {run_dir} not found (expected results/<stamp>-<name>/)")
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"--resume: {run_dir} is not a results folder (no config.yaml)")


def _check_version(run_dir: Path, meta: dict, force: bool) -> None:
    code = meta.get("code")
    made_by = code.get("adabench") if isinstance(code, dict) else None
    if made_by == __version__:
        return
    made_by = f"adabench {made_by}" if made_by else "an unknown adabench version"
    if not force:
        raise UserError(
            f"cannot resume {run_dir}: it was made by {made_by}, this is {__version__} — "
            "results would not be comparable. Pass --force to resume anyway, or start a new run."
        )
    console.warn(f"resuming {run_dir} made by {made_by} with {__version__} (--force)")


def _write_new(run_dir: Path, cfg: SweepConfig, argv: list[str]) -> None:
    from adabench.measure.env import fingerprint, git_commit

    store.write_config(run_dir, cfg.to_dict())
    store.write_meta(
        run_dir,
        {
            "adabench_version": __version__,
            "code": {"adabench": __version__, **git_commit()},
            "command": argv,
            "start": dt.datetime.now().isoformat(timespec="seconds"),
            "seed": cfg.seed,
            "weights": run_weights_label(cfg),
            "plugins": load_run_plugins(cfg),
            "fingerprint": fingerprint(),
        },
    )


def run_weights_label(cfg: SweepConfig) -> str:
    """Returns the run's `weights`: 'random' with --no-weights, else the models' common
    `catalog.weights_label` ('mixed' when they differ)."""
    if cfg.no_weights:
        return "random"
    from adabench.models.catalog import weights_label

    labels = {weights_label(m) for m in cfg.models}
    return labels.pop() if len(labels) == 1 else "mixed"


def _same(key: str, stored, given) -> bool:
    """Whether a stored and a given config value agree (grid lists as sets, floats to 1e-9)."""
    if key in GRID_KEYS:
        return _as_set(key, stored) == _as_set(key, given)
    if isinstance(stored, float) or isinstance(given, float):
        return stored is not None and given is not None and abs(float(stored) - float(given)) < 1e-9
    return stored == given


def _changes(given: dict, stored: SweepConfig) -> str:
    return "; ".join(
        f"{k} {_show(v)} (stored {_show(getattr(stored, k))})" for k, v in given.items()
    )


def _as_set(key: str, values) -> set:
    if key in ("models", "methods", "suites"):
        return set(values or [])
    return {round(float(x), 9) for x in values or []}


def _show(value) -> str:
    if isinstance(value, list):
        return ",".join(_show(v) for v in value) or "[]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
