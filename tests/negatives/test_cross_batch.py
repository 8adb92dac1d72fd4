"""CBNS (the objective with the in-batch and bank sources) against a reference built from the
concatenated history of batches."""
import numpy as np
import torch
import torch.nn.functional as F

from cbns.negatives import MemoryBank, StepBatch
from cbns.objective.cross_batch_loss import CrossBatchSoftmaxLoss


def test_cbns_loss_equals_softmax_over_batch_plus_last_m_history_items():
    torch.manual_seed(0)
    num_items, dim, batch, memory, warmup, T = 30, 4, 5, 7, 2, 0.2
    counts = np.random.default_rng(0).integers(1, 50, num_items)
    logq = torch.tensor(np.log(counts / counts.sum()), dtype=torch.float32)
    criterion = CrossBatchSoftmaxLoss(dim, memory, item_counts=counts, warmup_steps=warmup, temperature=T,
                                      item_side="joint")
    hist_emb, hist_ids = [], []
    for step in range(6):
        ids = torch.randint(0, num_items, (batch,))
        users = F.normalize(torch.randn(batch, dim), dim=1)
        items = F.normalize(torch.randn(batch, dim), dim=1)
        got = criterion(users, items, ids)  # training mode: scores, then enqueues the batch

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

        hist_emb.append(items)
        hist_ids.append(ids)


def test_refresh_mode_reencodes_bank_ids_with_gradient():
    counts = np.ones(10)
    criterion = CrossBatchSoftmaxLoss(2, 3, item_counts=counts, bank_mode="refresh")
    table = torch.nn.Parameter(torch.randn(10, 2))
    criterion(torch.zeros(3, 2), torch.zeros(3, 2), torch.tensor([4, 5, 6]))  # enqueues 4, 5, 6
    assert isinstance(criterion.bank, MemoryBank) and criterion.bank_mode == "refresh"
    ids = torch.tensor([1, 2])
    batch = StepBatch(table[ids], ids, criterion.log_q[ids], step=criterion._steps, encode_items=lambda i: table[i])
    sources = [c for source in criterion.sources for c in source.negatives(batch)]
    bank = sources[1]
    assert bank.item_grad and torch.equal(bank.ids, torch.tensor([4, 5, 6]))
    assert torch.equal(bank.emb, table[bank.ids]) and bank.emb.requires_grad
