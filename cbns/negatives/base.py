"""The sampler interface and the item distribution it works from."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cbns.negatives.candidates import Candidates


def log_unigram(counts: np.ndarray) -> torch.Tensor:
    """``[I]`` log q(i) = log(count(i) / total); items never seen in train get count 1, so that
    a uniformly drawn unseen item still has a finite correction."""
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    return torch.tensor(np.log(counts / counts.sum()), dtype=torch.float32)


class NegativeSampler(nn.Module):
    """Produces the negative sources of a step and sees each step's items afterwards.

    Subclasses implement :meth:`negatives` (pure: it may encode sampled items, but changes no
    state other than advancing its random generator) and, where they keep state, :meth:`observe`.
    ``log_q`` is the ``[I]`` log-probability of the positives' stream (unigram counts from train):
    the correction applied to the positive column. With a streaming estimate attached as
    ``frequency`` (:class:`cbns.negatives.streaming_frequency.StreamingFrequency`), the trainer calls
    :meth:`update_frequency` at the start of every step and ``log_q`` of the batch's items follows
    the estimate (the bank stores whatever ``log_q`` holds at enqueue time).
    """

    #: One line for ``sampler``'s help (the registry name comes from the registration).
    summary = ""
    #: The config options this sampler reads beyond the common ones (for help and checks).
    options: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config, item_counts: np.ndarray) -> NegativeSampler:
        """The sampler a :class:`cbns.config.TrainConfig` describes (``seed`` = config seed + 1)."""
        return cls(item_counts, seed=config.seed + 1)

    @classmethod
    def objective_from_config(cls, config, item_counts: np.ndarray):
        """The training objective this sampler makes with the configured loss: by default the
        sampler wrapped with :class:`cbns.objective.loss.SampledSoftmaxLoss` in a
        :class:`cbns.objective.sampled_objective.SampledSoftmaxObjective`. With ``item_frequency:
        streaming`` q starts uniform and follows a streaming estimate."""
        from cbns.negatives.streaming_frequency import StreamingFrequency
        from cbns.objective.loss import build_loss
        from cbns.objective.sampled_objective import SampledSoftmaxObjective

        if config.item_frequency == "streaming":
            sampler = cls.from_config(config, np.ones_like(item_counts))
            sampler.frequency = StreamingFrequency(config.frequency_slots, config.frequency_alpha)
        else:
            sampler = cls.from_config(config, item_counts)
        return SampledSoftmaxObjective(sampler, build_loss(config))

    @classmethod
    def negatives_per_row(cls, batch_size: int, config) -> int:
        """How many negatives one row's softmax sees at batch size ``batch_size`` (None: every item)."""
        return batch_size - 1

    def __init__(self, item_counts: np.ndarray, seed: int = 0):
        super().__init__()
        self.register_buffer("log_q", log_unigram(item_counts))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.num_items = len(item_counts)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.frequency = None

    @torch.no_grad()
    def update_frequency(self, item_ids: torch.Tensor) -> None:
        """Feed the step's positives to the streaming estimate and refresh their ``log_q`` (no-op
        with static counts)."""
        if self.frequency is not None:
            self.log_q[item_ids] = self.frequency.update(item_ids)

    def positive_logq(self, item_ids: torch.Tensor) -> torch.Tensor:
        """``[B]`` log q of each positive."""
        return self.log_q[item_ids]

    def negatives(self, item_ids: torch.Tensor, item_emb: torch.Tensor, encode_items) -> list[Candidates]:
        """The sources for a batch whose positives are ``item_ids [B]`` with vectors ``item_emb [B, D]``.

        ``encode_items(ids [N]) -> [N, D]`` encodes sampled items with gradient.
        """
        raise NotImplementedError

    @torch.no_grad()
    def observe(self, item_ids: torch.Tensor, item_emb: torch.Tensor) -> None:
        """Called once after each optimizer step with the step's positives; counts the step."""
        self.step += 1

    # The generator is state too: save and restore it with the module (and its device: a CUDA
    # generator's state only restores into a CUDA generator).
    def get_extra_state(self):
        return {"generator": self.generator.get_state(), "device": self.generator.device.type}

    def set_extra_state(self, state) -> None:
        device = torch.device(state.get("device", "cpu"))
        if device.type == "cuda" and self.log_q.device.type == "cuda":
            device = self.log_q.device
        if self.generator.device != device:
            self.generator = torch.Generator(device=device)
        self.generator.set_state(state["generator"])

    def inbatch(self, item_ids: torch.Tensor, item_emb: torch.Tensor) -> Candidates:
        """The batch's positives as a block of negatives that also holds each row's positive."""
        return Candidates(item_emb, item_ids, self.log_q[item_ids], source="inbatch", holds_positives=True)

    def draw(self, probs: torch.Tensor, n: int) -> torch.Tensor:
        """``[n]`` item ids drawn with replacement from ``probs [I]`` with the sampler's generator,
        on the device of ``probs`` (a sampler moved to a GPU draws there with a CUDA generator,
        seeded from the sampler's seed at its first draw)."""
        if self.generator.device != probs.device:
            self.generator = torch.Generator(device=probs.device).manual_seed(self.seed)
        return torch.multinomial(probs, n, replacement=True, generator=self.generator)
