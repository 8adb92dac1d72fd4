"""End-to-end serving tests on two tiny runs trained here from slices of the bundled Gowalla.

* ``gowalla_run``: 800 users written as LightGCN text (integer ids = rows, no id files);
* ``table_run``: 200 other users as train.csv / test.csv with string ids, plus one "heavy" user who
  has seen every item but three, so "fewer than k unseen items left" is exercised.

Every check compares against references computed here from the files written, with numpy
(float64 brute force, sets parsed from the text), not against the serving code's own output.
"""
import json

import faiss
import numpy as np
import pytest
import torch

from cbns.api import train
from cbns.cli import main
from cbns.config import TrainConfig
from cbns.data import load_dataset
from cbns.data.loading import load_data
from cbns.errors import CbnsError
from cbns.evaluation.index_eval import evaluate_index
from cbns.evaluation.ranking import full_ranking
from cbns.ranking.index_spec import IndexSpec
from cbns.ranking.item_index import ItemIndex
from cbns.runs.run_dir import load_run_config
from cbns.serve.recommender import Recommender

HEAVY = "heavy"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(before[0])
    faiss.omp_set_num_threads(before[1])


@pytest.fixture(scope="module")
def gowalla():
    return load_dataset("gowalla")


def _slice(gowalla, lo, hi):
    """Train/test pairs of users ``lo..hi-1``, items renumbered over the slice's train items."""
    train = gowalla.train[(gowalla.train[:, 0] >= lo) & (gowalla.train[:, 0] < hi)]
    test = gowalla.test[(gowalla.test[:, 0] >= lo) & (gowalla.test[:, 0] < hi)]
    items = np.unique(train[:, 1])
    test = test[np.isin(test[:, 1], items)]
    renumber = lambda p: np.stack([p[:, 0] - lo, np.searchsorted(items, p[:, 1])], axis=1)  # noqa: E731
    return renumber(train), renumber(test), len(items)


def _config(data, epochs=1, lr=5e-3):
    return TrainConfig(data=str(data), sampler="inbatch", batch_size=512, dim=32, epochs=epochs, lr=lr,
                       threads=1, ks=[10, 20])


@pytest.fixture(scope="module")
def gowalla_run(tmp_path_factory, gowalla):
    root = tmp_path_factory.mktemp("gowalla_slice")
    train_pairs, test_pairs, _ = _slice(gowalla, 0, 800)
    for name, pairs in (("train.txt", train_pairs), ("test.txt", test_pairs)):
        lines = [" ".join(map(str, [u, *pairs[pairs[:, 0] == u, 1]])) for u in np.unique(pairs[:, 0])]
        (root / "data" / name).parent.mkdir(exist_ok=True)
        (root / "data" / name).write_text("\n".join(lines) + "\n")
    # 2 epochs at a high rate: item vectors need some structure for IVF cells to mean anything
    train(_config(root / "data", epochs=2, lr=0.02), root / "run", progress=False, verbose=False)
    seen = [set() for _ in range(800)]
    for u, i in train_pairs:
        seen[u].add(int(i))
    return root / "run", seen


@pytest.fixture(scope="module")
def table_run(tmp_path_factory, gowalla):
    root = tmp_path_factory.mktemp("table_slice")
    train_pairs, test_pairs, num_items = _slice(gowalla, 1000, 1200)
    user = lambda u: f"u{u}"  # noqa: E731  (unpadded, so text order differs from numeric order)
    item = lambda i: f"{i:07d}"  # noqa: E731  (numeric-looking text that must stay text)
    train_rows = [(user(u), item(i)) for u, i in train_pairs]
    train_rows += [(HEAVY, item(i)) for i in range(3, num_items)]  # seen all but items 0, 1, 2
    (root / "data").mkdir()
    for name, rows in (("train.csv", train_rows), ("test.csv", [(user(u), item(i)) for u, i in test_pairs])):
        (root / "data" / name).write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in rows))
    train(_config(root / "data"), root / "run", progress=False, verbose=False)
    seen = {}
    for u, i in train_rows:
        seen.setdefault(u, set()).add(i)
    return root / "run", seen


def _brute_force(run, user_rows, seen_rows, k):
    """float64 numpy scores, seen items at -inf: ``(scores [Q, I], order [Q, k + 1])``, the best
    ``k + 1`` items of each query, best first."""
    users = np.load(run / "user_embeddings.npy").astype(np.float64)
    items = np.load(run / "item_embeddings.npy").astype(np.float64)
    scores = users[user_rows] @ items.T
    for q, seen in enumerate(seen_rows):
        scores[q, list(seen)] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k + 1]
    return scores, np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1), 1)


def _assert_same_top_k(ranked, scores, order, k, tol=1e-5):
    """Same list as brute force: equal scores rank by rank, same items except among near-ties."""
    for q in range(len(order)):
        want = order[q, :k][np.isfinite(scores[q, order[q, :k]])]
        got = ranked.rows[q][ranked.rows[q] >= 0]
        np.testing.assert_allclose(ranked.scores[q, :len(got)], scores[q, want], atol=tol)
        assert len(got) == len(want)
        boundary_tie = np.isfinite(scores[q, order[q, k]]) and abs(scores[q, order[q, k - 1]] - scores[q, order[q, k]]) < tol
        if not boundary_tie:
            assert set(got) == set(want)
        np.testing.assert_allclose(scores[q, got], ranked.scores[q, :len(got)], atol=tol)


@pytest.mark.parametrize("exclude_seen", [False, True])
@pytest.mark.parametrize("use_flat_index", [False, True])
def test_flat_index_and_exact_scoring_equal_numpy_brute_force(gowalla_run, exclude_seen, use_flat_index):
    run, seen = gowalla_run
    if use_flat_index:
        assert main(["index", "build", str(run), "--kind", "flat", "--threads", "1"]) == 0
    rec = Recommender.from_run(run, use_index=use_flat_index)
    assert (rec.index is not None) == use_flat_index
    users = np.arange(800)
    ranked = rec.recommend(users, k=20, exclude_seen=exclude_seen)
    scores, order = _brute_force(run, users, seen if exclude_seen else [set()] * 800, 20)
    _assert_same_top_k(ranked, scores, order, 20)
    assert list(ranked.queries) == list(range(800))
    (run / "index.faiss").unlink(missing_ok=True)
    (run / "index.json").unlink(missing_ok=True)


@pytest.mark.parametrize("spec", [IndexSpec("ivf", nlist=64, nprobe=2), IndexSpec("hnsw", m=4, ef_search=8)])
def test_seen_items_never_returned_and_lists_stay_full(table_run, spec):
    """Deliberately weak indexes, so over-fetching and the exact fallback are both needed."""
    run, seen = table_run
    rec = Recommender.from_run(run, use_index=False)
    rec.index = ItemIndex.build(rec.items, spec)
    users = sorted(seen)
    ranked = rec.recommend(users, k=30, exclude_seen=True)
    num_items = len(rec.items)
    for user, ids, rows in zip(ranked.queries, ranked.ids, ranked.rows):
        got = [i for i, r in zip(ids, rows) if r >= 0]
        assert not set(got) & seen[user], user
        assert len(got) == len(set(got)) == min(30, num_items - len(seen[user]))
    heavy = list(ranked.queries).index(HEAVY)
    assert sorted(i for i in ranked.ids[heavy] if i is not None) == ["0000000", "0000001", "0000002"]


def test_string_ids_round_trip_through_a_remapped_table(table_run):
    run, seen = table_run
    user_lines = (run / "user_ids.txt").read_text().split("\n")[:-1]
    item_lines = (run / "item_ids.txt").read_text().split("\n")[:-1]
    assert "u199" in user_lines and "0000042" in item_lines
    rec = Recommender.from_run(run, use_index=False)  # exact, so the order is comparable
    asked = ["u1", "u10", "u199"]
    ranked = rec.recommend(asked, k=10, exclude_seen=True)
    assert list(ranked.queries) == asked
    rows = [user_lines.index(u) for u in asked]
    seen_rows = [{item_lines.index(i) for i in seen[u]} for u in asked]
    scores, order = _brute_force(run, rows, seen_rows, 10)
    for q in range(len(asked)):
        assert list(ranked.ids[q]) == [item_lines[r] for r in order[q, :10]]
        assert all(isinstance(i, str) for i in ranked.ids[q])
    similar = rec.similar_items(["0000042"], k=5)
    items = np.load(run / "item_embeddings.npy").astype(np.float64)
    if json.loads((run / "metrics.json").read_text())["popularity_prior"]["beta"] > 0:
        items = items[:, :-1]  # the prior column: similar items rank by the towers alone
    me = item_lines.index("0000042")
    sims = items @ items[me]
    sims[me] = -np.inf
    assert list(similar.ids[0]) == [item_lines[r] for r in np.argsort(-sims)[:5]]


def test_ann_recall_against_exact_on_a_gowalla_slice(gowalla_run):
    """Default ivf and hnsw against exact top-20. Measured on this slice: ivf(nlist=556, nprobe=34)
    0.93, hnsw(m=32, ef_search=128) 0.9996; the floors leave room for thread and BLAS differences."""
    run, _ = gowalla_run
    rec = Recommender.from_run(run, use_index=False)
    users = np.arange(800)
    _, order = _brute_force(run, users, [set()] * 800, 20)
    for kind, floor in (("ivf", 0.85), ("hnsw", 0.97)):
        rec.index = ItemIndex.build(rec.items, IndexSpec(kind))
        ranked = rec.recommend(users, k=20, exclude_seen=False)
        recall = np.mean([len(set(r) & set(o)) / 20 for r, o in zip(ranked.rows, order[:, :20])])
        assert recall >= floor, (kind, recall)


def test_index_evaluation_matches_the_library_evaluator_and_set_overlap(gowalla_run):
    run, _ = gowalla_run
    config = load_run_config(run)
    data = load_data(config)
    users = np.load(run / "user_embeddings.npy")
    items = np.load(run / "item_embeddings.npy")
    index = ItemIndex.build(items, IndexSpec("ivf", nlist=32, nprobe=1))
    report = evaluate_index(index, users, items, data, [10, 20])
    exclude = (data.matrix("train") + data.matrix("valid")).tocsr()
    reference = full_ranking(torch.from_numpy(users), torch.from_numpy(items), data.matrix("test"), exclude, [10, 20])
    for name, value in reference.items():
        assert report.exact["test"][name] == pytest.approx(value, abs=1e-6)
    # the reported overlap, recomputed from plain sets on the test users
    test_users = np.flatnonzero(np.diff(data.matrix("test").indptr) > 0)
    exact = Recommender.from_run(run, use_index=False)
    approx = Recommender.from_run(run, use_index=False)
    approx.index = index
    a = exact.recommend(test_users, k=20).rows
    b = approx.recommend(test_users, k=20).rows
    overlap = np.mean([len(set(x) & set(y)) / 20 for x, y in zip(a, b)])
    assert report.index_recall["test"]["@20"] == pytest.approx(overlap)
    assert overlap < 1.0  # nprobe=1 of 32 cells must lose something, or this test checks nothing


def test_evaluate_cli_flat_index_equals_exact(gowalla_run, capsys):
    run, _ = gowalla_run
    assert main(["evaluate", str(run), "--index", "--kind", "flat", "--json", "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["index"] == "flat"
    for part in ("valid", "test"):
        assert report["index_recall"][part] == pytest.approx({"@10": 1.0, "@20": 1.0}, abs=2e-3)
        for name, value in report["exact_metrics"][part].items():
            assert report["index_metrics"][part][name] == pytest.approx(value, abs=2e-3)


def test_unknown_user_is_one_line_error(gowalla_run, table_run, capsys):
    run, _ = table_run
    with pytest.raises(CbnsError, match=r"^user 'nobody': not in this run \(201 known, ids in .*user_ids.txt\)$"):
        Recommender.from_run(run).recommend(["u1", "nobody"])
    assert main(["recommend", str(run), "--user", "u1", "--user", "nobody"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cbns: error: --user 'nobody': not in this run") and err.count("\n") == 1
    assert main(["recommend", str(gowalla_run[0]), "--user", "800"]) == 2
    assert "--user '800': not in this run (800 known, integer ids 0..799)" in capsys.readouterr().err


def test_recommend_cli_json_and_seen_cache(table_run, capsys, tmp_path):
    run, seen = table_run
    assert main(["index", "build", str(run), "--kind", "hnsw", "--threads", "1"]) == 0
    capsys.readouterr()
    # the run saved its seen items, so recommending does not need the dataset
    Recommender.from_run(run).recommend(["u1"])
    data_dir = (run.parent / "data")
    data_dir.rename(tmp_path / "moved")
    try:
        assert main(["recommend", str(run), "--user", "u1", "--user", HEAVY, "-k", "5", "--format", "json"]) == 0
    finally:
        (tmp_path / "moved").rename(data_dir)
    out = json.loads(capsys.readouterr().out)
    assert [o["user"] for o in out] == ["u1", HEAVY]
    assert len(out[0]["items"]) == 5 and len(out[1]["items"]) == 3
    for o in out:
        assert not {x["item"] for x in o["items"]} & seen[o["user"]]
        scores = [x["score"] for x in o["items"]]
        assert scores == sorted(scores, reverse=True)


def test_evaluate_retunes_a_built_index_and_rejects_foreign_knobs(table_run, capsys):
    run, _ = table_run
    assert main(["index", "build", str(run), "--kind", "hnsw", "--m", "8", "--threads", "1"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--index", "--ef-search", "16", "--json", "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["index"] == "hnsw(m=8, ef_search=16, ef_construction=80)"
    assert main(["evaluate", str(run), "--index", "--nprobe", "4"]) == 2
    assert "--nprobe: applies to --kind ivf only, got --kind hnsw with --nprobe 4" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--index", "--m", "4"]) == 2
    assert "--m 4: changes how an index is built; add --kind" in capsys.readouterr().err


def test_stale_index_is_refused(table_run, tmp_path):
    run, _ = table_run
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.yaml", "user_embeddings.npy", "user_ids.txt", "item_ids.txt"):
        (copy / name).write_bytes((run / name).read_bytes())
    items = np.load(run / "item_embeddings.npy")
    np.save(copy / "item_embeddings.npy", items)
    ItemIndex.build(items, IndexSpec("flat")).save(copy, items)
    assert Recommender.from_run(copy).index is not None
    np.save(copy / "item_embeddings.npy", items[::-1].copy())
    with pytest.raises(CbnsError, match=r"index.faiss: built from other item embeddings .* cbns index build"):
        Recommender.from_run(copy)
