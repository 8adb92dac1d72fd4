"""What a training run will allocate, estimated from its config and dataset sizes before anything
is allocated, and refused when above the memory the machine can still give.

A size option that passes its range check can still ask for terabytes (``memory_size
2147483647``, ``dim 2147483647``); torch then fails deep inside its allocator, or the kernel
kills the process. Each part below is a lower bound of what the run holds at its peak (float32):

* **embedding tables**: one row of D floats per id of each tower's table (a history tower's is
  an item table), and the item bias, times 5 with ``sparse_updates`` (the weights, Adam's two
  moments, the best weights kept for the test, the normalised copy ranking reads) and 6 without
  (their dense gradient too); checkpoints and model files stream to disk, no copy in memory;
* **tower layers**: towers that read ``hidden_dim`` hold about 4 H (D + H) more floats, 5 times
  (weights, gradient, two moments, best weights);
* **the bank**: CBNS keeps M vectors of D floats with their ids and log q;
* **the step**: the logits of B rows (the batch size, or the training pairs when fewer: a batch
  holds at most every pair once) over every candidate (``negatives_per_row + 1`` columns)
  three times (the logits, the softmax, its gradient), and the candidates beyond the batch (bank
  rows, sampled items) as vectors with their gradient, three times;
* **streaming frequency**: two int64 arrays of ``frequency_slots`` entries.

The message names the option behind the largest part.
"""
from __future__ import annotations

from dataclasses import dataclass

from cbns.errors import CbnsError, Opt
from cbns.machine import available_memory, format_bytes
from cbns.registry import ITEM_TOWERS, SAMPLERS, USER_TOWERS

FLOAT = 4
#: Copies of every table weight held at the peak, with and without sparse updates (module docstring).
TABLE_COPIES = {True: 5, False: 6}
#: Copies of every dense layer weight held at the peak.
LAYER_COPIES = 5


def table_copies(config) -> int:
    return TABLE_COPIES[bool(config.training.sparse_updates)]


@dataclass
class Part:
    """One allocation: its bytes, the option that sizes it, and what it is."""

    bytes: int
    option: str
    what: str


def memory_parts(config, num_users: int, num_items: int, train_pairs: int | None = None) -> list[Part]:
    """The allocations a run of ``config`` on ``num_users`` x ``num_items`` with ``train_pairs``
    training pairs (None: unknown, a full batch) makes (module doc)."""
    d, b = config.model.dim, config.sampler.batch_size
    if train_pairs is not None:
        b = max(1, min(b, train_pairs))
    user_tower, item_tower = USER_TOWERS.get(config.model.user_tower), ITEM_TOWERS.get(config.model.item_tower)
    sampler = SAMPLERS.get(config.sampler.name)
    rows = (num_items if user_tower.needs_history else num_users) + num_items
    copies = table_copies(config)
    parts = [Part(copies * FLOAT * (rows * d + num_items), "dim",
                  f"the embedding tables, {rows:,} rows x {d} floats x {copies} copies")]
    hidden = [t for t in (user_tower, item_tower) if "hidden_dim" in t.options]
    if hidden:
        h = config.model.hidden_dim
        parts.append(Part(LAYER_COPIES * FLOAT * len(hidden) * 4 * h * (d + h), "hidden_dim",
                          f"the towers' layers, about 4 x {h} x ({d} + {h}) floats x {LAYER_COPIES} copies"))
    if "memory_size" in sampler.options:
        m = config.sampler.memory_size
        parts.append(Part(m * (d * FLOAT + 8 + FLOAT), "memory_size", f"the bank, {m:,} vectors of {d} floats"))
    negatives = sampler.negatives_per_row(b, config.sampler)  # None: every item (the full softmax)
    columns = num_items if negatives is None else negatives + 1
    extra = max(columns - b, 0)  # bank rows or sampled items beyond the batch
    driver = "memory_size" if "memory_size" in sampler.options else \
        "num_negatives" if "num_negatives" in sampler.options else "batch_size"
    if extra > b:
        what = f"the step's softmax over {columns:,} candidates for {b:,} rows, and {extra:,} candidate vectors"
    else:
        driver, what = "batch_size", f"the step's softmax over {columns:,} candidates for {b:,} rows"
    parts.append(Part(3 * FLOAT * (b * columns + extra * d), driver, what))
    if config.sampler.item_frequency == "streaming":
        parts.append(Part(16 * config.sampler.frequency_slots, "frequency_slots",
                          f"the streaming frequency arrays, 2 x {config.sampler.frequency_slots:,} int64"))
    return parts


def check_memory(config, num_users: int, num_items: int, train_pairs: int | None = None) -> None:
    """:class:`CbnsError` when the run would need more memory than is available (unknown: no check)."""
    free = available_memory()
    if free is None:
        return
    parts = memory_parts(config, num_users, num_items, train_pairs)
    needed = sum(p.bytes for p in parts)
    if needed <= free:
        return
    biggest = max(parts, key=lambda p: p.bytes)
    value = config[biggest.option]
    raise CbnsError(Opt(biggest.option, value), f": the run needs about {format_bytes(needed)} of memory "
                    f"({biggest.what}: {format_bytes(biggest.bytes)}), but {format_bytes(free)} is available; "
                    f"use a smaller ", Opt(biggest.option))
