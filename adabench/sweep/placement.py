"""Where a group of cells runs: host, device model and GPU UUID, plus the host's fingerprint."""

from __future__ import annotations

import socket
from typing import Any


def placement(device) -> dict[str, Any]:
    """Returns {"hostname", "device_name", "gpu_uuid", "fingerprint"} for `device` (a torch.device).

    `device_name` is the GPU model on CUDA and the CPU model on CPU; `gpu_uuid` is the CUDA
    device's UUID ("GPU-…", as nvidia-smi prints it) and "" on CPU.
    """
    from adabench.measure.env import fingerprint

    fp = fingerprint()
    if device.type == "cuda":
        import torch

        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        name, uuid = props.name, _uuid_text(getattr(props, "uuid", ""))
    else:
        name, uuid = fp["cpu"].get("model") or "cpu", ""
    return {
        "hostname": socket.gethostname(),
        "device_name": name,
        "gpu_uuid": uuid,
        "fingerprint": fp,
    }


def _uuid_text(uuid: Any) -> str:
    text = str(uuid)
    return text if not text or text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"
