"""Registries: the names a config may give for a sampler or a tower, and what each name builds.

A registry is filled by the modules that define the implementations, one decorator each::

    @SAMPLERS.register("cbns")
    class CrossBatch(SamplerSpec): ...

and read by name (``SAMPLERS.get("cbns")``, ``SAMPLERS.names()``). This module imports no
implementation: the first read imports the registry's package (:mod:`cbns.objective.samplers`
for the samplers, ``cbns.model.towers`` for the towers), which defines or imports every built-in
entry and so registers it. That is why the configuration (:mod:`cbns.config`) can list the
allowed values of ``--sampler`` without importing a sampler, and why a new sampler is one
registration (docs/extending.md).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any


class Registry:
    """An ordered map from names to implementations (classes with a ``from_config``).

    Args:
        kind: what the entries are, for messages (``sampler``, ``user tower``).
        package: the package whose import registers the built-in entries.
        aliases: names that stand for an entry until a run decides (``{"auto": "cbns"}``: the
            recipe, :mod:`cbns.training.recipe`, resolves ``auto`` once the data is known; before
            that, questions such as "which options does it read" are answered by ``cbns``).
    """

    def __init__(self, kind: str, package: str, aliases: dict[str, str] | None = None):
        self.kind, self.package = kind, package
        self.aliases = dict(aliases or {})
        self._entries: dict[str, Any] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[Any], Any]:
        """A decorator that files its class (or function) under ``name``."""
        def add(entry):
            known = self._entries.get(name)
            if known is not None and known is not entry:
                raise ValueError(f"{self.kind} {name!r} is registered twice ({_label(known)} and {_label(entry)})")
            self._entries[name] = entry
            return entry
        return add

    def remove(self, name: str) -> None:
        """Forget ``name`` (e.g. a plugin registered by a test); unknown names are ignored."""
        self._entries.pop(name, None)

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order."""
        self._load()
        return tuple(self._entries)

    def choices(self) -> tuple[str, ...]:
        """What a config may name: the aliases, then every registered name."""
        return (*self.aliases, *self.names())

    def get(self, name: str):
        """The entry filed under ``name`` (an alias: the entry it stands for); KeyError naming the
        known ones otherwise."""
        self._load()
        name = self.aliases.get(name, name)
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self._entries)}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            importlib.import_module(self.package)


def _label(entry) -> str:
    return f"{entry.__module__}.{entry.__qualname__}"


#: ``--sampler``: subclasses of :class:`cbns.objective.sampler_spec.SamplerSpec`.
SAMPLERS = Registry("sampler", "cbns.objective.samplers", aliases={"auto": "cbns"})
#: ``--user-tower`` and ``--item-tower``: subclasses of :class:`cbns.model.towers.base.Tower`.
USER_TOWERS = Registry("user tower", "cbns.model.towers")
ITEM_TOWERS = Registry("item tower", "cbns.model.towers")
