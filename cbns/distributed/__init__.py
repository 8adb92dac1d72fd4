"""Data-parallel training on several processes (``torchrun``, or the command line's launcher
:mod:`cbns.cli.launch`).

``batch_size`` is the global batch: W ranks read ``batch_size / W`` rows each per step, score
their users against the items of every rank, and share one CBNS bank. The step itself is the
single-process one (:class:`cbns.training.trainer.Trainer`): every piece here is a no-op in one
process.

Modules: :mod:`~cbns.distributed.context` (joining the run), :mod:`~cbns.distributed.sharding`
(who reads which rows), :mod:`~cbns.distributed.gather` (rows of every rank, with the exact
gradient); evaluation sharded over users is
:mod:`cbns.evaluation.sharded`.
"""
from cbns.distributed.context import DistContext, init_distributed, launched_rank
from cbns.distributed.gather import all_gather_rows, gather_rows_with_grad
from cbns.distributed.sharding import shard_batches, split_sizes

__all__ = ["DistContext", "all_gather_rows", "gather_rows_with_grad", "init_distributed", "launched_rank",
           "shard_batches", "split_sizes"]
