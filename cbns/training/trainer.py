"""The training loop: shuffled epochs of optimizer steps, validation after an epoch, callbacks.
:meth:`Trainer.step` is the same code on one process and on W ranks; docs/architecture.md, "One
step", names each part's module.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm.auto import tqdm

from cbns.config import TrainConfig
from cbns.data.interactions import Interactions
from cbns.distributed.context import DistContext
from cbns.distributed.gather import row_counts
from cbns.distributed.gradients import average_sparse_grads, data_parallel
from cbns.distributed.sharding import shard_batches, split_sizes
from cbns.machine import resolve_device
from cbns.model.two_tower import TwoTower
from cbns.objective.precision import autocast_for
from cbns.training.callbacks.base import Callback
from cbns.training.compiled_step import CompiledForward
from cbns.training.fit_state import FitState
from cbns.training.guards import NonFiniteWatch
from cbns.training.lr_schedule import apply_lr
from cbns.training.optimizer import build_optimizer
from cbns.training.pair_encoder import PairEncoder
from cbns.training.phase_timer import PhaseTimer

if TYPE_CHECKING:
    from cbns.evaluation.evaluator import Evaluator

#: The loss and the NaN/inf guard are read once per this many steps, on every device (one code path).
SYNC_EVERY = 50


class Trainer:
    """Trains ``model`` with ``objective`` on ``data`` as ``config`` says: :meth:`fit` runs the
    epochs, validates through an :class:`cbns.evaluation.evaluator.Evaluator` and calls ``callbacks``
    (:mod:`cbns.training.callbacks`: early stopping, checkpoints of :mod:`cbns.training.training_state`).
    ``objective(user_emb, item_emb, item_ids, item_bias=..., encode_items=...)`` returns the step's
    loss and keeps its own state (the CBNS bank); ``contexts`` (a :class:`cbns.data.history.HistoryContext`)
    gives history user towers each batch's context.

    Everything lives on ``config.run.device`` until :meth:`to_cpu`. :meth:`step` never reads the device
    back: :meth:`flush` reads the loss and the NaN/inf guard every :data:`SYNC_EVERY` steps, after each
    epoch and before a checkpoint (naming the step where a non-finite value first appeared). On several
    ranks ``config.sampler.batch_size`` is the global batch; only rank 0 shows progress and prints.
    """

    def __init__(self, config: TrainConfig, data: Interactions, model: TwoTower, objective: nn.Module,
                 progress: bool = True, verbose: bool = True, callbacks: Sequence[Callback] = (), contexts=None,
                 ctx: DistContext | None = None):
        self.ctx = ctx = ctx or DistContext()
        self.device = ctx.device if ctx.distributed else resolve_device(config.run.device)
        model.to(self.device)
        objective.to(self.device)
        self.config, self.data, self.model, self.objective, self.contexts = config, data, model, objective, contexts
        self.timer = PhaseTimer()
        self.progress, self.verbose = progress and ctx.is_main, verbose and ctx.is_main
        self.callbacks = list(callbacks)
        self.global_step = 0
        train, batch = config.training, config.sampler.batch_size
        self.optimizer = build_optimizer(model, train.lr, train.weight_decay, train.sparse_updates, whole_rows=batch)
        self.sparse_parameters = model.sparse_parameters()
        self.encoder = PairEncoder(model)
        if ctx.distributed:
            self.encoder = data_parallel(self.encoder, self.sparse_parameters, ctx)
        self.train_pairs = torch.from_numpy(data.train).to(self.device)
        self.shuffle = torch.Generator().manual_seed(config.training.seed + 2)  # on the CPU: the same order everywhere
        self.state = FitState(order=self.shuffle.get_state())
        self.autocast = autocast_for(config.training.precision, self.device)
        self.sync_every = SYNC_EVERY
        self._epoch_rows = 0
        self._global_rows: list[int] = []
        self._pending_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self._pending_steps = 0
        self._first_bad = NonFiniteWatch(self.device)
        self._unit = torch.ones((), device=self.device)  # the backward's seed, made once
        self._compiled = CompiledForward(self) if config.training.compile else None  # dense updates only

    @property
    def rank(self) -> int:
        """This process's rank (0 in one process): callbacks that write or print act on rank 0 only."""
        return self.ctx.rank

    def epoch_batches(self) -> list[torch.Tensor]:
        """Index tensors into the training pairs, one per step: a seeded CPU permutation (pinned on a GPU)
        cut into global batches, this rank's share of each; ``training.compile`` drops a short last one."""
        order = torch.randperm(len(self.train_pairs), generator=self.shuffle)
        if self.device.type == "cuda":
            order = order.pin_memory()
        size = self.config.sampler.batch_size
        if self._compiled is not None and len(order) > size:  # static shapes: the last short batch is dropped
            order = order[:len(order) - len(order) % size]
        batches = shard_batches(order, size, self.ctx.rank, self.ctx.world_size)
        self._global_rows = [len(b) for b in torch.split(order, size)]
        self._epoch_rows = sum(len(b) for b in batches)
        return batches

    def train_epoch(self, epoch: int) -> dict:
        """Train epoch ``epoch``, or the rest of it when ``state.batch`` batches are already done."""
        s = self.state
        self.model.train()
        self.objective.train()
        self.shuffle.set_state(s.order)
        batches = self.epoch_batches()
        bar = tqdm(batches[s.batch:], desc=f"epoch {epoch}", disable=None if self.progress else True, leave=False,
                   unit="batch", dynamic_ncols=True, initial=s.batch, total=len(batches))
        start, done_before, seen_before = time.perf_counter(), s.seconds, s.examples
        self.timer.reset(s.phases)
        for index in bar:
            with self.timer("data"):
                batch = self.train_pairs[index.to(self.device, non_blocking=True)]
                context = self.context_of(index)
            loss = self.step(batch, context, global_rows=self._global_rows[s.batch])
            self._pending_loss += loss.double() * len(index)
            self._pending_steps += 1
            s.examples += len(index)
            s.batch += 1
            if self._pending_steps >= self.sync_every:
                self.flush()
                bar.set_postfix(loss=f"{float(loss):.4f}",
                                ex_per_s=f"{(s.examples - seen_before) / (time.perf_counter() - start):,.0f}")
            s.seconds = done_before + time.perf_counter() - start
            s.phases = dict(self.timer.seconds)
            for callback in self.callbacks:
                callback.on_step_end(self)
        bar.close()
        self.flush()
        record = {"epoch": epoch, "loss": s.loss_sum / max(s.examples, 1),
                  "seconds": done_before + time.perf_counter() - start, "phases": self.timer.rounded()}
        if self.ctx.distributed:  # the mean over every rank's rows
            total, rows = self.ctx.sum([record["loss"] * self._epoch_rows, self._epoch_rows])
            record["loss"] = total / max(rows, 1)
        s.start_next_epoch(self.shuffle.get_state())
        return record

    def step(self, batch: torch.Tensor, context: dict[str, torch.Tensor] | None = None,
             global_rows: int | None = None) -> torch.Tensor:
        """One optimizer step on this rank's rows ``batch [n, 2]`` (user, item); ``context`` goes to the
        user tower; ``global_rows``: the global batch size (asked of the other ranks when not given).
        Returns this rank's mean loss, a detached 0-dim tensor left on the device."""
        ctx, timer = self.ctx, self.timer
        batch = batch.to(self.device, non_blocking=True)
        users, items = batch[:, 0], batch[:, 1]
        rank_rows = None
        if ctx.distributed:
            total = global_rows if global_rows is not None else sum(row_counts(len(items), ctx.group, self.device))
            rank_rows = split_sizes(total, ctx.world_size)
        if self._compiled is None:
            with timer("encode"), self.autocast():
                user_emb, item_emb, item_bias = self.encoder(users, items, context)
            with timer("loss"):
                loss = self._score(user_emb, item_emb, items, item_bias, rank_rows)
        else:  # one compiled graph for both (timed as the loss)
            with timer("loss"):
                loss, user_emb, item_emb = self._compiled(users, items, context, rank_rows)
        objective = loss
        if ctx.distributed:  # DDP averages the ranks' gradients: weigh this rank by its rows
            objective = loss * (ctx.world_size * len(items) / sum(rank_rows))
        self._first_bad.watch(self.global_step + 1, self.state.epoch + 1, loss=loss, user_embeddings=user_emb,
                              item_embeddings=item_emb)
        self._update(objective)
        return loss.detach()

    def _score(self, user_emb, item_emb, items, item_bias, rank_rows) -> torch.Tensor:
        """The objective's loss (it updates its own state, the CBNS bank)."""
        return self.objective(user_emb, item_emb, items, item_bias=item_bias, encode_items=self._encode_items,
                              **({"rank_rows": rank_rows} if rank_rows else {}))

    def _encode_items(self, ids: torch.Tensor) -> torch.Tensor:
        """The item tower for the objective's own encodings (sampled items, a refreshed bank)."""
        with self.autocast():
            return self.model.item_embeddings(ids)

    def context_of(self, index: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """The user-tower context of the rows ``index`` (built on the CPU), on the device (pinned
        first on a GPU, so that the copy does not make the host wait)."""
        if self.contexts is None:
            return None
        context, pin = self.contexts.for_pairs(index), self.device.type == "cuda"
        return {k: (v.pin_memory() if pin else v).to(self.device, non_blocking=True) for k, v in context.items()}

    def flush(self) -> None:
        """Read the steps' pending loss into the epoch's sum; :class:`NonFiniteError` if one was not finite."""
        if self._pending_steps:
            self.state.loss_sum += float(self._pending_loss)
            self._pending_loss.zero_()
            self._pending_steps = 0
        self._first_bad.check()

    def _update(self, objective: torch.Tensor) -> None:
        """Backward ``objective`` and one optimizer step at the scheduled learning rate."""
        with self.timer("backward"):
            for group in self.optimizer.param_groups:  # zero_grad(set_to_none=True), without its profiler ops
                for p in group["params"]:
                    p.grad = None
            objective.backward(self._unit if objective.dtype == self._unit.dtype else None)
            average_sparse_grads(self.sparse_parameters, self.ctx)
        with self.timer("optimizer"):  # the schedule's rate for this step, of the step counter alone
            cfg = self.config
            apply_lr(self.optimizer, cfg.training.lr_schedule, self.global_step,
                     cfg.training.epochs * math.ceil(len(self.train_pairs) / cfg.sampler.batch_size), cfg.training.lr)
            self.optimizer.step()
        self.global_step += 1

    def settle(self) -> None:
        """Bring every table row to the current step before a whole read (:meth:`RowAdam.settle`)."""
        getattr(self.optimizer, "settle", lambda: None)()

    def fit(self, evaluator: Evaluator | None = None) -> FitState:
        """Train from :attr:`state` until the last epoch or until a callback marks the run done, validating
        with ``evaluator`` (if any, and a validation split) every ``eval_every`` epochs and after the
        last; then settle the tables and call the callbacks' ``on_fit_end``. Returns :attr:`state`."""
        cfg, s = self.config, self.state
        key = f"recall@{cfg.evaluation.ks[0]}"
        validates = evaluator is not None and len(self.data.valid) > 0
        for callback in self.callbacks:
            callback.on_fit_start(self)
        while not s.done:
            epoch = s.epoch + 1
            record = self.train_epoch(epoch)
            s.train_seconds += record["seconds"]
            if validates and (epoch % cfg.evaluation.eval_every == 0 or epoch == cfg.training.epochs):
                record["valid"] = evaluator.evaluate(self.model, "valid")
                if evaluator.index_info is not None:
                    record["valid_index"] = evaluator.index_info
                if self.verbose:
                    tqdm.write(f"epoch {epoch:3d}  loss {record['loss']:.4f}  valid {key} "
                               f"{record['valid'][key]:.4f}  ({record['seconds']:.1f}s)")
            s.history.append(record)
            s.epoch = epoch
            s.done = epoch >= cfg.training.epochs
            for callback in self.callbacks:
                callback.on_epoch_end(self, record)
        self.settle()  # every row at the last step: later settles (the prior, the test) are no-ops
        for callback in self.callbacks:
            callback.on_fit_end(self)
        return s

    def to_cpu(self) -> None:
        """Move the model and the objective back to the CPU (after the test)."""
        self.model.cpu()
        self.objective.cpu()
