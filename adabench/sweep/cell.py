"""The samples of a cell, prepared once: tokenized prompts and image tensors on the host.

`adabench eval` runs one cell (`adabench.sweep.group.run_single`); the sweep runs a group of
cells together, paired sample by sample (adabench/sweep/group.py: the one sample loop both
use). Latency is the model's time (vision tower, prefill, decode) at batch size 1 with greedy
decoding; tokenization and image preprocessing happen here, once per suite, outside the timed
region, and each prepared sample moves to the device just before its timed runs.
"""

from __future__ import annotations

import copy

from adabench.data.sample import Sample, SuiteSpec
from adabench.errors import UserError
from adabench.models.loading import LoadedModel
from adabench.sweep.cell_config import CellConfig
from adabench.sweep.generate import PreparedSample

__all__ = ["CellConfig", "prepare_samples"]


def prepare_samples(
    loaded: LoadedModel, spec: SuiteSpec, samples: list[Sample], max_new_tokens: int | None = None
) -> list[PreparedSample]:
    """Returns processor outputs for `samples`, kept on the host (pinned when the model is on
    CUDA) in the model's dtype; `PreparedSample.to(device)` moves one before it is timed.

    Each image is read through `adabench.data.images.read_image` (a bad one: UserError naming
    the sample and file). A prompt whose tokens + `max_new_tokens` (default: the suite's)
    exceed the model's context is refused naming the sample and both numbers, or — when the
    suite says `truncate: left|right` — its question is cut to fit and the number of question
    tokens cut is stored in `sample.meta["truncated_tokens"]` (0 for the others)."""
    import torch

    from adabench.data.hf_suites import prepare_image
    from adabench.data.images import read_image
    from adabench.models.wrappers import rotary_positions, wrapper_of

    pin = loaded.device.type == "cuda"
    image_token = loaded.model.config.image_token_id
    wrapper = wrapper_of(loaded.model.config)
    new_tokens = max_new_tokens or spec.max_new_tokens
    out = []
    for s in samples:
        image = prepare_image(spec, read_image(s), loaded.processor)  # pad-to-square where asked
        s.meta["image_px"] = f"{image.width}x{image.height}"  # as the processor gets it
        enc = _fit_context(loaded, spec, s, image, new_tokens)
        ids, pixels = enc["input_ids"], enc["pixel_values"].to(loaded.dtype)
        positions = torch.nonzero(ids[0] == image_token).squeeze(1)  # on the host: no sync
        visual = {k: enc[k] for k in wrapper.visual_keys if k in enc}
        rotary = rotary_positions(wrapper, loaded.model, ids, dict(enc))  # host, untimed
        if pin:
            ids, pixels, positions = ids.pin_memory(), pixels.pin_memory(), positions.pin_memory()
            visual = {k: v.pin_memory() for k, v in visual.items()}
        out.append(PreparedSample(s.id, ids, pixels, positions, visual, rotary))
    return out


def _fit_context(loaded: LoadedModel, spec: SuiteSpec, sample: Sample, image, new_tokens: int):
    """Returns the processor output of `sample` that fits the context (see `prepare_samples`)."""
    from adabench.models.wrappers import wrapper_of
    from adabench.sweep.prompts import build_prompt
    from adabench.sweep.suite_data import TRUNCATE_MODES, context_positions, overflow_message

    wrapper = wrapper_of(loaded.model.config)

    def encode(rendered: str):
        prompt, source = build_prompt(loaded.processor, wrapper, rendered, f"sample {sample.id}")
        sample.meta["prompt_source"] = source
        return loaded.processor(images=image, text=prompt, return_tensors="pt")

    enc = encode(spec.render_prompt(sample))
    sample.meta["truncated_tokens"] = 0
    context = context_positions(loaded.config)
    tokens = int(enc["input_ids"].shape[1])
    if context is None or tokens + new_tokens <= context:
        return enc
    mode = spec.extra.get("truncate")
    if mode not in TRUNCATE_MODES:
        raise UserError(
            overflow_message(spec.name, sample.id, loaded.name, tokens, new_tokens, context)
        )
    tokenizer = loaded.processor.tokenizer
    question = tokenizer(sample.question, add_special_tokens=False)["input_ids"]
    cut = tokens + new_tokens - context
    for _ in range(8):  # decoding and re-encoding may merge tokens differently: re-measure
        if cut >= len(question):
            raise UserError(
                overflow_message(spec.name, sample.id, loaded.name, tokens, new_tokens, context)
                + " (the prompt does not fit even without its question)"
            )
        kept = question[cut:] if mode == "left" else question[: len(question) - cut]
        short = copy.copy(sample)
        short.question = tokenizer.decode(kept)
        enc = encode(spec.render_prompt(short))
        excess = int(enc["input_ids"].shape[1]) + new_tokens - context
        if excess <= 0:
            sample.meta["truncated_tokens"] = cut
            return enc
        cut += excess
    raise UserError(
        overflow_message(spec.name, sample.id, loaded.name, tokens, new_tokens, context)
        + " (truncation did not converge)"
    )
