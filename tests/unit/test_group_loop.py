"""The one sample loop on the tiny model: interleaved order, resume mid-group, paired rows."""

from __future__ import annotations

import pytest

from adabench.sweep.cell_config import CellConfig


@pytest.fixture(scope="module")
def group():
    from adabench.data.suites import get_spec, load_suite
    from adabench.models.factory import build_method
    from adabench.models.loading import load_model
    from adabench.sweep.cell import prepare_samples
    from adabench.sweep.group import AA, Arm, GroupData

    loaded = load_model("tiny", device="cpu")
    spec = get_spec("shapes")
    samples = load_suite("shapes", limit=4, seed=0)
    data = GroupData(loaded, spec, samples, prepare_samples(loaded, spec, samples), 3)
    full = CellConfig(model="tiny", limit=4)
    drop = CellConfig(model="tiny", method="layer-drop", budget=0.5, limit=4)
    arms = [
        Arm(full.cell_id(), full, build_method("full", loaded, 1.0)),
        Arm(drop.cell_id(), drop, build_method("layer-drop", loaded, 0.5)),
        Arm(AA, full, build_method("full", loaded, 1.0), hidden=True),
    ]
    return data, arms


def _run(data, arms, done=None):
    from adabench.sweep.group import iter_arms

    gen = iter_arms(data, arms, order="interleaved", warmup=0, repeats=1, seed=3, gid="g",
                    done=done, chunk=2)  # fmt: skip
    chunks = []
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value, chunks
        if item[0] == "chunk":
            chunks.append(item[2])


def _order(rows):
    return [(m["arm"], m["sample"]) for m in sorted(rows, key=lambda m: m["t_s"])]


def test_resume_mid_group_keeps_the_order_and_pairing(group):
    data, arms = group
    full_run, chunks = _run(data, arms)
    assert len(chunks) == 2 and len(full_run.measurements) == 4 * 3
    first_chunk = chunks[0]
    resumed, new_chunks = _run(data, arms, done=first_chunk)
    assert len(new_chunks) == 1, "only the unfinished chunk runs again"
    new_rows = new_chunks[0]
    assert _order(new_rows) == _order(chunks[1]), "same seeded order as the first run"
    assert len(resumed.measurements) == 12


def test_rows_pair_each_sample_with_full_from_the_same_pass(group):
    from adabench.sweep.group import assemble

    data, arms = group
    result, _ = _run(data, arms)
    out = {arm.key: (row, rows) for arm, row, rows in assemble(data, arms, result,
                                                               order="interleaved", seed=0)}  # fmt: skip
    assert set(out) == {arms[0].key, arms[1].key}, "the A/A arm is hidden"
    full_lat = {
        m["sample"]: m["latency_ms"] for m in result.measurements if m["arm"] == arms[0].key
    }
    row, rows = out[arms[1].key]
    for i, r in enumerate(rows):
        assert r["full_latency_ms_repeats"] == [pytest.approx(full_lat[i])]
        assert r["latency_ratio"] == pytest.approx(r["latency_ms"] / full_lat[i])
    assert row["latency_ratio_ci_low"] <= row["latency_ratio"] <= row["latency_ratio_ci_high"]
    assert row["aa_ratio"] > 0 and row["order"] == "interleaved" and row["paired_in_time"]
    assert row["flops_ratio"] == pytest.approx(0.5, abs=0.01)
    full_row = out[arms[0].key][0]
    assert full_row["latency_ratio"] == 1.0 and full_row["aa_ratio"] == row["aa_ratio"]


def test_one_model_at_a_time_frees_the_previous_model_before_loading_the_next():
    import gc
    import weakref

    from adabench.sweep.runner import one_model_at_a_time

    class Model:
        pass

    alive: list[weakref.ref] = []

    def load(name):
        gc.collect()
        assert all(r() is None for r in alive), "the previous model is still referenced"
        m = Model()
        alive.append(weakref.ref(m))
        return m

    cells = [CellConfig(model=m) for m in ("a", "a", "b", "c")]
    seen = []
    for loaded, model_cells in one_model_at_a_time(cells, load):
        seen.append(len(model_cells))
        del loaded  # the caller drops its reference, as iter_cells does
    assert seen == [2, 1, 1]


def test_each_model_loads_once_across_contention_levels_and_never_under_stress(monkeypatch):
    """Item 6 of GPU readiness II: the model is the outer loop; a stress runs only around the
    groups, never while a model loads or a suite's samples are prepared."""
    from contextlib import nullcontext
    from pathlib import Path

    from adabench.config import SweepConfig
    from adabench.contention import controller
    from adabench.sweep import runner
    from adabench.sweep.grid import expand

    events, stress_on = [], []

    class FakeStress:
        pids: list = []

        def __init__(self, level, kind, device):
            self.level = level

        def __enter__(self):
            stress_on.append(self.level)
            return self

        def __exit__(self, *exc):
            stress_on.pop()

    def load(name, cfg):
        events.append(("load", name, tuple(stress_on)))
        return object()

    def prepare(loaded, suite, cfg):
        events.append(("prepare", suite, tuple(stress_on)))
        return (suite, [], [])

    def run_suite(cfg, run_dir, loaded, suite_data, cells, stress, driver, where, on_sample):
        events.append(("group", cells[0].model, suite_data[0], tuple(stress_on)))
        yield from ()

    monkeypatch.setattr(controller, "Contention", FakeStress)
    monkeypatch.setattr(runner, "_load", load)
    monkeypatch.setattr(runner, "_prepare", prepare)
    monkeypatch.setattr(runner, "_run_suite", run_suite)
    monkeypatch.setattr(runner, "_schedule", lambda stress, cfg: nullcontext())
    cfg = SweepConfig(
        models=["a", "b"], methods=["full"], suites=["s1", "s2"], contention=[0.0, 0.5]
    )
    cells, _ = expand(cfg, variants={"a": None, "b": None})
    list(runner.iter_cells(cfg, Path("unused"), cells))
    assert [e for e in events if e[0] == "load"] == [("load", "a", ()), ("load", "b", ())]
    assert [e for e in events if e[0] == "prepare"] == [("prepare", s, ()) for s in
                                                        ("s1", "s2", "s1", "s2")]  # fmt: skip
    groups = [e for e in events if e[0] == "group"]
    assert groups == [
        ("group", m, s, (level,)) for m in ("a", "b") for level in (0.0, 0.5) for s in ("s1", "s2")
    ]
