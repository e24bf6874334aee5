"""Results-folder store: ids, atomic parts, consolidation, round-trip types."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adabench import store
from adabench.errors import UserError

NOW = dt.datetime(2025, 1, 2, 3, 4, 5)


def _cell(method: str, budget: float, contention: float, latency_ms: float) -> dict:
    coords = dict(suite="shapes", model="tiny", method=method, budget=budget, contention=contention)
    return {**coords, "cell_id": store.cell_id(coords), "contention_kind": "compute", "n": 2,
            "accuracy": 0.5, "flops": 1e9, "flops_ratio": budget, "latency_ms_mean": latency_ms,
            "slo_ms": None}  # fmt: skip


def _samples(latency_ms: float) -> list[dict]:
    return [
        {"sample_id": f"s{i}", "prediction": "3", "answers": ["3", "three"], "score": float(i),
         "latency_ms": latency_ms, "latency_ms_repeats": [latency_ms, latency_ms + 1.0],
         "new_tokens": 4, "flops": 1e9, "plan": '{"blocks": 4}', "family": "count"}
        for i in range(2)
    ]  # fmt: skip


def test_cell_id_is_deterministic_and_short():
    a = store.cell_id({"suite": "shapes", "budget": 0.5, "method": "full"})
    b = store.cell_id({"method": "full", "budget": 0.5, "suite": "shapes"})
    assert a == b and len(a) == 12 and int(a, 16) >= 0
    assert a != store.cell_id({"suite": "shapes", "budget": 0.75, "method": "full"})


def test_new_run_dir_never_overwrites(tmp_path):
    run_dir = store.new_run_dir(tmp_path, "demo", now=NOW)
    assert run_dir.name == "20250102-030405-demo" and run_dir.is_dir()
    with pytest.raises(UserError, match="already exists"):
        store.new_run_dir(tmp_path, "demo", now=NOW)
    with pytest.raises(UserError, match="run name"):
        store.new_run_dir(tmp_path, "../evil", now=NOW)


def test_meta_and_config_round_trip(tmp_path):
    run_dir = store.new_run_dir(tmp_path, "demo", now=NOW)
    store.write_meta(run_dir, {"seed": 0, "x": math.nan})
    store.write_config(run_dir, {"budgets": [0.5, 1.0], "methods": ["full"]})
    assert store.read_meta(run_dir) == {"seed": 0, "x": None}
    assert store.read_config(run_dir) == {"budgets": [0.5, 1.0], "methods": ["full"]}
    with pytest.raises(UserError, match="config.yaml"):
        store.read_config(tmp_path)


def test_write_cell_consolidate_and_load(tmp_path):
    run_dir = store.new_run_dir(tmp_path, "demo", now=NOW)
    full = store.write_cell(run_dir, _cell("full", 1.0, 0.0, 40.0), _samples(40.0))
    half = store.write_cell(run_dir, _cell("layer-drop", 0.5, 0.0, 24.0), _samples(24.0))
    store.write_cell(run_dir, _cell("layer-drop", 0.5, 0.5, 30.0), _samples(30.0))
    assert {full, half} < store.finished_cells(run_dir)
    assert not list((run_dir / "parts").glob(".*.tmp"))

    from_parts = store.load_run(run_dir)  # not consolidated yet: read from parts
    assert len(from_parts.cells) == 3
    cells = store.consolidate(run_dir)
    assert (run_dir / "cells.parquet").exists() and (run_dir / "parts").is_dir()
    ratio = cells.set_index(["method", "contention"])["latency_ratio"]
    assert ratio[("layer-drop", 0.0)] == pytest.approx(0.6)
    assert ratio[("full", 0.0)] == pytest.approx(1.0)
    assert math.isnan(ratio[("layer-drop", 0.5)])  # no full cell at contention 0.5

    run = store.load_run(run_dir)
    assert list(run.cells.columns[: len(store.CELL_COLUMNS)]) == store.CELL_COLUMNS
    assert set(store.SAMPLE_COLUMNS) <= set(run.samples.columns)
    assert run.cells["slo_ms"].isna().all() and run.cells["slo_ms"].dtype == float
    assert run.cells["peak_mem_mb"].dtype == float  # missing numbers are NaN, not strings
    row = run.samples.iloc[0]
    assert list(row["latency_ms_repeats"]) == [row["latency_ms"], row["latency_ms"] + 1.0]
    assert list(row["answers"]) == ["3", "three"] and isinstance(row["plan"], str)
    schema = pq.read_schema(run_dir / "samples.parquet")
    repeats, answers = schema.field("latency_ms_repeats").type, schema.field("answers").type
    assert pa.types.is_list(repeats) and repeats.value_type == pa.float64()
    assert pa.types.is_list(answers) and answers.value_type == pa.string()


def test_write_cell_rejects_strings_in_numeric_columns(tmp_path):
    run_dir = store.new_run_dir(tmp_path, "demo", now=NOW)
    bad = {**_cell("full", 1.0, 0.0, 40.0), "latency_ms_mean": "N/A"}
    with pytest.raises(ValueError, match="latency_ms_mean"):
        store.write_cell(run_dir, bad, [])
    assert store.finished_cells(run_dir) == set()


def test_load_run_sees_cells_added_after_consolidation(tmp_path):
    run_dir = store.new_run_dir(tmp_path, "demo", now=NOW)
    store.write_cell(run_dir, _cell("full", 1.0, 0.0, 40.0), _samples(40.0))
    store.consolidate(run_dir)
    store.write_cell(run_dir, _cell("layer-drop", 0.5, 0.0, 20.0), _samples(20.0))  # resumed
    assert len(store.load_run(run_dir).cells) == 2


def test_load_run_missing_folder_and_empty_run(tmp_path):
    with pytest.raises(UserError, match="not found"):
        store.load_run(tmp_path / "nope")
    run = store.load_run(store.new_run_dir(tmp_path, "empty", now=NOW))
    assert run.cells.empty and isinstance(run.cells, pd.DataFrame)


def test_unpaired_latency_ratio_divides_by_the_full_cell_of_the_same_group_and_device():
    """Several `full` cells (two devices × two contention levels × two models), each with its
    own latency: every ratio must use its own one. Dropping a key from the match (the device,
    the contention or the model) averages several `full` cells and moves the ratios."""
    rows = []
    for d, device in enumerate(("GPU-A", "GPU-B")):
        for c, contention in enumerate((0.0, 0.5)):
            for m, model in enumerate(("tiny", "other")):
                full_ms = 100.0 * (1 + d) * (1 + 2 * c) * (1 + 4 * m)
                for method, share in (("full", 1.0), ("layer-drop", 0.25), ("early-exit", 0.5)):
                    rows.append({"suite": "shapes", "model": model, "contention": contention,
                                 "device_name": device, "method": method,
                                 "latency_ms_mean": full_ms * share})  # fmt: skip
    cells = store.add_latency_ratio(pd.DataFrame(rows))
    expected = cells["method"].map({"full": 1.0, "layer-drop": 0.25, "early-exit": 0.5})
    assert cells["latency_ratio"].tolist() == pytest.approx(expected.tolist())
    no_full = store.add_latency_ratio(
        pd.DataFrame(rows).query("method != 'full' or model != 'other'")
    )
    assert no_full.query("model == 'other'")["latency_ratio"].isna().all()
