"""Learning-rate schedules: the factor against hand values, and the optimizer really gets it."""
import math

import numpy as np
import pytest

from cbns.config import OptionError, TrainConfig
from cbns.data.interactions import Interactions
from cbns.model.build import build_model
from cbns.objective.build import build_objective
from cbns.training.lr_schedule import lr_factor
from cbns.training.trainer import Trainer


def test_factors_by_hand():
    assert lr_factor("constant", 7, 10) == 1.0
    assert lr_factor("cosine", 0, 100) == pytest.approx(1.0)
    assert lr_factor("cosine", 50, 100) == pytest.approx(0.5)
    assert lr_factor("cosine", 25, 100) == pytest.approx((1 + math.sqrt(0.5)) / 2)
    assert lr_factor("cosine", 100, 100) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor("linear", 30, 120) == pytest.approx(0.75)
    assert lr_factor("linear", 500, 120) == 0.0  # past the plan: stays at 0


def test_unknown_schedule_is_an_option_error():
    with pytest.raises(OptionError, match="option lr_schedule: must be one of constant, cosine, linear"):
        TrainConfig(lr_schedule="step").validate()


def test_trainer_applies_the_schedule():
    cfg = TrainConfig(data="toy", sampler="inbatch", item_side="split", batch_size=16, dim=4, epochs=2, lr=0.01,
                      lr_schedule="linear", threads=1)
    rng = np.random.default_rng(0)
    data = Interactions("toy", 20, 15, train=np.stack([rng.integers(0, 20, 100), rng.integers(0, 15, 100)], 1),
                        test=np.zeros((0, 2), dtype=np.int64))
    trainer = Trainer(cfg, data, build_model(cfg, 20, 15), build_objective(cfg, data.item_counts()),
                      progress=False, verbose=False)
    total = 2 * 7  # 2 epochs of ceil(100 / 16) = 7 steps
    seen = []
    for index in trainer.epoch_batches()[:3]:
        trainer.step(trainer.train_pairs[index])
        seen.append(trainer.optimizer.param_groups[0]["lr"])
    assert seen == pytest.approx([0.01 * (1 - k / total) for k in range(3)])
