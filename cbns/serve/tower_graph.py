"""The user tower of a run as a graph ONNX can hold: plain tensors in, ranking vectors out.

A served tower answers a query the run has no stored row for (a history, a set of attributes). The
graph takes the tensors the tower reads, written out as inputs (no context mapping, no packed
sequence, no code tables looked up by user id), and ends where the exported
``user_embeddings.npy`` ends: the tower's output, L2-normalised when the run scores by cosine,
with a column of ones appended when the item vectors carry the bias/prior column
(:meth:`cbns.model.two_tower.TwoTower.ranking_vectors`). So ``graph(inputs) . items[i]`` is the
run's ranking score of item ``i``.

Inputs, by tower (``B`` queries):

* ``pooled``, ``gru``: ``history [B, L]`` int64 item rows, oldest first, right-padded with 0, and
  ``history_length [B]`` int64 (1..L), as :mod:`cbns.data.history` hands them to the towers;
* a tower that reads user attributes (``features``, or ``pooled`` with a table) also takes
  ``codes_<c> [B, W_c]`` int64 per attribute column ``c``: the codes of the query, 0 = missing or
  padding (:class:`cbns.runs.feature_vocabulary.FeatureVocabulary` makes them);
* ``features``: the codes alone; the id embedding a new user lacks is the mean of the trained
  users' id rows, held in the graph (what :mod:`cbns.serve.tower_encoder` feeds the tower).

Two things the towers do are written differently here, for ONNX, with the same result:

* the GRU tower packs its sequences by length; the graph runs the GRU over the padded rows and
  reads the state at position ``length - 1``. A GRU is causal, so the padding after a row's last
  item never reaches that state;
* an attribute column is an ``EmbeddingBag`` (mean, padding code 0); the graph gathers the code
  rows, zeroes the padding and divides by the count of real codes (zeros for none), which is the
  bag's definition.

:mod:`cbns.serve.export` checks every graph against the tower's own forward at export time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cbns.model.towers.feature_encoder import FeatureEncoder
from cbns.model.towers.features_tower import FeaturesTower
from cbns.model.towers.gru_tower import GruTower
from cbns.model.towers.pooled_tower import PooledHistoryTower

#: The graph's history inputs, in order.
HISTORY_INPUTS = ("history", "history_length")
#: The graph's output.
OUTPUT = "user_vectors"


def code_inputs(count: int) -> tuple[str, ...]:
    """The names of the attribute-code inputs of a tower with ``count`` attribute columns."""
    return tuple(f"codes_{c}" for c in range(count))


class UserTowerGraph(nn.Module):
    """``(*inputs) -> [B, D']``: a pooled, GRU or feature user tower with the run's finish (see the
    module docstring). ``input_names`` lists the inputs in the order ``forward`` takes them.

    Args:
        tower: the run's user tower with its weights, in eval mode.
        normalize: the run scores by cosine; extra_column: append the column of ones.
    """

    def __init__(self, tower: nn.Module, normalize: bool, extra_column: bool):
        super().__init__()
        if not isinstance(tower, (PooledHistoryTower, GruTower, FeaturesTower)):
            raise TypeError(f"no servable graph for a {type(tower).__name__} user tower")
        self.tower, self.normalize, self.extra_column = tower, normalize, extra_column
        self.history = not isinstance(tower, FeaturesTower)
        self.bags = getattr(tower, "features", None)
        columns = self.bags.num_columns if self.bags is not None else 0
        self.input_names = (HISTORY_INPUTS if self.history else ()) + code_inputs(columns)
        if isinstance(tower, FeaturesTower):
            self.register_buffer("mean_id", tower.embedding.weight.detach().mean(0), persistent=False)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.history:
            history, length, codes = inputs[0], inputs[1], inputs[2:]
            x = self._gru(history, length) if isinstance(self.tower, GruTower) else self._pooled(history, length, codes)
        else:
            attributes = _bag_means(self.bags, inputs)
            x = self.tower.mlp(torch.cat([self.mean_id.expand(attributes.shape[0], -1), attributes], dim=-1))
        x = F.normalize(x, dim=-1) if self.normalize else x
        return torch.cat([x, torch.ones_like(x[:, :1])], 1) if self.extra_column else x

    def _pooled(self, history: torch.Tensor, length: torch.Tensor, codes) -> torch.Tensor:
        tower = self.tower
        positions = torch.arange(history.shape[1], device=history.device)
        real = (positions[None, :] < length[:, None]).to(torch.float32)
        age = (length[:, None] - 1 - positions[None, :]).clamp(min=0).to(torch.float32)
        weight = real * torch.pow(torch.full_like(age, tower.decay), age)
        pooled = (weight[..., None] * tower.items(history)).sum(1) / weight.sum(1, keepdim=True).clamp(min=1e-12)
        parts = [pooled] if self.bags is None else [pooled, _bag_means(self.bags, codes)]
        return tower.mlp(torch.cat(parts, dim=-1))

    def _gru(self, history: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        tower = self.tower
        outputs, _ = tower.gru(tower.dropout(tower.items(history)))     # [B, L, hidden]
        last = (length - 1).clamp(min=0)
        state = torch.gather(outputs, 1, last[:, None, None].expand(-1, 1, outputs.shape[2]))[:, 0]
        state = state * (length > 0)[:, None].to(state.dtype)
        return tower.out(tower.dropout(state))


def _bag_means(bags: FeatureEncoder, codes) -> torch.Tensor:
    """``[B, C * D]``: per column, the mean embedding of the row's non-zero codes (zeros for none)."""
    parts = []
    for bag, column in zip(bags.bags, codes):
        real = (column != 0).to(torch.float32)[..., None]                 # [B, W, 1]
        total = (bag.weight[column] * real).sum(1)
        parts.append(total / real.sum(1).clamp(min=1.0))
    return torch.cat(parts, dim=-1)


def servable(tower: nn.Module) -> bool:
    """Whether ``tower`` has a graph (the ID tower has none: its users are rows, a new one a fold-in)."""
    return isinstance(tower, (PooledHistoryTower, GruTower, FeaturesTower))
