"""The data-parallel steps of a model with row-sparse tables, one routine for every backend.

The CUDA test runs it in a one-process NCCL group, the distributed test in two gloo processes on
the CPU (against one process on the concatenated batches). The model has both kinds of
parameters: the pooled user tower's MLP is dense, the id tables and the item bias take row-sparse
gradients (``sparse_updates``). NCCL has no sparse all-reduce, so the towers are wrapped as the
trainer wraps them: :func:`cbns.distributed.gradients.data_parallel` (DDP for the dense
parameters only), then after backward the tables' gradients are averaged by
:func:`cbns.distributed.gradients.average_sparse_grads` and the run's optimizer steps (RowAdam
for the tables, fused Adam for the MLP).
"""
from __future__ import annotations

import socket

import numpy as np
import torch
import torch.distributed as dist

from cbns.api import assemble
from cbns.config import TrainConfig
from cbns.data.history import HistoryContext
from cbns.data.interactions import Interactions
from cbns.distributed.context import DistContext
from cbns.distributed.gradients import average_sparse_grads, data_parallel
from cbns.training.optimizer import build_optimizer
from cbns.training.pair_encoder import PairEncoder

#: Three global batches of 8 rows of the training pairs; rank r of 2 takes rows [4r, 4r + 4).
GLOBAL_BATCHES = [list(range(8)), list(range(8, 16)), list(range(16, 24))]


def toy_data() -> Interactions:
    rng = np.random.default_rng(5)
    pairs = np.unique(np.stack([rng.integers(0, 20, 80), rng.integers(0, 15, 80)], 1), axis=0)
    pairs = pairs[rng.permutation(len(pairs))]
    return Interactions("toy", 20, 15, train=pairs[:50], test=pairs[50:])


def toy_config(device: str) -> TrainConfig:
    return TrainConfig(data="toy", device=device, dim=8, hidden_dim=8, user_tower="pooled", max_history=3,
                       sampler="inbatch", lr=0.05, lr_schedule="constant", seed=3, epochs=1).validate()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_steps(ctx: DistContext, device: torch.device, batches) -> tuple[dict, list[float]]:
    """``(weights, losses)`` after one optimizer step per batch of training-pair rows (this rank's
    share), the tables settled; on ``device``, in the process group ``ctx`` (wrapped only when a
    group exists)."""
    data = toy_data()
    config = toy_config(device.type)
    torch.manual_seed(0)
    model, objective = assemble(config, data, ctx=ctx)
    model.to(device)
    objective.to(device)
    tables = model.sparse_parameters()
    assert tables and any(id(p) not in {id(t) for t in tables} for p in model.parameters())  # both kinds
    encoder = data_parallel(PairEncoder(model), tables, ctx) if dist.is_initialized() else PairEncoder(model)
    optimizer = build_optimizer(model, config.training.lr, whole_rows=config.sampler.batch_size)  # as the trainer
    contexts = HistoryContext(data, config.model.max_history)
    pairs = torch.from_numpy(data.train)
    losses = []
    for rows in batches:
        index = torch.tensor(rows, dtype=torch.long)
        batch = pairs[index].to(device)
        context = {k: v.to(device) for k, v in contexts.for_pairs(index).items()}
        users, items, bias = encoder(batch[:, 0], batch[:, 1], context)
        loss = objective(users, items, batch[:, 1], item_bias=bias)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_sparse_grads(tables, ctx)
        assert all(t.grad is None or t.grad.is_sparse for t in tables)
        optimizer.step()
        losses.append(float(loss.detach()))
    optimizer.settle()
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, losses
