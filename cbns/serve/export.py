"""``export_bundle(run, to)``: write a run's serving files as a bundle (:mod:`cbns.serve.bundle`).

Everything a query needs is copied or converted once, here, with torch at hand: the stored user
rows, the item vectors (bias/prior column included), the id maps, the seen items, the item index
when one was built, and the user tower as ONNX (:mod:`cbns.serve.tower_graph`) or, for an ID
tower, the fold-in's parameters. The ONNX graph is checked before the bundle is published: the
bundle's own onnxruntime encoder and the run's torch tower (:mod:`cbns.serve.tower_encoder`)
encode the same queries (histories of the run's users and random ones longer than
``max_history``; random attribute rows), and the export is refused when any output differs by
more than :data:`MAX_ONNX_ERROR`. The largest difference is recorded in the manifest.

The bundle is written into a temporary directory beside ``to`` and renamed into place once
complete, so ``to`` holds the previous bundle or the new one, never half of one. An existing
bundle is replaced only with ``overwrite``; a directory that is not a bundle (a run directory,
anything else with files in it) is never replaced.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from cbns.errors import CbnsError, FlagsOnly, Opt
from cbns.runs.atomic import current_umask
from cbns.serve.bundle import FORMAT, KIND, MANIFEST, ONNX_FILE, OnnxUserEncoder, require, sha256_file

#: The largest difference between the ONNX graph's and the torch tower's user vectors an export accepts.
MAX_ONNX_ERROR = 1e-5
#: Queries of each kind the export check encodes both ways.
CHECK_QUERIES = 256


def export_bundle(run: str | Path, to: str | Path, overwrite: bool = False, check_queries: int = CHECK_QUERIES,
                  seed: int = 0) -> dict:
    """Write the bundle of run directory ``run`` at ``to``; returns its manifest.

    Args:
        run: a finished run directory.
        to: the bundle directory: new, empty, or (with ``overwrite``) an existing bundle.
        overwrite: replace a bundle already at ``to``.
        check_queries: queries of each kind the ONNX check encodes (histories, attributes).
        seed: the random queries of the check.

    :class:`CbnsError` for a run whose files fail their checks, an occupied ``to``, or an ONNX
    graph that differs from the tower by more than :data:`MAX_ONNX_ERROR`.
    """
    from cbns.ranking.item_index import INDEX_FILE, INDEX_META, ItemIndex
    from cbns.runs.run_dir import load_run_config
    from cbns.runs.seen_items_file import source_key, write_seen_items
    from cbns.runs.source_record import check_embeddings
    from cbns.serve.embeddings import load_embeddings
    from cbns.serve.seen_items import seen_items

    run, to = Path(run), Path(os.path.abspath(to))
    config = load_run_config(run)
    if not (run / "metrics.json").is_file():
        raise CbnsError(f"{run}: the run has not finished (no metrics.json); finish it before exporting it")
    _refuse_occupied(to, overwrite)
    users, items = load_embeddings(run)
    check_embeddings(run, {"user_embeddings.npy": users, "item_embeddings.npy": items})
    index = ItemIndex.load(run, items)
    seen = seen_items(run, config, len(users), items)
    extra_column = items.shape[1] == config.model.dim + 1

    to.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=to.parent, prefix=f".{to.name}.cbns-export-"))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; the bundle gets a directory's usual mode
        for name, matrix in (("user_embeddings.npy", users), ("item_embeddings.npy", items)):
            with open(tmp / name, "wb") as fh:
                np.save(fh, matrix)
        for name in ("user_ids.txt", "item_ids.txt"):
            if (run / name).is_file():
                (tmp / name).write_bytes((run / name).read_bytes())
        write_seen_items(tmp, seen, items, source_key(config))
        if index is not None:
            for name in (INDEX_FILE, INDEX_META):
                (tmp / name).write_bytes((run / name).read_bytes())
        encoder, check = _write_encoder(run, config, tmp, items, seen, extra_column, check_queries, seed)
        manifest = _manifest(run, config, tmp, encoder, check, extra_column, index, users, items)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _sync_tree(tmp)
        _publish(tmp, to)
    except OSError as exc:
        _remove(tmp)
        raise CbnsError(Opt("to", to), f": cannot write the bundle ({exc.strerror or exc}); nothing was "
                        f"changed there") from None
    except BaseException:
        _remove(tmp)
        raise
    return manifest


def _refuse_occupied(to: Path, overwrite: bool) -> None:
    if not to.exists():
        return
    if not to.is_dir():
        raise CbnsError(Opt("to", to), ": is a file; a bundle is a directory")
    if not any(to.iterdir()):
        return
    if not (to / MANIFEST).is_file():
        what = "a run directory" if (to / "config.yaml").is_file() else "a directory that is not a bundle"
        raise CbnsError(Opt("to", to), f": holds {what}; a bundle is written only into a new or empty directory "
                        f"or over another bundle")
    if not overwrite:
        raise CbnsError(Opt("to", to), ": holds a bundle already; choose another ", Opt("to"), ", or replace it "
                        "with ", FlagsOnly(Opt("overwrite"), otherwise="overwrite=True"))


def _write_encoder(run, config, tmp: Path, items, seen, extra_column: bool, check_queries: int,
                   seed: int) -> tuple[dict | None, dict | None]:
    """Write the user tower's ONNX graph (and attribute vocabulary) into ``tmp`` and check it;
    the manifest's ``encoder`` and ``onnx_check`` entries (None where there is no encoder)."""
    from cbns.serve.user_encoder import encoder_from_run

    torch_encoder = encoder_from_run(run, items, "cpu")
    if torch_encoder is None:
        return None, None
    if config.model.user_tower == "id":
        return {"kind": "fold_in", "kinds": sorted(torch_encoder.kinds), "temperature": torch_encoder.temperature,
                "normalize": torch_encoder.normalize, "extra_column": torch_encoder.extra_column,
                "steps": torch_encoder.steps, "lr": torch_encoder.lr}, None
    from cbns.serve.tower_graph import UserTowerGraph

    graph = UserTowerGraph(torch_encoder.tower, config.model.normalize, extra_column).eval()
    spec = {"kind": "onnx", "kinds": sorted(torch_encoder.kinds), "inputs": list(graph.input_names),
            "max_history": config.model.max_history, "user_tower": config.model.user_tower}
    if graph.bags is not None:
        vocabulary = torch_encoder.vocabulary if "features" in torch_encoder.kinds else _vocabulary_or_none(
            torch_encoder)
        columns = vocabulary.columns if vocabulary is not None else [
            {"name": f"column{k}", "multi": True, "width": 1, "values": []} for k in range(graph.bags.num_columns)]
        (tmp / "user_features.json").write_text(json.dumps({"columns": columns}) + "\n", encoding="utf-8")
    _export_onnx(graph, tmp / ONNX_FILE)
    onnx_encoder = OnnxUserEncoder(tmp / ONNX_FILE, spec, tmp, threads=1)
    check = _check(torch_encoder, onnx_encoder, items, seen, config, check_queries, seed)
    if check["max_abs_error"] > MAX_ONNX_ERROR:
        raise CbnsError(f"{run}: the ONNX graph of the {config.model.user_tower} user tower differs from the tower "
                        f"by {check['max_abs_error']:.3g} (more than {MAX_ONNX_ERROR:g}); no bundle was written")
    return spec, check


def _vocabulary_or_none(torch_encoder):
    """The attribute vocabulary of a history tower that also reads attributes, when the run has
    one (a history query leaves them missing, so the bundle serves without it)."""
    with contextlib.suppress(CbnsError):
        return torch_encoder.vocabulary
    return None


def _export_onnx(graph, path: Path) -> None:
    """``torch.onnx.export`` (the dynamo exporter) with every input's batch and width dynamic."""
    import torch

    for module in ("onnx", "onnxscript"):  # what torch.onnx.export needs
        require(module)
    example = []
    for name in graph.input_names:
        if name == "history":
            example.append(torch.zeros(2, 3, dtype=torch.int64))
        elif name == "history_length":
            example.append(torch.tensor([3, 1], dtype=torch.int64))
        else:
            example.append(torch.zeros(2, 2, dtype=torch.int64))
    batch = torch.export.Dim("batch")
    shapes = tuple({0: batch} if name == "history_length" else {0: batch, 1: torch.export.Dim(f"{name}_width")}
                   for name in graph.input_names)
    # the exporter reports its progress on stdout and optional packages (torchvision) in its log
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, tuple(example), str(path), input_names=list(graph.input_names),
                              output_names=["user_vectors"], dynamo=True, dynamic_shapes={"inputs": shapes},
                              external_data=False)
    finally:
        quiet.setLevel(level)


def _check(torch_encoder, onnx_encoder, items, seen, config, count: int, seed: int) -> dict:
    """The largest absolute difference between the two encoders' vectors on the same queries."""
    rng = np.random.default_rng(seed)
    num_items = len(items)
    errors, described = [], []
    if "history" in torch_encoder.kinds:
        users = [u for u in range(seen.shape[0]) if seen.indptr[u + 1] > seen.indptr[u]][:count // 2]
        histories = [rng.permutation(seen.indices[seen.indptr[u]:seen.indptr[u + 1]]) for u in users]
        longest = config.model.max_history + 10
        histories += [rng.integers(0, num_items, size=rng.integers(1, longest + 1)) for _ in range(count - len(users))]
        errors.append(_max_error(torch_encoder.encode_history(histories), onnx_encoder.encode_history(histories)))
        described.append(f"{len(histories)} histories ({len(users)} of the run's users' seen items, the rest random "
                         f"of 1 to {longest} items)")
    if "features" in torch_encoder.kinds:
        vocabulary = torch_encoder.vocabulary
        rows = [{col["name"]: _draw(rng, col) for col in vocabulary.columns} for _ in range(count)]
        errors.append(_max_error(torch_encoder.encode_features(rows), onnx_encoder.encode_features(rows)))
        described.append(f"{len(rows)} random attribute rows")
    return {"max_abs_error": max(errors), "queries": "; ".join(described), "tolerance": MAX_ONNX_ERROR}


def _draw(rng, column: dict):
    """A random raw value of an attribute column (missing one time in five), a list for a multi-valued one."""
    values = column["values"]
    if not values or rng.random() < 0.2:
        return None
    if column["multi"]:
        return [values[i] for i in rng.choice(len(values), size=min(len(values), rng.integers(1, 4)), replace=False)]
    return values[rng.integers(len(values))]


def _max_error(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise CbnsError(f"the ONNX user tower gives vectors of shape {b.shape}, the torch tower {a.shape}")
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max(initial=0.0))


def _manifest(run, config, tmp: Path, encoder, check, extra_column, index, users, items) -> dict:
    import torch

    import cbns

    versions = {"cbns": cbns.__version__, "torch": torch.__version__, "numpy": np.__version__}
    for module in ("onnx", "onnxruntime", "faiss"):
        with contextlib.suppress(ImportError):
            versions[module] = __import__(module).__version__
    files = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
             for p in sorted(tmp.iterdir()) if p.is_file() and p.name != MANIFEST}
    kinds = ["user", *(encoder["kinds"] if encoder else [])]
    return {"kind": KIND, "format": FORMAT, "versions": versions, "run": str(Path(run).resolve()),
            "user_tower": config.model.user_tower, "dim": config.model.dim, "num_users": len(users),
            "num_items": len(items), "prior_column": extra_column, "normalize": config.model.normalize,
            "query_kinds": kinds, "index": index.spec.describe() if index is not None else None,
            "encoder": encoder, "onnx_check": check, "files": files}


def _sync_tree(directory: Path) -> None:
    from cbns.runs.atomic import fsync_dir

    for path in directory.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(directory)


def _publish(tmp: Path, to: Path) -> None:
    """Rename the complete bundle ``tmp`` to ``to``; a bundle or empty directory there is moved
    aside first and deleted after (a crash between the two renames leaves it beside ``to`` as
    ``.<name>.cbns-replaced-*``)."""
    from cbns.runs.atomic import fsync_dir, rename_path
    from cbns.runs.staging import remove_tree

    old = None
    if to.exists():
        old = Path(tempfile.mkdtemp(dir=to.parent, prefix=f".{to.name}.cbns-replaced-"))
        rename_path(to, old)  # over the new empty directory (POSIX replaces an empty one)
    rename_path(tmp, to)
    fsync_dir(to.parent)
    if old is not None:
        remove_tree(old)


def _remove(path: Path) -> None:
    from cbns.runs.staging import remove_tree

    with contextlib.suppress(OSError):
        remove_tree(path)
