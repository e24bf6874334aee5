"""Where a group of cells runs: host, device model and GPU UUID, plus the host's fingerprint."""

from __future__ import annotations

import socket
from typing import Any


def placement(device) -> dict[str, Any]:
    """Returns {"hostname", "device_name", "gpu_uuid", "fingerprint"} for `device` (a torch.device).

    `device_name` is the GPU model on CUDA and the CPU model on CPU; `gpu_uuid` is the CUDA
    device's UUID ("GPU-…", or "MIG-…" for a MIG instance, as nvidia-smi prints it) and "" on CPU.
    """
    from adabench.measure.env import fingerprint

    fp = fingerprint()
    if device.type == "cuda":
        import torch

        from adabench.measure.device import gpu_uuid

        index = device.index if device.index is not None else torch.cuda.current_device()
        name, uuid = torch.cuda.get_device_properties(index).name, gpu_uuid(index)
    else:
        name, uuid = fp["cpu"].get("model") or "cpu", ""
    return {
        "hostname": socket.gethostname(),
        "device_name": name,
        "gpu_uuid": uuid,
        "fingerprint": fp,
    }
