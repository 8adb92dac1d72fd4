"""cbns: two-tower retrieval recommenders trained with cross-batch negative sampling.

The public entry points, imported on first use (so ``import cbns`` stays fast)::

    cbns.train(config, out)          train, validate, test once; write a run directory
    cbns.resume(run_dir)             continue an interrupted run
    cbns.evaluate_run(run_dir)       recompute a run's metrics from its model file
    cbns.TrainConfig                 every option, with its help, choices and bounds
    cbns.Recommender                 serve a run directory (top-K, similar items)
    cbns.CrossBatchSoftmaxLoss       CBNS (in-batch + a memory bank, logQ, hit masking) as one loss module
    cbns.CbnsError                   the one error type for bad input

How one training step travels through the package: docs/architecture.md.
"""
from __future__ import annotations

import importlib

__version__ = "0.4.1"

_PUBLIC = {
    "train": "cbns.api",
    "resume": "cbns.api",
    "evaluate_run": "cbns.api",
    "TrainConfig": "cbns.config",
    "Recommender": "cbns.serve.recommender",
    "CbnsError": "cbns.errors",
    "CrossBatchSoftmaxLoss": "cbns.objective.cross_batch_loss",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cbns' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
