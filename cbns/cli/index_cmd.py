"""``cbns index build RUN_DIR``: build a faiss item index inside a run directory."""
from __future__ import annotations

import argparse

from cbns.ranking.index_spec import DEFAULT_EF_CONSTRUCTION, DEFAULT_EF_SEARCH, DEFAULT_M, KINDS


def add_index_options(p: argparse.ArgumentParser, kind_default: str | None) -> None:
    """The index kind and parameters, shared by ``index build`` and ``evaluate --index``."""
    shown = f" (default: {kind_default})" if kind_default else ""
    p.add_argument("--kind", choices=KINDS, default=kind_default,
                   help=f"flat = exact, ivf = k-means cells, hnsw = graph{shown}")
    p.add_argument("--nlist", type=int, metavar="N", help="ivf: number of cells (default: 4 sqrt(items))")
    p.add_argument("--nprobe", type=int, metavar="N", help="ivf: cells searched per query (default: max(8, nlist/16))")
    p.add_argument("--m", type=int, metavar="N", help=f"hnsw: links per node (default: {DEFAULT_M})")
    p.add_argument("--ef-search", type=int, metavar="N", help=f"hnsw: search beam width (default: {DEFAULT_EF_SEARCH})")
    p.add_argument("--ef-construction", type=int, metavar="N",
                   help=f"hnsw: build beam width (default: {DEFAULT_EF_CONSTRUCTION})")


def add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=0, metavar="N", help="torch and faiss threads, 0 = all cores")


def apply_threads(threads: int) -> int:
    """Pin torch and faiss to ``threads`` (0 = every core); :class:`CbnsError` when negative."""
    from cbns.cli.process_settings import set_threads
    from cbns.errors import CbnsError
    from cbns.ranking.item_index import faiss_available

    if threads < 0:
        raise CbnsError(f"--threads: must be >= 0, got {threads}")
    n = set_threads(threads)
    if faiss_available():
        import faiss

        faiss.omp_set_num_threads(n)
    return n


def spec_from_args(args: argparse.Namespace):
    from cbns.ranking.index_spec import IndexSpec

    return IndexSpec(args.kind, args.nlist, args.nprobe, args.m, args.ef_search, args.ef_construction)


def register(p: argparse.ArgumentParser) -> None:
    p.description = "Item indexes for serving a run directory."
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = actions.add_parser("build", help="build index.faiss over item_embeddings.npy",
                           description="Build a faiss inner-product index over the run's item embeddings "
                                       "and save it as index.faiss + index.json in the run directory. "
                                       "cbns recommend uses it from then on.")
    b.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by cbns train")
    add_index_options(b, "hnsw")
    add_threads_option(b)
    b.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cbns.ranking.item_index import INDEX_FILE, ItemIndex
    from cbns.runs.run_dir import load_run_config
    from cbns.serve.embeddings import load_matrix

    run_dir = Path(args.run_dir)
    load_run_config(run_dir)
    apply_threads(args.threads)
    items = load_matrix(run_dir / "item_embeddings.npy")
    index = ItemIndex.build(items, spec_from_args(args))
    index.save(run_dir, items)
    print(f"built {index.spec.describe()} over {len(items):,} items x {items.shape[1]} dims "
          f"in {index.build_seconds:.2f}s -> {run_dir / INDEX_FILE}")
    return 0
