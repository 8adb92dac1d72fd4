"""cbns recommend --history / --features / --item: real invocations, their answers checked against
the stored rows and brute force, and each bad input a one-line error."""
import json

import numpy as np
import pytest
from conftest import train_features_run, write_tiny_lightgcn

from cbns.cli import main


def recommend(capsys, run, *args):
    code = main(["recommend", str(run), "--threads", "1", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def pooled_run(tmp_path_factory):
    from cbns.api import train
    from cbns.config import TrainConfig

    root = write_tiny_lightgcn(tmp_path_factory.mktemp("pooled-cli"), seed=7)
    train(TrainConfig(data=str(root), user_tower="pooled", dim=4, hidden_dim=6, batch_size=32, epochs=1, threads=1),
          root / "run", progress=False, verbose=False)
    return root / "run"


@pytest.fixture(scope="module")
def features_run(tmp_path_factory):
    root = write_tiny_lightgcn(tmp_path_factory.mktemp("features-cli"), seed=8)
    return train_features_run(root, "user,job,tags\n" + "".join(
        f"{u},{['cook', 'pilot'][u % 2]},{'|'.join(f't{j}' for j in range(u % 3))}\n" for u in range(40)))


def seen_of(run, user):
    """The user's train + validation items: every item of their line in the train.txt beside the run
    (the validation split is carved out of it)."""
    line = (run.parent / "train.txt").read_text().splitlines()[user].split()
    assert line[0] == str(user)
    return sorted(int(i) for i in line[1:])


def test_a_users_history_answers_as_their_stored_row(capsys, pooled_run):
    history = seen_of(pooled_run, 3)  # the pooled tower takes the plain mean: the order does not matter
    code, out, err = recommend(capsys, pooled_run, "--history", ",".join(map(str, reversed(history))), "-k", "7",
                               "--format", "json")
    assert code == 0 and "# top 7 for 1 history query, the history's own items excluded, exact scoring" in err
    asked = json.loads(out)
    _, out, _ = recommend(capsys, pooled_run, "--user", "3", "-k", "7", "--format", "json")
    stored = json.loads(out)
    assert asked[0]["history"] == history[::-1]
    assert [i["item"] for i in asked[0]["items"]] == [i["item"] for i in stored[0]["items"]]
    np.testing.assert_allclose([i["score"] for i in asked[0]["items"]], [i["score"] for i in stored[0]["items"]],
                               atol=2e-6)
    assert not {i["item"] for i in asked[0]["items"]} & set(history)


def test_history_queries_on_an_id_tower_fold_in_and_exclude_their_own_items(capsys, tiny_run):
    code, out, _ = recommend(capsys, tiny_run, "--history", "1,2,3", "--history", "4", "-k", "28")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["history", "rank", "item", "score"]
    assert len(lines) == 1 + 27 + 28  # 30 items: 27 left beside 1, 2 and 3, 29 beside 4
    first = [line.split() for line in lines[1:28]]
    assert {row[0] for row in first} == {"1,2,3"} and not {"1", "2", "3"} & {row[2] for row in first}
    code, out, _ = recommend(capsys, tiny_run, "--history", "1,2,3", "-k", "30", "--no-exclude-seen",
                             "--format", "json")
    assert {1, 2, 3} <= {i["item"] for i in json.loads(out)[0]["items"]}


def test_similar_items_by_item_id_match_brute_force(capsys, tiny_run):
    code, out, err = recommend(capsys, tiny_run, "--item", "5", "-k", "4", "--format", "json")
    assert code == 0 and "the item itself excluded" in err
    items = np.load(tiny_run / "item_embeddings.npy").astype(np.float64)[:, :-1]  # without the ranking term
    scores = items @ items[5]
    scores[5] = -np.inf
    assert [i["item"] for i in json.loads(out)[0]["items"]] == np.argsort(-scores, kind="stable")[:4].tolist()


def test_features_queries_read_key_value_pairs(capsys, features_run):
    code, out, _ = recommend(capsys, features_run, "--features", "job=pilot,tags=t0|t1", "--features", "job=cook",
                             "-k", "3", "--format", "json")
    assert code == 0
    answer = json.loads(out)
    assert [a["features"] for a in answer] == [{"job": "pilot", "tags": ["t0", "t1"]}, {"job": "cook"}]
    assert all(len(a["items"]) == 3 for a in answer)


@pytest.mark.parametrize(("which", "args", "message"), [
    ("tiny", ["--history", "1,99"], "--history '1,99': item '99': not in this run (30 known, integer ids 0..29)"),
    ("tiny", ["--history", "1", "--history", "x"],
     "--history 'x': item 'x': not an id of this run: its ids are the integers 0..29"),
    ("tiny", ["--history", ""], "--history '': empty; give the item ids of the history, oldest first"),
    ("tiny", ["--history", " "], "--history ' ': empty"),
    ("tiny", ["--features", "job=cook"], "--features 'job=cook': this run cannot answer a features query; "
                                         "it answers: user, history"),
    ("tiny", ["--item", "30"], "--item '30': not in this run (30 known"),
    ("tiny", ["--user", "3", "--history", "1"], "give one kind of query: --user, --history, --features or --item "
                                                "(got --user, --history)"),
    ("tiny", [], "give one kind of query: --user, --history, --features or --item"),
    ("features", ["--history", "1,2"], "--history '1,2': this run cannot answer a history query; "
                                       "it answers: user, features"),
    ("features", ["--features", "job"], "--features 'job': 'job' is not KEY=VALUE (pairs separated by commas)"),
    ("features", ["--features", "job=cook,job=pilot"], "--features 'job=cook,job=pilot': attribute 'job' given twice"),
    ("features", ["--features", "job=cook", "--features", "job=chef"],
     "--features 'job=chef': attribute 'job' value 'chef': no training row had it (2 known values"),
    ("features", ["--features", "age=3"], "--features 'age=3': attribute 'age': not an attribute of this run's user "
                                          "tower; it reads 'user:job', 'user:tags'"),
])
def test_bad_queries_are_one_line_errors(capsys, tiny_run, features_run, which, args, message):
    code, out, err = recommend(capsys, tiny_run if which == "tiny" else features_run, *args)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"cbns: error: {message}"), err


def test_history_queries_go_through_a_built_index(capsys, pooled_run, tmp_path):
    from conftest import copy_run

    run = copy_run(pooled_run, tmp_path / "run")
    assert main(["index", "build", str(run), "--kind", "flat", "--threads", "1"]) == 0
    capsys.readouterr()
    history = ",".join(map(str, seen_of(pooled_run, 8)))
    code, out, err = recommend(capsys, run, "--history", history, "-k", "6", "--format", "json")
    assert code == 0 and "index flat" in err
    _, exact, _ = recommend(capsys, run, "--history", history, "-k", "6", "--format", "json", "--exact")
    assert [i["item"] for i in json.loads(out)[0]["items"]] == [i["item"] for i in json.loads(exact)[0]["items"]]
