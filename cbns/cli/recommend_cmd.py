"""``cbns recommend RUN_DIR --user ID``: top-K items for known users of a run."""
from __future__ import annotations

import argparse
import json
import sys

from cbns.cli.index_cmd import add_threads_option, apply_threads
from cbns.cli.options import add_device_option


def register(p: argparse.ArgumentParser) -> None:
    p.description = ("Recommend items to users the run was trained on, given by their "
                     "original ids. Uses the run's index (cbns index build) when one was "
                     "built, exact scoring otherwise.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by cbns train")
    p.add_argument("--user", action="append", required=True, metavar="ID",
                   help="original user id (repeat for several users)")
    p.add_argument("-k", type=int, default=20, metavar="K", help="items per user (default: %(default)s)")
    p.add_argument("--exclude-seen", action=argparse.BooleanOptionalAction, default=True,
                   help="leave out the user's train and validation items (default: on)")
    p.add_argument("--exact", action="store_true", help="score every item even when an index was built")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output (default: %(default)s)")
    add_device_option(p, "cpu")
    add_threads_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cbns.serve.recommender import Recommender

    apply_threads(args.threads)
    rec = Recommender.from_run(args.run_dir, use_index=not args.exact, device=args.device)
    rows = rec.user_map.to_rows(args.user, "--user")
    ranked = rec.recommend_rows(rows, args.k, args.exclude_seen)
    how = f"index {rec.index.spec.describe()}" if rec.index is not None else "exact scoring"
    seen = "seen items excluded" if args.exclude_seen else "seen items included"
    print(f"# top {args.k} for {len(rows)} user(s), {seen}, {how}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(ranked.to_json("user"), indent=2, allow_nan=False))
    else:
        print(_table(ranked))
    return 0


def _table(ranked) -> str:
    """Columns user, rank, item, score; one line per recommended item."""
    rows = [(str(user), str(rank), str(item), f"{score:.4f}")
            for user, pairs in zip(ranked.queries, ranked.lists())
            for rank, (item, score) in enumerate(pairs, start=1)]
    head = ("user", "rank", "item", "score")
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(4)]
    fmt = lambda r: "  ".join(v.ljust(w) if c in (0, 2) else v.rjust(w)  # noqa: E731
                              for c, (v, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join(fmt(r) for r in [head, *rows])
