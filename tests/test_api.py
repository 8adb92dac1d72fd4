"""cbns.train with parts built in Python: towers of your own and a prebuilt loss."""
import json

import numpy as np
import pytest
import torch
from torch import nn

import cbns
from cbns.runs.model_file import read_model_file


class MeanOfTwo(nn.Module):
    """A tower that is not a cbns Tower: two embedding tables averaged, called as tower(ids, context)."""

    def __init__(self, num, dim):
        super().__init__()
        self.a, self.b = nn.Embedding(num, dim), nn.Embedding(num, dim)

    def forward(self, ids, context=None):
        return (self.a(ids) + self.b(ids)) / 2


def test_train_with_your_own_towers_and_loss(tmp_path, gowalla_slice):
    config = cbns.TrainConfig(data=str(gowalla_slice), dim=8, batch_size=256, epochs=1, threads=1)
    from cbns.data import load_data

    data = load_data(config)
    loss = cbns.CrossBatchSoftmaxLoss(8, 333, item_counts=data.item_counts())
    result = cbns.train(config, tmp_path / "run", progress=False, verbose=False,
                        user_tower=MeanOfTwo(data.num_users, 8), item_tower=MeanOfTwo(data.num_items, 8), loss=loss)
    assert 0 < result.test["recall@20"] <= 1
    saved = read_model_file(tmp_path / "run")
    assert "user_tower.a.weight" in saved["model"] and saved["custom_towers"]
    assert saved["objective"]["bank.ids"].shape == (333,)  # the loss given, not the config's 4096
    assert int(loss.step) == -(-len(data.train) // 256)  # it trained: one enqueue per step
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["towers"] == {"user": "custom: MeanOfTwo", "item": "custom: MeanOfTwo"}
    with pytest.raises(cbns.CbnsError, match="trained with towers built in Python"):
        cbns.evaluate_run(tmp_path / "run")
    top = cbns.Recommender.from_run(tmp_path / "run").recommend([0], k=5)  # the exported vectors serve
    assert top.rows.shape == (1, 5) and (top.rows >= 0).all()


def test_a_tower_of_another_width_is_one_clear_error(tmp_path, gowalla_slice):
    config = cbns.TrainConfig(data=str(gowalla_slice), dim=8, batch_size=256, epochs=1, threads=1)
    from cbns.data import load_data

    data = load_data(config)
    with pytest.raises(ValueError, match="the loss was built with dim=8, got user_emb of width 5"):
        cbns.train(config, progress=False, verbose=False, user_tower=MeanOfTwo(data.num_users, 5),
                   item_tower=MeanOfTwo(data.num_items, 8), loss=cbns.CrossBatchSoftmaxLoss(8, 0))


def test_cbns_train_trains_with_the_loss_module():
    """The CLI's objective for cbns and inbatch is the very module users import."""
    from cbns.objective.build import build_objective

    counts = np.ones(10)
    for sampler, memory in (("cbns", 4096), ("inbatch", 0)):
        objective = build_objective(cbns.TrainConfig(sampler=sampler, item_side="split"), counts)
        assert type(objective) is cbns.CrossBatchSoftmaxLoss and objective.memory_size == memory


def test_public_api():
    assert cbns.__version__ and set(cbns.__all__) >= {"train", "resume", "evaluate_run", "TrainConfig",
                                                       "CrossBatchSoftmaxLoss", "Recommender", "CbnsError"}
    assert torch.is_tensor(cbns.CrossBatchSoftmaxLoss(4, 2).bank.emb)
