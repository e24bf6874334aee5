"""Prepared samples stay on the host; every model-facing use moves them through
`PreparedSample.to(runner.device)`. On the `meta` device any tensor that skipped the move fails
("Tensor on device cpu is not on the expected device meta!"), so these tests catch a path that
hands a host sample to the model — the crash every CUDA `--no-weights` AdaLLaVA sweep had."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch

from adabench.data.suites import get_spec, load_suite
from adabench.models import no_weights as nw
from adabench.models.execution import LlavaRunner
from adabench.sweep.cell import prepare_samples

DEVICE_MISMATCH = "expected device"


@pytest.fixture(scope="module")
def on_meta():
    """(the tiny model and a random AdaLLaVA-L head on `meta`, host-prepared shapes samples)."""
    host = nw.build_no_weights("tiny", device="cpu", dtype="float32", seed=0, adallava_variant="L")
    spec = get_spec("shapes")
    prepared = prepare_samples(host, spec, load_suite("shapes", limit=2, seed=0))
    model = nw.create_empty(host.model.config, "meta", torch.float32).eval()
    head = host.adallava.to("meta")
    loaded = dataclasses.replace(host, model=model, device=torch.device("meta"), adallava=head)
    assert prepared[0].pixel_values.device.type == "cpu"
    return loaded, spec, prepared


def test_centring_the_scheduler_moves_host_samples(on_meta):
    loaded, _, prepared = on_meta
    assert nw.center_random_scheduler_(loaded, prepared) == 2


def test_generate_moves_host_samples(on_meta):
    from adabench.measure.timing import Timer
    from adabench.models.factory import build_method
    from adabench.sweep.generate import generate

    loaded, _, prepared = on_meta
    runner = LlavaRunner(loaded.model)
    assert runner.device.type == "meta"
    method = build_method("full", loaded, 1.0, None, 0)
    # meta tensors compute shapes, not values: the run ends at the first `.item()` (the EOS
    # check), after the vision tower, the embedding and the prefill took the moved sample
    with pytest.raises(Exception) as info:
        generate(runner, method, prepared[0], 1, None, Timer(torch.device("cpu")))
    assert DEVICE_MISMATCH not in str(info.value), info.value
    assert "meta" in str(info.value)


def test_host_work_is_timed_by_the_wall_clock(monkeypatch):
    """On CUDA an event span around host work reads ≈ 0 while kernels are queued; simulate that
    (every GPU span reads 0) and check the encoder's host work is still counted."""
    import time

    from adabench.measure import timing
    from adabench.models.factory import build_method
    from adabench.sweep.generate import generate

    loaded = nw.build_no_weights("tiny", device="cpu", dtype="float32", seed=0)
    spec = get_spec("shapes")
    (ps,) = prepare_samples(loaded, spec, load_suite("shapes", limit=1, seed=0))
    method = build_method("full", loaded, 1.0, None, 0)
    real_request = method.request

    def slow_request(*args):
        time.sleep(0.02)  # 20 ms of host work
        return real_request(*args)

    method.request = slow_request

    @contextlib.contextmanager
    def gpu_like_span(self):  # events recorded back to back: 0 ms whatever the host did
        yield timing.Span(fixed_ms=0.0)

    monkeypatch.setattr(timing.Timer, "span", gpu_like_span)
    g = generate(LlavaRunner(loaded.model), method, ps, 1, None, timing.Timer("cpu"))
    assert g.overhead_parts_ms["encoder"] >= 19.0
    with timing.Timer("cpu").host_span() as span:
        time.sleep(0.01)
    assert 9.0 <= span.elapsed_ms < 1000


def test_warm_up_includes_the_longest_prompt():
    from adabench.sweep.generate import PreparedSample
    from adabench.sweep.group import warmup_samples

    prepared = [PreparedSample(str(i), torch.zeros(1, t), torch.zeros(1)) for i, t in
                enumerate([5, 9, 30, 7])]  # fmt: skip
    assert warmup_samples(prepared, 2) == [0, 2]
    assert warmup_samples(prepared, 3) == [0, 1, 2]
    assert warmup_samples(prepared, 0) == []
    assert warmup_samples(prepared, 6) == [0, 1, 2, 3, 0, 1]
