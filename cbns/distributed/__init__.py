"""Data-parallel training on several processes (``torchrun`` or ``cbns train --nproc N``).

``--batch-size`` is the global batch: W ranks read ``batch_size / W`` rows each per step, score
their users against the items of every rank, and share one CBNS bank. In a single process every
piece here is a no-op and training runs the plain :class:`cbns.train.Trainer`.

Modules: :mod:`~cbns.distributed.context` (joining the run), :mod:`~cbns.distributed.sharding`
(who reads which rows), :mod:`~cbns.distributed.gather` (rows of every rank, with the exact
gradient), :mod:`~cbns.distributed.trainer` (the step), :mod:`~cbns.distributed.evaluation`
(metrics sharded over users), :mod:`~cbns.distributed.launch` (``--nproc``).
"""
from cbns.distributed.context import DistContext, init_distributed, launched_rank
from cbns.distributed.evaluation import evaluate_sharded
from cbns.distributed.gather import all_gather_rows, gather_rows_with_grad
from cbns.distributed.sharding import shard_batches, split_sizes
from cbns.distributed.trainer import DistributedTrainer, build_trainer

__all__ = ["DistContext", "DistributedTrainer", "all_gather_rows", "build_trainer", "evaluate_sharded",
           "gather_rows_with_grad", "init_distributed", "launched_rank", "shard_batches", "split_sizes"]
