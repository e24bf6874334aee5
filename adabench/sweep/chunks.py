"""Work in progress of a group of cells: one parquet file per finished chunk of samples.

`parts/groups/<group_id>/chunk-<round>-<first sample>-<n>.parquet` holds one row per timed
generation (arm, sample, round, repeat, times, and the answer of the first pass). A chunk is
written atomically when every arm has run on its samples, so an interrupt loses at most the
chunk in flight, and `--resume` continues with the same pairing. When the group's cells are
written (`store.write_cell`), its chunk folder is removed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MEASUREMENT_KEY = ("arm", "sample", "round", "repeat")
"""The columns that identify one timed generation inside a group."""


def group_dir(run_dir: Path, group_id: str) -> Path:
    """Returns the folder of a group's chunks (not created)."""
    return Path(run_dir) / "parts" / "groups" / group_id


def write_chunk(run_dir: Path, group_id: str, name: str, rows: list[dict]) -> Path:
    """Writes one chunk's measurement rows atomically; returns the file's path."""
    folder = group_dir(run_dir, group_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"chunk-{name}.parquet"
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    os.replace(tmp, path)
    return path


def read_chunks(run_dir: Path, group_id: str) -> list[dict]:
    """Returns every measurement row of the group's finished chunks (unreadable chunks are
    skipped: their samples run again)."""
    rows: list[dict] = []
    for path in sorted(group_dir(run_dir, group_id).glob("chunk-*.parquet")):
        try:
            rows.extend(pq.read_table(path).to_pylist())
        except (OSError, pa.ArrowException):
            continue
    return rows


def remove_group(run_dir: Path, group_id: str) -> None:
    """Deletes a group's chunk folder (after its cells were written)."""
    shutil.rmtree(group_dir(run_dir, group_id), ignore_errors=True)
