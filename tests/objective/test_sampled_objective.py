"""The one objective against float64 references written here from the definition: for each row,
the positive column and every candidate, each corrected with the log q of the source that produced
it, the row's positive id masked among the candidates, the mean cross-entropy."""
import math

import numpy as np
import pytest
import torch

from cbns.negatives import InBatchSource, PopularitySource, UniformSource
from cbns.objective.loss import SampledSoftmaxLoss
from cbns.objective.sampled_objective import SampledSoftmaxObjective

D, NUM_ITEMS, T = 3, 9, 0.5


def draws(probs, n, seed):
    """The ids a source seeded ``seed`` draws first, from an independent generator with that seed:
    uniform numbers mapped through the inverse of the cumulative distribution, worked out here
    (the first id whose cumulative probability exceeds each number)."""
    u = torch.rand(n, generator=torch.Generator().manual_seed(seed))
    cdf = np.cumsum(probs.double().numpy())
    cdf = cdf / cdf[-1]
    return torch.tensor([int(np.argmax(cdf > float(x))) for x in u])


def row_loss(u, pos, pos_logq, pos_id, cands):
    """-log softmax of the positive over [positive, candidates that are not the positive's id]."""
    logits = [float(u @ pos) / T - pos_logq]
    logits += [float(u @ v) / T - lq for v, lq, i in cands if i != pos_id]
    return -(logits[0] - math.log(sum(math.exp(x) for x in logits)))


def setup(seed=0, batch=4):
    g = torch.Generator().manual_seed(seed)
    users = torch.randn(batch, D, generator=g, dtype=torch.float64)
    table = torch.randn(NUM_ITEMS, D, generator=g, dtype=torch.float64)
    ids = torch.randint(0, NUM_ITEMS, (batch,), generator=g)
    return users, table, ids


def test_uniform_objective_equals_the_definition():
    users, table, ids = setup()
    objective = SampledSoftmaxObjective([UniformSource(NUM_ITEMS, 6, seed=5)], SampledSoftmaxLoss(T), item_counts=np.ones(NUM_ITEMS))
    got = objective.double()(users, table[ids], ids, encode_items=lambda i: table[i])
    drawn = torch.randint(0, NUM_ITEMS, (6,), generator=torch.Generator().manual_seed(5))
    lq = math.log(1.0 / NUM_ITEMS)  # the positive too is corrected with the uniform q
    cands = [(table[j], lq, int(j)) for j in drawn]
    want = np.mean([row_loss(users[r], table[ids[r]], lq, int(ids[r]), cands) for r in range(len(ids))])
    assert float(got) == pytest.approx(want, rel=1e-6)


def test_popularity_objective_equals_the_definition():
    users, table, ids = setup(1)
    counts = np.array([5, 1, 0, 8, 2, 2, 9, 1, 3])
    objective = SampledSoftmaxObjective([PopularitySource(counts, 7, alpha=0.5, seed=2)], SampledSoftmaxLoss(T),
                                        item_counts=counts).double()
    got = objective(users, table[ids], ids, encode_items=lambda i: table[i])
    q = np.maximum(counts, 1) ** 0.5
    q = q / q.sum()
    drawn = draws(torch.tensor(q, dtype=torch.float32), 7, 2)
    cands = [(table[j], math.log(q[j]), int(j)) for j in drawn]
    want = np.mean([row_loss(users[r], table[ids[r]], math.log(q[ids[r]]), int(ids[r]), cands)
                    for r in range(len(ids))])
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_mixed_objective_equals_the_definition_and_counts_its_steps():
    users, table, ids = setup(2, batch=5)
    counts = np.array([4, 1, 2, 6, 1, 1, 3, 2, 5])
    objective = SampledSoftmaxObjective([InBatchSource(), UniformSource(NUM_ITEMS, 4, seed=8)], SampledSoftmaxLoss(T),
                                        item_counts=counts).double()
    got = objective(users, table[ids], ids, encode_items=lambda i: table[i])
    unigram = np.log(counts / counts.sum())
    drawn = torch.randint(0, NUM_ITEMS, (4,), generator=torch.Generator().manual_seed(8))
    want = []
    for r in range(len(ids)):
        # the batch's other rows (every copy of the positive id masked, the row's own is the positive)
        cands = [(table[ids[k]], unigram[ids[k]], int(ids[k])) for k in range(len(ids)) if k != r]
        cands += [(table[j], math.log(1.0 / NUM_ITEMS), int(j)) for j in drawn]
        want.append(row_loss(users[r], table[ids[r]], unigram[ids[r]], int(ids[r]), cands))
    assert float(got) == pytest.approx(np.mean(want), rel=1e-5)
    assert objective._steps == 1 and int(objective.step) == 1
    objective.eval()
    objective(users, table[ids], ids, encode_items=lambda i: table[i])
    assert objective._steps == 1  # eval mode only scores
    # one counter: the sources keep none
    assert [k for k in objective.state_dict() if "step" in k] == ["step"]


def test_an_objective_needs_a_source():
    with pytest.raises(ValueError, match="at least one negative source"):
        SampledSoftmaxObjective([], item_counts=np.ones(3))
