"""Grouped top-K against a full sort, including excluded entries, padding and short rows."""
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cbns.evaluation.topk import EXCLUDED, grouped_topk, padded_width


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(200, 700), st.integers(1, 5), st.integers(4, 16),
       st.floats(0.0, 1.0), st.integers(0, 10_000))
def test_grouped_topk_equals_a_full_sort(rows, num_items, k, group, excluded_share, seed):
    g = torch.Generator().manual_seed(seed)
    width = padded_width(num_items, group)
    scores = torch.full((rows, width), -torch.inf)
    scores[:, :num_items] = torch.randn(rows, num_items, generator=g)
    excluded = torch.rand(rows, num_items, generator=g) < excluded_share
    scores[:, :num_items][excluded] = EXCLUDED
    got = grouped_topk(scores, k, num_items, group)
    assert got.shape == (rows, k) and bool((got < num_items).all())     # never a padding column
    for r in range(rows):
        want = np.sort(scores[r, :num_items].numpy())[::-1][:k]
        assert np.array_equal(scores[r, got[r]].numpy(), want)           # same values, same order
        if k <= int((~excluded[r]).sum()):                               # no ties among real scores
            assert set(got[r].tolist()) == set(np.argsort(-scores[r, :num_items].numpy())[:k].tolist())


def test_narrow_blocks_fall_back_to_torch_topk_and_bad_widths_are_refused():
    scores = torch.tensor([[0.1, 0.9, 0.5, -torch.inf]])
    assert grouped_topk(scores, 2, 3, group=2).tolist() == [[1, 2]]
    try:
        grouped_topk(torch.zeros(2, 5), 1, group=4)
    except ValueError as exc:
        assert "divisible by 4" in str(exc)
    else:
        raise AssertionError("a width that is not a whole number of groups must be refused")
