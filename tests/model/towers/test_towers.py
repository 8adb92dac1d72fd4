"""Towers: shapes, padded history ignored, pooling and GRU against step-by-step references."""
import pytest
import torch

from cbns.data.features import FeatureTable, categorical_column, multi_column
from cbns.data.history import HISTORY, HISTORY_LENGTH
from cbns.model.towers import FeaturesTower, GruTower, IdTower, PooledHistoryTower
from cbns.model.towers.feature_encoder import FeatureEncoder

NUM_ITEMS, DIM = 12, 6


def item_table():
    return FeatureTable(NUM_ITEMS, [
        categorical_column("colour", [None if i % 5 == 0 else f"c{i % 3}" for i in range(NUM_ITEMS)]),
        multi_column("tags", [[f"t{j}" for j in range(i % 4)] for i in range(NUM_ITEMS)]),
    ])


def context(rows, width=5, pad=0):
    """Right-padded history tensors from lists; ``pad`` fills the padding."""
    h = torch.full((len(rows), width), pad, dtype=torch.long)
    for r, row in enumerate(rows):
        h[r, :len(row)] = torch.tensor(row, dtype=torch.long)
    return {HISTORY: h, HISTORY_LENGTH: torch.tensor([len(r) for r in rows])}


HISTORIES = [[3, 1, 4], [], [11], [2, 7, 1, 8, 2]]


def towers():
    torch.manual_seed(0)
    users = FeatureTable(4, [categorical_column("g", ["a", "b", None, "a"])])
    return {
        "id": IdTower(4, DIM),
        "features": FeaturesTower(NUM_ITEMS, DIM, item_table(), hidden=16),
        "pooled": PooledHistoryTower(NUM_ITEMS, DIM, users, decay=0.5, hidden=16),
        "gru": GruTower(NUM_ITEMS, DIM, hidden=9),
    }


@pytest.mark.parametrize("name", ["id", "features", "pooled", "gru"])
def test_shapes_and_encode_all_equals_forward(name):
    tower = towers()[name].eval()
    ctx = context(HISTORIES)
    ids = torch.arange(4)
    out = tower(ids, ctx)
    assert out.shape == (4, DIM) and torch.isfinite(out).all()
    assert torch.allclose(tower.encode_all(4, ctx, chunk=3), out, atol=1e-6)   # chunks get their context rows


@pytest.mark.parametrize("name", ["pooled", "gru"])
def test_padded_history_entries_are_ignored(name):
    tower = towers()[name].eval()
    ids = torch.arange(4)
    a = tower(ids, context(HISTORIES, width=5, pad=0))
    b = tower(ids, context(HISTORIES, width=9, pad=9))    # other padding value, wider padding
    assert torch.allclose(a, b, atol=1e-6)


def test_history_towers_refuse_a_missing_context():
    with pytest.raises(ValueError, match="needs the context keys 'history' and 'history_length'"):
        towers()["gru"](torch.arange(2))


def test_pooled_tower_equals_recency_weighted_mean_by_hand():
    tower = towers()["pooled"].eval()
    E = tower.items.weight.detach()
    feats = tower.features(torch.arange(4)).detach()
    for r, row in enumerate(HISTORIES):
        n = len(row)
        if n:
            w = torch.tensor([0.5 ** (n - 1 - j) for j in range(n)])   # newest weight 1, then 1/2, 1/4...
            pooled = (w[:, None] * E[row]).sum(0) / w.sum()
        else:
            pooled = torch.zeros(DIM)
        want = tower.mlp(torch.cat([pooled, feats[r]])[None])[0]
        got = tower(torch.tensor([r]), context([row]))[0]
        assert torch.allclose(got, want, atol=1e-5), r


def test_gru_tower_equals_a_gru_cell_run_item_by_item():
    tower = towers()["gru"].eval()
    cell = torch.nn.GRUCell(DIM, 9)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(tower.gru, f"{name}_l0"))
    got = tower(torch.arange(4), context(HISTORIES))
    for r, row in enumerate(HISTORIES):
        h = torch.zeros(1, 9)
        for item in row:                   # unpadded, one item at a time, oldest first
            h = cell(tower.items.weight[item][None], h)
        assert torch.allclose(got[r], tower.out(h)[0], atol=1e-5), r


def test_gru_reads_order_and_only_the_past():
    tower = towers()["gru"].eval()
    a = tower(torch.zeros(1, dtype=torch.long), context([[3, 1, 4]]))
    b = tower(torch.zeros(1, dtype=torch.long), context([[4, 1, 3]]))
    assert not torch.allclose(a, b)        # a sequence model: order matters


def test_feature_encoder_averages_codes_and_ignores_missing():
    table = item_table()
    enc = FeatureEncoder(table, DIM)
    out = enc(torch.arange(NUM_ITEMS))
    colour, tags = table.columns
    W_c, W_t = enc.bags[0].weight.detach(), enc.bags[1].weight.detach()
    for i in range(NUM_ITEMS):
        c = colour.codes[i, 0]
        want_c = W_c[c] if c else torch.zeros(DIM)
        codes = [t for t in tags.codes[i] if t]
        want_t = W_t[codes].mean(0) if codes else torch.zeros(DIM)
        assert torch.allclose(out[i], torch.cat([want_c, want_t]), atol=1e-6), i


def test_features_tower_uses_attributes_and_gets_gradient():
    tower = towers()["features"]
    ids = torch.tensor([1, 2])
    tower(ids).sum().backward()
    assert tower.features.bags[1].weight.grad.abs().sum() > 0 and tower.embedding.weight.grad[1].abs().sum() > 0
    # two items with identical ids embeddings but different attributes get different vectors
    with torch.no_grad():
        tower.embedding.weight[2] = tower.embedding.weight[1]
    out = tower(ids)
    assert not torch.allclose(out[0], out[1])


def test_feature_encoder_sparse_gradient_skips_the_padding_row_and_equals_the_dense_one():
    table = item_table()
    dense, sparse = FeatureEncoder(table, DIM), FeatureEncoder(table, DIM)
    sparse.load_state_dict(dense.state_dict())
    for bag in sparse.bags:
        bag.sparse = True
    ids = torch.arange(NUM_ITEMS)
    weights = torch.randn(NUM_ITEMS, 2 * DIM)
    (dense(ids) * weights).sum().backward()
    (sparse(ids) * weights).sum().backward()
    for d, s in zip(dense.bags, sparse.bags):
        grad = s.weight.grad.to_dense()
        assert torch.allclose(grad, d.weight.grad, atol=1e-6)
        assert grad[0].abs().sum() == 0  # code 0 (missing, padding) learns nothing
