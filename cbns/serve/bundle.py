"""An exported bundle: a run's serving files in one directory, answered without torch.

``cbns export RUN --to DIR`` (:mod:`cbns.serve.export`) writes::

    manifest.json          what the bundle holds: format, versions, the encoder, the ONNX check,
                           and the SHA-256 and size of every other file
    user_embeddings.npy    [U, D'] the run's stored user rows (queries by trained user id)
    item_embeddings.npy    [I, D'] the item vectors, the bias/prior column included when the run has one
    user_ids.txt, item_ids.txt   the id maps, when the run has them
    seen_items.npz         each trained user's train and validation items
    index.faiss, index.json      the run's item index, when one was built
    user_tower.onnx        pooled, GRU and feature user towers: the tower as an ONNX graph
                           (:mod:`cbns.serve.tower_graph`)
    user_features.json     a tower that reads attributes: the raw value of each code

An ID user tower has no graph: a history query is folded in against the item vectors
(:mod:`cbns.serve.fold_in`, numpy), with the parameters the manifest records.

:func:`load_bundle` checks every file against the manifest before it reads any (a file whose
SHA-256 or size differs, or that is missing, is refused in one line naming it) and returns a
:class:`cbns.serve.Recommender` that scores in numpy (exact) or through faiss (the index), with
an onnxruntime user encoder. Nothing on this path imports torch.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from cbns.errors import CbnsError
from cbns.serve.id_map import IdMap

MANIFEST = "manifest.json"
FORMAT = 1
KIND = "cbns-bundle"
ONNX_FILE = "user_tower.onnx"
#: Queries run through the ONNX graph at once (bounds the padded input).
CHUNK = 4096


def require(module: str):
    """The module ``module`` (onnx, onnxruntime, onnxscript); :class:`CbnsError` saying how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise CbnsError(f"{module} is not installed here; an exported bundle's user tower needs it: "
                        f"pip install 'cbns[serve]'") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(bundle: Path) -> dict:
    """The bundle's manifest; :class:`CbnsError` when ``bundle`` is not a bundle this cbns reads."""
    bundle = Path(bundle)
    path = bundle / MANIFEST
    if not path.is_file():
        what = "a run directory, not a bundle" if (bundle / "config.yaml").is_file() else "not a bundle"
        raise CbnsError(f"{bundle}: {what} (no {MANIFEST}); write one with: cbns export RUN --to {bundle}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CbnsError(f"{path}: cannot read the manifest ({type(exc).__name__}); export the bundle again") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND or not isinstance(manifest.get("files"), dict):
        raise CbnsError(f"{path}: not a cbns bundle manifest; export the bundle again")
    if manifest.get("format") != FORMAT:
        raise CbnsError(f"{path}: bundle format {manifest.get('format')!r}, this cbns reads format {FORMAT}")
    return manifest


def verify(bundle: Path, manifest: dict) -> None:
    """Every file the manifest lists is there with its recorded size and SHA-256; else
    :class:`CbnsError` naming the first that is not."""
    bundle = Path(bundle)
    for name, entry in sorted(manifest["files"].items()):
        path = bundle / name
        if Path(name).name != name or not isinstance(entry, dict):
            raise CbnsError(f"{bundle / MANIFEST}: lists {name!r}, not a file of a bundle; export the bundle again")
        if not path.is_file():
            raise CbnsError(f"{path}: missing from the bundle; export it again")
        if path.stat().st_size != entry.get("bytes") or sha256_file(path) != entry.get("sha256"):
            raise CbnsError(f"{path}: its checksum does not match {MANIFEST} (the file was changed or damaged); "
                            f"export the bundle again")


def load_bundle(bundle: str | Path, use_index: bool = True, threads: int = 0):
    """The :class:`cbns.serve.Recommender` of an exported bundle (see the module docstring).

    Args:
        bundle: a directory written by ``cbns export``.
        use_index: search the bundle's item index when it has one (else exact numpy scoring).
        threads: onnxruntime threads for the user tower (0: its default).

    :class:`CbnsError` when a file fails its checksum, is missing, or the bundle is of another format.
    """
    from cbns.ranking.item_index import INDEX_FILE, ItemIndex
    from cbns.runs.seen_items_file import SeenItemsUnavailable, read_seen_items
    from cbns.serve.embeddings import load_matrix
    from cbns.serve.recommender import Recommender

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    verify(bundle, manifest)
    users, items = load_matrix(bundle / "user_embeddings.npy"), load_matrix(bundle / "item_embeddings.npy")
    index = ItemIndex.load(bundle, items) if use_index and (bundle / INDEX_FILE).is_file() else None

    def seen():
        try:
            return read_seen_items(bundle, items, len(users))
        except SeenItemsUnavailable as exc:
            raise CbnsError(f"{exc}; export the bundle again") from None

    return Recommender(users, items, IdMap.from_file(bundle / "user_ids.txt", len(users)),
                       IdMap.from_file(bundle / "item_ids.txt", len(items)), index, seen,
                       prior_column=bool(manifest["prior_column"]), device=None,
                       user_encoder=_encoder(bundle, manifest, items, threads))


def _encoder(bundle: Path, manifest: dict, items: np.ndarray, threads: int):
    spec = manifest.get("encoder")
    if spec is None:
        return None
    if spec.get("kind") == "onnx":
        return OnnxUserEncoder(bundle / ONNX_FILE, spec, bundle, threads)
    if spec.get("kind") == "fold_in":
        from cbns.serve.fold_in import FoldInEncoder

        return FoldInEncoder(items, temperature=float(spec["temperature"]), normalize=bool(spec["normalize"]),
                             extra_column=bool(spec["extra_column"]), steps=int(spec["steps"]), lr=float(spec["lr"]))
    raise CbnsError(f"{bundle / MANIFEST}: an encoder of kind {spec.get('kind')!r}, which this cbns does not know")


class OnnxUserEncoder:
    """A :class:`cbns.serve.user_encoder.UserEncoder` that runs the bundle's ``user_tower.onnx``
    with onnxruntime: the inputs of :mod:`cbns.serve.tower_graph`, made in numpy as
    :mod:`cbns.serve.tower_encoder` makes them for the torch tower (histories cut to the newest
    ``max_history`` items; a history query leaves every attribute missing; attributes through the
    bundle's vocabulary).

    Args:
        path: the ONNX file; spec: the manifest's ``encoder`` entry (``kinds``, ``inputs``,
            ``max_history``); bundle: where ``user_features.json`` lies; threads: onnxruntime's
            intra-op threads (0: its default).
    """

    def __init__(self, path: Path, spec: dict, bundle: Path, threads: int = 0):
        onnxruntime = require("onnxruntime")

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a malformed graph
            raise CbnsError(f"{path}: onnxruntime cannot load the user tower ({type(exc).__name__})") from None
        self.kinds = frozenset(spec["kinds"])
        self.inputs = list(spec["inputs"])
        self.max_history = int(spec["max_history"])
        self.code_inputs = [n for n in self.inputs if n.startswith("codes_")]
        self._vocabulary = None
        if self.code_inputs:
            from cbns.runs.feature_vocabulary import FeatureVocabulary

            self._vocabulary = FeatureVocabulary.read(bundle)
            if self._vocabulary is None or len(self._vocabulary.columns) != len(self.code_inputs):
                raise CbnsError(f"{bundle}: the user tower reads {len(self.code_inputs)} attribute columns, but the "
                                f"bundle's user_features.json does not describe them; export the bundle again")

    def encode_history(self, histories: list[np.ndarray]) -> np.ndarray:
        """``[Q, D']`` float32 from ``Q`` histories of item rows (oldest first, each non-empty)."""
        if "history" not in self.kinds:
            from cbns.serve.query_kinds import cannot_answer

            raise cannot_answer("history", {"user", *self.kinds}, " (its user tower reads attributes, not a history)")
        parts = []
        for start in range(0, len(histories), CHUNK):
            chunk = [np.asarray(h, dtype=np.int64)[-self.max_history:] for h in histories[start:start + CHUNK]]
            history, lengths = pad_histories(chunk)
            feeds = {"history": history, "history_length": lengths}
            feeds.update({name: np.zeros((len(chunk), 1), dtype=np.int64) for name in self.code_inputs})
            parts.append(self._run(feeds))
        return self._join(parts)

    def encode_features(self, rows: list[dict[str, object]]) -> np.ndarray:
        """``[Q, D']`` float32 from raw attribute values by attribute name."""
        if "features" not in self.kinds:
            from cbns.serve.query_kinds import cannot_answer

            raise cannot_answer("features", {"user", *self.kinds}, " (its user tower reads a history)")
        parts = []
        for start in range(0, len(rows), CHUNK):
            codes = self._vocabulary.codes(rows[start:start + CHUNK])
            parts.append(self._run(dict(zip(self.code_inputs, codes))))
        return self._join(parts)

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, feeds)[0]

    def _join(self, parts: list[np.ndarray]) -> np.ndarray:
        if not parts:
            return np.zeros((0, self.session.get_outputs()[0].shape[1]), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def pad_histories(histories: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(history [Q, L], history_length [Q])`` int64: the rows right-padded with 0 to the longest."""
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    padded = np.zeros((len(histories), max(1, int(lengths.max(initial=0)))), dtype=np.int64)
    for q, h in enumerate(histories):
        padded[q, :len(h)] = h
    return padded, lengths
