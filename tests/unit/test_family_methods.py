"""Every method runs, or refuses in one line, on every decoder family (tests/family_models.py).

Each family's tiny random Llava (8 blocks, 4 query / 2 key-value heads, biases and norms
randomised) runs each method through the sweep's own cell path (`run_single`: build_method,
generate, the analytic FLOPs of the executed plan) on two shapes samples. For every cell: the
FLOPs ratio never exceeds the budget, the generation produced tokens, and a plan's shape follows
the family: AdaLLaVA-H and head-prune keep whole units of r heads that never split a key/value
group, with r MLP groups. A budget a method cannot reach is a one-line UserError on every family.
The exactness of the plans themselves (tokens equal HF) is tests/unit/test_families.py's.
"""

from __future__ import annotations

import pytest
import torch

from adabench.errors import UserError
from adabench.models.families import decoder_of
from tests.family_models import FAMILIES, build_family_llava

CELLS = (
    ("full", 1.0),
    ("layer-drop", 0.5),
    ("early-exit", 0.5),
    ("random-skip", 0.75),
    ("head-prune", 0.75),
    ("fastv", 0.75),
    ("prumerge", 0.75),
    ("prumerge+", 0.75),
    ("adallava-l", 0.75),
    ("adallava-h", 0.75),
    ("adallava-h", 0.5),
    ("adallava-l+fastv", 0.6),
    ("head-prune+prumerge", 0.6),
    ("layer-drop+prumerge+", 0.5),
)


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    """(family, LoadedModel, spec, samples, prepared, {variant: random AdaLLaVA head})."""
    from adabench.data.suites import get_spec, load_suite
    from adabench.models.loading import LoadedModel
    from adabench.models.no_weights import build_random_head
    from adabench.sweep.cell import prepare_samples

    torch.set_num_threads(1)
    model, processor = build_family_llava(request.param, layers=8)
    loaded = LoadedModel(
        request.param, "", model, processor, torch.device("cpu"), torch.float32, weights="random"
    )
    spec = get_spec("shapes")
    samples = load_suite("shapes", limit=2)
    prepared = prepare_samples(loaded, spec, samples)
    heads = {
        v: build_random_head(model.config, v, loaded.device, loaded.dtype, seed=1) for v in "LH"
    }
    return request.param, loaded, spec, samples, prepared, heads


def _run(family, method: str, budget: float, **args):
    from adabench.sweep.cell import CellConfig
    from adabench.sweep.group import run_single

    name, loaded, spec, samples, prepared, heads = family
    variant = "H" if "adallava-h" in method else "L"
    loaded.adallava = heads[variant] if "adallava" in method else None
    cfg = CellConfig(
        model=name,
        method=method,
        budget=budget,
        warmup=0,
        max_new_tokens=3,
        method_args={k: str(v) for k, v in args.items()},
    )
    return run_single(loaded, spec, samples, prepared, cfg)


@pytest.mark.parametrize(("method", "budget"), CELLS, ids=[f"{m}@{b}" for m, b in CELLS])
def test_method_runs_within_budget(family, method, budget):
    cell, rows = _run(family, method, budget)
    assert len(rows) == 2
    assert all(r["flops_ratio"] <= budget + 1e-9 for r in rows), [r["flops_ratio"] for r in rows]
    assert all(r["new_tokens"] >= 1 for r in rows)
    assert cell["flops_ratio_max"] <= budget + 1e-9
    if method not in ("full",):
        assert cell["flops_ratio"] < 1.0  # something was actually left out


@pytest.mark.parametrize("method", ["adallava-h", "head-prune"])
def test_head_units_follow_the_family(family, method):
    """Kept heads come in whole units of r heads (never part of a key/value group), MLP groups
    in the same count of units, on each family's own head geometry."""
    from adabench.measure.timing import Timer
    from adabench.models.execution import LlavaRunner
    from adabench.models.factory import build_method
    from adabench.sweep.generate import generate

    _, loaded, _, _, prepared, heads = family
    loaded.adallava = heads["H"] if method == "adallava-h" else None
    d = decoder_of(loaded.model.config)
    r = heads["H"].config.group_size
    m = build_method(method, loaded, 0.75)

    g = generate(LlavaRunner(loaded.model), m, prepared[0], 2, None, Timer(loaded.device))
    group = d.num_heads // d.num_kv_heads
    partial = [lp for lp in g.plan.layers if lp is not None and lp.heads is not None]
    assert partial  # a 0.75 plan has partial blocks
    for lp in partial:
        kept = sorted(lp.heads)
        kv = {h // group for h in kept}
        assert len(kept) == group * len(kv)  # every kept kv group is whole
        assert len(kept) % r == 0
        if lp.mlp_groups is not None:
            assert len(lp.mlp_groups) * d.num_heads == len(kept) * g.plan.mlp_group_count


def test_unreachable_budget_is_one_line(family):
    with pytest.raises(UserError) as err:
        _run(family, "fastv", 0.05)
    assert "\n" not in str(err.value) and "fastv" in str(err.value)
