"""Item-tower feature drift: how far the item embeddings move between training steps.

The CBNS paper (Wang, Zhu and He 2021, section 3.2) justifies reusing embeddings encoded at
earlier steps by measuring

    D(t, dt) = sum_{i in S} || g_v(i; theta_t) - g_v(i; theta_{t - dt}) ||_2

over a fixed set S of items: large early in training, small once the encoder settles, which is
why the bank is switched on after a warm-up. :class:`EmbeddingDrift` records D for a few ``dt``
every ``every`` steps. Low overhead: it encodes the sample only at the steps a measurement will
need (t and t - dt for the next measurement step t), and keeps at most ``max(dt)`` snapshots.
"""
from __future__ import annotations

import numpy as np
import torch

from cbns.training.callbacks.base import Callback


class EmbeddingDrift(Callback):
    """Records ``D(t, dt)`` for ``dt`` in ``deltas`` at every step ``t`` divisible by ``every``.

    Args:
        num_items: size of the item id space; the sample is drawn from ``0..num_items-1``.
        every: measure at steps ``every, 2 * every, ...`` (``trainer.global_step``, counted from 1).
        sample: number of items in the fixed sample S (all items if there are fewer).
        deltas: the step distances ``dt``, each >= 1.
        seed: seeds the choice of S.

    ``records`` holds ``{"step": t, "drift": {dt: D(t, dt)}}`` for every measurement step at which
    at least one ``t - dt`` snapshot exists (a run that resumes mid-way starts measuring again
    once it has them). Embeddings are taken in eval mode (no dropout), without gradient.
    """

    def __init__(self, num_items: int, every: int = 10, sample: int = 1024,
                 deltas: tuple[int, ...] = (1, 5, 10), seed: int = 0):
        if every < 1 or sample < 1 or not deltas or min(deltas) < 1:
            raise ValueError(f"need every >= 1, sample >= 1 and deltas >= 1; got {every}, {sample}, {deltas}")
        rng = np.random.default_rng(seed)
        size = min(sample, num_items)
        self.ids = torch.from_numpy(np.sort(rng.choice(num_items, size=size, replace=False)).astype(np.int64))
        self.every = every
        self.deltas = tuple(sorted(set(int(d) for d in deltas)))
        self.snapshots: dict[int, torch.Tensor] = {}
        self.records: list[dict] = []

    def on_fit_start(self, trainer) -> None:
        self._visit(trainer.model, trainer.global_step)

    def on_step_end(self, trainer) -> None:
        self._visit(trainer.model, trainer.global_step, getattr(trainer, "settle", None))

    def _visit(self, model, step: int, settle=None) -> None:
        measure = step > 0 and step % self.every == 0
        keep = any((step + dt) % self.every == 0 for dt in self.deltas)
        if not (measure or keep):
            return
        if settle is not None:  # rows as of this step, not of their last gradient (sparse updates)
            settle()
        current = self._encode(model)
        if measure:
            drift = {dt: float((current - self.snapshots[step - dt]).norm(dim=1).sum())
                     for dt in self.deltas if step - dt in self.snapshots}
            if drift:
                self.records.append({"step": step, "drift": drift})
        if keep:
            self.snapshots[step] = current
        oldest = step - max(self.deltas) + 1  # no later measurement needs an older one
        for old in [s for s in self.snapshots if s < oldest]:
            del self.snapshots[old]

    @torch.no_grad()
    def _encode(self, model) -> torch.Tensor:
        """``[S, D]`` the sample's item embeddings under the current weights."""
        was_training = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            return model.item_embeddings(self.ids.to(device)).detach().float().clone()
        finally:
            model.train(was_training)

    def to_dict(self, **meta) -> dict:
        """The JSON form: settings, ``meta`` (e.g. warm-up steps, steps per epoch) and the records.

        ``steps`` is the list of measurement steps and ``drift[str(dt)]`` the matching values
        (``null`` where no ``t - dt`` snapshot existed).
        """
        steps = [r["step"] for r in self.records]
        series = {str(dt): [r["drift"].get(dt) for r in self.records] for dt in self.deltas}
        return {"every": self.every, "sample": len(self.ids), "deltas": list(self.deltas), **meta,
                "steps": steps, "drift": series}


def drift_callback(config, num_items: int) -> EmbeddingDrift | None:
    """The drift recorder a :class:`~cbns.config.TrainConfig` asks for (``None`` when off)."""
    if not config.run.drift_every:
        return None
    return EmbeddingDrift(num_items, config.run.drift_every, config.run.drift_sample, tuple(config.run.drift_deltas),
                          seed=config.training.seed + 3)


#: The files :func:`save_drift` writes into a run directory.
DRIFT_FILES = ("drift.json", "drift.png")


def save_drift(out_dir, drift: EmbeddingDrift | None, config, steps_per_epoch: int) -> dict | None:
    """Write ``drift.json`` and ``drift.png`` into the run directory; returns the JSON payload.

    ``drift`` None (the run recorded none): the files an earlier run left in the directory are
    removed, so they never pass for this run's; returns None.
    """
    from pathlib import Path

    from cbns.errors import CbnsError
    from cbns.plots.drift_plot import save_drift_figure
    from cbns.registry import SAMPLERS
    from cbns.runs.run_dir import write_json

    out_dir = Path(out_dir)
    if drift is None:
        for name in DRIFT_FILES:
            try:
                (out_dir / name).unlink(missing_ok=True)
            except OSError as exc:
                raise CbnsError(f"{out_dir / name}: cannot remove the drift of an earlier run "
                                f"({exc.strerror or exc}); delete it") from None
        return None
    warmup = config.sampler.warmup_steps if "warmup_steps" in SAMPLERS.get(config.sampler.name).options else None
    payload = drift.to_dict(sampler=config.sampler.name, warmup_steps=warmup, steps_per_epoch=steps_per_epoch)
    write_json(out_dir / "drift.json", payload)
    save_drift_figure(payload, out_dir / "drift.png", title=f"Item-tower drift, {config.sampler.name}")
    return payload
