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


class Declared(MeanOfTwo):
    """A tower that says its width (``out_dim``), with dropout to see that a probe leaves modes alone."""

    def __init__(self, num, dim):
        super().__init__(num, dim)
        self.out_dim, self.drop = dim, nn.Dropout(0.5)


def test_both_towers_given_set_the_width_of_the_run(tmp_path, gowalla_slice):
    """64-wide towers with the config's default dim (256): the run trains at 64 and says so."""
    from cbns.config import load_yaml
    from cbns.data import load_data

    config = cbns.TrainConfig(data=str(gowalla_slice), batch_size=256, epochs=1, threads=1)
    assert config.model.dim != 64
    data = load_data(config)
    result = cbns.train(config, tmp_path / "run", progress=False, verbose=False,
                        user_tower=MeanOfTwo(data.num_users, 64), item_tower=Declared(data.num_items, 64))
    assert 0 < result.test["recall@20"] <= 1
    assert load_yaml(tmp_path / "run" / "config.yaml")["dim"] == 64
    width = np.load(tmp_path / "run" / "item_embeddings.npy").shape[1]
    assert width in (64, 65)  # 64, and the ranking-term column when the run exports one
    assert cbns.Recommender.from_run(tmp_path / "run").prior_column == (width == 65)


MISSING = "no-such-data-file.txt"  # checked before loading: an error about the data would mean too late


@pytest.mark.parametrize("parts, match", [
    ({"user_tower": MeanOfTwo(10, 5), "item_tower": MeanOfTwo(10, 8)},
     "user_tower returns vectors of width 5 and item_tower of width 8"),
    ({"user_tower": Declared(10, 64)}, "user_tower returns vectors of width 64, but the config's dim is 8 .the width "
                                       "of the item tower it builds.; set dim=64"),
    ({"item_tower": MeanOfTwo(10, 16)}, "item_tower returns vectors of width 16, but the config's dim is 8"),
    ({"loss": cbns.CrossBatchSoftmaxLoss(32, 0)}, "the loss was built with dim=32, but the config's dim is 8"),
    ({"user_tower": Declared(10, 64), "item_tower": Declared(10, 64), "loss": cbns.CrossBatchSoftmaxLoss(8, 0)},
     "the loss was built with dim=8, got user_emb of width 64 from user_tower .Declared."),
])
def test_widths_that_disagree_are_refused_before_loading_or_writing(tmp_path, parts, match):
    config = cbns.TrainConfig(data=str(tmp_path / MISSING), dim=8, epochs=1, threads=1)
    modes = {name: [m.training for m in part.modules()] for name, part in parts.items()}
    with pytest.raises(ValueError, match=match):
        cbns.train(config, tmp_path / "run", progress=False, verbose=False, **parts)
    assert not (tmp_path / "run").exists()
    assert {name: [m.training for m in part.modules()] for name, part in parts.items()} == modes


@pytest.mark.parametrize("call, error, match", [
    (lambda out: cbns.train({"dim": 8}, out), TypeError,
     "config must be a cbns.TrainConfig .or None for the defaults., got dict; build one with cbns.TrainConfig"),
    (lambda out: cbns.train("config.yaml", out), TypeError, "config must be a cbns.TrainConfig .*got str 'config.yaml'"),
    (lambda out: cbns.train(cbns.TrainConfig(), 5), TypeError, "out must be a directory path .*got int"),
    (lambda out: cbns.train(cbns.TrainConfig(), ""), ValueError, "out must name a directory, got ''"),
    (lambda out: cbns.train(cbns.TrainConfig(), out, user_tower="id"), TypeError,
     "user_tower must be an nn.Module .a tower: .*got str 'id'"),
    (lambda out: cbns.train(cbns.TrainConfig(), out, item_tower=64), TypeError, "item_tower must be an nn.Module .*got int"),
    (lambda out: cbns.train(cbns.TrainConfig(), out, loss={"temperature": 0.1}), TypeError,
     "loss must be an nn.Module .a loss: .*got dict"),
    (lambda out: cbns.train(cbns.TrainConfig(), out, callbacks="stop"), TypeError,
     "callbacks must be a sequence of cbns callbacks, got str 'stop'"),
    (lambda out: cbns.resume(7), TypeError, "run must be a directory path .str or pathlib.Path., got int"),
    (lambda out: cbns.resume(out, loss="cbns"), TypeError, "loss must be an nn.Module"),
    (lambda out: cbns.evaluate_run(None), TypeError, "run must be a directory path .*got NoneType"),
    (lambda out: cbns.evaluate_run(out, device=0), TypeError, "device must be a string .*got int"),
])
def test_arguments_of_the_wrong_type_are_one_error_naming_the_argument(tmp_path, call, error, match):
    with pytest.raises(error, match=match):
        call(tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_resume_with_towers_of_another_width_is_refused_before_the_run_is_touched(tmp_path):
    from cbns.config import save_yaml

    run = tmp_path / "run"
    run.mkdir()
    save_yaml(cbns.TrainConfig(dim=8), run / "config.yaml")
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(ValueError, match="trained at dim=8, but the towers given return vectors of width 64"):
        cbns.resume(run, user_tower=Declared(10, 64), item_tower=Declared(10, 64))
    with pytest.raises(ValueError, match="user_tower returns vectors of width 64, but the config's dim is 8"):
        cbns.resume(run, user_tower=Declared(10, 64))
    assert sorted(p.name for p in run.iterdir()) == before
