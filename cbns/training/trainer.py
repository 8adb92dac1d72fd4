"""The training loop: shuffled epochs, validation, early stopping, best weights, one test.

One step, the same code in one process and on W ranks (``ctx``, a
:class:`cbns.distributed.context.DistContext`; every collective below is a no-op in one process):

1. encode the step's users (with their history context, for history towers) and positive items
   through the pair encoder (:class:`cbns.training.pair_encoder.PairEncoder`, wrapped in DDP on
   several ranks);
2. the objective (:mod:`cbns.objective.build`: the CBNS loss module for ``inbatch`` and ``cbns``,
   a sampler with the sampled softmax otherwise) gathers every rank's positive ids and vectors
   (the vectors with the exact gradient; :mod:`cbns.distributed.gather`), scores this rank's rows
   against the global batch and its negatives, and updates its own state (the CBNS bank enqueues
   the global batch, the same on every rank);
3. the loss, scaled by ``W n_r / b`` so that DDP's average of the ranks' gradients is the gradient
   of the global mean over the b rows; backward (the row-sparse gradients of the tables averaged
   over ranks apart, :mod:`cbns.distributed.gradients`) and one optimizer step at the scheduled
   rate (:mod:`cbns.training.optimizer`: row-wise Adam for the tables, Adam for the rest).
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from cbns.config import TrainConfig
from cbns.data.interactions import Interactions
from cbns.distributed.context import DistContext
from cbns.distributed.gather import row_counts
from cbns.distributed.gradients import average_sparse_grads, data_parallel
from cbns.distributed.sharding import shard_batches, split_sizes
from cbns.evaluation.ranking import full_ranking_columns, ranking_matrices, scoring_vectors
from cbns.evaluation.sharded import evaluate_sharded
from cbns.evaluation.user_sample import sample_users, users_with_items
from cbns.machine import resolve_device
from cbns.model.popularity_prior import PRIOR_GRID, choose_prior, parse_prior, prior_column
from cbns.model.two_tower import TwoTower
from cbns.objective.precision import autocast_for
from cbns.ranking.topk import ITEM_BLOCK
from cbns.training.callbacks.base import Callback
from cbns.training.fit_state import FitState
from cbns.training.guards import NonFiniteWatch, check_finite
from cbns.training.lr_schedule import lr_factor
from cbns.training.optimizer import build_optimizer
from cbns.training.pair_encoder import PairEncoder
from cbns.training.phase_timer import PhaseTimer
from cbns.training.result import TrainResult

#: On a GPU, the loss and the NaN/inf guard are read from the device once per this many steps.
SYNC_EVERY = 50


class Trainer:
    """Trains ``model`` with ``objective`` on ``data`` as ``config`` says.

    ``objective`` is called as ``objective(user_emb, item_emb, item_ids, item_bias=...,
    encode_items=...)`` and returns the step's loss (see :mod:`cbns.objective.build`); it keeps its
    own state (the CBNS bank), which checkpoints save with the model's.

    ``contexts`` (a :class:`cbns.data.history.HistoryContext`, for user towers that read a
    history) supplies the user tower's context for each batch and for evaluation. Validation runs
    every ``eval_every`` epochs; training stops after ``patience`` validations without a better
    Recall@K (K = the first cut-off), and the best weights are restored before the test.

    The device is ``config.device`` (``ctx.device`` on several ranks): the model, the objective
    (the bank, the samplers' generators) and the training pairs live there, and the model and
    objective come back to the CPU when :meth:`fit` returns. On a GPU the step never waits for
    the device: the loss is summed on the device and read, with the NaN/inf guard, every
    :data:`SYNC_EVERY` steps (and before every checkpoint), so a non-finite step stops the run at
    the next read, naming the step where it first appeared (checkpoints are written only from
    finite weights). On the CPU both happen every step. ``config.precision`` ``bf16`` runs the
    towers under autocast (:mod:`cbns.objective.precision`).

    On several ranks (``ctx.distributed``) ``config.batch_size`` is the global batch and this
    rank reads its share of each (:mod:`cbns.distributed.sharding`); evaluation is sharded over
    users and gives every rank the single-process metrics; only rank 0 shows progress and prints.
    A W-rank run is the single-process run with the same global batch, up to float summation order.
    """

    def __init__(self, config: TrainConfig, data: Interactions, model: TwoTower, objective: nn.Module,
                 progress: bool = True, verbose: bool = True, callbacks: Sequence[Callback] = (), contexts=None,
                 ctx: DistContext | None = None):
        self.ctx = ctx = ctx or DistContext()
        self.device = ctx.device if ctx.distributed else resolve_device(config.device)
        model.to(self.device)
        objective.to(self.device)
        self.config, self.data, self.model, self.objective = config, data, model, objective
        self.contexts = contexts
        self.timer = PhaseTimer()
        self.progress, self.verbose = progress and ctx.is_main, verbose and ctx.is_main
        self.callbacks = list(callbacks)
        self.global_step = 0
        self.optimizer = build_optimizer(model, config.lr, config.weight_decay, config.sparse_updates)
        self.sparse_parameters = model.sparse_parameters()
        self.encoder = PairEncoder(model)
        if ctx.distributed:
            self.encoder = data_parallel(self.encoder, self.sparse_parameters, ctx)
        self.train_pairs = torch.from_numpy(data.train).to(self.device)
        has_valid = len(data.valid) > 0
        self.eval_sample = {  # the users validation and the test average over (None: all)
            "valid": sample_users(data.matrix("valid"), config.eval_users, config.seed + 4) if has_valid else None,
            "test": sample_users(data.matrix("test"), config.test_users, config.seed + 5)}
        self.index_info: dict | None = None
        self.shuffle = torch.Generator().manual_seed(config.seed + 2)  # on the CPU: the same order everywhere
        self.state = FitState(order=self.shuffle.get_state())
        self.autocast = autocast_for(config.precision, self.device)
        self.sync_every = 1 if self.device.type == "cpu" else SYNC_EVERY
        self._epoch_rows = 0
        self._global_rows: list[int] = []
        self._pending_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self._pending_steps = 0
        self._first_bad = NonFiniteWatch(self.device)

    @property
    def rank(self) -> int:
        """This process's rank (0 in one process). Callbacks run on every rank; those that write
        files or print should act where ``trainer.rank == 0`` only."""
        return self.ctx.rank

    def epoch_batches(self) -> list[torch.Tensor]:
        """Index tensors into the training pairs, one per step: a seeded permutation cut into
        global batches, of which this rank takes its share (all of each in one process). The
        permutation is drawn on the CPU (the same order on every device); on a GPU it is pinned,
        so each batch's indices go over without the host waiting."""
        order = torch.randperm(len(self.train_pairs), generator=self.shuffle)
        if self.device.type == "cuda":
            order = order.pin_memory()
        batches = shard_batches(order, self.config.batch_size, self.ctx.rank, self.ctx.world_size)
        self._global_rows = [len(b) for b in torch.split(order, self.config.batch_size)]
        self._epoch_rows = sum(len(b) for b in batches)
        return batches

    def train_epoch(self, epoch: int) -> dict:
        """Train epoch ``epoch``, or the rest of it when ``state.batch`` batches are already done."""
        s = self.state
        self.model.train()
        self.objective.train()
        self.shuffle.set_state(s.order)
        batches = self.epoch_batches()
        bar = tqdm(batches[s.batch:], desc=f"epoch {epoch}", disable=not self.progress, leave=False,
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
        """One optimizer step on this rank's rows ``batch [n, 2]`` (user, item); ``context`` goes
        to the user tower; ``global_rows`` is the step's global batch size (asked of the other
        ranks when not given). Returns this rank's mean loss over its rows (0 with none), a
        detached 0-dim tensor on the device (reading it waits for the device)."""
        ctx, timer = self.ctx, self.timer
        batch = batch.to(self.device, non_blocking=True)
        users, items = batch[:, 0], batch[:, 1]
        rank_rows = None
        if ctx.distributed:
            total = global_rows if global_rows is not None else sum(row_counts(len(items), ctx.group, self.device))
            rank_rows = split_sizes(total, ctx.world_size)
        with timer("encode"), self.autocast():
            user_emb, item_emb, item_bias = self.encoder(users, items, context)
        with timer("loss"):
            loss = self.objective(user_emb, item_emb, items, item_bias=item_bias,
                                  encode_items=self._encode_items, **({"rank_rows": rank_rows} if rank_rows else {}))
        objective = loss
        if ctx.distributed:  # DDP averages the ranks' gradients: weigh this rank by its rows
            objective = loss * (ctx.world_size * len(items) / sum(rank_rows))
        step, epoch = self.global_step + 1, self.state.epoch + 1
        if self.sync_every == 1:
            check_finite(step, epoch, loss=loss, user_embeddings=user_emb, item_embeddings=item_emb)
        else:
            self._first_bad.watch(step, epoch, loss=loss, user_embeddings=user_emb, item_embeddings=item_emb)
        self._update(objective)
        return loss.detach()

    def _encode_items(self, ids: torch.Tensor) -> torch.Tensor:
        """The item tower for the objective's own encodings (sampled items, a refreshed bank)."""
        with self.autocast():
            return self.model.item_embeddings(ids)

    def context_of(self, index: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """The user-tower context of the rows ``index`` (built on the CPU), on the device."""
        if self.contexts is None:
            return None
        context = self.contexts.for_pairs(index)
        if self.device.type == "cpu":
            return context
        return {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in context.items()}

    def flush(self) -> None:
        """Read what the steps since the last read left on the device: add their loss to the
        epoch's sum, and raise :class:`cbns.errors.NonFiniteError` if one of them was not finite."""
        if self._pending_steps:
            self.state.loss_sum += float(self._pending_loss)
            self._pending_loss.zero_()
            self._pending_steps = 0
        self._first_bad.check()

    def _update(self, objective: torch.Tensor) -> None:
        """Backward ``objective`` and one optimizer step at the scheduled learning rate."""
        with self.timer("backward"):
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            average_sparse_grads(self.sparse_parameters, self.ctx)
        with self.timer("optimizer"):
            self._set_lr()
            self.optimizer.step()
        self.global_step += 1

    def _set_lr(self) -> None:
        """The schedule's learning rate for this step (a function of the step counter alone), for
        the dense parameters' Adam and the tables' RowAdam alike."""
        cfg = self.config
        if cfg.lr_schedule == "constant":
            return
        total = cfg.epochs * math.ceil(len(self.train_pairs) / cfg.batch_size)
        factor = lr_factor(cfg.lr_schedule, self.global_step, total)
        for group in self.optimizer.param_groups:  # both optimizers', each from its own starting rate
            group["lr"] = group.get("base_lr", cfg.lr) * factor  # a checkpoint from before base_lr: lr

    def state_dict(self) -> dict:
        """Everything needed to continue this run exactly: weights, optimizer moments, the
        objective's state (bank, generator), step counter, the global torch RNGs (the CUDA one on
        a GPU), and the loop's :class:`FitState`."""
        self.flush()
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "objective": self.objective.state_dict(), "global_step": self.global_step,
                 "torch_rng": torch.get_rng_state(), "fit": self.state.to_dict()}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.objective.load_state_dict(state["objective"])
        self.global_step = state["global_step"]
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.state = FitState.from_dict(state["fit"])

    def evaluate(self, part: str) -> dict[str, float]:
        """Metrics of ``part`` over its users (the sample of ``eval_users`` / ``test_users``); for
        ``valid`` with ``eval_index``, through an item index (its recall against exact ranking of
        the same users is measured at the first such validation; :attr:`index_info`)."""
        cfg = self.config
        self.settle()
        context = self.contexts.for_users(part) if self.contexts is not None else None
        users = self.eval_sample[part]
        if part == "valid" and cfg.eval_index != "exact":
            from cbns.evaluation.index_eval import validate_with_index  # faiss, imported only when used
            from cbns.ranking.index_spec import IndexSpec

            metrics, self.index_info = validate_with_index(
                self.model, self.data, part, cfg.ks, IndexSpec(cfg.eval_index), users, context,
                compare_exact=self.index_info is None)
            return metrics
        return evaluate_sharded(self.model, self.data, part, cfg.ks, self.ctx, user_context=context, users=users)

    def settle(self) -> None:
        """Bring the tables' rows up to the current step before they are read whole (evaluation,
        the best weights, export): the steps a row missed since its last update, in closed form
        (:meth:`cbns.training.row_adam.RowAdam.settle`); a no-op for dense Adam."""
        settle = getattr(self.optimizer, "settle", None)
        if settle is not None:
            settle()

    def evaluation_summary(self) -> dict:
        """How validation and the test were ranked and over how many users, for ``metrics.json``."""
        cfg, summary = self.config, {}
        for part, seed in (("valid", cfg.seed + 4), ("test", cfg.seed + 5)):
            if part == "valid" and not len(self.data.valid):
                continue
            sample, total = self.eval_sample[part], users_with_items(self.data.matrix(part))
            summary[part] = {"users": total if sample is None else len(sample), "of": total,
                             "sample_seed": seed if sample is not None else None}
        if "valid" in summary:
            summary["valid"]["ranking"] = cfg.eval_index
        return summary

    def fit(self) -> TrainResult:
        """Train until the last epoch or early stopping, from wherever :attr:`state` stands."""
        cfg, s = self.config, self.state
        key = f"recall@{cfg.ks[0]}"
        has_valid = len(self.data.valid) > 0
        beta = parse_prior(cfg.popularity_prior)  # None: auto, chosen on validation after training
        self.set_prior(beta or 0.0)
        for callback in self.callbacks:
            callback.on_fit_start(self)
        while not s.done:
            epoch = s.epoch + 1
            record = self.train_epoch(epoch)
            s.train_seconds += record["seconds"]
            if has_valid and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                record["valid"] = self.evaluate("valid")
                if self.index_info is not None:
                    record["valid_index"] = self.index_info
                if self.verbose:
                    tqdm.write(f"epoch {epoch:3d}  loss {record['loss']:.4f}  valid {key} "
                               f"{record['valid'][key]:.4f}  ({record['seconds']:.1f}s)")
                if record["valid"][key] > s.best:
                    s.best, s.best_epoch, s.stale = record["valid"][key], epoch, 0
                    s.best_state = copy.deepcopy(self.model.state_dict())
                else:
                    s.stale += 1
            s.history.append(record)
            s.epoch = epoch
            s.done = epoch >= cfg.epochs or (has_valid and s.stale >= cfg.patience)
            for callback in self.callbacks:
                callback.on_epoch_end(self, record)
        self.settle()  # every row at the last step: later settles (the test, the prior) are no-ops
        valid_metrics, best_epoch = {}, s.epoch
        if s.best_state is not None:
            self.model.load_state_dict(s.best_state)
            best_epoch = s.best_epoch
            valid_metrics = next(h["valid"] for h in s.history if h["epoch"] == best_epoch)
        if beta is not None:
            prior = {"beta": beta, "chosen_on": "fixed by popularity_prior"}
        elif not has_valid:
            prior = {"beta": 0.0, "chosen_on": "none: auto needs a validation split"}
        else:
            # The best epoch was validated with no prior (auto trains with none): BETA = 0 is known.
            tried = {0.0: valid_metrics} if valid_metrics else {}
            swept = self._sweep_priors([b for b in PRIOR_GRID if b not in tried])

            def valid_with(b: float) -> float:
                if b in tried:
                    return tried[b][key]
                if b in swept:
                    return swept[b][key]
                self.set_prior(b)
                tried[b] = self.evaluate("valid")
                return tried[b][key]

            best_beta, _ = choose_prior(valid_with)
            self.set_prior(best_beta)
            if best_beta not in tried:  # the chosen prior's metrics from the one-product path of evaluate()
                tried[best_beta] = self.evaluate("valid")
            tried = dict(sorted({**swept, **tried}.items()))
            valid_metrics = tried[best_beta]
            prior = {"beta": best_beta, "chosen_on": f"valid {key}",
                     f"valid {key} by beta": {str(b): round(m[key], 6) for b, m in tried.items()}}
            if self.verbose:
                tqdm.write(f"popularity prior: beta {best_beta} (valid {key} {tried[0.0][key]:.4f} -> "
                           f"{tried[best_beta][key]:.4f})")
        test = self.evaluate("test")
        if self.device.type != "cpu":
            self.model.cpu()
            self.objective.cpu()
        return TrainResult(valid_metrics, test, best_epoch, s.epoch, s.train_seconds, s.history, prior,
                           self.evaluation_summary())

    def _sweep_priors(self, betas: list[float]) -> dict[float, dict[str, float]]:
        """Validation metrics under each prior of ``betas`` from one score product per user chunk
        (:func:`cbns.evaluation.ranking.full_ranking_columns`), in a single process with exact
        ranking of up to :data:`cbns.ranking.topk.ITEM_BLOCK` items; ``{}`` elsewhere (the caller
        then evaluates one prior at a time). The model is left with no prior."""
        cfg = self.config
        if not betas or self.ctx.distributed or cfg.eval_index != "exact" or self.data.num_items > ITEM_BLOCK:
            return {}
        self.settle()
        self.set_prior(0.0)
        context = self.contexts.for_users("valid") if self.contexts is not None else None
        relevant, exclude = ranking_matrices(self.data, "valid")
        users, items, column = scoring_vectors(self.model, self.data, context)
        counts = self.data.item_counts()
        priors = [prior_column(counts, b, cfg.temperature).to(items.device) for b in betas]
        found = full_ranking_columns(users, items, relevant, exclude, priors, cfg.ks,
                                     rows=self.eval_sample["valid"], item_bias=column)
        return dict(zip(betas, found))

    def set_prior(self, beta: float) -> None:
        """Rank with the popularity prior of strength ``beta`` (0: none); see :mod:`cbns.model.popularity_prior`."""
        self.model.set_prior(prior_column(self.data.item_counts(), beta, self.config.temperature))
