"""Budget quantization and the latency encoder (docs/adallava.md §1–2), on 7B-shaped geometry."""

import pytest
import torch

from adabench.models.adallava import budget
from adabench.models.adallava.latency_encoder import LatencyEncoder, sinusoidal


@pytest.mark.parametrize(
    ("b", "blocks"), [(1.0, 16), (0.85, 11), (0.75, 8), (0.6, 3), (0.5, 0), (0.3, 0)]
)
def test_l_quantization_7b(b, blocks):
    u = budget.units("L", 32, 16)
    assert budget.selected_units(b, u) == blocks


@pytest.mark.parametrize(("b", "units"), [(1.0, 64), (0.85, 44), (0.75, 32), (0.6, 12), (0.5, 0)])
def test_h_quantization_7b(b, units):
    u = budget.units("H", 32, 16, num_heads=32, group_size=8)
    assert (u.total, u.prefix, u.selectable) == (128, 64, 64)
    assert budget.selected_units(b, u) == units


def test_executed_fraction_never_exceeds_budget():
    u = budget.units("L", 32, 16)
    for b in [x / 100 for x in range(50, 101)]:
        k = budget.selected_units(b, u)
        assert (16 + k) / 32 <= b + 1e-9
    assert (16 + budget.selected_units(0.85, u)) / 32 == pytest.approx(0.844, abs=1e-3)
    assert (16 + budget.selected_units(0.6, u)) / 32 == pytest.approx(0.594, abs=1e-3)


def test_encoder_value_and_min_budget():
    u = budget.units("L", 32, 16)
    assert budget.encoder_value(16, u) == pytest.approx(16 / 17)
    assert budget.min_budget(u) == 0.5


def test_latency_encoder_shapes_and_sin_first():
    emb = sinusoidal(torch.tensor([0.0, 0.5]))
    assert emb.shape == (2, 256)
    assert torch.all(emb[0, :128] == 0) and torch.all(
        emb[0, 128:] == 1
    )  # sin(0)=0 first, cos(0)=1 after
    enc = LatencyEncoder(64)
    assert enc(torch.tensor([0.1, 0.9])).shape == (2, 1, 64)
    assert enc.flops() == 2 * (256 * 64 + 64 * 64)
