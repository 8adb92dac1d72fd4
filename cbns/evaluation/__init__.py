"""Evaluation: ranking metrics, full ranking (single process and sharded over ranks) through the
exact top-K of :mod:`cbns.ranking`, and the index-validated ranking of ``--eval-index``."""
