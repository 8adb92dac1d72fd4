"""Micro-batching: requests that arrive within a few milliseconds of each other are scored together.

One request scored alone is one ``[1, D] x [D, I]`` product (or one index search of one query); 16
requests scored together are one ``[16, D] x [D, I]`` product, which costs little more than the
single one on a CPU, because the item matrix is read from memory once for all of them. The
service therefore never scores a request on its own when others are waiting: each request is put
on a queue with a *key* (what kind of query, ``k``, ...), and one consumer task takes the first
waiting request, collects more until ``max_wait_s`` after that request arrived or until ``max_batch`` are held, and
hands each group of equal keys to the scoring function in one call, on one worker thread (so the
event loop keeps accepting requests while a batch is scored, and batches never compete for the
cores). While a batch is scored the next one gathers on the queue, so under load batches grow by
themselves. ``max_batch=1`` scores one request at a time (the baseline the batching is measured
against).

If a batched call raises :class:`cbns.errors.CbnsError` (one request's bad input, e.g. an attribute
value the features tower does not know), the requests of that group are scored again one by one,
so that each gets its own answer or its own error and no request fails for another's input.

This module imports the standard library and cbns.errors only.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cbns.errors import CbnsError

#: ``score(key, payloads) -> one result per payload``: the batched scoring of requests of one key.
ScoreFunction = Callable[[Hashable, Sequence[object]], Sequence[object]]


@dataclass
class BatchStats:
    """What the batcher did so far: batches scored (one call of the scoring function each), the
    requests they held, the largest batch, and the groups that fell back to one-by-one scoring."""

    batches: int = 0
    requests: int = 0
    largest: int = 0
    fallbacks: int = 0

    def as_json(self) -> dict:
        mean = self.requests / self.batches if self.batches else 0.0
        return {"batches": self.batches, "requests": self.requests, "largest": self.largest,
                "mean_batch": round(mean, 3), "fallbacks": self.fallbacks}


class MicroBatcher:
    """Collect concurrent requests and score each group of equal keys in one call.

    Args:
        score: ``score(key, payloads)`` returns one result per payload, in order; it runs on the
            batcher's worker thread.
        max_batch: the most requests scored in one call (1: one at a time).
        max_wait_s: how long the first request of a batch waits for others to join it.

    Use inside a running event loop: ``await start()``, ``await submit(key, payload)`` from any
    number of tasks, ``await stop()``.
    """

    def __init__(self, score: ScoreFunction, max_batch: int = 64, max_wait_s: float = 0.002):
        if max_batch < 1:
            raise CbnsError(f"max_batch: must be >= 1, got {max_batch}")
        if max_wait_s < 0:
            raise CbnsError(f"max_wait_s: must be >= 0, got {max_wait_s}")
        self.score, self.max_batch, self.max_wait_s = score, max_batch, max_wait_s
        self.stats = BatchStats()
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cbns-score")
        self._task = asyncio.get_running_loop().create_task(self._consume())

    async def stop(self) -> None:
        """Finish: the consumer is cancelled (requests still queued get a CbnsError), the worker
        thread is joined after the batch in progress."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._queue is not None and not self._queue.empty():
            future = self._queue.get_nowait()[2]
            if not future.done():
                future.set_exception(CbnsError("the service is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._task = self._executor = None

    async def submit(self, key: Hashable, payload: object) -> object:
        """The result of ``payload`` scored (with others of the same ``key`` when they arrive
        together); raises what its own scoring raised."""
        if self._queue is None or self._task is None:
            raise CbnsError("the batcher is not running (call start() first)")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put_nowait((key, payload, future, loop.time()))
        return await future

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = batch[0][3] + self.max_wait_s  # from its arrival: a request queued behind a batch waits no more
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except TimeoutError:
                    break
            groups: dict[Hashable, list] = {}
            for entry in batch:
                groups.setdefault(entry[0], []).append(entry)
            for key, entries in groups.items():
                live = [e for e in entries if not e[2].cancelled()]  # a client that went away
                if not live:
                    continue
                outcomes = await loop.run_in_executor(self._executor, self._score_group, key,
                                                      [e[1] for e in live])
                for (_, _, future, _), (ok, value) in zip(live, outcomes):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)

    def _score_group(self, key: Hashable, payloads: list) -> list[tuple[bool, object]]:
        """``(True, result)`` or ``(False, exception)`` per payload; a CbnsError of the batched
        call is retried one payload at a time, any other exception fails the whole group."""
        self.stats.batches += 1
        self.stats.requests += len(payloads)
        self.stats.largest = max(self.stats.largest, len(payloads))
        try:
            results = self.score(key, payloads)
        except CbnsError as exc:
            if len(payloads) == 1:
                return [(False, exc)]
            self.stats.fallbacks += 1
            return [self._score_one(key, p) for p in payloads]
        except Exception as exc:  # a fault of the service, not of the input: every request says so
            return [(False, exc)] * len(payloads)
        if len(results) != len(payloads):
            error = RuntimeError(f"the scoring of {key!r} returned {len(results)} results for {len(payloads)} requests")
            return [(False, error)] * len(payloads)
        return [(True, r) for r in results]

    def _score_one(self, key: Hashable, payload: object) -> tuple[bool, object]:
        try:
            return True, self.score(key, [payload])[0]
        except Exception as exc:
            return False, exc
