"""What kind of item index to build and with which parameters: a small validated dataclass.

The three kinds, all over inner product (the two-tower ranking score):

* ``flat``: exact search, every item scored; the reference the others are measured against.
* ``ivf``: the items are clustered into ``nlist`` k-means cells; a query scores the items of the
  ``nprobe`` cells whose centroids score highest. Recall grows with ``nprobe / nlist``.
* ``hnsw``: a navigable small-world graph with ``m`` links per node, built with beam width
  ``ef_construction`` and searched with beam width ``ef_search`` (faiss uses ``max(ef_search, k)``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from cbns.errors import CbnsError

KINDS = ("flat", "ivf", "hnsw")
#: Which parameters each kind reads; giving another kind's parameter is an error, not ignored.
PARAMS = {"flat": (), "ivf": ("nlist", "nprobe"), "hnsw": ("m", "ef_search", "ef_construction")}
DEFAULT_M = 32
DEFAULT_EF_SEARCH = 128
DEFAULT_EF_CONSTRUCTION = 80


@dataclass(frozen=True)
class IndexSpec:
    """An index kind and its parameters; ``None`` means "the default for this many items"."""

    kind: str = "hnsw"
    nlist: int | None = None
    nprobe: int | None = None
    m: int | None = None
    ef_search: int | None = None
    ef_construction: int | None = None

    def resolve(self, num_items: int) -> IndexSpec:
        """Validated, with every parameter of the kind filled in; :class:`CbnsError` names the flag.

        The defaults aim at an index recall of about 0.99 against exact top-20: on a Gowalla run
        (40,981 items, 64-d) ivf(nlist=810, nprobe=50) and hnsw(m=32, ef_search=128) both reach it
        (see docs/serving.md for the measurements).

        Defaults: ``nlist = round(4 sqrt(I))`` (at most ``I``), ``nprobe = min(nlist, max(8, nlist // 16))``,
        ``m = 32``, ``ef_search = 128``, ``ef_construction = 80``.
        """
        if self.kind not in KINDS:
            raise CbnsError(f"--kind: must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for name in ("nlist", "nprobe", "m", "ef_search", "ef_construction"):
            value = getattr(self, name)
            if value is None:
                continue
            if name not in PARAMS[self.kind]:
                users = [k for k, names in PARAMS.items() if name in names]
                raise CbnsError(f"{_flag(name)}: applies to --kind {users[0]} only, got --kind {self.kind} "
                                f"with {_flag(name)} {value}")
            if value < 1:
                raise CbnsError(f"{_flag(name)}: must be >= 1, got {value}")
        if self.kind == "ivf":
            return self._resolve_ivf(num_items)
        if self.kind == "hnsw":
            m = self.m or DEFAULT_M
            return IndexSpec("hnsw", m=m, ef_search=self.ef_search or DEFAULT_EF_SEARCH,
                             ef_construction=self.ef_construction or DEFAULT_EF_CONSTRUCTION)
        return IndexSpec("flat")

    def _resolve_ivf(self, num_items: int) -> IndexSpec:
        nlist = self.nlist or max(1, min(num_items, round(4 * math.sqrt(num_items))))
        if nlist > num_items:
            raise CbnsError(f"--nlist: must be <= the number of items ({num_items}), got {nlist}")
        nprobe = self.nprobe or min(nlist, max(8, nlist // 16))
        if nprobe > nlist:
            raise CbnsError(f"--nprobe: must be <= --nlist ({nlist}), got {nprobe}")
        return IndexSpec("ivf", nlist=nlist, nprobe=nprobe)

    def params(self) -> dict[str, int]:
        """The parameters this kind uses, e.g. ``{"nlist": 810, "nprobe": 33}``."""
        return {name: getattr(self, name) for name in PARAMS[self.kind]}

    def describe(self) -> str:
        """``ivf(nlist=810, nprobe=50)``, for reports."""
        params = ", ".join(f"{k}={v}" for k, v in self.params().items())
        return f"{self.kind}({params})" if params else self.kind

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> IndexSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
