"""The command line: errors are one line naming the option; a real run end to end."""
import json

import numpy as np
import pytest
import yaml
from conftest import brute_force_metrics

from cbns.cli import main
from cbns.data import carve_validation, load_dataset


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv,message", [
    (["--sampler", "bogus"], "argument --sampler: invalid choice: 'bogus'"),
    (["--memory-size", "-5"], "--memory-size: must be >= 0, got -5"),
    (["--batch-size", "0"], "--batch-size: must be >= 1, got 0"),
    (["--temperature", "0"], "--temperature: must be > 0, got 0.0"),
    (["--data", "/no/such/dir"], "--data /no/such/dir: no such file or directory"),
    (["--lr", "abc"], "argument --lr: invalid float value: 'abc'"),
    (["--ks", "20,x"], "expected comma-separated integers"),
    (["--popularity-prior", "1e100"], "--popularity-prior: must be auto, off or a number in [0, 100]"),
    (["--min-rating", "high"], "--min-rating: must be off or a number, got 'high'"),
    (["--min-rating", "4"], "--min-rating 4: the bundled gowalla (check-ins, stored as pairs) has no ratings"),
    (["--user-column", "customer"], "--user-column customer: the bundled gowalla (check-ins, stored as pairs) has no "
                                    "named columns"),
    (["--config", "."], "--config .: is a directory, not a YAML file"),
])
def test_bad_options_end_in_one_line(capsys, tmp_path, argv, message):
    """Bad flags; the hostile sizes are in tests/training/test_memory_need.py, the options the
    sampler or towers do not read in tests/config/test_unread_options.py."""
    with pytest.raises(SystemExit) if "argument" in message or "expected" in message else _nothing():
        code, out, err = run_cli(capsys, "train", "--out", str(tmp_path / "o"), *argv)
        assert code == 2
    err = capsys.readouterr().err if "argument" in message or "expected" in message else err
    assert message in err
    assert err.startswith("cbns: error:") and err.count("\n") == 1


def test_bad_config_file(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sampler: cbns\nmemory_sizee: 10\n")
    code, _, err = run_cli(capsys, "train", "--config", str(cfg))
    assert code == 2 and "unknown option 'memory_sizee'" in err
    cfg.write_text("batch_size: big\n")
    code, _, err = run_cli(capsys, "train", "--config", str(cfg))
    assert code == 2 and "option batch_size must be int, got 'big'" in err
    cfg.write_text("batch_size: [1\n")
    code, _, err = run_cli(capsys, "train", "--config", str(cfg))
    assert code == 2 and "c.yaml:2: not valid YAML" in err


@pytest.mark.slow
def test_train_then_evaluate_on_a_real_slice(capsys, tmp_path, gowalla_slice):
    out = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"epochs": 3, "dim": 16, "batch_size": 512, "memory_size": 1024, "lr": 0.02}))
    code, stdout, _ = run_cli(capsys, "train", "--config", str(cfg), "--data", str(gowalla_slice),
                              "--batch-size", "256", "--out", str(out), "--threads", "1", "--no-progress")
    assert code == 0 and "recall@20" in stdout
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["batch_size"] == 256 and config["memory_size"] == 1024 and config["epochs"] == 3  # flag beats file
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"valid", "test", "best_epoch", "epochs_run", "train_seconds", "seconds_per_epoch"} <= set(metrics)

    # Independent check: rebuild the split, rank with numpy from the exported embeddings.
    data = carve_validation(load_dataset(str(gowalla_slice)), 0.1, 0)
    users, items = np.load(out / "user_embeddings.npy"), np.load(out / "item_embeddings.npy")
    beta = metrics["popularity_prior"]["beta"]  # auto: chosen on validation; > 0 adds one column
    width = 16 + (beta > 0)
    assert users.dtype == np.float32 and users.shape == (data.num_users, width) and items.shape == (data.num_items, width)
    assert np.allclose(np.linalg.norm(items[:, :16], axis=1), 1, atol=1e-5)
    recall, ndcg = brute_force_metrics(users, items, data.test, np.concatenate([data.train, data.valid]), 20)
    assert abs(metrics["test"]["recall@20"] - recall) < 1e-5 and abs(metrics["test"]["ndcg@20"] - ndcg) < 1e-5
    assert metrics["test"]["recall@20"] > 0.01  # chance is ~20 / 9,000 = 0.002

    code, stdout, _ = run_cli(capsys, "evaluate", str(out), "--json")
    again = json.loads(stdout)
    assert abs(again["test"]["recall@20"] - metrics["test"]["recall@20"]) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["inbatch", "uniform", "popularity", "mns", "cbns"])
def test_every_sampler_learns(tmp_path, gowalla_slice, sampler):
    from cbns.api import train
    from cbns.config import TrainConfig

    result = train(TrainConfig(data=str(gowalla_slice), sampler=sampler, dim=16, batch_size=256,
                               memory_size=512, num_negatives=256, lr=0.02, epochs=3, threads=1),
                   progress=False, verbose=False)
    assert result.test["recall@20"] > 0.01, result.test  # chance: ~0.002


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_rated_table_prints_and_records_what_min_rating_kept(capsys, tmp_path):
    rng = np.random.default_rng(4)
    rows = [(f"u{u}", f"i{i}", int(rng.integers(1, 6))) for u in range(60) for i in rng.choice(50, 12, replace=False)]
    lines = ["customer,product,stars"] + [f"{u},{i},{r}" for u, i, r in rows]
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    below = sum(r < 4 for _, _, r in rows)   # counted here
    code, _, err = run_cli(capsys, "train", "--data", str(tmp_path / "r.csv"), "--user-column", "customer",
                           "--item-column", "product", "--rating-column", "stars", "--min-rating", "4", "--epochs", "1",
                           "--dim", "8", "--batch-size", "64", "--threads", "1", "--no-progress",
                           "--out", str(tmp_path / "run"))
    assert code == 0
    summary = err.splitlines()[0]
    assert summary.startswith("data r: ") and " train / " in summary and " valid / " in summary
    assert summary.endswith(f"pairs; {len(rows):,} rows read: {len(rows) - below:,} kept, {below:,} rated below 4 "
                            f"dropped, 0 duplicate (user, item) rows dropped")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dataset_rows"] == {"read": len(rows), "kept": len(rows) - below, "below_min_rating": below,
                                       "duplicates": 0, "min_rating": 4.0, "rating_range": [1.0, 5.0]}
    assert metrics["dataset"] == summary[len("data "):]
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (config["min_rating"], config["user_column"], config["rating_column"]) == ("4", "customer", "stars")


@pytest.mark.parametrize("argv,message", [
    (["--out", ""], "--out '': an empty path; give a directory"),
    (["--out", " "], "--out ' ': an empty path; give a directory"),
    (["--resume", ""], "--resume '': an empty path; give a directory"),
    (["--config", ""], "--config '': an empty path; give a YAML file"),
])
def test_an_empty_path_is_refused(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)  # an empty --out used to write runs/latest here
    code, _, err = run_cli(capsys, "train", *argv)
    assert code == 2 and err == f"cbns: error: {message}\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "{}\n"])
def test_an_empty_config_file_is_refused(capsys, tmp_path, text):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    code, _, err = run_cli(capsys, "train", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert code == 2 and err == (f"cbns: error: --config {cfg}: the file is empty (it sets no option; alone, every "
                                 f"default would train on the full gowalla dataset): write the options in it, or "
                                 f"drop --config\n")


def test_metric_columns_are_as_wide_as_their_content():
    from cbns.cli.tables import metrics_table

    table = metrics_table({"valid": {"recall@20": 0.25, "precision@10000": 0.5},
                           "test": {"recall@20": 0.125, "precision@10000": 0.03125}})
    # the part names take 6; a column takes its widest entry + 1 space, and at least 13 (as always)
    assert table.splitlines() == [
        " " * 6 + " " * (16 - 15) + "precision@10000" + " " * (13 - 9) + "recall@20",
        "valid " + " " * (16 - 6) + "0.5000" + " " * (13 - 6) + "0.2500",
        "test  " + " " * (16 - 6) + "0.0312" + " " * (13 - 6) + "0.1250",
    ]
    assert metrics_table({"test": {"precision@50": 0.25}}) == "       precision@50\ntest         0.2500"


def test_no_progress_bar_is_redrawn_into_a_redirected_stderr(capsys, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("user,item\n" + "".join(f"{u},{i}\n" for u in range(40) for i in range(6)))
    code, _, err = run_cli(capsys, "train", "--data", str(data), "--epochs", "3", "--batch-size", "8", "--dim", "8",
                           "--threads", "1", "--out", str(tmp_path / "o"))  # progress on; pytest's stderr is no tty
    assert code == 0
    assert "\r" not in err and "batch/s" not in err and "epoch 1:" not in err
    code, _, quiet = run_cli(capsys, "train", "--data", str(data), "--epochs", "3", "--batch-size", "8", "--dim", "8",
                             "--threads", "1", "--no-progress", "--out", str(tmp_path / "o2"))
    assert code == 0 and err.count("\n") == quiet.count("\n")  # the bar adds no line
