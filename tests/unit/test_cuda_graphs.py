"""`--cuda-graphs`' static-buffer decode step (adabench/models/cuda_graphs.py), run eagerly on
CPU: the same tokens and logits as the eager step, for full, skipped, partial (split heads),
FastV (entries of different lengths) and sliding-window plans; the plan's buffers are reused by
the next request; the CLI refuses the flag without CUDA."""

from __future__ import annotations

import pytest
import torch

from adabench.models import cuda_graphs
from adabench.models.execution import LlavaRunner, decode_step, prefill
from adabench.models.plan import FULL_LAYER, LayerPlan, Plan
from tests.conftest import build_random_llava
from tests.family_models import build_family_llava, prompt_inputs

STEPS = 12


def _plans(n_layers: int) -> dict[str, Plan]:
    split = LayerPlan(heads=(0, 2), mlp_groups=(1, 3))  # several runs: Runs or copies
    return {
        "full": Plan.full(n_layers),
        "skip": Plan.from_kept_blocks(n_layers, [0, 2, 3]),
        "split-heads": Plan(
            layers=(FULL_LAYER, split, None, LayerPlan(heads=(1,), mlp_groups=())),
            mlp_group_count=4,
        ),
        "fastv": Plan.full(n_layers).with_tokens(fastv_layer=2, fastv_removed=5),
    }


def _decode_both(runner, model, processor, plan, steps=STEPS, index=0):
    """Returns (eager logits, static logits) per step of greedy decode from one prompt."""
    ids, pixels = prompt_inputs(processor, index)
    with torch.inference_mode():
        embeds = runner.embed(ids, runner.image_features(pixels))
    visual = torch.nonzero(ids[0] == model.config.image_token_id).squeeze(1)
    fastv = plan.fastv_layer is not None
    out = []
    for static in (False, True):
        with torch.inference_mode():
            logits, state = prefill(
                runner,
                embeds,
                plan,
                embeds.shape[1] + steps,
                visual_positions=visual if fastv else None,
            )
            token = logits.argmax(-1, keepdim=True)
            step = cuda_graphs.static_decode(runner, state, capture=False) if static else None
            seq = []
            for _ in range(steps):
                logits = step.step(token) if static else decode_step(runner, token, state)
                seq.append(logits.clone())
                token = logits.argmax(-1, keepdim=True)
            out.append(torch.cat(seq))
    return out


@pytest.mark.parametrize("name", ["full", "skip", "split-heads", "fastv"])
def test_static_step_equals_the_eager_step(name):
    model, processor = build_random_llava(layers=4, heads=4, kv_heads=2)
    runner = LlavaRunner(model)
    eager, static = _decode_both(runner, model, processor, _plans(4)[name])
    assert torch.equal(eager.argmax(-1), static.argmax(-1))
    torch.testing.assert_close(static, eager, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", ["mistral", "gemma2"])
def test_static_step_masks_sliding_windows_and_soft_caps_like_the_eager_step(family):
    # 12 steps on a ~20-token prompt with window 6: every decode query is past the window
    model, processor = build_family_llava(family, layers=4)
    runner = LlavaRunner(model)
    eager, static = _decode_both(runner, model, processor, Plan.full(4))
    assert torch.equal(eager.argmax(-1), static.argmax(-1))
    torch.testing.assert_close(static, eager, rtol=1e-4, atol=1e-4)


def test_a_plan_keeps_its_static_buffers_across_requests_and_reloads_them():
    model, processor = build_random_llava(layers=4)
    runner = LlavaRunner(model)
    plan = Plan.full(4)
    first = _decode_both(runner, model, processor, plan, index=0)
    held = next(iter(runner.decode_graphs.decodes.values()))
    second = _decode_both(runner, model, processor, plan, index=1)  # another prompt
    assert next(iter(runner.decode_graphs.decodes.values())) is held
    assert len(runner.decode_graphs.decodes) == 1
    torch.testing.assert_close(second[1], second[0], rtol=1e-4, atol=1e-4)
    assert not torch.equal(first[0], second[0])


def test_the_graphs_lru_is_capped_by_free_device_memory(monkeypatch):
    model, processor = build_random_llava(layers=4)
    runner = LlavaRunner(model)
    _decode_both(runner, model, processor, Plan.full(4))
    one = runner.decode_graphs.nbytes
    assert one > 0
    _decode_both(runner, model, processor, Plan.from_kept_blocks(4, [0, 1]))
    assert len(runner.decode_graphs.decodes) == 2  # no cap off CUDA (free_bytes is None)
    # a fake device on which FREE_FRACTION of (free + held) fits one plan's buffers, not two
    monkeypatch.setattr(cuda_graphs, "free_bytes", lambda device: 3 * one)
    _decode_both(runner, model, processor, Plan.from_kept_blocks(4, [0, 2, 3]))
    keys = [key[0] for key in runner.decode_graphs.decodes]
    assert keys == [Plan.from_kept_blocks(4, [0, 2, 3])]  # the older plans' buffers went


def test_generate_with_cuda_graphs_gives_the_same_tokens_on_cpu(random_adallava_dirs):
    from adabench.measure.timing import Timer
    from adabench.models.factory import build_method
    from adabench.models.loading import load_model
    from adabench.sweep.generate import generate
    from tests.conftest import _prepared_test_samples

    loaded = load_model(str(random_adallava_dirs["H"]), device="cpu")
    runner = LlavaRunner(loaded.model)
    method = build_method("adallava-h", loaded, 0.75, {}, 0)
    for ps in _prepared_test_samples(3):
        plain = generate(runner, method, ps, 8, None, Timer("cpu"))
        graphed = generate(runner, method, ps, 8, None, Timer("cpu"), cuda_graphs=True)
        assert graphed.token_ids == plain.token_ids
        assert len(graphed.decode_ms) == len(plain.decode_ms) == 7
    assert runner.decode_graphs.decodes  # the static step ran


def test_cuda_graphs_are_refused_without_cuda(monkeypatch):
    from typer.testing import CliRunner

    from adabench.cli import app

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for args in (
        ["eval", "--cuda-graphs", "--limit", "1"],
        ["sweep", "--cuda-graphs", "--limit", "1", "--repeats", "1", "--warmup", "0"],
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = [x for x in result.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and "--cuda-graphs needs a CUDA device" in lines[0]


def test_busy_fraction_divides_held_gpu_time_by_normal_time_and_says_why_when_unknown():
    import math

    from adabench.measure.busy import busy_fraction, launch_bound
    from adabench.sweep.group import busy_columns

    assert busy_fraction([2.0, 2.0], [5.0, 5.0]) == (0.4, "")
    assert launch_bound(0.4) and not launch_bound(0.9) and not launch_bound(math.nan)
    value, note = busy_fraction([2.0, math.nan], [5.0, 5.0])
    assert math.isnan(value) and "hold too short" in note
    value, note = busy_fraction([], [])
    assert math.isnan(value) and "no decode step" in note
    cols = busy_columns((0.4, ""))
    assert cols == {"gpu_busy_fraction": 0.4, "gpu_busy_note": "", "launch_bound": True}


def test_a_cpu_cell_records_the_busy_fraction_as_nan_with_a_reason(random_adallava_dirs):
    import math

    from adabench.data.suites import get_spec, load_suite
    from adabench.models.loading import load_model
    from adabench.sweep.cell import prepare_samples
    from adabench.sweep.cell_config import CellConfig
    from adabench.sweep.group import run_single

    loaded = load_model(str(random_adallava_dirs["L"]), device="cpu")
    spec, samples = get_spec("shapes"), load_suite("shapes", limit=2)
    prepared = prepare_samples(loaded, spec, samples)
    cfg = CellConfig(model="x", method="full", limit=2, warmup=1, max_new_tokens=3)
    row, _ = run_single(loaded, spec, samples, prepared, cfg)
    assert math.isnan(row["gpu_busy_fraction"]) and row["gpu_busy_note"].startswith("CPU")
    assert row["launch_bound"] is False and row["cuda_graphs"] is False


def test_the_report_names_launch_bound_cells():
    from pathlib import Path

    from adabench.report import run_warnings
    from adabench.store import load_run

    run = load_run(Path(__file__).parents[1] / "fixtures" / "tiny_run")
    cells = run.cells
    cells["gpu_busy_fraction"] = [0.45] + [0.9] * (len(cells) - 1)
    first = cells.iloc[0]
    text = " ".join(run_warnings(run))
    assert "1 cell(s) launch-bound" in text and f"{first.method}@{first.budget:g}" in text
    cells["gpu_busy_fraction"] = 0.9
    assert "launch-bound" not in " ".join(run_warnings(run))
