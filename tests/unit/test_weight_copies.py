"""Split head/neuron sets on a GPU-like device (the `meta` device takes the CUDA policy) run as
per-run matmuls on views, with no per-request copy; copies (where a policy makes them) are capped
by the device's free memory (a fake) and evicted between requests, outside the measured block."""

from __future__ import annotations

import sys

import pytest
import torch

from adabench.models import execution
from adabench.models.block_weights import Runs
from adabench.models.execution import LlavaRunner, decode_step, prefill
from adabench.models.plan import FULL_LAYER, LayerPlan, Plan
from tests.conftest import build_random_llava


def _split_plans(n_plans: int = 6) -> list[Plan]:
    """Plans whose partial blocks keep several runs of heads and MLP groups (all distinct)."""
    sets = [(0, 2), (1, 3), (0, 3), (0, 1, 3), (0, 2, 3), (1, 2, 0)][:n_plans]
    return [
        Plan(
            layers=(FULL_LAYER, LayerPlan(heads=s, mlp_groups=s), None, FULL_LAYER),
            mlp_group_count=4,
        )
        for s in sets
    ]


def test_a_gpu_device_runs_split_sets_on_views_and_copies_nothing():
    model, _ = build_random_llava(layers=4)
    runner = LlavaRunner(model.to("meta"))  # not CPU: the CUDA policy, no memory needed
    prepared = runner.prepare(_split_plans(1)[0])
    partial = prepared[1]
    assert isinstance(partial.q, Runs) and isinstance(partial.gate, Runs)
    assert isinstance(partial.o, Runs) and isinstance(partial.down, Runs)
    assert runner.cache_bytes == 0
    for part in partial.q.parts:  # views of q_proj's weight: the same storage
        assert part[0].untyped_storage().data_ptr() == (
            model.model.language_model.layers[1]
            .self_attn.q_proj.weight.untyped_storage()
            .data_ptr()
        )


def test_per_run_views_give_the_logits_of_copies():
    model, _ = build_random_llava(layers=4)
    views, copies = LlavaRunner(model), LlavaRunner(model)
    views.runs_from_bytes, copies.runs_from_bytes = execution.CUDA_RUNS_FROM_BYTES, sys.maxsize
    embeds = torch.randn(1, 9, 64)
    plan = _split_plans(1)[0]
    out = []
    for runner in (views, copies):
        with torch.inference_mode():
            logits, state = prefill(runner, embeds, plan, 12)
            step = decode_step(runner, logits.argmax(-1, keepdim=True), state)
        out.append(torch.cat([logits, step]))
    assert views.cache_bytes == 0 < copies.cache_bytes
    torch.testing.assert_close(out[0], out[1], rtol=1e-5, atol=1e-5)


def test_copies_are_capped_by_the_free_device_memory(monkeypatch):
    model, _ = build_random_llava(layers=4)
    runner = LlavaRunner(model)
    runner.runs_from_bytes, runner.cache_limit_bytes = sys.maxsize, 1 << 40  # copy, keep all
    plans = _split_plans()
    runner.prepare(plans[0])
    one_plan = runner.cache_bytes
    for plan in plans[1:]:
        runner.prepare(plan)
    assert runner.cache_bytes == pytest.approx(len(plans) * one_plan, rel=0.5)  # no cap on CPU
    free = 2 * one_plan  # a fake device: FREE_FRACTION of (free + held) fits about one plan
    monkeypatch.setattr(execution, "free_bytes", lambda device: free)
    for plan in plans:
        runner.prepare(plan)
        cap = execution.COPY_FREE_FRACTION * (free + runner.cache_bytes)
        assert runner.cache_bytes <= max(cap, 2 * one_plan)  # the plan in use always fits
    assert runner.cache_bytes < len(plans) * one_plan / 2


class _CopyingRunner(LlavaRunner):
    """The CUDA keep-nothing limit with copies made (CUDA's policy before issue 34)."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self.runs_from_bytes, self.cache_limit_bytes = sys.maxsize, 0


def test_an_arms_copies_are_evicted_outside_the_next_measured_block(monkeypatch):
    from adabench.data.suites import get_spec, load_suite
    from adabench.measure.memory import PeakMemory
    from adabench.models.factory import build_method
    from adabench.models.loading import load_model
    from adabench.sweep import group
    from adabench.sweep.cell import prepare_samples
    from adabench.sweep.cell_config import CellConfig

    held_at_entry = []

    class RecordingPeak(PeakMemory):
        def __enter__(self):
            held_at_entry.append(runner_box[0].cache_bytes)
            return super().__enter__()

    runner_box = []

    def make_runner(model):
        runner_box.append(_CopyingRunner(model))
        return runner_box[0]

    monkeypatch.setattr(group, "LlavaRunner", make_runner)
    monkeypatch.setattr(group, "PeakMemory", RecordingPeak)
    loaded = load_model("tiny-adallava-h", device="cpu")
    spec, samples = get_spec("shapes"), load_suite("shapes", limit=3)
    data = group.GroupData(loaded, spec, samples, prepare_samples(loaded, spec, samples), 3)
    arms = []
    for method, budget in (("adallava-h", 0.75), ("full", 1.0), ("head-prune", 0.75)):
        cell = CellConfig(model="tiny-adallava-h", method=method, budget=budget, limit=3)
        arms.append(group.Arm(cell.cell_id(), cell, build_method(method, loaded, budget)))
    result = group.run_arms(data, arms, order="interleaved", warmup=1, repeats=1, seed=0,
                            gid="g")  # fmt: skip
    assert len(held_at_entry) == 9
    assert held_at_entry == [0] * 9  # no copy of an earlier request is alive at entry
    split = [m for m in result.measurements if m["arm"] != arms[1].key]
    assert max(m["cache_bytes"] for m in split) > 0  # the requests did copy
