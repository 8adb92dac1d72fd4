"""``cbns evaluate RUN_DIR``: recompute a run's metrics from its checkpoint."""
from __future__ import annotations

import argparse
import json


def register(commands) -> None:
    p = commands.add_parser("evaluate", help="recompute the metrics of a run directory",
                            description="Reload the dataset and checkpoint of a run and recompute its "
                                        "full-ranking validation and test metrics.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by cbns train")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cbns.api import evaluate_run
    from cbns.report import metrics_table

    metrics = evaluate_run(args.run_dir)
    print(json.dumps(metrics, indent=2) if args.json else metrics_table(metrics))
    return 0
