"""Serving a trained run: item indexes, id maps, seen-item filtering, the Recommender."""
from cbns.ranking.index_spec import IndexSpec
from cbns.ranking.item_index import ItemIndex
from cbns.serve.ranked import Ranked
from cbns.serve.recommender import Recommender

__all__ = ["IndexSpec", "ItemIndex", "Ranked", "Recommender"]
