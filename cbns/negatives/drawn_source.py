"""A source that draws items at random, with its own generator saved in its state."""
from __future__ import annotations

import torch

from cbns.negatives.source import NegativeSource


class DrawnSource(NegativeSource):
    """A :class:`NegativeSource` that draws item ids with replacement from a distribution.

    The generator is state: it is saved and restored with the module (its ``_extra_state``), so a
    resumed run draws the same negatives. It is seeded with ``seed``.
    """

    def __init__(self, seed: int = 0):
        super().__init__()
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def draw(self, probs: torch.Tensor, n: int) -> torch.Tensor:
        """``[n]`` item ids drawn with replacement from ``probs [I]`` with the source's generator,
        on the device of ``probs`` (a source moved to a GPU draws there with a CUDA generator,
        seeded from the source's seed at its first draw)."""
        if self.generator.device != probs.device:
            self.generator = torch.Generator(device=probs.device).manual_seed(self.seed)
        return torch.multinomial(probs, n, replacement=True, generator=self.generator)

    # The generator's device is saved too: a CUDA generator's state only restores into a CUDA
    # generator.
    def get_extra_state(self):
        return {"generator": self.generator.get_state(), "device": self.generator.device.type}

    def set_extra_state(self, state) -> None:
        device = torch.device(state.get("device", "cpu"))
        here = next(self.buffers(), None)
        if device.type == "cuda" and here is not None and here.device.type == "cuda":
            device = here.device
        if self.generator.device != device:
            self.generator = torch.Generator(device=device)
        self.generator.set_state(state["generator"])
