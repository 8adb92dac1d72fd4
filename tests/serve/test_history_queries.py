"""History queries on pooled and GRU runs: a trained user's own history, encoded at request time,
gives back that user's stored row and top K; the scores agree with the towers written in float64
numpy from the saved weights."""
import numpy as np
import pytest
import torch
from conftest import write_tiny_lightgcn

from cbns.errors import CbnsError, UnknownIdError

MAX_HISTORY = 4  # users have 6 train items: the encoder must cut each history to its newest 4, as training did


@pytest.fixture(scope="module", params=["pooled", "gru"])
def history_run(request, tmp_path_factory):
    from cbns.api import train
    from cbns.config import TrainConfig

    root = write_tiny_lightgcn(tmp_path_factory.mktemp(f"{request.param}-run"), seed=5)
    train(TrainConfig(data=str(root), user_tower=request.param, dim=4, hidden_dim=6, max_history=MAX_HISTORY,
                      batch_size=32, epochs=2, threads=1), root / "run", progress=False, verbose=False)
    return request.param, root / "run"


def full_histories(run):
    """Each user's train + validation items in the order the export read them (the data's order:
    no timestamps, so the order of the loaded pairs), uncut."""
    from cbns.data.history import HistoryContext
    from cbns.data.loading import load_data
    from cbns.runs.run_dir import load_run_config

    data = load_data(load_run_config(run))
    context = HistoryContext(data, max_len=10_000).for_users("test")
    return [context["history"][u, :int(context["history_length"][u])].numpy() for u in range(data.num_users)]


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference_vector(kind, state, history):
    """The user tower in float64 numpy, from the saved state dict: ``[D + 1]`` (with the ones column)."""
    w = {k.removeprefix("user_tower."): v.double().numpy() for k, v in state.items() if k.startswith("user_tower.")}
    items = w["items.weight"][history[-MAX_HISTORY:]]
    if kind == "pooled":
        hidden = np.maximum(w["mlp.0.weight"] @ items.mean(0) + w["mlp.0.bias"], 0)
        out = w["mlp.3.weight"] @ hidden + w["mlp.3.bias"]
    else:
        h = np.zeros(w["gru.weight_hh_l0"].shape[1])
        for x in items:  # torch's GRU: gates r, z, n stacked in that order
            gi = w["gru.weight_ih_l0"] @ x + w["gru.bias_ih_l0"]
            gh = w["gru.weight_hh_l0"] @ h + w["gru.bias_hh_l0"]
            r = sigmoid(gi[:len(h)] + gh[:len(h)])
            z = sigmoid(gi[len(h):2 * len(h)] + gh[len(h):2 * len(h)])
            n = np.tanh(gi[2 * len(h):] + r * gh[2 * len(h):])
            h = (1 - z) * n + z * h
        out = w["out.weight"] @ h + w["out.bias"]
    return np.append(out / np.linalg.norm(out), 1.0)


def test_a_users_own_history_gives_their_stored_row_and_top_k(history_run):
    from cbns.runs.model_file import read_model_file
    from cbns.serve import Recommender

    kind, run = history_run
    rec = Recommender.from_run(run, use_index=False)
    assert rec.query_kinds == {"user", "history"} and rec.items.shape[1] == 5  # item bias: a ones column
    histories = full_histories(run)
    assert {len(h) for h in histories} == {6}
    np.testing.assert_allclose(rec.user_encoder.encode_history(histories), rec.users, atol=1e-6)

    users = list(range(len(histories)))
    stored, asked = rec.recommend(users, k=10), rec.recommend_history([h.tolist() for h in histories], k=10)
    np.testing.assert_array_equal(asked.rows, stored.rows)
    np.testing.assert_allclose(asked.scores, stored.scores, atol=1e-6)
    assert asked.queries[3] == histories[3].tolist()

    state = read_model_file(run)["model"]
    items = rec.items.astype(np.float64)
    for u in users:
        scores = items @ reference_vector(kind, state, histories[u])
        scores[histories[u]] = -np.inf  # the query's own items are excluded
        top = np.argsort(-scores, kind="stable")[:10]
        np.testing.assert_array_equal(asked.rows[u], top)
        np.testing.assert_allclose(asked.scores[u], scores[top], atol=1e-5)


def test_history_query_inputs_are_checked(history_run):
    from cbns.serve import Recommender

    kind, run = history_run
    rec = Recommender.from_run(run, use_index=False)
    with pytest.raises(CbnsError, match=r"^history 1: empty; a history query needs at least one item id$"):
        rec.recommend_history([[1], []])
    with pytest.raises(UnknownIdError, match=r"^history 0: item 30: not in this run \(30 known"):
        rec.recommend_history([[1, 30]])
    with pytest.raises(CbnsError, match=r"^this run cannot answer a features query; it answers: user, history$"):
        rec.recommend_features([{"age": 3}])
    with pytest.raises(CbnsError, match=rf"^this run cannot answer a features query \(its user tower is '{kind}'\)"):
        rec.user_encoder.encode_features([{"age": 3}])
    without = Recommender.from_run(run, use_index=False, user_encoder=None)
    assert without.query_kinds == {"user"}
    with pytest.raises(CbnsError, match=r"cannot answer a history query \(no user encoder: trained users only\); "
                                        r"it answers: user$"):
        without.recommend_history([[1]])


def test_seen_items_of_a_history_query_are_its_own(history_run):
    from cbns.serve import Recommender

    _, run = history_run
    rec = Recommender.from_run(run, use_index=False)
    history = [3, 7, 7, 11]
    kept = rec.recommend_history([history], k=30, exclude_seen=False)
    dropped = rec.recommend_history([history], k=30)
    assert kept.counts[0] == 30 and dropped.counts[0] == 27
    assert [r for r in kept.rows[0] if r not in history] == dropped.rows[0, :27].tolist()


def test_an_encoder_is_read_once_and_leaves_torch_threads_alone(history_run):
    from cbns.serve import Recommender

    _, run = history_run
    threads = torch.get_num_threads()
    rec = Recommender.from_run(run, use_index=False)
    rec.recommend_history([[1, 2]])
    tower = rec.user_encoder.tower
    rec.recommend_history([[2, 3]])
    assert rec.user_encoder.tower is tower and torch.get_num_threads() == threads


def test_a_pooled_tower_with_attributes_reads_them_as_missing_in_a_history_query(tmp_path):
    """A history query carries no attributes: each column's part of the MLP input is zeros (code 0,
    what training gave a user without the attribute)."""
    from cbns.api import train
    from cbns.config import TrainConfig
    from cbns.runs.model_file import read_model_file
    from cbns.serve import Recommender

    root = write_tiny_lightgcn(tmp_path, seed=9)
    (root / "users.csv").write_text("user,job\n" + "".join(f"{u},{['cook', 'pilot'][u % 2]}\n" for u in range(40)))
    train(TrainConfig(data=str(root), user_tower="pooled", user_features=str(root / "users.csv"), dim=4,
                      hidden_dim=6, batch_size=32, epochs=1, threads=1), root / "run", progress=False, verbose=False)
    rec = Recommender.from_run(root / "run", use_index=False)
    w = {k.removeprefix("user_tower."): v.double().numpy() for k, v in read_model_file(root / "run")["model"].items()
         if k.startswith("user_tower.")}
    history = [4, 9, 17]
    x = np.concatenate([w["items.weight"][history].mean(0), np.zeros(4)])
    out = w["mlp.3.weight"] @ np.maximum(w["mlp.0.weight"] @ x + w["mlp.0.bias"], 0) + w["mlp.3.bias"]
    expected = np.append(out / np.linalg.norm(out), 1.0)
    np.testing.assert_allclose(rec.user_encoder.encode_history([np.array(history)])[0], expected, atol=1e-6)
    # the query's codes were in place for the call only: the placeholder table (one row) is back
    assert rec.user_encoder.tower.features.codes_0.shape == (1, 1)
