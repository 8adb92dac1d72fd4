"""The exact softmax against F.cross_entropy over every item, written here from its definition."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cbns
from cbns.objective.full_softmax_loss import FullSoftmaxLoss


@pytest.mark.parametrize("biased", [False, True])
@pytest.mark.parametrize("repeat", [False, True])
def test_loss_and_gradients_equal_cross_entropy_over_the_catalogue(biased, repeat):
    g = torch.Generator().manual_seed(1)
    table = torch.nn.Embedding(25, 6).double()
    users = torch.randn(7, 6, generator=g, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([3, 3, 0, 24, 7, 7, 1]) if repeat else torch.tensor([3, 9, 0, 24, 7, 11, 1])
    bias = torch.linspace(-1, 1, 25, dtype=torch.float64, requires_grad=True) if biased else None
    T = 0.3
    got = FullSoftmaxLoss(25, T)(users, table(ids), ids, item_bias=bias, encode_items=table)
    got.backward()
    grads = (users.grad.clone(), table.weight.grad.clone(), bias.grad.clone() if biased else None)
    users.grad, table.weight.grad = None, None
    if biased:
        bias.grad = None
    logits = users @ table.weight.T / T + (bias / T if biased else 0)
    want = F.cross_entropy(logits, ids)  # every item a column, the row's positive its target
    want.backward()
    assert torch.allclose(got, want, rtol=1e-10)
    assert torch.allclose(grads[0], users.grad, rtol=1e-8, atol=1e-12)
    assert torch.allclose(grads[1], table.weight.grad, rtol=1e-8, atol=1e-12)
    if biased:
        assert torch.allclose(grads[2], bias.grad, rtol=1e-8, atol=1e-12)


def test_bf16_products_stay_close_to_float32():
    g = torch.Generator().manual_seed(2)
    table = torch.nn.Embedding(300, 32)
    users = F.normalize(torch.randn(64, 32, generator=g), dim=1)
    ids = torch.randint(0, 300, (64,), generator=g)
    encode = lambda i: F.normalize(table(i), dim=1)  # noqa: E731
    with torch.no_grad():
        full = FullSoftmaxLoss(300, 0.1)(users, encode(ids), ids, encode_items=encode)
        low = FullSoftmaxLoss(300, 0.1, precision="bf16")(users, encode(ids), ids, encode_items=encode)
    assert abs(low.item() - full.item()) / full.item() < 0.002


def test_full_is_a_sampler_name_and_trains(tmp_path, gowalla_slice):
    config = cbns.TrainConfig(data=str(gowalla_slice), sampler="full", dim=8, batch_size=256, epochs=1, threads=1)
    result = cbns.train(config, tmp_path / "run", progress=False, verbose=False)
    assert 0 < result.test["recall@20"] <= 1
    from cbns.objective.build import build_objective

    assert isinstance(build_objective(config, np.ones(10)), FullSoftmaxLoss)
