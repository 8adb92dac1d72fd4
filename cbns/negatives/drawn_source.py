"""A source that draws items at random, with its own generator saved in its state."""
from __future__ import annotations

import hashlib

import torch

from cbns.negatives.source import NegativeSource


class DrawnSource(NegativeSource):
    """A :class:`NegativeSource` that draws item ids with replacement from a distribution.

    The generator is state: it is saved and restored with the module (its ``_extra_state``), so a
    resumed run draws the same negatives. It is seeded with ``seed``.

    A generator lives on one kind of device: the CPU's (Mersenne twister) and CUDA's (Philox)
    generators have different states, and neither can take the other's. The generator follows the
    source's buffers; when it has to change kind (a source moved to a GPU, or a checkpoint written
    on a GPU resumed on a CPU, or the other way round) it continues with a generator of the new kind
    seeded from the old one's state (:func:`continued_generator`): the run stays reproducible (the
    same checkpoint resumed on the same kind of device draws the same negatives) but the draws from
    then on differ from those the other device would have made.
    """

    def __init__(self, seed: int = 0):
        super().__init__()
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def draw(self, probs: torch.Tensor, n: int) -> torch.Tensor:
        """``[n]`` item ids drawn with replacement from ``probs [I]`` (non-negative weights; they need not
        sum to 1), on the device of ``probs``: :meth:`draw_cdf` of their running sum."""
        return self.draw_cdf(torch.cumsum(probs, 0), n)

    def draw_cdf(self, cdf: torch.Tensor, n: int) -> torch.Tensor:
        """``[n]`` item ids drawn with replacement from the distribution whose running sum of weights
        is ``cdf [I]`` (non-decreasing; its last entry the total), by inverting it at ``n`` uniform
        numbers scaled to the total: a few launches, no read of the device, an output of fixed size.
        A number that rounds onto the total itself is clamped to the last item, so an id is always
        in ``[0, I)``."""
        u = torch.rand(n, generator=self._generator_on(cdf.device), device=cdf.device)  # float32 whatever cdf's dtype
        ids = torch.searchsorted(cdf, u.to(cdf.dtype) * cdf[-1], right=True)
        return ids.clamp_(max=cdf.shape[0] - 1)

    def draw_uniform(self, num_items: int, n: int, device: torch.device) -> torch.Tensor:
        """``[n]`` item ids drawn uniformly with replacement from ``[0, num_items)``."""
        return torch.randint(0, num_items, (n,), generator=self._generator_on(device), device=device)

    def _generator_on(self, device: torch.device) -> torch.Generator:
        """The source's generator on ``device``: a source moved to a GPU draws there with a generator of
        that device continued from its CPU one at its first draw (:func:`continued_generator`). The CPU
        generator serves the CPU and the ``meta`` device (which draws nothing)."""
        if device.type != "meta" and self.generator.device != device:
            self.generator = continued_generator(self.generator.get_state(), self.generator.device, device)
        return self.generator

    # The generator's device is saved too: a CUDA generator's state only restores into a CUDA
    # generator.
    def get_extra_state(self):
        return {"generator": self.generator.get_state(), "device": self.generator.device.type}

    def set_extra_state(self, state) -> None:
        """Restore the saved generator onto the device of the source's buffers (where it draws),
        whatever device wrote it: the same kind takes the state as it is, another kind continues
        from it (:func:`continued_generator`)."""
        saved = torch.device(state.get("device", "cpu"))
        here = next(self.buffers(), None)
        target = here.device if here is not None else self.generator.device
        if target.type == "meta":  # a module on the meta device draws nothing: the CPU generator holds the state
            target = torch.device("cpu")
        if saved.type == target.type:
            if self.generator.device != target:
                self.generator = torch.Generator(device=target)
            self.generator.set_state(state["generator"])
        else:
            self.generator = continued_generator(state["generator"], saved, target)


def continued_generator(state: torch.Tensor, saved: torch.device, target: torch.device) -> torch.Generator:
    """A generator on ``target`` that continues one whose state ``state`` (``[S]`` uint8) belongs to a
    generator on ``saved``, a device of another kind whose state ``target``'s generator cannot take.

    It is seeded with the first 63 bits of the SHA-256 of the saved device's kind and state: the
    same saved state always gives the same continuation, and two different states (two points of one
    run, or two runs) give unrelated ones.
    """
    digest = hashlib.sha256(saved.type.encode() + b"|" + state.cpu().contiguous().numpy().tobytes()).digest()
    seed = int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
    return torch.Generator(device=target).manual_seed(seed)
