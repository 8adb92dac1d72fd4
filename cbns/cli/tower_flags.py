"""``cbns train`` flags for splits, towers, attribute tables and the item-frequency estimate."""
from __future__ import annotations

import argparse

from cbns.data.time_split import SPLITS
from cbns.negatives import ITEM_FREQUENCIES
from cbns.towers.choice import ITEM_TOWERS, USER_TOWERS


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def add_tower_flags(p: argparse.ArgumentParser, d) -> None:
    """Register the flags on ``p``; ``d`` is the default :class:`cbns.config.TrainConfig`."""
    p.add_argument("--split", choices=SPLITS,
                   help=f"random = seeded 20%% of each user's items; loo = each user's last item test, the one "
                        f"before valid; temporal = global time cut (default: {d.split})")
    p.add_argument("--user-tower", choices=USER_TOWERS,
                   help=f"id, pooled (YouTubeDNN history mean + user attributes), gru (GRU4Rec over the "
                        f"history) or features (id + user attributes) (default: {d.user_tower})")
    p.add_argument("--item-tower", choices=ITEM_TOWERS,
                   help=f"id or features (id + item attributes through an MLP) (default: {d.item_tower})")
    p.add_argument("--max-history", type=int, metavar="L",
                   help=f"pooled/gru: newest L history items read (default: {d.max_history})")
    p.add_argument("--pool-decay", type=float, metavar="G",
                   help=f"pooled: weight G^k for the item k steps before the newest, 1 = plain mean "
                        f"(default: {d.pool_decay})")
    p.add_argument("--hidden-dim", type=int, metavar="H",
                   help=f"width of the towers' MLP and GRU state (default: {d.hidden_dim})")
    p.add_argument("--dropout", type=float, metavar="P", help=f"dropout in the MLP and GRU towers (default: {d.dropout})")
    p.add_argument("--item-frequency", choices=ITEM_FREQUENCIES,
                   help=f"q for the logQ correction: static = train counts; streaming = estimated on the fly "
                        f"(Yi et al. 2019) (default: {d.item_frequency})")
    p.add_argument("--frequency-slots", type=int, metavar="H",
                   help=f"streaming: size of the hashed arrays (default: {d.frequency_slots})")
    p.add_argument("--frequency-alpha", type=float, metavar="A",
                   help=f"streaming: moving-average rate of the gap estimate (default: {d.frequency_alpha})")
    p.add_argument("--user-features", metavar="FILE", help="CSV/TSV/Parquet of user attributes, key column 'user'")
    p.add_argument("--user-feature-columns", type=_names, metavar="A,B",
                   help="columns of --user-features to use (default: all)")
    p.add_argument("--item-features", metavar="FILE", help="CSV/TSV/Parquet of item attributes, key column 'item'")
    p.add_argument("--item-feature-columns", type=_names, metavar="A,B",
                   help="columns of --item-features to use (default: all)")
