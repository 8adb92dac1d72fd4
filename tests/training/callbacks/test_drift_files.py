"""A run that records no drift removes the drift files an earlier run left in its directory, so
they never pass for its own."""
import json

from cbns.config import TrainConfig
from cbns.training.callbacks.drift import DRIFT_FILES, EmbeddingDrift, save_drift


def test_a_run_without_drift_removes_the_files_of_an_earlier_run(tmp_path):
    config = TrainConfig(sampler="cbns", drift_every=1, warmup_steps=3)
    drift = EmbeddingDrift(num_items=20, every=1, sample=5, deltas=(1,))
    drift.records = [{"step": 1, "drift": {1: 0.5}}, {"step": 2, "drift": {1: 0.25}}]
    payload = save_drift(tmp_path, drift, config, steps_per_epoch=2)
    assert json.loads((tmp_path / "drift.json").read_text()) == payload
    assert payload["drift"] == {"1": [0.5, 0.25]} and payload["warmup_steps"] == 3
    assert (tmp_path / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "metrics.json").write_text("{}")  # the other files of the directory stay
    assert save_drift(tmp_path, None, TrainConfig(), steps_per_epoch=2) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    assert DRIFT_FILES == ("drift.json", "drift.png")
    assert save_drift(tmp_path, None, TrainConfig(), steps_per_epoch=2) is None  # nothing to remove: fine
