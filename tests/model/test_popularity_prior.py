"""The ranking-time popularity prior: parsing, the folded-in column, and the choice on validation
checked against brute-force ranking of the exported vectors."""
import json

import numpy as np
import pytest
import torch
from conftest import brute_force_metrics

from cbns.config import OptionError, TrainConfig, build_config, check_option
from cbns.data import carve_validation, load_dataset
from cbns.model.popularity_prior import PRIOR_GRID, choose_prior, parse_prior, prior_column
from cbns.model.towers.id_tower import IdTower
from cbns.model.two_tower import TwoTower


def test_parse_and_validate():
    assert parse_prior("auto") is None and parse_prior("off") == 0.0 and parse_prior("0.25") == 0.25
    assert parse_prior("100") == 100.0
    for bad in ("-1", "nan", "often", "1e100", "100.5", "inf"):
        with pytest.raises(OptionError, match=r"option popularity_prior: must be auto, off or a number in \[0, 100\]"):
            TrainConfig(popularity_prior=bad).validate()
    assert check_option("popularity_prior", 0.3, "f.yaml:2") == "0.3"  # a YAML number is accepted
    assert build_config({"popularity_prior": "0.3"}, {}).evaluation.popularity_prior == "0.3"


def test_choose_prior_takes_the_best_and_the_smallest_on_ties():
    assert choose_prior(lambda b: -(b - 0.3) ** 2) == (0.3, {b: -(b - 0.3) ** 2 for b in PRIOR_GRID})
    assert choose_prior(lambda b: 1.0, grid=(0.5, 0.0, 0.2))[0] == 0.0


def test_ranking_vectors_add_t_beta_log_count_to_every_score():
    torch.manual_seed(0)
    model = TwoTower(IdTower(5, 8), IdTower(7, 8), normalize=True, num_items=7)
    counts = np.array([0, 1, 2, 5, 10, 100, 3])
    model.set_prior(prior_column(counts, beta=0.4, temperature=0.1))
    u, i = model.all_users(5), model.all_items(7)
    ru, ri = model.ranking_vectors(u, i)
    want = (u @ i.T).numpy() + 0.1 * 0.4 * np.log1p(counts)[None, :]
    assert ru.shape == (5, 9) and np.allclose((ru @ ri.T).numpy(), want, atol=1e-6)
    model.set_prior(torch.zeros(7))
    assert model.ranking_vectors(u, i)[0].shape == (5, 8)  # no prior, no extra column


@pytest.mark.slow
def test_auto_prior_is_the_validation_argmax_and_the_export_carries_it(tmp_path, gowalla_slice):
    from cbns.api import train

    cfg = TrainConfig(data=str(gowalla_slice), sampler="inbatch", dim=16, batch_size=256, lr=0.02,
                      epochs=3, threads=1, popularity_prior="auto", item_bias=False)
    train(cfg, out=tmp_path, progress=False, verbose=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    prior = metrics["popularity_prior"]
    data = carve_validation(load_dataset(str(gowalla_slice)), cfg.data.valid_fraction, 0)
    users, items = np.load(tmp_path / "user_embeddings.npy"), np.load(tmp_path / "item_embeddings.npy")
    base_u, base_i = users[:, :16], items[:, :16]
    counts = np.bincount(data.train[:, 1], minlength=data.num_items)
    by_beta = {}
    for beta in PRIOR_GRID:  # rank by s / T + beta log(1 + count), by hand
        scores_u = np.hstack([base_u / 0.1, np.ones((len(base_u), 1))])
        scores_i = np.hstack([base_i, beta * np.log1p(counts)[:, None]])
        by_beta[beta] = brute_force_metrics(scores_u, scores_i, data.valid, data.train, 20)[0]
    for beta, recall in by_beta.items():
        assert abs(prior["valid recall@20 by beta"][str(beta)] - recall) < 1e-5, (beta, recall)
    best = max(by_beta.values())
    assert prior["beta"] == min(b for b, r in by_beta.items() if r >= best - 1e-9)
    if prior["beta"] > 0:
        assert np.allclose(items[:, 16], 0.1 * prior["beta"] * np.log1p(counts), atol=1e-5)
        assert np.all(users[:, 16] == 1)
    recall, ndcg = brute_force_metrics(users, items, data.test, np.concatenate([data.train, data.valid]), 20)
    assert abs(metrics["test"]["recall@20"] - recall) < 1e-5 and abs(metrics["test"]["ndcg@20"] - ndcg) < 1e-5


@pytest.mark.slow
def test_fixed_prior_is_used_in_validation_and_export(tmp_path, gowalla_slice):
    from cbns.api import train

    cfg = TrainConfig(data=str(gowalla_slice), sampler="inbatch", dim=16, batch_size=256, lr=0.02,
                      epochs=1, threads=1, popularity_prior="0.5", temperature=0.2, item_bias=False)
    train(cfg, out=tmp_path, progress=False, verbose=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["popularity_prior"]["beta"] == 0.5
    data = carve_validation(load_dataset(str(gowalla_slice)), cfg.data.valid_fraction, 0)
    users, items = np.load(tmp_path / "user_embeddings.npy"), np.load(tmp_path / "item_embeddings.npy")
    counts = np.bincount(data.train[:, 1], minlength=data.num_items)
    assert np.allclose(items[:, 16], 0.2 * 0.5 * np.log1p(counts), atol=1e-5)
    recall = brute_force_metrics(users, items, data.valid, data.train, 20)[0]
    assert abs(metrics["valid"]["recall@20"] - recall) < 1e-5


def test_similar_items_ignore_the_prior_column():
    from cbns.serve.id_map import IdMap
    from cbns.serve.recommender import Recommender

    rng = np.random.default_rng(0)
    base = rng.normal(size=(30, 6)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    prior = np.zeros((30, 1), np.float32)
    prior[[3, 7, 11]] = 5.0  # three very popular items: they would win every query if it counted
    items = np.hstack([base, prior])
    users = np.hstack([base[:4], np.ones((4, 1), np.float32)])
    rec = Recommender(users, items, IdMap(4), IdMap(30), prior_column=True)
    got = rec.similar_items([0], k=5).ids[0]
    cos = base @ base[0]
    cos[0] = -np.inf
    assert list(got) == list(np.argsort(-cos)[:5])
    # recommendations do use it: the popular items lead every user's list
    assert set(rec.recommend([0], k=3, exclude_seen=False).ids[0]) == {3, 7, 11}


def test_a_state_saved_before_the_prior_existed_loads_with_no_prior():
    model = TwoTower(IdTower(5, 8), IdTower(7, 8), num_items=7)
    model.set_prior(torch.ones(7))
    old = {k: v for k, v in TwoTower(IdTower(5, 8), IdTower(7, 8), num_items=7).state_dict().items()
           if k != "item_prior"}
    model.load_state_dict(old)
    assert not model.has_prior
