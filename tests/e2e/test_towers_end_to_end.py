"""History and feature towers trained end to end through the CLI, with leave-one-out evaluation."""
import json

import numpy as np
import pytest
from conftest import SHARED_DATA

from cbns.cli import main

NUM_ITEMS = 200


@pytest.fixture(scope="module")
def successor_sequences(tmp_path_factory):
    """300 users, each a run of 8 consecutive item ids (next item = previous + 1): learnable from
    the history, not from the user id. Attributes: each item's id mod 7 and mod 11."""
    rng = np.random.default_rng(0)
    out = tmp_path_factory.mktemp("succ")
    lines = [" ".join(map(str, [u, *((rng.integers(NUM_ITEMS) + np.arange(8)) % NUM_ITEMS)]))
             for u in range(300)]
    (out / "Succ.txt").write_text("\n".join(lines) + "\n")
    attrs = {str(i): [i % 7, 100 + i % 11] for i in range(NUM_ITEMS)}
    (out / "Succ_item2attributes.json").write_text(json.dumps(attrs))
    return out / "Succ.txt"


def train(tmp_path, data, *flags):
    out = tmp_path / "run"
    code = main(["train", "--data", str(data), "--split", "loo", "--out", str(out), "--threads", "1",
                 "--no-progress", "--dim", "16", "--hidden-dim", "32", "--batch-size", "64",
                 "--memory-size", "128", *flags])
    assert code == 0
    return json.loads((out / "metrics.json").read_text()), out


@pytest.mark.slow
def test_gru_learns_the_successor_rule(tmp_path, successor_sequences, capsys):
    metrics, out = train(tmp_path, successor_sequences, "--user-tower", "gru", "--epochs", "6", "--lr", "0.02",
                         "--sampler", "cbns")
    assert metrics["split"] == "loo" and metrics["towers"] == {"user": "gru", "item": "id"}
    # chance: 20 of the ~193 unseen items; the rule puts the answer first
    assert metrics["test"]["hit@20"] > 0.9 and metrics["test"]["ndcg@20"] > 0.7, metrics["test"]
    phases = metrics["phase_seconds_per_epoch"]
    assert set(phases) == {"data", "encode", "loss", "backward", "optimizer"}
    assert 0 < sum(phases.values()) <= metrics["seconds_per_epoch"] + 1e-3
    # evaluate recomputes the same numbers from the checkpoint (histories rebuilt from the data)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert abs(again["test"]["hit@20"] - metrics["test"]["hit@20"]) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("user_tower,item_tower,extra", [
    ("pooled", "features", ["--pool-decay", "0.3"]),
    ("features", "id", ["--user-features", "USERS"]),
    ("id", "features", ["--item-frequency", "streaming"]),
])
def test_tower_combinations_run_and_beat_chance(tmp_path, successor_sequences, user_tower, item_tower, extra):
    if "USERS" in extra:
        users = tmp_path / "users.csv"
        users.write_text("user,parity\n" + "".join(f"{u},{u % 2}\n" for u in range(300)))
        extra = [str(users) if x == "USERS" else x for x in extra]
    metrics, _ = train(tmp_path, successor_sequences, "--user-tower", user_tower, "--item-tower", item_tower,
                       "--epochs", "3", "--lr", "0.02", *extra)
    assert metrics["towers"] == {"user": user_tower, "item": item_tower}
    assert set(metrics["test"]) >= {"hit@20", "ndcg@20"}
    if user_tower == "pooled":       # recency-weighted pooling sees the newest item
        assert metrics["test"]["hit@20"] > 0.8, metrics["test"]  # an ID user tower: ~0.6


def test_feature_tower_without_attributes_is_a_one_line_error(capsys, tmp_path, gowalla_slice):
    code = main(["train", "--data", str(gowalla_slice), "--user-tower", "features", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--user-tower features: the dataset has no user attributes" in err and err.count("\n") == 1


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "ml-100k" / "u.data").is_file(), reason="ml-100k not available")
def test_ml100k_pooled_user_features_item_tower_loo(tmp_path):
    metrics, _ = train(tmp_path, SHARED_DATA / "ml-100k", "--user-tower", "pooled", "--item-tower", "features",
                       "--sampler", "cbns", "--epochs", "1", "--batch-size", "512", "--lr", "0.01")
    assert metrics["split"] == "loo" and metrics["test"]["hit@20"] > 0.05   # chance: ~20 / 1,600
