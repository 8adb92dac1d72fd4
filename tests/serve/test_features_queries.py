"""Attribute queries on a feature-tower run: raw values find the codes training gave them (from the
run's user_features.json), and the vector and scores agree with the tower in float64 numpy."""
import json

import numpy as np
import pytest
from conftest import train_features_run, write_tiny_lightgcn

from cbns.errors import CbnsError, UnknownIdError

COLOURS = ["red", "green", "blue"]


def colour(u):
    return None if u % 7 == 0 else COLOURS[u % 3]


def tags(u):
    return [f"t{j}" for j in range(u % 4)]


@pytest.fixture(scope="module")
def features_run(tmp_path_factory):
    root = write_tiny_lightgcn(tmp_path_factory.mktemp("features-run"), seed=6)
    return train_features_run(root, "user,colour,tags\n" + "".join(
        f"{u},{colour(u) or ''},{'|'.join(tags(u))}\n" for u in range(40)), epochs=2)


def reference_vector(state, row):
    """The feature tower in float64 numpy for raw values ``row`` ({"colour": ..., "tags": [...]}),
    with the mean id row standing in for a new user's id embedding; codes follow the sorted values."""
    w = {k.removeprefix("user_tower."): v.double().numpy() for k, v in state.items() if k.startswith("user_tower.")}
    parts = [w["embedding.weight"].mean(0)]
    for k, (vocab, given) in enumerate(((sorted(COLOURS), [row.get("colour")] if row.get("colour") else []),
                                        ([f"t{j}" for j in range(3)], row.get("tags", [])))):
        table = w[f"features.bags.{k}.weight"]
        codes = [vocab.index(v) + 1 for v in given]
        parts.append(table[codes].mean(0) if codes else np.zeros(table.shape[1]))
    hidden = np.maximum(w["mlp.0.weight"] @ np.concatenate(parts) + w["mlp.0.bias"], 0)
    out = w["mlp.3.weight"] @ hidden + w["mlp.3.bias"]
    return np.append(out / np.linalg.norm(out), 1.0)


def test_the_run_saves_each_attribute_value_by_code(features_run):
    saved = json.loads((features_run / "user_features.json").read_text())["columns"]
    assert saved == [{"name": "user:colour", "multi": False, "width": 1, "values": sorted(COLOURS)},
                     {"name": "user:tags", "multi": True, "width": 3, "values": ["t0", "t1", "t2"]}]


def test_attribute_queries_agree_with_the_tower_in_float64(features_run):
    from cbns.runs.model_file import read_model_file
    from cbns.serve import Recommender

    rec = Recommender.from_run(features_run, use_index=False)
    assert rec.query_kinds == {"user", "features"}
    rows = [{"colour": "red", "tags": ["t2", "t0"]}, {"user:colour": "blue"}, {"tags": "t1"}, {},
            {"colour": None, "tags": []}]
    answer = rec.recommend_features(rows, k=8)
    assert answer.queries[1] == {"user:colour": "blue"}
    state = read_model_file(features_run)["model"]
    plain = [{"colour": "red", "tags": ["t2", "t0"]}, {"colour": "blue"}, {"tags": ["t1"]}, {}, {}]
    for q, row in enumerate(plain):
        scores = rec.items.astype(np.float64) @ reference_vector(state, row)
        top = np.argsort(-scores, kind="stable")[:8]
        np.testing.assert_array_equal(answer.rows[q], top)
        np.testing.assert_allclose(answer.scores[q], scores[top], atol=1e-5)


def test_attribute_inputs_are_checked(features_run):
    from cbns.serve import Recommender

    rec = Recommender.from_run(features_run, use_index=False)
    with pytest.raises(CbnsError, match=r"^features query 0: attribute 'size': not an attribute of this run's user tower; it reads "
                                        r"'user:colour', 'user:tags'$"):
        rec.recommend_features([{"size": 3}])
    with pytest.raises(UnknownIdError, match=r"^features query 0: attribute 'colour' value 'purple': no training row had it \(3 known "
                                             r"values, .*user_features.json\)$"):
        rec.recommend_features([{"colour": "purple"}])
    with pytest.raises(CbnsError, match=r"^features query 1: attribute 'colour': takes one value, got 2$"):
        rec.recommend_features([{}, {"colour": ["red", "blue"]}])
    with pytest.raises(CbnsError, match=r"^this run cannot answer a history query; it answers: user, features$"):
        rec.recommend_history([[1, 2]])


def test_a_run_saved_without_the_vocabulary_reads_it_from_its_dataset(features_run, tmp_path, capsys):
    from conftest import copy_run

    from cbns.serve import Recommender

    run = copy_run(features_run, tmp_path / "run")
    (run / "user_features.json").unlink()
    row = [{"colour": "green", "tags": ["t1"]}]
    older = Recommender.from_run(run, use_index=False).recommend_features(row, k=5)
    assert "has no user_features.json; reading the attribute values from the dataset" in capsys.readouterr().err
    saved = Recommender.from_run(features_run, use_index=False).recommend_features(row, k=5)
    np.testing.assert_array_equal(older.rows, saved.rows)
