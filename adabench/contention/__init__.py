"""Synthetic contention: calibrated co-running stress in separate processes (CPU or GPU).

`Contention(level, kind, device)` (controller.py) starts and always stops the stress workers;
`calibrate.measure_slowdown(contention)` and `calibrate.calibrate(...)` report the slowdown a
fixed reference workload sees. Importing this package does not import torch.
"""

from __future__ import annotations

from adabench.contention.controller import Contention, ContentionError
from adabench.contention.workers import CPU_KINDS, KINDS

__all__ = ["CPU_KINDS", "KINDS", "Contention", "ContentionError"]
