"""``cbns recommend RUN_DIR``: top-K items for known users (``--user``), for histories
(``--history``) and user attributes (``--features``) encoded at request time, and similar items
(``--item``)."""
from __future__ import annotations

import argparse
import json
import sys

from cbns.cli.index_cmd import add_threads_option, apply_threads
from cbns.cli.options import add_device_option


def register(p: argparse.ArgumentParser) -> None:
    p.description = ("Recommend items: to users the run was trained on (--user), to a history of "
                     "items encoded by the run's user tower at request time (--history; an ID "
                     "tower folds the history in against the item vectors), to user attributes "
                     "(--features, feature tower), or items similar to an item (--item). Ids are "
                     "original ids. Give one kind of query per call, repeated for several. Uses "
                     "the run's index (cbns index build) when one was built, exact scoring otherwise.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by cbns train")
    p.add_argument("--user", action="append", metavar="ID", help="original user id (repeat for several users)")
    p.add_argument("--history", action="append", metavar="ID,ID,...",
                   help="item ids of one history, oldest first, separated by commas (repeat for several)")
    p.add_argument("--features", action="append", metavar="KEY=VALUE,...",
                   help="one user's attributes, e.g. gender=F,occupation=writer; a multi-valued one as "
                        "tags=a|b (repeat for several users)")
    p.add_argument("--item", action="append", metavar="ID", help="items similar to this item (repeat for several)")
    p.add_argument("-k", type=int, default=20, metavar="K", help="items per query (default: %(default)s)")
    p.add_argument("--exclude-seen", action=argparse.BooleanOptionalAction, default=True,
                   help="leave out the user's train and validation items, or a history's own items "
                        "(default: on)")
    p.add_argument("--exact", action="store_true", help="score every item even when an index was built")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output (default: %(default)s)")
    add_device_option(p, "cpu")
    add_threads_option(p)
    p.set_defaults(run=run)


#: The query options, in the order messages list them, and the name each gives a query.
KINDS = (("user", "user"), ("history", "history"), ("features", "features"), ("item", "item"))


def run(args: argparse.Namespace) -> int:
    from cbns.errors import CbnsError
    from cbns.serve.recommender import Recommender

    given = [(kind, values) for kind, values in ((k, getattr(args, k)) for k, _ in KINDS) if values]
    if len(given) != 1:
        raise CbnsError("give one kind of query: --user, --history, --features or --item"
                        + (f" (got {', '.join('--' + k for k, _ in given)})" if given else ""))
    kind, values = given[0]
    apply_threads(args.threads)
    rec = Recommender.from_run(args.run_dir, use_index=not args.exact, device=args.device)
    if kind == "user":
        ranked = rec.recommend_rows(rec.user_map.to_rows(values, "--user"), args.k, args.exclude_seen)
    elif kind == "history":
        histories = [_history(text) for text in values]
        ranked = _flagged("--history", values, lambda: rec.recommend_history(histories, args.k, args.exclude_seen))
    elif kind == "features":
        rows = [_features(text) for text in values]
        ranked = _flagged("--features", values, lambda: rec.recommend_features(rows, args.k))
    else:
        ranked = rec.similar_items(rec.item_map.to_rows(values, "--item"), args.k)
    how = f"index {rec.index.spec.describe()}" if rec.index is not None else "exact scoring"
    seen = {"user": "seen items", "history": "the history's own items", "item": "the item itself",
            "features": None}[kind]
    excluded = "" if seen is None else f", {seen} {'excluded' if args.exclude_seen or kind == 'item' else 'included'}"
    print(f"# top {args.k} for {len(values)} {kind} quer{'y' if len(values) == 1 else 'ies'}{excluded}, {how}",
          file=sys.stderr)
    if args.format == "json":
        print(json.dumps(ranked.to_json(kind), indent=2, allow_nan=False))
    else:
        print(_table(ranked, kind, values if kind in ("history", "features") else None))
    return 0


def _history(text: str) -> list[str]:
    """``ID,ID,...`` -> the ids; :class:`CbnsError` for an empty history."""
    from cbns.errors import CbnsError

    ids = [part.strip() for part in text.split(",")]
    if text.strip() == "":
        raise CbnsError(f"--history {text!r}: empty; give the item ids of the history, oldest first, "
                        f"separated by commas")
    return ids


def _features(text: str) -> dict[str, object]:
    """``KEY=VALUE,...`` -> ``{key: value}`` (``a|b``: a list of values); :class:`CbnsError` for a
    part that is not ``key=value`` or a key given twice."""
    from cbns.errors import CbnsError

    row = {}
    for part in (p for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise CbnsError(f"--features {text!r}: {part.strip()!r} is not KEY=VALUE (pairs separated by commas)")
        if key in row:
            raise CbnsError(f"--features {text!r}: attribute {key!r} given twice")
        row[key] = [v.strip() for v in value.split("|") if v.strip()] if "|" in value else (value or None)
    return row


def _flagged(flag: str, values: list[str], query):
    """``query()`` with its one-line errors prefixed by the option and value they come from (the
    first given when the error does not say which query)."""
    import re

    from cbns.errors import CbnsError

    try:
        return query()
    except CbnsError as exc:
        message = str(exc)
        found = re.match(r"(history|features query) (\d+): ", message)
        at = int(found.group(2)) if found else None
        if at is not None:
            message = message[found.end():]
        where = f"{flag} {values[at]!r}: " if at is not None else (f"{flag} {values[0]!r}: " if len(values) == 1
                                                                     else f"{flag}: ")
        raise type(exc)(where + message) from None


def _table(ranked, kind: str = "user", shown: list[str] | None = None) -> str:
    """Columns query (headed by its kind), rank, item, score; one line per recommended item.
    ``shown`` replaces the query column by the text each query was given as."""
    queries = shown if shown is not None else ranked.queries
    rows = [(str(query), str(rank), str(item), f"{score:.4f}")
            for query, pairs in zip(queries, ranked.lists())
            for rank, (item, score) in enumerate(pairs, start=1)]
    head = (kind, "rank", "item", "score")
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(4)]
    fmt = lambda r: "  ".join(v.ljust(w) if c in (0, 2) else v.rjust(w)  # noqa: E731
                              for c, (v, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join(fmt(r) for r in [head, *rows])
