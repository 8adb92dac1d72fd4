"""Fold-in for ID user towers: the numpy steps against a float64 autograd reference, the start at
the history's mean, and history queries on an ID-tower run."""
import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from cbns.errors import CbnsError
from cbns.serve.fold_in import FoldInEncoder, fold_in


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def items():
    rng = np.random.default_rng(0)
    vectors = unit(rng.normal(size=(30, 5)))
    return np.concatenate([vectors, rng.normal(scale=0.3, size=(30, 1))], axis=1).astype(np.float32)


def test_no_steps_is_the_normalised_mean_of_the_history(items):
    got = fold_in(items, [np.array([2, 5, 5]), np.array([7])], temperature=0.1, extra_column=True, steps=0)
    expected = unit(np.stack([(items[2, :5] + 2 * items[5, :5]) / 3, items[7, :5]]))
    np.testing.assert_allclose(got[:, :5], expected, atol=1e-6)
    np.testing.assert_array_equal(got[:, 5], [1, 1])


@pytest.mark.parametrize("normalize", [True, False])
def test_steps_follow_the_gradient_of_the_history_log_likelihood(items, normalize):
    """Three steps by hand with torch autograd in float64: u += lr * d/du mean_h log softmax((u.v + b)/T)_h."""
    history, lr, temperature = np.array([1, 4, 9, 9]), 0.05, 0.2
    v = torch.tensor(items[:, :5], dtype=torch.float64)
    b = torch.tensor(items[:, 5], dtype=torch.float64)
    u = v[history].mean(0)
    u = u / u.norm() if normalize else u
    for _ in range(3):
        u = u.detach().requires_grad_(True)
        torch.log_softmax((v @ u + b) / temperature, 0)[history].mean().backward()
        u = u + lr * u.grad
        u = u / u.norm() if normalize else u
    got = fold_in(items, [history], temperature, normalize, extra_column=True, steps=3, lr=lr)
    np.testing.assert_allclose(got[0, :5], u.detach().numpy(), atol=1e-5)


def test_continuing_from_earlier_vectors_equals_walking_on(items):
    histories = [np.array([0, 3]), np.array([8, 9, 10])]
    once = fold_in(items, histories, 0.1, extra_column=True, steps=7, lr=0.03)
    twice = fold_in(items, histories, 0.1, extra_column=True, steps=4, lr=0.03,
                    start=fold_in(items, histories, 0.1, extra_column=True, steps=3, lr=0.03))
    np.testing.assert_allclose(twice, once, atol=1e-6)


def test_fold_in_raises_the_history_likelihood(items):
    def log_likelihood(u, h):
        logits = (items[:, :5] @ u[:5] + items[:, 5]) / 0.1
        return (logits[h] - np.log(np.exp(logits - logits.max()).sum()) - logits.max()).mean()

    h = np.array([3, 11, 12, 20])
    before = fold_in(items, [h], 0.1, extra_column=True, steps=0)[0]
    after = fold_in(items, [h], 0.1, extra_column=True, steps=20, lr=0.02)[0]
    assert log_likelihood(after, h) > log_likelihood(before, h) + 0.1


def test_the_encoder_answers_histories_only(items):
    encoder = FoldInEncoder(items, temperature=0.1, extra_column=True)
    assert encoder.kinds == {"history"}
    with pytest.raises(CbnsError, match=r"cannot answer a features query \(its user tower is 'id'"):
        encoder.encode_features([{"age": 1}])


def test_the_fold_in_module_imports_no_torch():
    """An exported bundle folds in without torch: the module and what it imports from cbns do not import it."""
    root = Path(__file__).resolve().parents[2] / "cbns"
    for name in ("serve/fold_in.py", "serve/query_kinds.py", "errors.py"):
        tree = ast.parse((root / name).read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not {m for m in imported if m.split(".")[0] == "torch"}, name
        assert {m for m in imported if m.startswith("cbns")} <= {"cbns.errors", "cbns.serve.query_kinds"}, name


def test_an_id_tower_run_answers_history_queries_by_fold_in(tiny_run):
    from cbns.serve import Recommender

    rec = Recommender.from_run(tiny_run, use_index=False)
    assert rec.query_kinds == {"user", "history"} and isinstance(rec.user_encoder, FoldInEncoder)
    history = rec.seen[5].indices.tolist()
    asked = rec.recommend_history([history], k=10)
    assert not set(asked.rows[0]) & set(history)
    vector = fold_in(rec.items, [np.array(history)], 0.1, True, rec.prior_column)[0].astype(np.float64)
    scores = rec.items.astype(np.float64) @ vector
    scores[history] = -np.inf
    np.testing.assert_array_equal(asked.rows[0], np.argsort(-scores, kind="stable")[:10])
