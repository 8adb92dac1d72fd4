"""The trainer's step and epoch loop, and early stopping, on tiny data built here: checked against
orders, rates and stopping points worked out by hand, not against recorded outputs."""
import copy
import math

import numpy as np
import pytest
import torch

from cbns.config import TrainConfig
from cbns.data.interactions import Interactions
from cbns.model.build import build_model
from cbns.objective.build import build_objective
from cbns.training.callbacks.base import Callback
from cbns.training.callbacks.early_stopping import EarlyStopping
from cbns.training.fit_state import FitState
from cbns.training.trainer import Trainer

USERS, ITEMS, ROWS = 20, 15, 100


def toy(valid: bool = True) -> Interactions:
    rng = np.random.default_rng(0)
    pairs = np.unique(np.stack([rng.integers(0, USERS, 160), rng.integers(0, ITEMS, 160)], 1), axis=0)
    pairs = pairs[rng.permutation(len(pairs))]
    return Interactions("toy", USERS, ITEMS, train=pairs[:ROWS], test=pairs[ROWS:ROWS + 20],
                        valid=pairs[ROWS + 20:ROWS + 40] if valid else np.zeros((0, 2), dtype=np.int64))


def trainer_for(data: Interactions, callbacks=(), **options) -> Trainer:
    cfg = TrainConfig(**{"data": "toy", "sampler": "inbatch", "item_side": "split", "batch_size": 16, "dim": 4, "epochs": 2, "lr": 0.01,
                         "lr_schedule": "constant", "threads": 1, "seed": 3, **options})
    return Trainer(cfg, data, build_model(cfg, USERS, ITEMS), build_objective(cfg, data.item_counts()),
                   progress=False, verbose=False, callbacks=callbacks)


class ScriptedEvaluator:
    """Stands in for :class:`cbns.evaluation.evaluator.Evaluator`: validation Recall@20 follows
    ``recalls``, one value per call."""

    index_info = None

    def __init__(self, recalls):
        self.recalls, self.calls = list(recalls), []

    def evaluate(self, model, part):
        self.calls.append((model, part))
        return {"recall@20": self.recalls[len(self.calls) - 1]}


class Snapshots(Callback):
    """The model's weights at the end of every epoch, by epoch."""

    def __init__(self):
        self.weights = {}

    def on_epoch_end(self, trainer, record):
        self.weights[record["epoch"]] = copy.deepcopy(trainer.model.state_dict())


def test_a_step_lowers_the_loss_on_a_fixed_batch():
    trainer = trainer_for(toy())
    batch = trainer.train_pairs[:16]
    losses = [float(trainer.step(batch)) for _ in range(5)]  # each the loss before its own update
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])), losses
    assert trainer.global_step == 5


def test_every_pair_once_per_epoch_in_the_seeded_order():
    trainer = trainer_for(toy())
    seen = []
    step = trainer.step

    def recording_step(batch, context=None, global_rows=None):
        seen.append(batch.clone())
        return step(batch, context, global_rows=global_rows)

    trainer.step = recording_step
    trainer.fit()
    shuffle = torch.Generator().manual_seed(3 + 2)  # config.training.seed + 2
    pairs = torch.from_numpy(toy().train)
    expected = torch.cat([pairs[torch.randperm(ROWS, generator=shuffle)] for _ in range(2)])
    assert [len(b) for b in seen] == [16] * 6 + [4] + [16] * 6 + [4]  # ceil(100 / 16) = 7 steps an epoch
    assert torch.equal(torch.cat(seen), expected)
    for epoch in (seen[:7], seen[7:]):  # each pair exactly once
        assert sorted(map(tuple, torch.cat(epoch).tolist())) == sorted(map(tuple, pairs.tolist()))
    assert [h["epoch"] for h in trainer.state.history] == [1, 2] and trainer.state.done


def test_the_cosine_schedule_is_applied_per_step():
    class Rates(Callback):
        def __init__(self):
            self.by_step = {}

        def on_step_end(self, trainer):
            self.by_step[trainer.global_step - 1] = [g["lr"] / g["base_lr"] for g in trainer.optimizer.param_groups]

    rates = Rates()
    trainer = trainer_for(toy(), callbacks=[rates], lr_schedule="cosine", epochs=3)
    trainer.fit()
    total = 3 * math.ceil(ROWS / 16)
    assert sorted(rates.by_step) == list(range(total))
    for k, factors in rates.by_step.items():  # step k (from 0) runs at 0.5 (1 + cos(pi k / total)) of the base rate
        assert factors == pytest.approx([0.5 * (1 + math.cos(math.pi * k / total))] * len(factors), abs=1e-12)


def test_the_evaluator_is_called_every_eval_every_epochs_and_after_the_last():
    evaluator = ScriptedEvaluator([0.1, 0.2, 0.3])
    trainer = trainer_for(toy(), epochs=5, eval_every=2)
    trainer.fit(evaluator)
    assert [h["epoch"] for h in trainer.state.history if "valid" in h] == [2, 4, 5]
    assert evaluator.calls == [(trainer.model, "valid")] * 3
    assert [h["valid"]["recall@20"] for h in trainer.state.history if "valid" in h] == [0.1, 0.2, 0.3]


def test_no_validation_without_a_validation_split():
    evaluator = ScriptedEvaluator([])
    trainer = trainer_for(toy(valid=False), epochs=2)
    trainer.fit(evaluator)
    assert evaluator.calls == [] and all("valid" not in h for h in trainer.state.history)


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    # validations: 0.1, 0.3 (best, epoch 2), then 0.2 and 0.25: two without improvement -> stop after epoch 4
    evaluator = ScriptedEvaluator([0.1, 0.3, 0.2, 0.25, 0.9, 0.9])
    snapshots = Snapshots()
    trainer = trainer_for(toy(), callbacks=[EarlyStopping(20, patience=2), snapshots], epochs=6)
    state = trainer.fit(evaluator)
    assert state.epoch == 4 and len(evaluator.calls) == 4 and state.done
    assert (state.best, state.best_epoch, state.stale) == (0.3, 2, 2)
    assert state.best_valid() == {"recall@20": 0.3}
    final = trainer.model.state_dict()
    for name, value in snapshots.weights[2].items():
        assert torch.equal(final[name], value), name
    assert not all(torch.equal(snapshots.weights[4][n], v) for n, v in snapshots.weights[2].items())


def test_early_stopping_on_a_hand_built_sequence():
    class Loop:
        def __init__(self):
            self.state, self.model = FitState(order=torch.zeros(1)), torch.nn.Linear(1, 1)

    def run(recalls, patience, every=1):
        loop, stopping = Loop(), EarlyStopping(20, patience)
        for epoch, recall in enumerate(recalls, 1):
            record = {"epoch": epoch, **({"valid": {"recall@20": recall}} if epoch % every == 0 else {})}
            stopping.on_epoch_end(loop, record)
            if loop.state.done:
                return epoch, loop.state.best_epoch
        return None, loop.state.best_epoch

    assert run([0.1, 0.3, 0.2, 0.25, 0.5], patience=2) == (4, 2)
    assert run([0.1, 0.3, 0.2, 0.35, 0.3, 0.3], patience=2) == (6, 4)  # an improvement resets the count
    assert run([0.1, 0.1], patience=1) == (2, 1)  # equal is not better
    assert run([0.1, 0.2, 0.3], patience=1) == (None, 3)
    assert run([0.5, 0.4, 0.3, 0.2], patience=1, every=2) == (4, 2)  # counts validations, not epochs
    assert run([0.5], patience=0) == (1, 1)
