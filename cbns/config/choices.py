"""The values of the enumerated options that are not registries (samplers and towers are:
:mod:`cbns.registry`). Each is defined here once; the implementations import it from here.
"""

#: ``bank_mode``, how CBNS bank rows become negatives. ``stale``: the stored vectors, as in the
#: paper (cheap, no gradient to the item tower); ``refresh``: the stored ids re-encoded by the
#: current item tower, with gradient (one more encoder pass over M items: cheap for ID towers,
#: the full cost of a larger batch otherwise).
BANK_MODES = ("stale", "refresh")

#: ``item_side``. ``joint``: one softmax over every candidate, gradients wherever they flow (the
#: paper's form; bank rows take softmax mass but send no gradient to the item tower).
#: ``split``: the user tower learns from the softmax over every candidate, the item tower from the
#: softmax over the candidates that carry gradient (positive + fresh negatives) only, so that an
#: item's push away from other users is not shrunk by bank rows it cannot feel.
ITEM_SIDES = ("joint", "split")
#: ``item_side`` also takes ``auto``: joint when both towers are ID tables, split otherwise
#: (:mod:`cbns.training.recipe`).
ITEM_SIDE_CHOICES = ("auto", *ITEM_SIDES)

#: ``item_frequency``, how q of the positives' stream is known: ``static`` = unigram counts of
#: train, read up front; ``streaming`` = estimated during training
#: (:class:`cbns.negatives.streaming_frequency.StreamingFrequency`).
ITEM_FREQUENCIES = ("static", "streaming")

#: ``lr_schedule``. ``constant``: lr throughout. ``cosine``: lr * (1 + cos(pi * t / T)) / 2, from
#: lr at step 0 to 0 at the last planned step T (``epochs`` x steps per epoch). ``linear``:
#: lr * (1 - t / T).
LR_SCHEDULES = ("constant", "cosine", "linear")

#: ``precision`` (see :mod:`cbns.objective.precision`): ``fp32``, or ``bf16`` for the towers and the
#: score matrix products under autocast (softmax, log q and the loss stay in float32).
PRECISIONS = ("fp32", "bf16")

#: ``split`` (see :mod:`cbns.data.event_splits`): ``random``, ``loo`` (leave-one-out by time) or
#: ``temporal`` (a global time cut).
SPLITS = ("random", "loo", "temporal")

#: ``eval_index``, how validation ranks: ``exact`` (every item scored,
#: :func:`cbns.ranking.topk.iter_top_k`), or the top-K from a faiss index of that kind built over
#: the item vectors at each validation (:func:`cbns.evaluation.index_eval.validate_with_index`).
EVAL_RANKINGS = ("exact", "flat", "ivf", "hnsw")
