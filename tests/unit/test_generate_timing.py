"""One timed generation: a single synchronised region per request for every method (inner regions
are spans), the overhead split, and AdaLLaVA's decided plans executed exactly (views/copies equal
the masked full-compute reference)."""

import pytest
import torch

from adabench.measure.timing import Timer
from adabench.models.execution import LlavaRunner, prefill
from adabench.models.factory import build_method
from adabench.models.loading import load_model
from adabench.sweep.generate import generate
from tests.conftest import _prepared_test_samples


class CountingTimer(Timer):
    """A CPU timer that counts synchronised regions (`track`), unsynchronised GPU-style ones
    (`span`) and wall-clock host ones (`host_span`)."""

    def __init__(self) -> None:
        super().__init__("cpu")
        self.tracks = self.spans = self.host_spans = 0

    def host_span(self):
        self.host_spans += 1
        return super().host_span()

    def track(self):
        self.tracks += 1
        return super().track()

    def span(self):
        self.spans += 1
        return super().span()


@pytest.mark.parametrize(
    "variant,method,budget",
    [
        ("L", "full", 1.0),
        ("L", "adallava-l", 0.75),
        ("H", "adallava-h", 0.75),
        ("H", "head-prune", 0.75),
    ],
)
def test_one_synchronised_region_per_generation_and_the_overhead_split(
    random_adallava_dirs, variant, method, budget
):
    loaded = load_model(str(random_adallava_dirs[variant]), device="cpu")
    runner = LlavaRunner(loaded.model)
    m = build_method(method, loaded, budget)
    for ps in _prepared_test_samples(3):
        timer = CountingTimer()
        g = generate(runner, m, ps, 3, None, timer)
        assert timer.tracks == 1  # the end-to-end block only: nothing adds a synchronisation
        assert timer.spans >= 1 + len(g.decode_ms)  # prefill, each decode step
        assert timer.host_spans >= 2  # request (encoder) and plan: host work, wall clock
        assert set(g.overhead_parts_ms) == {"encoder", "scheduler", "plan"}
        assert g.overhead_ms == pytest.approx(sum(g.overhead_parts_ms.values()))
        assert (g.overhead_parts_ms["scheduler"] > 0) == method.startswith("adallava")
        assert 0 < g.prefill_ms < g.latency_ms and len(g.decode_ms) == len(g.token_ids) - 1


def test_the_latency_token_is_computed_once_per_budget(random_adallava_dirs):
    loaded = load_model(str(random_adallava_dirs["L"]), device="cpu")
    head = loaded.adallava
    calls = []
    head.latency_encoder.register_forward_hook(lambda *a: calls.append(1))
    m = build_method("adallava-l", loaded, 0.75)
    ps = _prepared_test_samples(1)[0]
    with torch.inference_mode():
        tokens = [m.request(ps.sample_id, ps.input_ids, None).extra_embeds for _ in range(3)]
    assert len(calls) == 1 and all(t is tokens[0] for t in tokens)
    torch.testing.assert_close(tokens[0], head.latency_token(m.k))
    with torch.no_grad():
        head.latency_encoder.fc2.bias.add_(1.0)  # weights changed in place: recomputed
    fresh = head.cached_latency_token(m.k)
    assert len(calls) == 3  # the check above, then the recomputation
    torch.testing.assert_close(fresh, head.latency_token(m.k))


@pytest.mark.parametrize("variant", ["L", "H"])
def test_decided_plans_run_exactly_the_masked_reference(random_adallava_dirs, variant):
    """Prefill with the scheduler mid-forward (views and copies of kept units) gives the logits
    of forward_masked: full compute with the same plan as 0/1 masks."""
    from adabench.models.adallava.model import forward_masked

    loaded = load_model(str(random_adallava_dirs[variant]), device="cpu")
    runner, head = LlavaRunner(loaded.model), loaded.adallava
    partial = 0
    with torch.no_grad():
        for ps in _prepared_test_samples(4):
            embeds = runner.embed(ps.input_ids, runner.image_features(ps.pixel_values))
            for budget in (0.6, 0.75, 0.9):
                k = head.k_for(budget)
                seq = torch.cat([embeds, head.cached_latency_token(k)], dim=1)
                logits, state = prefill(
                    runner,
                    seq,
                    None,
                    seq.shape[1] + 1,
                    decide=lambda h, k=k: head.plan(h, k),
                    decide_at=head.config.prefix_layers,
                )
                t = seq.shape[1] - 1
                ref = forward_masked(
                    runner, head, seq, torch.tensor([t]), torch.tensor([k]), sample=False
                )[:, t]
                torch.testing.assert_close(logits, ref, atol=1e-5, rtol=1e-4)
                partial += sum(lp is not None and not lp.is_full for lp in state.plan.layers)
    assert (partial > 0) == (variant == "H")
    assert (runner.cache_bytes > 0) == (variant == "H")  # some kept head sets were split
