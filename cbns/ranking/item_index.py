"""A faiss inner-product index over a run's item embeddings, saved beside them.

Files in the run directory:
    index.faiss   the faiss index; its ids are internal item rows (row r of item_embeddings.npy)
    index.json    {"kind", parameters, "num_items", "dim", "items_digest", "index_sha256",
                   "build_seconds", "l2_phi"}

``items_digest`` is a hash of the item embeddings the index was built from, so an index left over
from an earlier training run in the same directory is refused instead of silently serving stale
vectors; ``index_sha256`` is the SHA-256 of ``index.faiss``, so the two files are read only as the
pair one build wrote (a description written before it recorded the hash is checked against the
index's faiss type instead).

Item vectors of unequal length (a run with the learned item bias or the popularity prior exports
``[v(i), b(i)]``, with ``|v(i)| = 1``) make IVF's inner-product cells lopsided: on the test suite's
Gowalla slice with the bias, IVF found 79 % of the exact top 20. ivf then indexes
``[x, sqrt(phi^2 - |x|^2)]`` with ``phi = max |x|`` under L2 and queries ``[q, 0]``:
``|q' - x'|^2 = |q|^2 + phi^2 - 2 q.x``, so the nearest item is the highest-scoring one (the
reduction of Bachrach et al., RecSys 2014); that slice then gets 87 %, and the full default Gowalla
run 97.8 % (98.0 % without it). hnsw keeps inner product: the reduction cost its recall on both
(slice 99.97 -> 97.8 %, full run 96.7 -> 94.7 %). ``index.json`` keeps ``phi``.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from cbns.errors import CbnsError, Opt
from cbns.machine import available_memory, format_bytes
from cbns.ranking.index_spec import IndexSpec

INDEX_FILE = "index.faiss"


def faiss_available() -> bool:
    """Whether faiss can be imported here (serving falls back to exact search without it)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _faiss():
    """The faiss module; :class:`CbnsError` saying how to get it when it is not installed."""
    try:
        import faiss
    except ImportError:
        raise CbnsError("faiss is not installed here, so no ANN index can be built or read: pip install "
                        "faiss-cpu (exact scoring works without it)") from None
    return faiss
INDEX_META = "index.json"
#: The faiss classes :meth:`ItemIndex.build` makes for each kind.
_FAISS_TYPES = {"flat": ("IndexFlatIP",), "ivf": ("IndexIVFFlat",), "hnsw": ("IndexHNSWFlat",)}


def items_digest(items: np.ndarray) -> str:
    """A short hash of ``items [I, D]`` float32 (about 10 ms for 40k x 64)."""
    return hashlib.blake2b(memoryview(np.ascontiguousarray(items)), digest_size=16).hexdigest()


class ItemIndex:
    """A built faiss index plus the resolved :class:`IndexSpec` it was built with."""

    def __init__(self, index, spec: IndexSpec, build_seconds: float = 0.0,
                 l2_phi: float | None = None):
        self.index, self.spec, self.build_seconds = index, spec, build_seconds
        self.l2_phi = l2_phi  # set: the index holds the L2-reduced vectors (module docstring)

    @classmethod
    def build(cls, items: np.ndarray, spec: IndexSpec) -> ItemIndex:
        """Build ``spec`` (resolved here against ``len(items)``) over ``items [I, D]`` float32."""
        faiss = _faiss()
        items = np.ascontiguousarray(items, dtype=np.float32)
        num_items, dim = items.shape
        spec = spec.resolve(num_items)
        _check_memory(spec, num_items, dim)
        start = time.perf_counter()
        phi = _l2_phi(items) if spec.kind == "ivf" else None
        if phi is not None:
            items, dim = _reduce_items(items, phi), dim + 1
        metric = faiss.METRIC_INNER_PRODUCT if phi is None else faiss.METRIC_L2
        if spec.kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif spec.kind == "ivf":
            quantizer = faiss.IndexFlatIP(dim) if phi is None else faiss.IndexFlatL2(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, spec.nlist, metric)
            index.cp.seed = 0  # k-means initialisation: the same cells on every build
            index.train(items)
        else:
            index = faiss.IndexHNSWFlat(dim, spec.m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = spec.ef_construction
        index.add(items)
        built = cls(index, spec, time.perf_counter() - start, phi)
        built._apply_search_params()
        return built

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for each row of ``queries [Q, D]``.

        Returns ``scores [Q, k]`` float32 (exact dot products of the items found, best first) and
        ``rows [Q, k]`` int64 item rows, ``-1`` where the index found fewer than ``k`` items.
        """
        k = max(1, min(k, self.index.ntotal))
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.l2_phi is None:
            return self.index.search(queries, k)
        reduced = np.hstack([queries, np.zeros((len(queries), 1), np.float32)])
        distances, rows = self.index.search(reduced, k)
        # |q' - x'|^2 = |q|^2 + phi^2 - 2 q.x; where nothing was found faiss leaves a huge distance
        scores = ((queries.astype(np.float64) ** 2).sum(1, keepdims=True) + self.l2_phi ** 2 - distances) / 2
        return np.where(rows >= 0, scores, -np.inf).astype(np.float32), rows

    def save(self, run: Path, items: np.ndarray) -> None:
        """Write ``index.faiss`` and ``index.json`` into ``run`` as one pair.

        Both are written to temporary files first and then renamed, the index before its
        description; the description records the SHA-256 of the index file, so a crash between
        the two renames leaves a pair :meth:`load` refuses in one line, never an index read with
        another's parameters. A failed write (disk full, file-size limit) removes its temporary
        file and ends in :class:`CbnsError` naming the file.
        """
        from cbns.runs.atomic import atomic_rename, remove_leftovers, write_temp

        run = Path(run)
        for name in (INDEX_FILE, INDEX_META):  # crashed builds: this cbns's and the older fixed name
            remove_leftovers(run / name)
            (run / (name + ".tmp")).unlink(missing_ok=True)
        body = _faiss().serialize_index(self.index).tobytes()
        meta = {**self.spec.to_dict(), "num_items": int(items.shape[0]), "dim": int(items.shape[1]),
                "items_digest": items_digest(items), "index_sha256": hashlib.sha256(body).hexdigest(),
                "build_seconds": round(self.build_seconds, 3), "l2_phi": self.l2_phi}
        index_tmp = write_temp(run / INDEX_FILE, body)
        try:
            meta_tmp = write_temp(run / INDEX_META, (json.dumps(meta, indent=2) + "\n").encode())
        except BaseException:
            index_tmp.unlink(missing_ok=True)
            raise
        atomic_rename(index_tmp, run / INDEX_FILE, sync=False)
        atomic_rename(meta_tmp, run / INDEX_META)

    @classmethod
    def load(cls, run: Path, items: np.ndarray) -> ItemIndex | None:
        """The index saved in ``run``, or ``None`` when none was built.

        Raises :class:`CbnsError` when the files are unreadable, were built from other item
        embeddings than ``items``, or are not one pair (an index file whose SHA-256 or kind is not
        the one its description records).
        """
        run = Path(run)
        path, meta_path = run / INDEX_FILE, run / INDEX_META
        if not path.is_file() and not meta_path.is_file():
            return None
        faiss = _faiss()
        rebuild = f"rebuild it with: cbns index build {run}"
        for present, missing in ((path, meta_path), (meta_path, path)):
            if not missing.is_file():
                raise CbnsError(f"{missing}: missing beside {present.name} (an index build was interrupted); {rebuild}")
        try:
            meta = json.loads(meta_path.read_text())
            body = path.read_bytes()
        except (OSError, ValueError) as exc:
            raise CbnsError(f"{path}: cannot read the index ({type(exc).__name__}); {rebuild}") from None
        if not isinstance(meta, dict):
            raise CbnsError(f"{meta_path}: not an index description; {rebuild}")
        recorded = meta.get("index_sha256")
        if recorded is not None and recorded != hashlib.sha256(body).hexdigest():
            raise CbnsError(f"{path}: not the index {meta_path.name} describes (its SHA-256 differs: a build was "
                            f"interrupted or a file replaced); {rebuild}")
        try:
            spec = IndexSpec.from_dict(meta)
            index = faiss.deserialize_index(np.frombuffer(body, dtype=np.uint8))
        except (TypeError, ValueError, RuntimeError) as exc:
            raise CbnsError(f"{path}: cannot read the index ({type(exc).__name__}); {rebuild}") from None
        expected = _FAISS_TYPES.get(spec.kind)
        if expected is None or type(index).__name__ not in expected:
            raise CbnsError(f"{path}: holds a {type(index).__name__}, but {meta_path.name} describes a "
                            f"{spec.kind!r} index (the two files are of different builds); {rebuild}")
        if meta.get("items_digest") != items_digest(items) or index.ntotal != len(items):
            raise CbnsError(f"{path}: built from other item embeddings than {run / 'item_embeddings.npy'}; "
                            f"{rebuild}")
        phi = meta.get("l2_phi")
        loaded = cls(index, spec, float(meta.get("build_seconds", 0.0)), float(phi) if phi is not None else None)
        loaded._apply_search_params()
        return loaded

    def set_search_params(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change the query-time knob of a built index (``nprobe`` for ivf, ``ef_search`` for hnsw)."""
        changes = {k: v for k, v in (("nprobe", nprobe), ("ef_search", ef_search)) if v is not None}
        merged = IndexSpec(**{**self.spec.to_dict(), **changes}).resolve(self.index.ntotal)
        self.spec = merged
        self._apply_search_params()

    def _apply_search_params(self) -> None:
        if self.spec.kind == "ivf":
            self.index.nprobe = self.spec.nprobe
        elif self.spec.kind == "hnsw":
            self.index.hnsw.efSearch = self.spec.ef_search


def _check_memory(spec: IndexSpec, num_items: int, dim: int) -> None:
    """:class:`CbnsError` before building when the index would not fit the available memory."""
    needed, free = spec.memory_bytes(num_items, dim), available_memory()
    if free is not None and needed > free:
        raise CbnsError(Opt("m" if spec.kind == "hnsw" else "kind"), f": {spec.describe()} over {num_items:,} items "
                        f"x {dim} needs about {format_bytes(needed)}, but {format_bytes(free)} of memory is available; "
                        f"use a smaller ", Opt("m"), " or ", Opt("kind", "ivf"))


def _l2_phi(items: np.ndarray) -> float | None:
    """``max |x|`` when the item vectors' lengths differ (beyond float rounding), else None."""
    norms = np.linalg.norm(items.astype(np.float64), axis=1)
    if not len(norms) or norms.max() - norms.min() <= 1e-4 * max(norms.max(), 1e-12):
        return None
    return float(norms.max())


def _reduce_items(items: np.ndarray, phi: float) -> np.ndarray:
    """``[x, sqrt(phi^2 - |x|^2)]``: every row of length ``phi``."""
    squared = (items.astype(np.float64) ** 2).sum(1)
    extra = np.sqrt(np.maximum(phi ** 2 - squared, 0.0))
    return np.hstack([items, extra[:, None]]).astype(np.float32)
