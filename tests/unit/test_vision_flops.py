"""The analytic vision FLOPs of every wrapper (adabench/models/vision_flops.py) equal
FlopCounterMode on HF's own `get_image_features` of its tiny build, at two image sizes."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from adabench.models.vision_flops import sample_vision_flops
from adabench.models.wrappers import wrapper_of
from tests.wrapper_models import WRAPPERS, build, inputs

_MODELS: dict = {}


@pytest.mark.parametrize("size", [(96, 48), (60, 90)])
@pytest.mark.parametrize("name", WRAPPERS)
def test_vision_flops_equal_the_operator_count(name, size):
    from adabench.models.execution import LlavaRunner

    if name not in _MODELS:
        _MODELS[name] = build(name, layers=2, attn="eager")
    model, proc = _MODELS[name]
    enc = inputs(proc, *size)
    wrapper = wrapper_of(model.config)
    visual = {k: enc[k] for k in wrapper.visual_keys if k in enc}
    runner = LlavaRunner(model)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        runner.image_features(enc["pixel_values"], visual)
    ours = sample_vision_flops(model.config, enc["pixel_values"].shape, visual)
    assert ours == counter.get_total_flops()
