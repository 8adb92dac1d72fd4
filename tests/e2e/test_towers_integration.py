"""History towers with the rest of cbns: serving a run, study cells with a towers axis, timed
tables through main's strict reader, and the one-line errors of bad tower/split/attribute input."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from cbns.api import train
from cbns.cli import main
from cbns.config import TrainConfig
from cbns.data import load_dataset
from cbns.data.history import HISTORY, HISTORY_LENGTH
from cbns.errors import CbnsError
from cbns.model.build import build_model
from cbns.runs.model_file import read_model_file
from cbns.runs.run_dir import load_run_config
from cbns.study import load_spec, run_study
from cbns.study.cells import expand

MAX_HISTORY = 4


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    """150 users (ids 1000..1149) with 7 time-ordered items each, item ids 500..559."""
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("seq") / "Seq.txt"
    rows = {1000 + u: [500 + int(i) for i in rng.choice(60, 7, replace=False)] for u in range(150)}
    path.write_text("".join(" ".join(map(str, [u, *items])) + "\n" for u, items in rows.items()))
    return path, rows


@pytest.fixture(scope="module")
def gru_run(tmp_path_factory, sequences):
    path, rows = sequences
    out = tmp_path_factory.mktemp("gru-run")
    config = TrainConfig(data=str(path), split="loo", user_tower="gru", sampler="cbns", dim=8, hidden_dim=16,
                         max_history=MAX_HISTORY, batch_size=64, memory_size=128, epochs=2, lr=0.02, threads=1)
    train(config, out, progress=False, verbose=False)
    return out, rows


def test_exported_user_vectors_read_the_history_as_of_the_test(gru_run):
    """What serving ranks with: each user's vector from their newest items before the test item
    (the validation item included), built here from the file, not from cbns.data.history."""
    run, rows = gru_run
    user_ids = (run / "user_ids.txt").read_text().split()
    item_row = {int(v): r for r, v in enumerate((run / "item_ids.txt").read_text().split())}
    history = torch.zeros(len(user_ids), MAX_HISTORY, dtype=torch.long)
    for r, uid in enumerate(user_ids):
        seen = [item_row[i] for i in rows[int(uid)][:-1]][-MAX_HISTORY:]  # drop the test item
        history[r, :len(seen)] = torch.tensor(seen)
    lengths = torch.full((len(user_ids),), MAX_HISTORY)
    config = load_run_config(run)
    model = build_model(config, len(user_ids), len(item_row))
    model.load_state_dict(read_model_file(run)["model"])
    with torch.no_grad():
        want = model.user_embeddings(torch.arange(len(user_ids)), {HISTORY: history, HISTORY_LENGTH: lengths})
    exported = np.load(run / "user_embeddings.npy")
    assert exported.shape == (len(user_ids), config.model.dim + 1)  # + the ones of the item-bias column
    assert np.allclose(exported[:, :-1], want.numpy(), atol=1e-5) and (exported[:, -1] == 1).all()


def test_index_evaluation_of_a_history_run_scores_the_test_part_only(gru_run, capsys):
    run, _ = gru_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert main(["evaluate", str(run), "--index", "--kind", "flat", "--json", "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["exact_metrics"]) == {"test"}
    for name in ("hit@20", "ndcg@20"):  # exact scoring of the exported vectors = the run's own test
        assert report["exact_metrics"]["test"][name] == pytest.approx(metrics["test"][name], abs=1e-6)
    assert main(["evaluate", str(run), "--index", "--kind", "flat", "--threads", "1"]) == 0
    assert "valid not scored: the gru user tower exported its vectors as of the test" in capsys.readouterr().out


def test_recommend_for_a_history_run_leaves_out_train_and_validation_items(gru_run, capsys):
    run, rows = gru_run
    assert main(["index", "build", str(run), "--kind", "flat", "--threads", "1"]) == 0
    capsys.readouterr()
    assert main(["recommend", str(run), "--user", "1003", "--user", "1100", "-k", "10", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    lists = {str(entry["user"]): [int(x["item"]) for x in entry["items"]] for entry in out}
    for user in (1003, 1100):
        got = lists[str(user)]
        assert len(got) == 10 and not set(got) & set(rows[user][:-1])  # seen = all but the test item


def test_study_cells_take_the_tower_options_of_their_towers_label(tmp_path, sequences):
    path, _ = sequences
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({
        "base": {"split": "loo", "epochs": 1, "dim": 8, "hidden_dim": 16, "batch_size": 64, "lr": 0.02,
                 "max_history": MAX_HISTORY},
        "datasets": {"seq": str(path)},
        "towers": {"id": {}, "gru": {"user_tower": "gru"}, "pooled-feat": {"user_tower": "pooled",
                                                                            "item_tower": "id", "pool_decay": 0.5}},
        "samplers": {"inbatch": {"sampler": "inbatch"}},
        "sections": {"towers": {"kind": "table", "towers": ["id", "gru"]}},
    }))
    spec = load_spec(str(spec_file))
    cells = {c.tower: c for c in expand(spec)}
    assert set(cells) == {"id", "gru"}
    assert cells["gru"].config("x").model.user_tower == "gru" and cells["id"].config("x").model.user_tower == "id"
    study = run_study(spec, tmp_path / "study", threads=1, progress=False)
    assert not study.pending
    for tower, user_tower in (("id", "id"), ("gru", "gru")):
        metrics = json.loads((tmp_path / "study" / "cells" / cells[tower].name / "metrics.json").read_text())
        assert metrics["towers"]["user"] == user_tower and metrics["split"] == "loo"

    spec_file.write_text(spec_file.read_text().replace("user_tower: gru", "user_tower: transformer"))
    with pytest.raises(CbnsError, match=r"cell seq/gru/inbatch: user_tower: must be one of id, pooled, gru, "
                                        r"features, got 'transformer'"):
        expand(load_spec(str(spec_file)))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_with_timestamps_takes_the_leave_one_out_split(tmp_path, suffix):
    """Main's strict table reader keeps the timestamp column for the time-based splits; the rows are
    out of time order on purpose (user a's newest item is x, then z)."""
    frame = pd.DataFrame({"user": ["a", "a", "a", "b", "b", "b"], "item": ["x", "y", "z", "y", "x", "z"],
                          "timestamp": [30, 10, 20, 1, 2, 3]})
    path = tmp_path / f"t{suffix}"
    if suffix == ".parquet":
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s")
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    data = load_dataset(str(path), split="loo")
    name = lambda pairs: sorted((data.user_ids[u], data.item_ids[i]) for u, i in pairs)  # noqa: E731
    assert name(data.test) == [("a", "x"), ("b", "z")]
    assert name(data.valid) == [("a", "z"), ("b", "x")]
    assert name(data.train) == [("a", "y"), ("b", "y")]


def _error(capsys, *argv):
    try:
        code = main(["train", *argv, "--epochs", "1", "--threads", "1", "--no-progress"])
    except SystemExit as exc:  # argparse's own checks (choices) exit from the parser
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("cbns: error: ") and err.count("\n") == 1, err
    return err


def test_bad_tower_split_and_attribute_input_end_in_one_line(capsys, tmp_path, gowalla_slice, sequences):
    path, _ = sequences
    out = str(tmp_path / "out")
    err = _error(capsys, "--data", str(gowalla_slice), "--user-tower", "transformer", "--out", out)
    assert "argument --user-tower: invalid choice: 'transformer'" in err
    config = tmp_path / "c.yaml"
    config.write_text("item_tower: bert\n")
    err = _error(capsys, "--config", str(config), "--out", out)
    assert f"{config}:1: option item_tower must be one of id, features, got 'bert'" in err
    err = _error(capsys, "--data", "gowalla", "--split", "loo", "--out", out)
    assert "--split loo: gowalla comes with its own test split and no event times; use --split random" in err
    err = _error(capsys, "--data", str(path), "--split", "loo", "--item-tower", "features", "--out", out)
    assert "--item-tower features: the dataset has no item attributes; give a table with --item-features" in err

    bad_csv = tmp_path / "items.csv"
    bad_csv.write_text("item,genre\n500,a\n501,b,c\n")
    err = _error(capsys, "--data", str(path), "--split", "loo", "--item-tower", "features",
                 "--item-features", str(bad_csv), "--out", out)
    assert f"--item-features {bad_csv}: cannot parse the table" in err and "line 3" in err
    no_key = tmp_path / "nokey.csv"
    no_key.write_text("id,genre\n500,a\n")
    err = _error(capsys, "--data", str(path), "--split", "loo", "--item-tower", "features",
                 "--item-features", str(no_key), "--out", out)
    assert f"--item-features {no_key}: no 'item' key column; found id, genre" in err

    seq = tmp_path / "Bad.txt"
    seq.write_text(path.read_text())
    (tmp_path / "Bad_item2attributes.json").write_text('{"500": [1, 2], "501": [3')
    err = _error(capsys, "--data", str(seq), "--split", "loo", "--out", out)
    assert f"{tmp_path / 'Bad_item2attributes.json'}: not valid JSON" in err


def test_train_help_documents_a_flag_for_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    missing = [name for name in TrainConfig.options() if f"--{name.replace('_', '-')}" not in text]
    assert not missing, missing
    for flag in ("--split {random,loo,temporal}", "--user-tower {id,pooled,gru,features}",
                 "--item-frequency {static,streaming}", "--item-features FILE"):
        assert flag in text, flag
