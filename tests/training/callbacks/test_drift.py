"""Item-tower drift: D(t, dt) against numpy on a scripted weight trajectory; a real run's record."""
import json

import numpy as np
import pytest
import torch

from cbns.model.towers import IdTower
from cbns.model.two_tower import TwoTower
from cbns.training.callbacks.drift import EmbeddingDrift


class _ScriptedTrainer:
    """Stands in for the Trainer: a model whose item table is set to ``tables[t]`` at step t."""

    def __init__(self, tables, normalize):
        num, dim = tables[0].shape
        self.model = TwoTower(IdTower(3, dim), IdTower(num, dim), normalize=normalize)
        self.tables = tables
        self.global_step = 0
        self._load()

    def _load(self):
        with torch.no_grad():
            self.model.item_tower.embedding.weight.copy_(torch.from_numpy(self.tables[self.global_step]))

    def run(self, callback):
        callback.on_fit_start(self)
        for _ in range(len(self.tables) - 1):
            self.global_step += 1
            self._load()
            callback.on_step_end(self)
            assert len(callback.snapshots) <= max(callback.deltas)  # the ring never grows past max(dt)


@pytest.mark.parametrize("normalize", [False, True])
def test_drift_matches_numpy_on_a_scripted_trajectory(normalize):
    rng = np.random.default_rng(0)
    tables = [rng.normal(size=(50, 4)).astype(np.float32) for _ in range(31)]  # steps 0..30
    drift = EmbeddingDrift(num_items=50, every=4, sample=20, deltas=(1, 3, 6), seed=1)
    _ScriptedTrainer(tables, normalize).run(drift)

    ids = drift.ids.numpy()
    assert len(set(ids)) == 20 and ids.max() < 50

    def emb(t):
        x = tables[t][ids]
        return x / np.linalg.norm(x, axis=1, keepdims=True) if normalize else x

    assert [r["step"] for r in drift.records] == [4, 8, 12, 16, 20, 24, 28]
    for record in drift.records:
        t = record["step"]
        expected = {dt: np.linalg.norm(emb(t) - emb(t - dt), axis=1).sum() for dt in (1, 3, 6) if t - dt >= 0}
        assert set(record["drift"]) == set(expected)  # t = 4 has no step -2 snapshot
        for dt, value in expected.items():
            assert record["drift"][dt] == pytest.approx(value, rel=1e-5)


def test_drift_sample_is_capped_and_fixed_by_seed():
    assert len(EmbeddingDrift(num_items=7, sample=100).ids) == 7
    a, b = EmbeddingDrift(1000, sample=10, seed=3), EmbeddingDrift(1000, sample=10, seed=3)
    assert torch.equal(a.ids, b.ids) and not torch.equal(a.ids, EmbeddingDrift(1000, sample=10, seed=4).ids)


@pytest.mark.slow
def test_training_records_drift_json_and_png(tmp_path, gowalla_slice):
    from cbns.api import train
    from cbns.config import TrainConfig

    config = TrainConfig(data=str(gowalla_slice), sampler="cbns", dim=16, batch_size=256, memory_size=512,
                         warmup_steps=7, lr=0.02, epochs=1, threads=1, drift_every=1, drift_sample=300,
                         drift_deltas=[1, 3])
    train(config, tmp_path, progress=False, verbose=False)
    record = json.loads((tmp_path / "drift.json").read_text())
    assert (tmp_path / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert record["warmup_steps"] == 7 and record["sample"] == 300 and record["deltas"] == [1, 3]
    steps, d1, d3 = record["steps"], record["drift"]["1"], record["drift"]["3"]
    assert steps == list(range(1, record["steps_per_epoch"] + 1))
    assert all(v > 0 for v in d1)
    # Triangle inequality: a 3-step shift is at most the sum of the three 1-step shifts ending at t.
    # It fails if a snapshot were taken at the wrong step.
    for i in range(2, len(steps)):
        assert d3[i] <= d1[i] + d1[i - 1] + d1[i - 2] + 1e-4
    assert d3[0] is None and d3[1] is None and d3[2] is not None  # t - 3 < 0 before step 3
