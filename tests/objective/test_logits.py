"""The fused logits pipeline against the plain step-by-step reference."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cbns.negatives import Candidates
from cbns.objective.logits import MASKED, sampled_softmax_logits


def reference(users, positives, pos_ids, pos_logq, sources, T):
    """Column 0 = positive; then every source, each step applied alone: the dot products, the
    temperature, the logQ correction (``- log q [N]`` broadcast over rows), and the accidental-hit
    mask (MASKED where the candidate's id is the row's positive id)."""
    pos = (users * positives).sum(-1, keepdim=True) / T - pos_logq[:, None]
    blocks = [((users @ s.emb.T) / T - s.logq).masked_fill(pos_ids[:, None] == s.ids[None, :], MASKED)
              for s in sources]
    return torch.cat([pos, *blocks], 1)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(0, 9), st.integers(1, 6), st.booleans(), st.integers(0, 10_000))
def test_fused_logits_equal_reference(batch, extra, num_ids, inbatch_first, seed):
    g = torch.Generator().manual_seed(seed)
    users = torch.randn(batch, 4, generator=g)
    pos_ids = torch.randint(0, num_ids, (batch,), generator=g)
    table = torch.randn(num_ids, 4, generator=g)
    positives = table[pos_ids]
    logq_table = -torch.rand(num_ids, generator=g) * 3
    extra_ids = torch.randint(0, num_ids, (extra,), generator=g)
    other = Candidates(table[extra_ids], extra_ids, logq_table[extra_ids], "bank")
    sources = [Candidates(positives, pos_ids, logq_table[pos_ids], "inbatch", holds_positives=True), other] if inbatch_first else [other]
    got, target = sampled_softmax_logits(users, positives, pos_ids, logq_table[pos_ids], sources, temperature=0.7)
    want = reference(users, positives, pos_ids, logq_table[pos_ids], sources, 0.7)
    if inbatch_first:
        # Fused form: the in-batch block holds the positives at column i; the reference puts them
        # in column 0 and masks them in the block. Same softmax: compare the target logit and the
        # multiset of the other columns through the log-sum-exp.
        assert torch.allclose(got.gather(1, target[:, None]).squeeze(1), want[:, 0], atol=1e-5)
        assert torch.allclose(torch.logsumexp(got, 1), torch.logsumexp(want, 1), atol=1e-4)
    else:
        assert torch.equal(target, torch.zeros(batch, dtype=torch.long))
        assert torch.allclose(got, want, atol=1e-5)


def test_masked_value_is_finite_so_an_all_masked_row_has_a_softmax():
    users = torch.ones(1, 2)
    c = Candidates(torch.ones(2, 2), torch.tensor([3, 3]), torch.zeros(2), "uniform")
    logits, target = sampled_softmax_logits(users, torch.ones(1, 2), torch.tensor([3]), torch.zeros(1), [c])
    assert logits[0, 1:].eq(MASKED).all()
    assert torch.isfinite(torch.log_softmax(logits, 1)).all()
