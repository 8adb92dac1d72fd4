"""``cbns evaluate RUN_DIR``: recompute a run's metrics from its checkpoint, or compare an item index
with exact scoring (``--index``)."""
from __future__ import annotations

import argparse
import json

from cbns.cli.index_cmd import add_index_options, add_threads_option, apply_threads, spec_from_args
from cbns.cli.options import add_device_option

#: Index parameters that only apply when building; on a loaded index they need --kind.
_BUILD_ONLY = ("nlist", "m", "ef_construction")


def register(p: argparse.ArgumentParser) -> None:
    p.description = ("Reload the dataset and checkpoint of a run and recompute its "
                     "full-ranking validation and test metrics. With --index, rank "
                     "through the run's item index (or a temporary one of --kind) "
                     "and report its metrics, recall against exact top-K and "
                     "queries per second beside exact scoring.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by cbns train")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_device_option(p)
    p.add_argument("--index", action="store_true",
                   help="evaluate the built index (cbns index build), or a temporary one with --kind")
    add_index_options(p, None)
    add_threads_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cbns.api import evaluate_run
    from cbns.cli.tables import metrics_table

    if args.index:
        return _run_index(args)
    given = [name for name in ("kind", *_BUILD_ONLY, "nprobe", "ef_search") if getattr(args, name) is not None]
    if given:
        from cbns.errors import CbnsError
        raise CbnsError(f"--{given[0].replace('_', '-')}: only used with --index")
    from pathlib import Path

    from cbns.cli.process_settings import set_threads
    from cbns.runs.run_dir import load_run_config

    set_threads(args.threads or load_run_config(Path(args.run_dir)).run.threads)
    metrics = evaluate_run(args.run_dir, device=args.device)
    print(json.dumps(metrics, indent=2) if args.json else metrics_table(metrics))
    return 0


def _run_index(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cbns.cli.tables import metrics_table
    from cbns.data.loading import load_data
    from cbns.errors import CbnsError
    from cbns.evaluation.index_eval import evaluate_index
    from cbns.model.build import reads_history
    from cbns.ranking.item_index import ItemIndex
    from cbns.runs.run_dir import load_run_config
    from cbns.runs.source_record import check_data, check_embeddings
    from cbns.serve.embeddings import load_embeddings

    run_dir = Path(args.run_dir)
    config = load_run_config(run_dir)
    apply_threads(args.threads)
    users, items = load_embeddings(run_dir)
    check_embeddings(run_dir, {"user_embeddings.npy": users, "item_embeddings.npy": items})
    check_data(run_dir, config)
    if args.kind is not None:
        index = ItemIndex.build(items, spec_from_args(args))
    else:
        for name in _BUILD_ONLY:
            if getattr(args, name) is not None:
                raise CbnsError(f"--{name.replace('_', '-')} {getattr(args, name)}: changes how an index is built; "
                                f"add --kind "
                                f"to evaluate a temporary index, or rebuild with cbns index build")
        index = ItemIndex.load(run_dir, items)
        if index is None:
            raise CbnsError(f"--index: no index built in {run_dir}; run cbns index build {run_dir}, "
                            f"or pass --kind flat|ivf|hnsw for a temporary one")
        index.set_search_params(nprobe=args.nprobe, ef_search=args.ef_search)
    history = reads_history(config.model.user_tower)
    # A history tower's exported user vectors read the validation items too (they are as of the
    # test), so ranking the validation items with them would leak; only the test part is scored.
    data = load_data(config)
    check_data(run_dir, config, data)
    report = evaluate_index(index, users, items, data, config.evaluation.ks,
                            parts=("test",) if history else ("valid", "test"))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    label = index.spec.kind
    rows = {}
    for part in report.exact:
        rows[part] = report.exact[part]
        rows[f"{part}/{label}"] = report.index[part]
    print(metrics_table(rows))
    print(f"\nindex {report.spec}" + (f", built in {index.build_seconds:.2f}s" if args.kind else ""))
    if history:
        print(f"valid not scored: the {config.model.user_tower} user tower exported its vectors as of the test "
              f"(its history includes the validation items)")
    for part in report.exact:
        overlap = "  ".join(f"recall{k} {v:.4f}" for k, v in report.index_recall[part].items())
        qps = report.qps[part]
        print(f"{part:6s} index {overlap}   {qps['index']:,.0f} queries/s (exact {qps['exact']:,.0f})")
    return 0
