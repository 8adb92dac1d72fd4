"""What a training run returns: best-epoch validation, test, timings and the per-epoch history."""
from __future__ import annotations

from dataclasses import dataclass, field

from cbns.training.fit_state import FitState
from cbns.training.phase_timer import PHASES


@dataclass
class TrainResult:
    """What a run produced: the metrics of the best epoch, the test metrics, and the history."""

    valid: dict[str, float]
    test: dict[str, float]
    best_epoch: int
    epochs_run: int
    train_seconds: float
    history: list[dict] = field(default_factory=list)
    popularity_prior: dict = field(default_factory=dict)
    #: how validation and the test ranked and over how many users (:meth:`cbns.evaluation.evaluator.Evaluator.summary`)
    evaluation: dict = field(default_factory=dict)

    @classmethod
    def of(cls, state: FitState, valid: dict[str, float], test: dict[str, float], popularity_prior: dict,
           evaluation: dict) -> TrainResult:
        """The result of a finished :class:`FitState`: the best epoch (the last one when none was
        validated), the epochs run, the training seconds and the history, with the rest as given."""
        best_epoch = state.best_epoch if state.best_state is not None else state.epoch
        return cls(valid, test, best_epoch, state.epoch, state.train_seconds, state.history, popularity_prior,
                   evaluation)

    @property
    def seconds_per_epoch(self) -> float:
        return self.train_seconds / max(self.epochs_run, 1)

    @property
    def phase_seconds_per_epoch(self) -> dict[str, float]:
        """Mean seconds per epoch in each phase of :data:`cbns.training.phase_timer.PHASES`."""
        records = [h["phases"] for h in self.history if "phases" in h]
        return {p: round(sum(r.get(p, 0.0) for r in records) / max(len(records), 1), 3) for p in PHASES}

    def to_dict(self) -> dict:
        return {"valid": self.valid, "test": self.test, "best_epoch": self.best_epoch,
                "epochs_run": self.epochs_run, "train_seconds": round(self.train_seconds, 3),
                "seconds_per_epoch": round(self.seconds_per_epoch, 3),
                "phase_seconds_per_epoch": self.phase_seconds_per_epoch,
                "popularity_prior": self.popularity_prior, "evaluation": self.evaluation, "history": self.history}
