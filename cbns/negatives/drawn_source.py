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

    def draw(self, cdf: torch.Tensor, n: int) -> torch.Tensor:
        """``[n]`` item ids drawn with replacement from the distribution of cumulative
        probabilities ``cdf [I]`` (non-decreasing, last entry 1), by inverting it at ``n`` uniform
        numbers: two launches, no read of the device, an output of fixed size."""
        u = torch.rand(n, generator=self._generator_on(cdf.device), device=cdf.device)  # float32 whatever cdf's dtype
        return torch.searchsorted(cdf, u.to(cdf.dtype), right=True)

    def draw_uniform(self, num_items: int, n: int, device: torch.device) -> torch.Tensor:
        """``[n]`` item ids drawn uniformly with replacement from ``[0, num_items)``."""
        return torch.randint(0, num_items, (n,), generator=self._generator_on(device), device=device)

    def _generator_on(self, device: torch.device) -> torch.Generator:
        """The source's generator on ``device``: a source moved to a GPU draws there with a generator
        of that device, seeded from the source's seed at its first draw. The CPU generator serves
        the CPU and the ``meta`` device (which draws nothing)."""
        if device.type not in ("cpu", "meta") and self.generator.device != device:
            self.generator = torch.Generator(device=device).manual_seed(self.seed)
        return self.generator

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
