"""Counting what a training step dispatches, and which of those ops would make a GPU wait.

Each ATen op a step dispatches is roughly one kernel launch on a GPU; an op whose result the
host needs before it can go on (a value read back, an output whose size depends on the data, a
copy to or from host memory) makes the host wait for every kernel queued before it. Both are
visible on the CPU: :class:`DispatchCounter` is a ``TorchDispatchMode`` that counts every op
and, apart, those of :func:`host_read`, so the proof that a step never waits is made in CI
without a GPU (``benchmarks/gpu_readiness.py``, ``tests/training/test_step_on_meta.py``).
"""
from __future__ import annotations

from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten

#: Ops that hand a value, or a data-dependent shape, back to the host.
_READS = {
    _aten._local_scalar_dense.default,   # .item(), float(t), bool(t), int(t), .tolist()
    _aten.nonzero.default, _aten.masked_select.default,
    _aten.unique_consecutive.default, _aten._unique2.default, _aten.unique_dim.default,
    _aten.equal.default, _aten.is_nonzero.default,
    _aten._coalesce.default,             # sparse coalesce: as many rows as distinct indices
}

#: Ops that make a tensor from host memory (``torch.tensor(...)`` inside the step).
_FROM_HOST = {_aten.lift_fresh.default, _aten.lift_fresh_copy.default}


def _is_bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8) for t in indices or ())


def host_read(func, args, kwargs) -> str | None:
    """Why ``func(*args, **kwargs)`` would make a GPU wait for the host, or None when it would not."""
    if func in _READS:
        return str(func.overloadpacket.__name__)
    if func in _FROM_HOST:
        return "tensor from host memory"
    name = func.overloadpacket.__name__
    if name in ("index", "_index_put_impl_", "index_put", "index_put_") and _is_bool_index(args):
        return f"{name} with a boolean mask"
    if name == "repeat_interleave" and kwargs.get("output_size") is None and (
            len(args) < 3 or args[2] is None) and isinstance(args[0], torch.Tensor) and args[0].dtype == torch.long \
            and (len(args) < 2 or isinstance(args[1], (torch.Tensor, type(None)))):
        return "repeat_interleave without output_size"
    if name in ("_to_copy", "to") and kwargs.get("device") is not None and torch.device(kwargs["device"]).type == "cpu":
        src = args[0] if args else None
        if isinstance(src, torch.Tensor) and src.device.type != "cpu":
            return "copy to the host"
    if name in ("copy_",) and len(args) > 1 and isinstance(args[1], torch.Tensor) and \
            args[0].device.type != args[1].device.type:
        return "copy across devices"
    return None


def is_view(func) -> bool:
    """Whether ``func`` only makes a view or reads metadata (no kernel runs on a GPU)."""
    return func.is_view or torch.Tag.pointwise not in func.tags and func.overloadpacket.__name__ in _METADATA


_METADATA = {"detach", "alias", "lift_fresh", "_unsafe_view", "view", "t", "expand", "slice", "select",
             "unsqueeze", "squeeze", "permute", "transpose", "as_strided", "_reshape_alias", "split", "unbind",
             "sym_size", "sym_stride", "is_same_size", "_has_compatible_shallow_copy_type",
             "_record_function_enter_new", "_record_function_exit"}


class DispatchCounter(TorchDispatchMode):
    """``with DispatchCounter() as c: ...``: ``c.ops`` every ATen op dispatched, ``c.launches`` those
    that are not views (each roughly one kernel launch on a GPU), ``c.reads`` those that would make
    a GPU wait (:func:`host_read`), ``c.read_kinds`` a Counter of why, and ``c.op_kinds`` a Counter
    of op names. ``raise_on_read`` raises :class:`HostReadError` at the first read instead (to
    find where it comes from)."""

    def __init__(self, raise_on_read: bool = False):
        super().__init__()
        self.raise_on_read = raise_on_read
        self.ops = self.launches = self.reads = 0
        self.read_kinds: Counter = Counter()
        self.op_kinds: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.ops += 1
        self.launches += not is_view(func)
        self.op_kinds[func.overloadpacket.__name__] += 1
        why = host_read(func, args, kwargs)
        if why is not None:
            self.reads += 1
            self.read_kinds[why] += 1
            if self.raise_on_read:
                raise HostReadError(f"{func}: {why}")
        return func(*args, **kwargs)


class HostReadError(RuntimeError):
    """An op that would make a GPU wait ran where none may (raised by a raising counter)."""
