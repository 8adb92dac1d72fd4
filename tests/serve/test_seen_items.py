"""Serving reads the seen items the run saved, falls back to the dataset for a run saved without
them (one note on stderr), and never recommends a seen item either way."""
import json

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import as_sets, copy_run, train_file_sets

from cbns.cli import main
from cbns.runs import atomic
from cbns.runs.seen_items_file import SEEN_FILE, read_seen_items
from cbns.serve.recommender import Recommender


def assert_no_seen_item_and_full_lists(ranked, seen, num_items, k):
    for user, rows in zip(ranked.queries, ranked.rows):
        got = rows[rows >= 0].tolist()
        assert not set(got) & seen[user], user
        assert len(got) == len(set(got)) == min(k, num_items - len(seen[user]))


def test_recommender_reads_the_runs_file_without_the_dataset(valid_run, tmp_path, capsys):
    run = copy_run(valid_run, tmp_path / "run")
    expected = train_file_sets(valid_run)
    config_text = (run / "config.yaml").read_text()
    assert f"data: {valid_run.parent}\n" in config_text  # the dataset is moved away: serving must not need it
    (run / "config.yaml").write_text(config_text.replace(str(valid_run.parent), str(tmp_path / "gone")))
    rec = Recommender.from_run(run)
    assert as_sets(rec.seen) == expected
    ranked = rec.recommend(np.arange(40), k=25)
    assert_no_seen_item_and_full_lists(ranked, expected, len(rec.items), 25)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("leftover", ["none", "older cache"])
def test_a_run_saved_without_the_file_falls_back_to_the_dataset(valid_run, tmp_path, capsys, leftover):
    run = copy_run(valid_run, tmp_path / "run")
    expected = train_file_sets(valid_run)
    (run / SEEN_FILE).unlink()
    if leftover == "older cache":
        # the cache older serving code wrote, keyed by the dataset options: here deliberately wrong
        # (nobody has seen anything), so trusting it would let seen items through
        z = sp.csr_matrix((40, 30), dtype=np.float32)
        np.savez_compressed(run / SEEN_FILE, indptr=z.indptr, indices=z.indices, shape=np.array(z.shape),
                            source=np.array("anything"))
    rec = Recommender.from_run(run)
    assert as_sets(rec.seen) == expected
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cbns: note: ") and "computing the seen items from the dataset" in err
    assert_no_seen_item_and_full_lists(rec.recommend(np.arange(40), k=25), expected, len(rec.items), 25)
    # the fallback wrote the file as a run saves it, so the next load reads it and says nothing
    assert as_sets(read_seen_items(run, rec.items, len(rec.users))) == expected
    assert as_sets(Recommender.from_run(run).seen) == expected
    assert capsys.readouterr().err == ""


def test_fallback_where_the_file_cannot_be_written_still_serves(valid_run, tmp_path, capsys, monkeypatch):
    run = copy_run(valid_run, tmp_path / "run")
    (run / SEEN_FILE).unlink()

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)  # a read-only run directory
    rec = Recommender.from_run(run)
    assert as_sets(rec.seen) == train_file_sets(valid_run)
    assert capsys.readouterr().err.count("\n") == 1
    assert not (run / SEEN_FILE).exists()


def test_cbns_recommend_never_returns_a_seen_item(valid_run, capsys):
    seen = train_file_sets(valid_run)
    num_items = len(np.load(valid_run / "item_embeddings.npy"))
    users = [str(u) for u in range(40)]
    code = main(["recommend", str(valid_run), "--threads", "1", "-k", "30", "--format", "json",
                 *[a for u in users for a in ("--user", u)]])
    assert code == 0
    answer = json.loads(capsys.readouterr().out)
    assert [a["user"] for a in answer] == list(range(40))
    for a in answer:
        got = [x["item"] for x in a["items"]]
        assert not set(got) & seen[a["user"]]
        assert len(got) == min(30, num_items - len(seen[a["user"]]))


def test_the_seen_items_of_a_run_with_another_min_rating_are_never_used(tmp_path, capsys):
    from cbns.api import train
    from cbns.config import TrainConfig
    from cbns.data.loading import load_data

    rng = np.random.default_rng(5)
    rated = {(f"u{u}", f"i{i}"): int(rng.integers(1, 4)) for u in range(30) for i in rng.choice(25, 10, replace=False)}
    (tmp_path / "r.csv").write_text("user,item,rating\n" + "".join(f"{u},{i},{r}\n" for (u, i), r in rated.items()))
    runs = {}
    for name, min_rating in (("all", "off"), ("liked", "2")):
        config = TrainConfig(data=str(tmp_path / "r.csv"), min_rating=min_rating, sampler="inbatch", dim=4,
                             batch_size=32, epochs=1, threads=1)
        train(config, tmp_path / name, progress=False, verbose=False)
        runs[name] = config
    old = read_seen_items(tmp_path / "all", np.load(tmp_path / "all" / "item_embeddings.npy"), 30)
    assert "min_rating=2" in str(np.load(tmp_path / "liked" / SEEN_FILE)["source"])
    # the file of the run without the filter, left in the directory of the run with it
    (tmp_path / "liked" / SEEN_FILE).write_bytes((tmp_path / "all" / SEEN_FILE).read_bytes())
    rec = Recommender.from_run(tmp_path / "liked")
    users = [str(u) for u in rec.user_map.originals]
    items = rec.item_map.originals
    seen = {u: {items[i] for i in rec.seen[r].indices} for r, u in enumerate(users)}
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "written with other item embeddings than the run's" in err
    # brute force from the table: a user's seen items are the pairs rated 2 or more, minus their test pairs
    data = load_data(runs["liked"])
    test = {(users[u], items[i]) for u, i in data.test}
    for u in users:
        liked = {i for (v, i), r in rated.items() if v == u and r >= 2}
        assert seen[u] == liked - {i for v, i in test if v == u}
    assert any(old[r].nnz != rec.seen[r].nnz for r in range(min(old.shape[0], rec.seen.shape[0])))
    ranked = rec.recommend(users, k=30)
    for u, got in zip(users, ranked.ids):
        assert not {i for i in got if i is not None} & seen[u]
