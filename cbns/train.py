"""The training loop: shuffled epochs, validation, early stopping, best weights, one test."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from cbns.config import TrainConfig
from cbns.data.interactions import Interactions
from cbns.loss import SampledSoftmaxLoss
from cbns.evaluate import evaluate_split
from cbns.fit_state import FitState
from cbns.guards import check_finite
from cbns.lr_schedule import lr_factor
from cbns.popularity_prior import choose_prior, parse_prior, prior_column
from cbns.model import TwoTower
from cbns.negatives import NegativeSampler
from cbns.timing import PHASES, PhaseTimer


@dataclass
class TrainResult:
    """What a run produced: the metrics of the best epoch, the test metrics, and the history."""

    valid: dict[str, float]
    test: dict[str, float]
    best_epoch: int
    epochs_run: int
    train_seconds: float
    history: list[dict] = field(default_factory=list)
    popularity_prior: dict = field(default_factory=dict)

    @property
    def seconds_per_epoch(self) -> float:
        return self.train_seconds / max(self.epochs_run, 1)

    @property
    def phase_seconds_per_epoch(self) -> dict[str, float]:
        """Mean seconds per epoch in each phase of :data:`cbns.timing.PHASES`."""
        records = [h["phases"] for h in self.history if "phases" in h]
        return {p: round(sum(r.get(p, 0.0) for r in records) / max(len(records), 1), 3) for p in PHASES}

    def to_dict(self) -> dict:
        return {"valid": self.valid, "test": self.test, "best_epoch": self.best_epoch,
                "epochs_run": self.epochs_run, "train_seconds": round(self.train_seconds, 3),
                "seconds_per_epoch": round(self.seconds_per_epoch, 3),
                "phase_seconds_per_epoch": self.phase_seconds_per_epoch,
                "popularity_prior": self.popularity_prior, "history": self.history}


class Callback:
    """Hooks into the training loop; override what you need. ``trainer.global_step`` counts
    optimizer steps over the whole run."""

    def on_fit_start(self, trainer: "Trainer") -> None:
        """Before the first step of :meth:`Trainer.fit` (the model as initialised)."""

    def on_step_end(self, trainer: "Trainer") -> None:
        """After the optimizer step, the sampler's observe, and the epoch's running sums."""

    def on_epoch_end(self, trainer: "Trainer", record: dict) -> None:
        """After an epoch, its validation (when one ran) and the early-stopping decision;
        ``record`` is already the last entry of ``trainer.state.history``."""


class Trainer:
    """Trains ``model`` with ``sampler`` and ``loss`` on ``data`` as ``config`` says.

    One step: encode the batch's users and positive items, ask the sampler for the negative
    sources, compute the sampled-softmax loss, take an optimizer step, then let the sampler observe
    the step's (detached) item vectors, which is when the CBNS bank enqueues. ``contexts`` (a
    :class:`cbns.data.history.HistoryContext`, for user towers that read a history) supplies the
    user tower's context for each batch and for evaluation. Validation runs
    every ``eval_every`` epochs; training stops after ``patience`` validations without a better
    Recall@K (K = the first cut-off), and the best weights are restored before the test.
    """

    #: This process's rank in a distributed run (0 otherwise). Callbacks run on every rank; those
    #: that write files or print should act where ``trainer.rank == 0`` only.
    rank = 0

    def __init__(self, config: TrainConfig, data: Interactions, model: TwoTower,
                 sampler: NegativeSampler, loss: SampledSoftmaxLoss, progress: bool = True,
                 verbose: bool = True, callbacks: Sequence[Callback] = (), contexts=None):
        self.config, self.data, self.model, self.sampler, self.loss = config, data, model, sampler, loss
        self.contexts = contexts
        self.timer = PhaseTimer()
        self.progress, self.verbose = progress, verbose
        self.callbacks = list(callbacks)
        self.global_step = 0
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                          fused=True)
        self.train_pairs = torch.from_numpy(data.train)
        self.shuffle = torch.Generator().manual_seed(config.seed + 2)
        self.state = FitState(order=self.shuffle.get_state())

    def epoch_batches(self) -> list[torch.Tensor]:
        """Index tensors into the training pairs, one per step: a seeded permutation cut into batches."""
        order = torch.randperm(len(self.train_pairs), generator=self.shuffle)
        return list(torch.split(order, self.config.batch_size))

    def train_epoch(self, epoch: int) -> dict:
        """Train epoch ``epoch``, or the rest of it when ``state.batch`` batches are already done."""
        s = self.state
        self.model.train()
        self.shuffle.set_state(s.order)
        batches = self.epoch_batches()
        bar = tqdm(batches[s.batch:], desc=f"epoch {epoch}", disable=not self.progress, leave=False,
                   unit="batch", dynamic_ncols=True, initial=s.batch, total=len(batches))
        start, done_before, seen_before = time.perf_counter(), s.seconds, s.examples
        self.timer.reset(s.phases)
        for index in bar:
            with self.timer("data"):
                batch = self.train_pairs[index]
                context = self.contexts.for_pairs(index) if self.contexts is not None else None
            loss = self.step(batch, context)
            s.loss_sum += loss * len(index)
            s.examples += len(index)
            s.batch += 1
            s.seconds = done_before + time.perf_counter() - start
            s.phases = dict(self.timer.seconds)
            for callback in self.callbacks:
                callback.on_step_end(self)
            bar.set_postfix(loss=f"{loss:.4f}",
                            ex_per_s=f"{(s.examples - seen_before) / (time.perf_counter() - start):,.0f}")
        bar.close()
        record = {"epoch": epoch, "loss": s.loss_sum / max(s.examples, 1),
                  "seconds": done_before + time.perf_counter() - start, "phases": self.timer.rounded()}
        s.start_next_epoch(self.shuffle.get_state())
        return record

    def step(self, batch: torch.Tensor, context=None) -> float:
        """One optimizer step on ``batch [B, 2]`` (user, item); ``context`` goes to the user tower."""
        timer = self.timer
        users, items = batch[:, 0], batch[:, 1]
        with timer("encode"):
            user_emb = self.model.user_embeddings(users, context)
            item_emb = self.model.item_embeddings(items)
        with timer("loss"):
            self.sampler.update_frequency(items)
            sources = self.sampler.negatives(items, item_emb, self.model.item_embeddings)
            loss = self.loss(user_emb, item_emb, items, self.sampler.positive_logq(items), sources,
                                 self.model.item_bias)
        check_finite(self.global_step + 1, self.state.epoch + 1, loss=loss, user_embeddings=user_emb,
                     item_embeddings=item_emb)
        self._update(loss, items, item_emb)
        return loss.item()

    def _update(self, objective: torch.Tensor, item_ids: torch.Tensor, item_emb: torch.Tensor) -> None:
        """Backward ``objective``, one optimizer step at the scheduled lr, then the sampler observes
        the step's items ``item_ids [N]`` with their vectors ``item_emb [N, D]`` (the bank enqueues)."""
        with self.timer("backward"):
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
        with self.timer("optimizer"):
            self._set_lr()
            self.optimizer.step()
            self.sampler.observe(item_ids, item_emb.detach())
        self.global_step += 1

    def _set_lr(self) -> None:
        """The schedule's learning rate for this step (a function of the step counter alone)."""
        cfg = self.config
        if cfg.lr_schedule == "constant":
            return
        total = cfg.epochs * math.ceil(len(self.train_pairs) / cfg.batch_size)
        lr = cfg.lr * lr_factor(cfg.lr_schedule, self.global_step, total)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def state_dict(self) -> dict:
        """Everything needed to continue this run exactly: weights, optimizer moments, sampler
        (bank and generator), step counter, the global torch RNG, and the loop's :class:`FitState`."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "sampler": self.sampler.state_dict(), "global_step": self.global_step,
                "torch_rng": torch.get_rng_state(), "fit": self.state.to_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.load_state_dict(state["sampler"])
        self.global_step = state["global_step"]
        torch.set_rng_state(state["torch_rng"])
        self.state = FitState.from_dict(state["fit"])

    def evaluate(self, part: str) -> dict[str, float]:
        context = self.contexts.for_users(part) if self.contexts is not None else None
        return evaluate_split(self.model, self.data, part, self.config.ks, user_context=context)

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

            def valid_with(b: float) -> float:
                if b in tried:
                    return tried[b][key]
                self.set_prior(b)
                tried[b] = self.evaluate("valid")
                return tried[b][key]

            best_beta, _ = choose_prior(valid_with)
            self.set_prior(best_beta)
            valid_metrics = tried[best_beta]
            prior = {"beta": best_beta, "chosen_on": f"valid {key}",
                     f"valid {key} by beta": {str(b): round(m[key], 6) for b, m in tried.items()}}
            if self.verbose:
                tqdm.write(f"popularity prior: beta {best_beta} (valid {key} {tried[0.0][key]:.4f} -> "
                           f"{tried[best_beta][key]:.4f})")
        test = self.evaluate("test")
        return TrainResult(valid_metrics, test, best_epoch, s.epoch, s.train_seconds, s.history, prior)

    def set_prior(self, beta: float) -> None:
        """Rank with the popularity prior of strength ``beta`` (0: none); see :mod:`cbns.popularity_prior`."""
        self.model.set_prior(prior_column(self.data.item_counts(), beta, self.config.temperature))
