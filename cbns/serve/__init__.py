"""Serving a trained run: the Recommender, id maps, seen-item filtering, exported bundles
(``load_bundle``: served without torch). ``IndexSpec`` and ``ItemIndex`` live in
:mod:`cbns.ranking` (evaluation uses them too) and are importable from here."""
from cbns.ranking.index_spec import IndexSpec
from cbns.ranking.item_index import ItemIndex
from cbns.serve.bundle import load_bundle
from cbns.serve.ranked import Ranked
from cbns.serve.recommender import Recommender

__all__ = ["IndexSpec", "ItemIndex", "Ranked", "Recommender", "load_bundle"]
