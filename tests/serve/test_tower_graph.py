"""The ONNX graphs of the user towers, run by onnxruntime, against the towers' own forward in torch
(packed GRU, EmbeddingBag, recency-weighted pooling) on random weights and random inputs."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cbns.data.features import FeatureColumn, FeatureTable
from cbns.model.towers.features_tower import FeaturesTower
from cbns.model.towers.gru_tower import GruTower
from cbns.model.towers.pooled_tower import PooledHistoryTower
from cbns.serve.tower_graph import UserTowerGraph

NUM_ITEMS, NUM_USERS = 50, 12


def table(rng) -> FeatureTable:
    """Two attribute columns of 12 users: one single-valued (some missing), one of up to 3 codes."""
    single = rng.integers(0, 5, size=(NUM_USERS, 1))
    multi = np.zeros((NUM_USERS, 3), dtype=np.int64)
    for u in range(NUM_USERS):
        codes = rng.choice(np.arange(1, 7), size=rng.integers(0, 4), replace=False)
        multi[u, :len(codes)] = codes
    return FeatureTable(NUM_USERS, [FeatureColumn("a", single, 5), FeatureColumn("b", multi, 7, multi=True)])


def onnx_session(graph, tmp_path):
    import onnxruntime

    from cbns.serve.export import _export_onnx

    _export_onnx(graph, tmp_path / "tower.onnx")
    return onnxruntime.InferenceSession(str(tmp_path / "tower.onnx"), providers=["CPUExecutionProvider"])


def finish(x, normalize, extra):
    x = F.normalize(x, dim=-1) if normalize else x
    return torch.cat([x, torch.ones(len(x), 1)], 1) if extra else x


def histories(rng, count, longest):
    lengths = rng.integers(1, longest + 1, size=count)
    history = np.zeros((count, longest), dtype=np.int64)
    for q, n in enumerate(lengths):
        history[q, :n] = rng.integers(0, NUM_ITEMS, size=n)
    return history, lengths.astype(np.int64)


@pytest.mark.parametrize("kind,normalize,extra", [("pooled", True, True), ("gru", False, False)])
def test_history_graphs_match_the_towers(kind, normalize, extra, tmp_path):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    attributes = table(rng) if kind == "pooled" else None
    tower = PooledHistoryTower(NUM_ITEMS, 6, attributes, decay=0.6, hidden=9) if kind == "pooled" else \
        GruTower(NUM_ITEMS, 6, hidden=5)
    tower.eval()
    graph = UserTowerGraph(tower, normalize, extra).eval()
    session = onnx_session(graph, tmp_path)
    for count, longest in ((NUM_USERS, 9), (NUM_USERS, 1)):
        history, lengths = histories(rng, count, longest)
        feeds = {"history": history, "history_length": lengths}
        if attributes is not None:  # each query's codes are user q's, as the tower looks them up by id
            feeds.update({f"codes_{c}": col.codes for c, col in enumerate(attributes.columns)})
        with torch.no_grad():
            expected = finish(tower(torch.arange(count), {"history": torch.from_numpy(history),
                                                          "history_length": torch.from_numpy(lengths)}),
                              normalize, extra).numpy()
        got = session.run(None, feeds)[0]
        assert got.shape == (count, 6 + extra)
        assert np.abs(got - expected).max() <= 1e-5


def test_the_features_graph_is_the_mean_id_row_and_the_attributes(tmp_path):
    rng = np.random.default_rng(1)
    torch.manual_seed(1)
    attributes = table(rng)
    tower = FeaturesTower(NUM_USERS, 6, attributes, hidden=9).eval()
    graph = UserTowerGraph(tower, True, True).eval()
    session = onnx_session(graph, tmp_path)
    got = session.run(None, {f"codes_{c}": col.codes for c, col in enumerate(attributes.columns)})[0]
    with torch.no_grad():  # the tower's own pieces: its EmbeddingBags by user id, its MLP, the mean id row
        mean_id = tower.embedding.weight.mean(0).expand(NUM_USERS, -1)
        expected = finish(tower.mlp(torch.cat([mean_id, tower.features(torch.arange(NUM_USERS))], 1)), True, True)
    assert np.abs(got - expected.numpy()).max() <= 1e-5
