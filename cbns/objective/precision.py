"""Mixed precision: the towers and the score matrix products in bfloat16, the rest in float32.

``precision bf16`` runs the towers' forward passes under :func:`torch.autocast` (bfloat16 on
CUDA and on the CPU) and makes the sampled softmax multiply bfloat16 operands into float32
results (:mod:`cbns.objective.fused_softmax`: the scores are never rounded to bfloat16), while
the softmax itself, ``P - Y``, the log q correction, the learned bias, the loss and every
accumulated gradient stay in float32. ``fp32`` changes nothing.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

#: ``precision`` values and the compute dtype of each.
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype of the towers' and the score products' arithmetic."""
    return PRECISIONS[precision]


def autocast_for(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of the context the towers run under: autocast to bfloat16 for ``bf16``, nothing
    for ``fp32``."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = compute_dtype(precision)
    # ``meta`` (the device the step's residency is proven on) has no autocast of its own: the
    # CPU's stands in, which leaves meta tensors in their dtype.
    kind = "cpu" if device.type == "meta" else device.type
    return lambda: torch.autocast(device_type=kind, dtype=dtype)
