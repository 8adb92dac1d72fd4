"""``training.compile``: a step's towers and loss as one ``torch.compile`` graph (dense updates only)."""
from __future__ import annotations

import torch


class CompiledForward:
    """``(users [n], items [n], context, rank_rows) -> (loss, user vectors, item vectors)``: what
    :meth:`cbns.training.trainer.Trainer.step` runs eagerly as two timed phases, compiled as one.
    The backward and the optimizer step stay eager."""

    def __init__(self, trainer):
        self.trainer = trainer
        self._graph = torch.compile(self._forward)

    def __call__(self, users: torch.Tensor, items: torch.Tensor, context, rank_rows):
        # The objective's host counters (its step count, the bank's pointer) as dynamic integers, so
        # that their changing values do not rebuild the graph (for this call only).
        with torch._dynamo.config.patch(allow_unspec_int_on_nn_module=True):
            return self._graph(users, items, context, rank_rows)

    def _forward(self, users, items, context, rank_rows):
        trainer = self.trainer
        with trainer.autocast():
            user_emb, item_emb, item_bias = trainer.encoder(users, items, context)
        return trainer._score(user_emb, item_emb, items, item_bias, rank_rows), user_emb, item_emb
