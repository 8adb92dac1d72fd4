"""Host arrays onto the device without making the host wait."""
from __future__ import annotations

import numpy as np
import torch


def host_to_device(array: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """``array`` as a tensor on ``device``. On a GPU it is pinned first, so the copy is queued
    behind the kernels already running instead of waiting for them (a copy from pageable memory
    synchronises the stream); on the CPU the tensor shares ``array``'s memory, nothing is copied."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if torch.device(device).type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)
