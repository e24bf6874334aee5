"""The samples of a cell, prepared once: tokenized prompts and image tensors on the host.

`adabench eval` runs one cell (`adabench.sweep.group.run_single`); the sweep runs a group of
cells together, paired sample by sample (adabench/sweep/group.py: the one sample loop both
use). Latency is the model's time (vision tower, prefill, decode) at batch size 1 with greedy
decoding; tokenization and image preprocessing happen here, once per suite, outside the timed
region, and each prepared sample moves to the device just before its timed runs.
"""

from __future__ import annotations

from adabench.data.sample import Sample, SuiteSpec
from adabench.models.loading import LoadedModel
from adabench.sweep.cell_config import CellConfig
from adabench.sweep.generate import PreparedSample

__all__ = ["CellConfig", "prepare_samples"]


def prepare_samples(
    loaded: LoadedModel, spec: SuiteSpec, samples: list[Sample]
) -> list[PreparedSample]:
    """Returns processor outputs for `samples`, kept on the host (pinned when the model is on
    CUDA) in the model's dtype; `PreparedSample.to(device)` moves one before it is timed."""
    import torch

    from adabench.data.hf_suites import prepare_image

    pin = loaded.device.type == "cuda"
    image_token = loaded.model.config.image_token_id
    out = []
    for s in samples:
        image = prepare_image(spec, s.image, loaded.processor)  # pad-to-square where asked
        enc = loaded.processor(images=image, text=spec.render_prompt(s), return_tensors="pt")
        ids, pixels = enc["input_ids"], enc["pixel_values"].to(loaded.dtype)
        positions = torch.nonzero(ids[0] == image_token).squeeze(1)  # on the host: no sync
        if pin:
            ids, pixels, positions = ids.pin_memory(), pixels.pin_memory(), positions.pin_memory()
        out.append(PreparedSample(s.id, ids, pixels, positions))
    return out
