"""Registries: the names a config may give for a sampler or a tower, and what each name builds.

The built-in entries are declared in :data:`BUILTINS` below, by name, ``"module:Class"``, a
one-line summary and the config options they read, so that the names and summaries are known
without importing any implementation (the command line's help and config checks run
without torch); the class is imported on the first :meth:`Registry.get`. Any other class (a plugin)
registers itself with one decorator, imported by the user's code before it is named::

    @SAMPLERS.register("popmix")
    class PopMix(SamplerSpec): ...

and is read by name like a built-in (``SAMPLERS.get("popmix")``, ``SAMPLERS.names()``;
docs/extending.md).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Declaration:
    """A built-in entry known before its module is imported: ``target`` is ``"module:Class"``."""

    target: str
    summary: str = ""
    options: tuple[str, ...] = ()


class Registry:
    """An ordered map from names to implementations (classes with a ``from_config``).

    Args:
        kind: what the entries are, for messages (``sampler``, ``user tower``).
        package: imported when a name is asked for that is neither declared nor registered (a
            module of that package may register it as it is imported).
        aliases: names that stand for an entry until a run decides (``{"auto": "cbns"}``: the
            recipe, :mod:`cbns.training.recipe`, resolves ``auto`` once the data is known; before
            that, questions such as "which options does it read" are answered by ``cbns``).
    """

    def __init__(self, kind: str, package: str, aliases: dict[str, str] | None = None):
        self.kind, self.package = kind, package
        self.aliases = dict(aliases or {})
        self._declared: dict[str, Declaration] = {}
        self._entries: dict[str, Any] = {}

    def declare(self, name: str, target: str, summary: str = "", options: tuple[str, ...] = ()) -> None:
        """File the class ``target`` (``"module:Class"``) under ``name`` without importing it;
        ``summary`` and ``options`` are what the class says of itself (its ``summary`` and
        ``options`` attributes), answered from here until it is imported."""
        self._declared[name] = Declaration(target, summary, tuple(options))

    def register(self, name: str) -> Callable[[Any], Any]:
        """A decorator that files its class (or function) under ``name``."""
        def add(entry):
            known = self._entries.get(name)
            declared = self._declared.get(name)
            if known is None and declared is not None and declared.target.replace(":", ".") != _label(entry):
                known = declared.target
            if known is not None and known is not entry:
                shown = known if isinstance(known, str) else _label(known)
                raise ValueError(f"{self.kind} {name!r} is registered twice ({shown} and {_label(entry)})")
            self._entries[name] = entry
            return entry
        return add

    def remove(self, name: str) -> None:
        """Forget ``name`` (e.g. a plugin registered by a test); unknown names are ignored."""
        self._entries.pop(name, None)
        self._declared.pop(name, None)

    def names(self) -> tuple[str, ...]:
        """Every declared, then every other registered name (nothing is imported)."""
        return (*self._declared, *(name for name in self._entries if name not in self._declared))

    def choices(self) -> tuple[str, ...]:
        """What a config may name: the aliases, then every name."""
        return (*self.aliases, *self.names())

    def get(self, name: str):
        """The entry filed under ``name`` (an alias: the entry it stands for), imported on first use;
        KeyError naming the known ones otherwise."""
        name = self.aliases.get(name, name)
        if name not in self._entries:
            declared = self._declared.get(name)
            if declared is not None:
                module, _, attribute = declared.target.partition(":")
                self._entries.setdefault(name, getattr(importlib.import_module(module), attribute))
            else:
                importlib.import_module(self.package)
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._entries[name]

    def summary(self, name: str) -> str:
        """The one-line description of ``name`` (an alias: of the entry it stands for)."""
        name = self.aliases.get(name, name)
        declared = self._declared.get(name)
        return declared.summary if declared is not None else getattr(self.get(name), "summary", "")

    def options(self, name: str) -> tuple[str, ...]:
        """The config options ``name`` reads beyond the common ones (an alias: its entry's)."""
        name = self.aliases.get(name, name)
        declared = self._declared.get(name)
        return declared.options if declared is not None else tuple(getattr(self.get(name), "options", ()))

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _label(entry) -> str:
    return f"{entry.__module__}.{entry.__qualname__}"


#: ``sampler``: subclasses of :class:`cbns.objective.sampler_spec.SamplerSpec`.
SAMPLERS = Registry("sampler", "cbns.objective.samplers", aliases={"auto": "cbns"})
#: ``user_tower`` and ``item_tower``: subclasses of :class:`cbns.model.towers.base.Tower`.
USER_TOWERS = Registry("user tower", "cbns.model.towers")
ITEM_TOWERS = Registry("item tower", "cbns.model.towers")


#: The built-in entries, per registry: name, ``"module:Class"``, summary, options read. The classes
#: carry the same ``summary`` and ``options`` (tests/test_registry.py checks that they agree).
BUILTINS = {
    SAMPLERS: (
        ("inbatch", "cbns.objective.samplers:InBatch", "the other positives of the batch (q = unigram)", ()),
        ("uniform", "cbns.objective.samplers:Uniform", "N items drawn uniformly per step (q = 1/|I|)",
         ("num_negatives",)),
        ("popularity", "cbns.objective.samplers:Popularity", "N items drawn from count^alpha per step",
         ("num_negatives", "popularity_alpha")),
        ("mns", "cbns.objective.samplers:Mixed",
         "in-batch + N uniform (mixed negative sampling, Yang et al. 2020)", ("num_negatives",)),
        ("cbns", "cbns.objective.samplers:CrossBatch",
         "in-batch + a FIFO bank of the M most recently encoded items (after W warm-up steps)",
         ("memory_size", "warmup_steps", "bank_mode")),
        ("full", "cbns.objective.samplers:Full",
         "every item a negative: the exact softmax (the objective the samplers estimate)", ()),
    ),
    USER_TOWERS: (
        ("id", "cbns.model.towers.id_tower:IdTower", "one learned vector per id", ()),
        ("pooled", "cbns.model.towers.pooled_tower:PooledHistoryTower",
         "YouTubeDNN: mean of the history items + user attributes",
         ("max_history", "pool_decay", "hidden_dim", "dropout", "user_features", "user_feature_columns")),
        ("gru", "cbns.model.towers.gru_tower:GruTower", "GRU4Rec over the history",
         ("max_history", "hidden_dim", "dropout")),
        ("features", "cbns.model.towers.features_tower:FeaturesTower", "id + attributes through an MLP",
         ("hidden_dim", "dropout", "user_features", "user_feature_columns", "item_features", "item_feature_columns")),
    ),
    ITEM_TOWERS: (
        ("id", "cbns.model.towers.id_tower:IdTower", "one learned vector per id", ()),
        ("features", "cbns.model.towers.features_tower:FeaturesTower", "id + attributes through an MLP",
         ("hidden_dim", "dropout", "user_features", "user_feature_columns", "item_features", "item_feature_columns")),
    ),
}
for _registry, _rows in BUILTINS.items():
    for _row in _rows:
        _registry.declare(*_row)
