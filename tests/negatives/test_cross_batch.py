"""CBNS negatives and loss against a reference built from the concatenated history of batches."""
import numpy as np
import torch
import torch.nn.functional as F

from cbns.negatives import CrossBatchSampler
from cbns.objective.loss import SampledSoftmaxLoss


def test_cbns_loss_equals_softmax_over_batch_plus_last_m_history_items():
    torch.manual_seed(0)
    num_items, dim, batch, memory, warmup, T = 30, 4, 5, 7, 2, 0.2
    counts = np.random.default_rng(0).integers(1, 50, num_items)
    logq = torch.tensor(np.log(counts / counts.sum()), dtype=torch.float32)
    sampler = CrossBatchSampler(counts, memory_size=memory, dim=dim, warmup_steps=warmup)
    loss_fn = SampledSoftmaxLoss(temperature=T, item_side="joint")
    hist_emb, hist_ids = [], []
    for step in range(6):
        ids = torch.randint(0, num_items, (batch,))
        users = F.normalize(torch.randn(batch, dim), dim=1)
        items = F.normalize(torch.randn(batch, dim), dim=1)
        got = loss_fn(users, items, ids, logq[ids], sampler.negatives(ids, items, None))

        # Reference: column 0 = positive; candidates = batch items + (after warm-up) the last
        # `memory` items of all earlier batches; a candidate with the row's positive id is masked.
        cand_emb, cand_ids = [items], [ids]
        if step >= warmup and hist_ids:
            cand_emb.append(torch.cat(hist_emb)[-memory:])
            cand_ids.append(torch.cat(hist_ids)[-memory:])
        ce, ci = torch.cat(cand_emb), torch.cat(cand_ids)
        rows = []
        for r in range(batch):
            pos = users[r] @ items[r] / T - logq[ids[r]]
            keep = ci != ids[r]
            neg = users[r] @ ce[keep].T / T - logq[ci[keep]]
            rows.append(-pos + torch.logsumexp(torch.cat([pos[None], neg]), 0))
        want = torch.stack(rows).mean()
        assert torch.allclose(got, want, atol=1e-5), (step, got, want)

        sampler.observe(ids, items)
        hist_emb.append(items)
        hist_ids.append(ids)


def test_refresh_mode_reencodes_bank_ids_with_gradient():
    counts = np.ones(10)
    sampler = CrossBatchSampler(counts, memory_size=3, dim=2, bank_mode="refresh")
    table = torch.nn.Parameter(torch.randn(10, 2))
    sampler.observe(torch.tensor([4, 5, 6]), torch.zeros(3, 2))
    ids = torch.tensor([1, 2])
    sources = sampler.negatives(ids, table[ids], lambda i: table[i])
    bank = sources[1]
    assert bank.item_grad and torch.equal(bank.ids, torch.tensor([4, 5, 6]))
    assert torch.equal(bank.emb, table[bank.ids]) and bank.emb.requires_grad
