"""Defaults that read the data and the towers: what ``auto`` becomes for one run.

``item_side auto`` (the default), ``sampler auto`` and ``min_steps`` are resolved once the
dataset is loaded, printed at the start of the run, and written resolved into ``config.yaml`` (so a
resumed run, ``cbns evaluate`` and the study read the same concrete values):

* ``sampler auto`` (an alias kept for configs and scripts that name it; the default is ``cbns``):
  ``cbns``. The rule it had, the full softmax (``full``) whenever the batch and the bank would hold
  as many rows as the catalogue has items (``B + M >= I``), lost on validation where it applied
  (MovieLens-100k, BENCHMARKS.md: valid Recall@20 0.3107 / 0.3162 for ``full`` against 0.3373 /
  0.3363 for CBNS at B = 2048, M = 4096 on two seeds, and 0.3337 with the bank capped at the
  catalogue), so a bank larger than the catalogue stays a bank.
* ``item_side auto``: ``joint`` (the paper's form) when both towers are ID tables (matrix
  factorisation), ``split`` otherwise. Measured on validation (BENCHMARKS.md): with ID towers and
  the learned bias joint leads split on Gowalla on both seeds; with an MLP item tower joint
  collapses; with a GRU user tower over ID items it falls behind (Beauty valid HR@20 0.1194
  against 0.1313).
* ``min_steps S``: training lasts at least S optimizer steps (``epochs`` grows to
  ``ceil(S / steps per epoch)`` when an epoch is short), and the learning-rate schedule decays
  over that length: a dataset of a few thousand rows gets as many updates as a large one, not 10
  epochs of a handful of steps. Early stopping on validation still ends a run that stops improving.
"""
from __future__ import annotations

import math

#: The options this module may rewrite (the study compares a finished cell's saved value with the
#: cell's own only where the cell did not leave the option to this module).
RESOLVED = ("sampler", "item_side", "epochs")


def resolve(config, num_items: int, num_train: int, item_tower=None, user_tower=None) -> tuple[object, list[str]]:
    """``(config with every auto resolved, one line per decision)`` for a dataset of ``num_items``
    items and ``num_train`` training pairs; an already resolved config comes back unchanged.
    ``item_tower`` / ``user_tower`` are the caller's own towers when there are
    (``cbns.train(item_tower=...)``): one is an ID table only if it says so (``id_table = True``)."""
    changes, notes = {}, []
    if config.sampler.name == "auto":
        changes["sampler"] = "cbns"
        covered = config.sampler.batch_size + config.sampler.memory_size
        notes.append(f"sampler cbns: auto is CBNS also when B + M = {covered:,} "
                     f"rows cover the {num_items:,} items (the full softmax lost to it on validation)")
    if config.loss.item_side == "auto":
        from cbns.registry import ITEM_TOWERS, USER_TOWERS

        def describe(side, given, registry, name):
            tower = given if given is not None else registry.get(name)
            label = type(given).__name__ if given is not None else name
            return bool(getattr(tower, "id_table", False)), f"{side} tower {label}"

        sides = [describe("user", user_tower, USER_TOWERS, config.model.user_tower),
                 describe("item", item_tower, ITEM_TOWERS, config.model.item_tower)]
        both = all(is_table for is_table, _ in sides)
        changes["item_side"] = "joint" if both else "split"
        why = "both towers are ID tables" if both else \
            ", ".join(f"the {label} is not an ID table" for is_table, label in sides if not is_table)
        notes.append(f"item side {changes['item_side']}: {why}")
    if config.training.min_steps:
        per_epoch = max(1, math.ceil(num_train / config.sampler.batch_size))
        epochs = max(config.training.epochs, math.ceil(config.training.min_steps / per_epoch))
        if epochs != config.training.epochs:
            changes["epochs"] = epochs
            notes.append(f"epochs {epochs}: at least {config.training.min_steps:,} steps of {per_epoch:,} per epoch "
                         f"(epochs {config.training.epochs} would give {config.training.epochs * per_epoch:,})")
    if not changes:
        return config, notes
    return config.replace(**changes).validate(), notes


def leaves_to_recipe(name: str, expected) -> bool:
    """Whether option ``name`` of the (unresolved) config ``expected`` is decided here at run time."""
    if name in ("sampler", "item_side"):
        return expected[name] == "auto"
    if name == "epochs":
        return bool(expected.training.min_steps)
    return False
