"""The sampled-softmax logits: scores, temperature, logQ correction and accidental-hit mask.

For a row i with user vector u_i and a candidate j with vector v_j drawn with probability q(j):

    l_ij = u_i . v_j / T - log q(j)          (temperature, then the logQ correction)
    l_ij = MASKED  if id(j) == pos_id(i)     (an accidental hit: a copy of the row's positive)

The positive gets the same correction. Where the first source is the batch's own positives
(``Candidates.holds_positives``), row i's positive is column ``o + i`` of that block
(``o = Candidates.positive_offset``: 0 in a single process, the number of rows of the lower ranks
when the block was gathered over ranks) and no extra column is built; otherwise the positive is
prepended as column 0. :func:`sampled_softmax_logits` returns the logits and the target column of
every row.

The steps are fused for speed (the temperature is folded into the user vectors, the correction
into the matrix product as a bias, the mask an equality of ids written in place); the tests
check the result against a plain step-by-step reference written in the test.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from cbns.negatives.candidates import Candidates

#: What masked logits are set to: finite, so a row whose candidates are all masked still has a
#: well-defined softmax (all mass on the positive) instead of NaN.
MASKED = -1e9


def sampled_softmax_logits(
    users: torch.Tensor,
    positives: torch.Tensor,
    positive_ids: torch.Tensor,
    positive_logq: torch.Tensor,
    sources: Sequence[Candidates],
    temperature: float = 1.0,
    logq_correction: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits [B, C], target [B])``: corrected, masked logits and each row's positive column.

    Args:
        users: ``[B, D]`` user vectors.
        positives: ``[B, D]`` the vectors of each row's positive item.
        positive_ids: ``[B]`` the positive item ids.
        positive_logq: ``[B]`` log q of each positive.
        sources: the negatives, each a :class:`Candidates` shared by all rows. A first source
            that ``holds_positives`` must hold ``positives`` at rows ``[o, o + B)``, ``o`` its
            ``positive_offset`` (it then doubles as the positive column); its other rows are
            negatives (the positives of other ranks' rows).
        temperature: T > 0; scores are divided by it before the correction.
        logq_correction: subtract log q (True) or not (for ablations).
    """
    inbatch_first = bool(sources) and sources[0].holds_positives
    scaled = users / temperature
    logits = _corrected_scores(scaled, sources, logq_correction)
    ids = torch.cat([s.ids for s in sources]) if len(sources) > 1 else (sources[0].ids if sources
                                                                         else positive_ids[:0])
    hits = positive_ids[:, None] == ids[None, :]                     # [B, N], an equality mask: no read
    if inbatch_first:
        # Row i's positive is column o + i of the in-batch block; every other copy of its id is a
        # hit (rows that share a positive id see each other's copies masked, across ranks too).
        offset = sources[0].positive_offset
        target = torch.arange(offset, offset + users.shape[0], device=users.device)
        hits &= torch.arange(ids.shape[0], device=users.device)[None, :] != target[:, None]
    else:
        positive = (scaled * positives).sum(-1, keepdim=True)
        if logq_correction:
            positive = positive - positive_logq[:, None]
        logits = torch.cat([positive, logits], dim=1)
        hits = torch.cat([hits.new_zeros(hits.shape[0], 1), hits], dim=1)
        target = torch.zeros(users.shape[0], dtype=torch.long, device=users.device)
    # In place is safe: the matrix product (or the concatenation) that made ``logits`` does not
    # need its output for its backward pass.
    logits.masked_fill_(hits, MASKED)
    return logits, target


def _corrected_scores(scaled: torch.Tensor, sources: Sequence[Candidates], logq_correction: bool) -> torch.Tensor:
    """``[B, N]`` = scaled users . candidates - log q, as one matrix product with a bias."""
    if not sources:
        return scaled.new_zeros(scaled.shape[0], 0)
    cand = torch.cat([s.emb for s in sources]) if len(sources) > 1 else sources[0].emb
    if not logq_correction:
        return scaled @ cand.T
    logq = torch.cat([s.logq for s in sources]) if len(sources) > 1 else sources[0].logq
    return torch.addmm(-logq[None, :], scaled, cand.T)
