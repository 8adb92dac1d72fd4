"""Early stopping on the validation Recall@K, and the best weights restored when training ends."""
from __future__ import annotations

import copy

from cbns.training.callbacks.base import Callback, Loop


class EarlyStopping(Callback):
    """Keeps the weights of the best validation ``recall@{k}`` and stops after ``patience``
    validations without a better one (``patience`` 0: after the first epoch).

    Its bookkeeping lives in ``trainer.state`` (:class:`cbns.training.fit_state.FitState`: ``best``,
    ``best_epoch``, ``stale``, ``best_state``), so checkpoints save it and a resumed run goes on
    from it. Place it first among the callbacks, so the others (the checkpointer) see the decision.
    When training ends, the best weights (if any epoch was validated) are loaded into the model.
    """

    def __init__(self, k: int, patience: int):
        self.key, self.patience = f"recall@{k}", patience

    def on_epoch_end(self, trainer: Loop, record: dict) -> None:
        s = trainer.state
        if "valid" in record:
            if record["valid"][self.key] > s.best:
                s.best, s.best_epoch, s.stale = record["valid"][self.key], record["epoch"], 0
                s.best_state = copy.deepcopy(trainer.model.state_dict())
            else:
                s.stale += 1
        if s.stale >= self.patience:
            s.done = True

    def on_fit_end(self, trainer: Loop) -> None:
        if trainer.state.best_state is not None:
            trainer.model.load_state_dict(trainer.state.best_state)
