"""The latency encoder (docs/adallava.md §2): budget → one extra token embedding.

x = 2π·e; f_i = 1/10000^(i/128) for i < 128; emb = [sin(x·f), cos(x·f)] (256-d, sin first);
token = Linear(D, D)(GELU(Linear(256, D)(LayerNorm(256)(emb)))).
"""

from __future__ import annotations

import math

import torch
from torch import nn

NUM_FREQS = 128


def sinusoidal(e: torch.Tensor) -> torch.Tensor:
    """Returns the 256-d sinusoidal embedding of encoder values `e` [B] (sin first)."""
    freqs = 1.0 / (
        10000 ** (torch.arange(NUM_FREQS, dtype=torch.float32, device=e.device) / NUM_FREQS)
    )
    x = 2 * math.pi * e.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(x), torch.cos(x)], dim=-1)


class LatencyEncoder(nn.Module):
    """Maps the quantized budget value e ∈ [0, 1] to a [B, 1, D] latency token."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(2 * NUM_FREQS)
        self.fc1 = nn.Linear(2 * NUM_FREQS, hidden_size)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_size, hidden_size)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Returns the latency tokens [B, 1, D] for encoder inputs e [B] (docs/adallava.md §2)."""
        emb = sinusoidal(e).to(self.fc1.weight.dtype)
        return self.fc2(self.act(self.fc1(self.norm(emb))))[:, None, :]

    def flops(self) -> int:
        """Returns the FLOPs of one token through the encoder (2 × MAC of both linears)."""
        return 2 * (
            self.fc1.in_features * self.fc1.out_features
            + self.fc2.in_features * self.fc2.out_features
        )
