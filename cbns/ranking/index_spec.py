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

from cbns.errors import CbnsError, Opt

KINDS = ("flat", "ivf", "hnsw")
#: Which parameters each kind reads; giving another kind's parameter is an error, not ignored.
PARAMS = {"flat": (), "ivf": ("nlist", "nprobe"), "hnsw": ("m", "ef_search", "ef_construction")}
DEFAULT_M = 32
DEFAULT_EF_SEARCH = 128
DEFAULT_EF_CONSTRUCTION = 80
#: Bounds of the hnsw parameters. faiss crashes (a segfault) with m = 1 and stores 2m links per
#: item at the base level; a beam of ef entries is a heap allocated per query thread, and faiss
#: takes ef as a C int. Recall stops growing long before these (docs/serving.md).
MIN_M, MAX_M = 2, 512
MAX_EF = 1 << 20
#: Each parameter's bounds: (smallest, largest).
BOUNDS = {"nlist": (1, None), "nprobe": (1, None), "m": (MIN_M, MAX_M), "ef_search": (1, MAX_EF),
          "ef_construction": (1, MAX_EF)}


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
        ``m = 32``, ``ef_search = 128``, ``ef_construction = 80``. Bounds: :data:`BOUNDS` (``nlist``
        at most ``I``, ``nprobe`` at most ``nlist``).
        """
        if self.kind not in KINDS:
            raise CbnsError(Opt("kind"), f": must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for name in ("nlist", "nprobe", "m", "ef_search", "ef_construction"):
            value = getattr(self, name)
            if value is None:
                continue
            if name not in PARAMS[self.kind]:
                users = [k for k, names in PARAMS.items() if name in names]
                raise CbnsError(Opt(name), ": applies to ", Opt("kind", users[0]), " only, got ",
                                Opt("kind", self.kind), " with ", Opt(name, value))
            low, high = BOUNDS[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise CbnsError(Opt(name), f": must be an integer, got {value!r}")
            if value < low:
                raise CbnsError(Opt(name), f": must be >= {low}, got {value}")
            if high is not None and value > high:
                raise CbnsError(Opt(name), f": must be <= {high:,} (a larger value only costs memory; see "
                                f"docs/serving.md), got {value}")
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
            raise CbnsError(Opt("nlist"), f": must be <= the number of items ({num_items}), got {nlist}")
        nprobe = self.nprobe or min(nlist, max(8, nlist // 16))
        if nprobe > nlist:
            raise CbnsError(Opt("nprobe"), ": must be <= ", Opt("nlist"), f" ({nlist}), got {nprobe}")
        return IndexSpec("ivf", nlist=nlist, nprobe=nprobe)

    def memory_bytes(self, num_items: int, dim: int) -> int:
        """About how much memory the resolved index takes over ``num_items`` vectors of ``dim``
        floats: the vectors, plus hnsw's links (2m at the base level, about m / (m - 1) m above)."""
        vectors = num_items * (dim + 1) * 4
        if self.kind == "hnsw":
            return vectors + num_items * 4 * (2 * self.m + self.m) + num_items * 16
        if self.kind == "ivf":
            return 2 * vectors + self.nlist * (dim + 1) * 4 + num_items * 8
        return vectors

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

