"""--eval-users, --test-users and --eval-index through a real training run: the sample sizes are
what was asked, and a flat (exact inner-product) index reproduces the exact ranking."""
import json

import numpy as np
import pytest

from cbns.cli import main


@pytest.fixture(scope="module")
def sampled_run(tmp_path_factory, gowalla_slice):
    out = tmp_path_factory.mktemp("sampled") / "run"
    code = main(["train", "--data", str(gowalla_slice), "--epochs", "2", "--dim", "16", "--batch-size", "256",
                 "--memory-size", "512", "--threads", "1", "--no-progress", "--eval-users", "50",
                 "--test-users", "60", "--eval-index", "flat", "--out", str(out)])
    assert code == 0
    return json.loads((out / "metrics.json").read_text())


def test_the_samples_are_the_sizes_asked_and_recorded(sampled_run):
    evaluation = sampled_run["evaluation"]
    assert evaluation["valid"]["users"] == 50 and evaluation["valid"]["of"] > 50
    assert evaluation["test"]["users"] == 60 and evaluation["test"]["sample_seed"] == 5  # seed 0 + 5
    assert evaluation["valid"]["ranking"] == "flat"


def test_a_flat_index_validates_as_exact_ranking_does(sampled_run):
    first = sampled_run["history"][0]["valid_index"]  # compared with exact ranking at the first validation
    assert first["users"] == 50
    assert all(np.isclose(v, 1.0) for v in first["recall_vs_exact"].values())
    for key, value in first["exact_metrics"].items():
        assert np.isclose(sampled_run["history"][0]["valid"][key], value, atol=1e-6), key
