"""FlopCounterMode counts of model compute, the same on every transformers release adabench admits.

Building a rotary table is not model compute: some transformers releases (5.17) build it with a
matmul (inv_freq ⊗ positions) that FlopCounterMode counts, others (5.25) with an elementwise
product it does not count, so `counted` leaves out what the `rotary_emb` modules count.
`make test-floors` runs the unit suite on the oldest release the floors admit.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def counted(fn) -> int:
    """Returns the FLOPs FlopCounterMode counts in `fn()` (no grad), less those of the modules
    named `rotary_emb` (the rotary tables)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    rotary = sum(
        sum(ops.values())
        for module, ops in counter.get_flop_counts().items()
        if module.split(".")[-1].startswith("rotary_emb")
    )
    return counter.get_total_flops() - rotary


def cache_of(out) -> dict:
    """Returns the keyword that hands `out`'s KV cache to the next forward: `cache` in current
    transformers, `past_key_values` in older releases (5.17)."""
    if getattr(out, "cache", None) is not None:
        return {"cache": out.cache}
    return {"past_key_values": out.past_key_values}
