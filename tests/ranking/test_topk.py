"""Grouped top-K against a full sort, including excluded entries, padding and short rows."""
import numpy as np
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cbns.ranking.topk import EXCLUDED, grouped_topk, padded_width


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


def _brute_force(queries, items, bias, exclude, k):
    """Every score by a plain product, excluded items at EXCLUDED, a full sort: values [Q, k]."""
    scores = queries @ items.T + (bias if bias is not None else 0)
    dense = torch.from_numpy(exclude.toarray() > 0)
    scores = scores.masked_fill(dense, EXCLUDED)
    return torch.sort(scores, dim=1, descending=True).values[:, :k], scores


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9), st.integers(40, 400), st.integers(1, 12), st.sampled_from([32, 64, 96]),
       st.booleans(), st.integers(1, 7), st.integers(0, 10_000))
def test_item_blocks_are_exact_against_a_full_sort(num_queries, num_items, k, item_block, biased, chunk, seed):
    """A catalog ranked block by block (several item blocks, several query chunks, a short last
    block) gives the top-k values of scoring every item at once, with the bias and exclusions."""
    import scipy.sparse as sp

    from cbns.ranking.topk import iter_top_k

    g = torch.Generator().manual_seed(seed)
    queries = torch.randn(num_queries, 5, generator=g, dtype=torch.float64)
    items = torch.randn(num_items, 5, generator=g, dtype=torch.float64)
    bias = torch.randn(num_items, generator=g, dtype=torch.float64) if biased else None
    exclude = sp.random(num_queries, num_items, density=0.2, format="csr", random_state=seed)
    k = min(k, num_items)
    want, scores = _brute_force(queries, items, bias, exclude, k)
    rows = np.arange(num_queries)[::-1].copy()  # any order of query rows
    seen = []
    for batch, best, top in iter_top_k(queries, items, k, exclude, rows=rows, chunk_size=chunk, item_bias=bias,
                                       item_block=item_block):
        seen.extend(batch.tolist())
        assert torch.allclose(best, want[batch], rtol=0, atol=1e-12)
        assert torch.allclose(scores[torch.from_numpy(batch)[:, None], top], best, rtol=0, atol=1e-12)
    assert seen == rows.tolist()


def test_one_block_with_the_bias_is_the_folded_vectors_bit_for_bit():
    """``item_bias`` rides in the product as ``[q, 1] . [v, b]``: what ranking_vectors folds."""
    from cbns.ranking.topk import iter_top_k

    g = torch.Generator().manual_seed(3)
    queries, items, bias = torch.randn(7, 6, generator=g), torch.randn(500, 6, generator=g), torch.randn(500, generator=g)
    folded = list(iter_top_k(torch.cat([queries, torch.ones(7, 1)], 1), torch.cat([items, bias[:, None]], 1), 10))
    plain = list(iter_top_k(queries, items, 10, item_bias=bias))
    for (_, s1, t1), (_, s2, t2) in zip(folded, plain):
        assert torch.equal(s1, s2) and torch.equal(t1, t2)


def test_several_columns_from_one_product_rank_as_each_column_alone():
    """iter_top_k_columns: ranking c is iter_top_k's with item_bias + columns[c] (to float32
    rounding: the same lists on data without near-ties), and the float64 brute force's."""
    from cbns.ranking.topk import iter_top_k, iter_top_k_columns

    g = torch.Generator().manual_seed(11)
    queries, items = torch.randn(300, 8, generator=g), torch.randn(700, 8, generator=g)
    bias = torch.randn(700, generator=g)
    columns = [torch.zeros(700), torch.rand(700, generator=g), 3 * torch.rand(700, generator=g)]
    exclude = sp.random(300, 700, density=0.05, format="csr", random_state=4)
    together = list(iter_top_k_columns(queries, items, 10, columns, exclude, chunk_size=64, item_bias=bias))
    assert sum(len(batch) for batch, _ in together) == 300
    for c, column in enumerate(columns):
        alone = list(iter_top_k(queries, items, 10, exclude, chunk_size=64, item_bias=bias + column))
        brute = queries.double() @ items.double().T + (bias + column).double()
        brute[torch.from_numpy(exclude.nonzero()[0]), torch.from_numpy(exclude.nonzero()[1])] = -torch.inf
        want = torch.topk(brute, 10, dim=1).indices
        for (batch, tops), (batch_alone, _, top_alone) in zip(together, alone):
            assert np.array_equal(batch, batch_alone)
            assert torch.equal(tops[c], top_alone)
            assert torch.equal(tops[c], want[torch.from_numpy(batch)])
