"""The results folder: one parquet part per finished cell, consolidated into cells/samples tables.

Layout (see docs/architecture.md): ``meta.json``, ``config.yaml``, ``parts/<cell_id>.{samples,cell}.parquet``
(written atomically when a cell ends, so ``--resume`` skips finished cells), ``cells.parquet``
and ``samples.parquet`` (written by `consolidate`). Reading needs pandas and pyarrow, not torch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from adabench import console
from adabench.errors import UserError
from adabench.files import atomic_file, atomic_write_text

SAMPLE_COLUMNS: list[str] = [
    "cell_id", "suite", "model", "method", "budget", "contention", "sample_id", "prediction",
    "answers", "score", "latency_ms", "latency_ms_repeats", "prefill_ms", "decode_ms",
    "new_tokens", "flops", "llm_flops", "flops_ratio", "plan",
]  # fmt: skip
OPTIONAL_SAMPLE_COLUMNS: list[str] = ["family", "chosen_budget", "estimated_slowdown", "energy_j"]
CELL_COLUMNS: list[str] = [
    "cell_id", "suite", "model", "method", "budget", "contention", "contention_kind",
    "achieved_slowdown", "n", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "flops",
    "llm_flops", "flops_ratio", "latency_ms_mean", "latency_ms_std", "latency_ms_p50",
    "latency_ms_p90", "latency_ms_p99", "prefill_ms_mean", "decode_ms_per_token_mean",
    "latency_ratio", "peak_mem_mb", "energy_j_mean", "slo_ms", "slo_attainment",
]  # fmt: skip
OPTIONAL_CELL_COLUMNS: list[str] = ["wrapper", "prompt_source"]
"""Cell columns a results folder may lack (written before adabench recorded them): readers
treat a missing one as unknown (docs/results.md)."""
CELL_KEY: list[str] = ["suite", "model", "method", "budget", "contention"]
"""The coordinates that identify a cell across runs (what `adabench compare` matches on)."""

_STRING = pa.string()
_FLOAT = pa.float64()
_SAMPLE_TYPES: dict[str, pa.DataType] = {
    **{c: _FLOAT for c in SAMPLE_COLUMNS + OPTIONAL_SAMPLE_COLUMNS},
    **dict.fromkeys(
        ["cell_id", "suite", "model", "method", "sample_id", "prediction", "plan", "family"],
        _STRING,
    ),
    "answers": pa.list_(_STRING),
    "latency_ms_repeats": pa.list_(_FLOAT),
    "new_tokens": pa.int64(),
}
_CELL_TYPES: dict[str, pa.DataType] = {
    **{c: _FLOAT for c in CELL_COLUMNS},
    **dict.fromkeys(
        ["cell_id", "suite", "model", "method", "contention_kind", *OPTIONAL_CELL_COLUMNS], _STRING
    ),
    "n": pa.int64(),
}
_NAME_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
"""Run names: matched whole (`fullmatch`, so a trailing newline is refused), at most 100 characters."""
DAMAGED = "damaged"
"""Subfolder of ``parts/`` where parts that do not read back whole are moved."""


@dataclass
class Run:
    """A results folder read back: meta.json, config.yaml and the cells/samples tables."""

    path: Path = field(metadata={"help": "the results folder"})
    meta: dict = field(default_factory=dict, metadata={"help": "meta.json ({} when absent)"})
    config: dict = field(default_factory=dict, metadata={"help": "config.yaml ({} when absent)"})
    cells: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=CELL_COLUMNS),
        metadata={"help": "one row per cell, CELL_COLUMNS (+ extras)"},
    )
    samples: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=SAMPLE_COLUMNS),
        metadata={"help": "one row per (cell, sample), SAMPLE_COLUMNS (+ extras)"},
    )

    @property
    def name(self) -> str:
        """The folder name, e.g. ``20250101-120000-demo``."""
        return self.path.name


def cell_id(coords: dict[str, Any]) -> str:
    """Returns a deterministic 12-hex-digit id: sha256 over the sorted JSON of the coordinates."""
    text = json.dumps(coords, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def new_run_dir(out: Path, name: str, now: dt.datetime | None = None) -> Path:
    """Creates and returns ``out/<YYYYmmdd-HHMMSS>-<name>/``; raises UserError if it exists."""
    if not _NAME_OK.fullmatch(name):
        raise UserError(
            f"run name must be 1-100 letters, digits, '.', '_' or '-' (starting with a letter or "
            f"digit), got {name!r}."
        )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; pick another --out.")
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    run_dir = out / f"{stamp}-{name}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir(exist_ok=False)
    except FileExistsError:
        raise UserError(
            f"results folder {run_dir} already exists; pick another --name or resume it with --resume."
        ) from None
    except OSError as exc:
        raise UserError(
            f"cannot create the results folder {run_dir}: {exc.strerror or exc}; pick another --out."
        ) from None
    (run_dir / "parts").mkdir()
    return run_dir


def write_meta(run_dir: Path, meta: dict) -> None:
    """Writes ``meta.json`` atomically (NaN/inf become null)."""
    atomic_write_text(
        Path(run_dir) / "meta.json", json.dumps(console.jsonable(meta), indent=2) + "\n"
    )


def read_meta(run_dir: Path) -> dict:
    """Returns ``meta.json`` as a dict, or {} when the file is absent; a damaged one is a UserError."""
    path = Path(run_dir) / "meta.json"
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(
            f"{path} is damaged ({_first_line(exc)}); restore it from a backup or move it away "
            "(run information such as the command line is then lost, the results are not)."
        ) from None
    if not isinstance(meta, dict):
        raise UserError(f"{path} is damaged: it holds a {type(meta).__name__}, not an object")
    return meta


def write_config(run_dir: Path, config: dict) -> None:
    """Writes the resolved sweep config as ``config.yaml`` (yaml.safe_dump, atomic)."""
    text = yaml.safe_dump(console.jsonable(config), sort_keys=False)
    atomic_write_text(Path(run_dir) / "config.yaml", text)


def read_config(run_dir: Path) -> dict:
    """Returns ``config.yaml`` as a dict; raises UserError when it is missing."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise UserError(f"{path} not found: is {run_dir} an adabench results folder?")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(
            f"{path} is damaged ({_first_line(exc)}); restore it or start a new run."
        ) from None
    if not isinstance(config, dict):
        raise UserError(f"{path} is damaged: it holds a {type(config).__name__}, not a mapping")
    return config


class RunFolderGone(UserError):
    """The run folder (or its config.yaml) disappeared while a sweep was writing into it."""


def check_run_folder(run_dir: Path) -> None:
    """Raises RunFolderGone when `run_dir` or its config.yaml no longer exists (deleted while a
    sweep runs): writing on would re-create a folder that `--resume` cannot read."""
    if not (Path(run_dir) / "config.yaml").is_file():
        what = "was deleted" if not Path(run_dir).exists() else "lost its config.yaml"
        raise RunFolderGone(
            f"run folder {run_dir} {what} during the sweep: stopping (the cells finished in "
            "it are gone with it; start a new sweep)"
        )


def write_cell(run_dir: Path, cell_row: dict, sample_rows: list[dict]) -> str:
    """Writes one finished cell's parts atomically and returns its cell_id.

    Samples are written first, then the cell row, so a ``.cell.parquet`` exists only for a
    complete cell. ``cell_row`` needs ``cell_id`` (or the CELL_KEY coordinates to derive one);
    each sample row inherits the cell's coordinates where it lacks them.
    """
    cid = cell_row.get("cell_id") or cell_id({k: cell_row.get(k) for k in CELL_KEY})
    cell_row = {**cell_row, "cell_id": cid}
    inherited = {k: cell_row.get(k) for k in ["cell_id", *CELL_KEY]}
    samples = [{**inherited, **row, "cell_id": cid} for row in sample_rows]
    parts = Path(run_dir) / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    _atomic_write_table(
        _to_table(samples, SAMPLE_COLUMNS, _SAMPLE_TYPES), parts / f"{cid}.samples.parquet"
    )
    _atomic_write_table(
        _to_table([cell_row], CELL_COLUMNS, _CELL_TYPES), parts / f"{cid}.cell.parquet"
    )
    return cid


def finished_cells(run_dir: Path) -> set[str]:
    """Returns the ids of cells whose parts are complete (a ``.cell.parquet`` and its
    ``.samples.parquet`` exist; `damaged_parts` reads them back)."""
    parts = Path(run_dir) / "parts"
    ids = {p.name.removesuffix(".cell.parquet") for p in parts.glob("*.cell.parquet")}
    return {i for i in ids if (parts / f"{i}.samples.parquet").is_file()}


def damaged_parts(run_dir: Path) -> dict[str, str]:
    """Returns {cell_id: what is wrong} for cells whose parts do not read back whole: an
    unreadable or truncated parquet file, a ``.cell.parquet`` without its samples, or a table
    that holds no rows of its cell."""
    return _scan_parts(Path(run_dir))[1]


def _scan_parts(run_dir: Path) -> tuple[dict[str, tuple[pa.Table, pa.Table]], dict[str, str]]:
    """Reads every part pair once: ({cell_id: (cell table, samples table)}, {cell_id: problem})."""
    parts = run_dir / "parts"
    tables: dict[str, tuple[pa.Table, pa.Table]] = {}
    problems: dict[str, str] = {}
    for path in sorted(parts.glob("*.cell.parquet")):
        cid = path.name.removesuffix(".cell.parquet")
        samples = parts / f"{cid}.samples.parquet"
        if not samples.is_file():
            problems[cid] = f"{samples.name} is missing"
            continue
        pair = []
        for part in (path, samples):
            try:
                table = pq.read_table(part)
            except (OSError, pa.ArrowException, ValueError) as exc:
                problems[cid] = f"{part.name} does not read back ({_first_line(exc)})"
                break
            if "cell_id" not in table.column_names or set(table.column("cell_id").to_pylist()) != {
                cid
            }:
                problems[cid] = f"{part.name} does not hold the rows of cell {cid}"
                break
            pair.append(table)
        else:
            tables[cid] = (pair[0], pair[1])
    return tables, problems


def quarantine_damaged(run_dir: Path) -> dict[str, str]:
    """Moves the parts of every damaged cell (`damaged_parts`) to ``parts/damaged/`` so the
    cell runs again, warns once per cell on stderr, and returns {cell_id: what was wrong}."""

    parts = Path(run_dir) / "parts"
    damaged = damaged_parts(run_dir)
    if not damaged:
        return damaged
    aside = parts / DAMAGED
    aside.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for cid, reason in damaged.items():
        for path in parts.glob(f"{cid}.*.parquet"):
            os.replace(path, aside / f"{stamp}-{path.name}")
        console.warn(f"damaged part of cell {cid}: {reason}; moved to {aside}, the cell runs again")
    return damaged


def consolidate(run_dir: Path) -> pd.DataFrame:
    """Merges the parts into ``cells.parquet`` and ``samples.parquet`` (atomic; parts are kept).

    Fills ``latency_ratio`` against the ``full`` cell at the same (suite, model, contention)
    and returns the cells table.
    """
    run_dir = Path(run_dir)
    cells, samples = _read_parts(run_dir)
    _atomic_write_table(_frame_to_table(cells, _CELL_TYPES), run_dir / "cells.parquet")
    _atomic_write_table(_frame_to_table(samples, _SAMPLE_TYPES), run_dir / "samples.parquet")
    return cells


def load_run(run_dir: Path) -> Run:
    """Reads a results folder: consolidated tables, or the parts when they hold newer cells.

    Raises UserError when the folder does not exist.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(
            f"results folder {run_dir} not found (expected results/<YYYYmmdd-HHMMSS>-<name>/)."
        )
    config = read_config(run_dir) if (run_dir / "config.yaml").exists() else {}
    cells_path, samples_path = run_dir / "cells.parquet", run_dir / "samples.parquet"
    if cells_path.exists() and samples_path.exists():
        try:
            cells = pd.read_parquet(cells_path)
            if finished_cells(run_dir) <= set(cells["cell_id"]):
                samples = pd.read_parquet(samples_path)
                return Run(run_dir, read_meta(run_dir), config, cells, samples)
        except (OSError, pa.ArrowException, ValueError, KeyError) as exc:
            console.warn(f"{run_dir}: cells.parquet/samples.parquet do not read back "
                         f"({_first_line(exc)}); reading the parts instead")  # fmt: skip
    elif not (run_dir / "parts").is_dir():
        raise UserError(
            f"{run_dir} holds no readable results (cells.parquet + samples.parquet, or parts/): "
            "is it an adabench results folder?"
        )
    cells, samples = _read_parts(run_dir)
    return Run(run_dir, read_meta(run_dir), config, cells, samples)


def devices(cells: pd.DataFrame) -> list[str]:
    """Returns the distinct ``device_name`` values of `cells` (GPU or CPU model; [] if unknown)."""
    if "device_name" not in cells.columns:
        return []
    return sorted(str(d) for d in cells["device_name"].dropna().unique())


def add_latency_ratio(cells: pd.DataFrame) -> pd.DataFrame:
    """Returns `cells` with ``latency_ratio`` = latency_ms_mean ÷ the ``full`` cell's at the same
    (suite, model, contention) — and device, when the run spans several device models; NaN
    where the run has no ``full`` cell there."""
    cells = cells.copy()
    key = ["suite", "model", "contention"]
    if len(devices(cells)) > 1:
        key.append("device_name")
    full = cells[cells["method"] == "full"].groupby(key, dropna=False)["latency_ms_mean"].mean()
    ref = cells.join(full.rename("_ref_ms"), on=key)["_ref_ms"]
    cells["latency_ratio"] = (cells["latency_ms_mean"] / ref).astype(float)
    return cells


def _read_parts(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Returns (cells, samples) from the parts that read back whole; warns about the others."""
    tables, damaged = _scan_parts(run_dir)
    if damaged:
        for cid, reason in damaged.items():
            console.warn(f"{run_dir}: cell {cid} left out: {reason} "
                         f"(`adabench sweep --resume {run_dir}` runs it again)")  # fmt: skip
    if not tables:
        return pd.DataFrame(columns=CELL_COLUMNS), pd.DataFrame(columns=SAMPLE_COLUMNS)
    ids = sorted(tables)
    cells = pd.concat([tables[i][0].to_pandas() for i in ids], ignore_index=True)
    samples = pd.concat([tables[i][1].to_pandas() for i in ids], ignore_index=True)
    if "latency_ratio_ci_low" not in cells.columns:  # runs before paired ratios (v0.2)
        cells = add_latency_ratio(cells)
    cells = cells.sort_values(CELL_KEY, kind="stable", ignore_index=True)
    return cells, samples


def _to_table(rows: list[dict], columns: list[str], types: dict[str, pa.DataType]) -> pa.Table:
    """Builds a table with the standard columns first (typed, NaN for unknown numbers), extras after."""
    names = list(columns) + [c for r in rows for c in r if c not in columns]
    names = list(dict.fromkeys(names))
    arrays = {}
    for name in names:
        values = [row.get(name) for row in rows]
        kind = types.get(name)
        if kind == _FLOAT:
            values = [_as_float(v, name) for v in values]
        elif kind == _STRING:
            values = [None if v is None else str(v) for v in values]
        elif kind is not None and pa.types.is_list(kind):
            values = [None if v is None else list(v) for v in values]
            if kind.value_type == _STRING:
                values = [None if v is None else [str(x) for x in v] for v in values]
        arrays[name] = pa.array(values, type=kind) if kind is not None else pa.array(values)
    return pa.table(arrays)


def _frame_to_table(frame: pd.DataFrame, types: dict[str, pa.DataType]) -> pa.Table:
    schema_fields = []
    for name in frame.columns:
        kind = types.get(name)
        schema_fields.append(pa.field(name, kind) if kind is not None else None)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, f in enumerate(schema_fields):
        if f is not None and table.schema.field(i).type != f.type:
            table = table.set_column(i, f, table.column(i).cast(f.type))
    return table


def _as_float(value: Any, column: str) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"column {column!r} holds numbers; got {value!r}") from None


def _atomic_write_table(table: pa.Table, path: Path) -> None:
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp)


def _first_line(exc: BaseException) -> str:
    """Returns the first line of an exception's message (its class name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def update_latest_link(run_dir: Path, name: str) -> Path | None:
    """Points ``<out>/<name>`` (a relative symlink next to the run folder) at `run_dir`, the
    newest run of that name, so scripts need no glob (``adabench compare ci/baseline
    results/ci``). Returns the link, or None (with a note) when a real file or folder holds
    that path or the file system has no symlinks."""
    run_dir = Path(run_dir)
    link = run_dir.parent / name
    if link.exists() and not link.is_symlink():
        console.log(f"note: {link} exists and is not a link: no '{name}' link to the newest run")
        return None
    tmp = run_dir.parent / f".{name}.link-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.name, target_is_directory=True)
        os.replace(tmp, link)  # atomic: a reader sees the old run or the new one
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        console.log(f"note: cannot link {link} to the newest run ({exc.strerror or exc})")
        return None
    return link


def drop_latest_link(run_dir: Path, name: str) -> None:
    """Removes ``<out>/<name>`` when it points at `run_dir` (a discarded run)."""
    link = Path(run_dir).parent / name
    if link.is_symlink() and os.readlink(link) == Path(run_dir).name:
        link.unlink(missing_ok=True)
