"""The micro-batcher on its own: concurrent submissions of one key reach the scoring function in
one call, keys never mix, max_batch=1 scores one at a time, and a bad payload in a batch fails
only its own request."""
import asyncio

import pytest

from cbns.errors import CbnsError
from cbns.serve.http.batcher import MicroBatcher


class Recorder:
    """A scoring function that records each call's key and payloads; payload 'bad' is bad input."""

    def __init__(self):
        self.calls = []

    def __call__(self, key, payloads):
        self.calls.append((key, list(payloads)))
        if "bad" in payloads:
            raise CbnsError("payload 'bad': refused")
        if "crash" in payloads:
            raise RuntimeError("disk gone")
        return [f"{key}:{p}" for p in payloads]


def run_concurrently(batcher, requests):
    """Submit every ``(key, payload)`` at once; their outcomes (result or exception), in order."""

    async def main():
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(k, p) for k, p in requests), return_exceptions=True)
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_concurrent_requests_of_one_key_are_scored_in_one_call():
    score = Recorder()
    out = run_concurrently(MicroBatcher(score, max_batch=64, max_wait_s=0.05), [("a", i) for i in range(10)])
    assert out == [f"a:{i}" for i in range(10)]
    assert score.calls == [("a", list(range(10)))]


def test_keys_are_scored_apart_and_max_batch_caps_a_call():
    score = Recorder()
    requests = [("a", 0), ("b", 1), ("a", 2), ("b", 3), ("a", 4)]
    out = run_concurrently(MicroBatcher(score, max_batch=2, max_wait_s=0.05), requests)
    assert out == [f"{k}:{p}" for k, p in requests]
    assert all(len(payloads) <= 2 for _, payloads in score.calls)
    assert sorted(p for _, ps in score.calls for p in ps) == [0, 1, 2, 3, 4]
    assert {key: sorted(p for k, ps in score.calls if k == key for p in ps) for key in "ab"} == {"a": [0, 2, 4],
                                                                                               "b": [1, 3]}


def test_max_batch_one_scores_one_request_per_call():
    score = Recorder()
    batcher = MicroBatcher(score, max_batch=1, max_wait_s=0.05)
    out = run_concurrently(batcher, [("a", i) for i in range(5)])
    assert out == [f"a:{i}" for i in range(5)]
    assert [len(p) for _, p in score.calls] == [1] * 5
    assert batcher.stats.as_json() == {"batches": 5, "requests": 5, "largest": 1, "mean_batch": 1.0, "fallbacks": 0}


def test_a_bad_payload_fails_its_own_request_only():
    score = Recorder()
    batcher = MicroBatcher(score, max_batch=64, max_wait_s=0.05)
    out = run_concurrently(batcher, [("a", 1), ("a", "bad"), ("a", 3)])
    assert out[0] == "a:1" and out[2] == "a:3"
    assert isinstance(out[1], CbnsError) and str(out[1]) == "payload 'bad': refused"
    assert score.calls[0] == ("a", [1, "bad", 3])  # tried together first, then one by one
    assert score.calls[1:] == [("a", [1]), ("a", ["bad"]), ("a", [3])]
    assert batcher.stats.fallbacks == 1


def test_a_fault_of_the_scoring_fails_the_batch_without_stopping_the_batcher():
    score = Recorder()
    batcher = MicroBatcher(score, max_batch=64, max_wait_s=0.05)

    async def main():
        await batcher.start()
        try:
            first = await asyncio.gather(batcher.submit("a", "crash"), batcher.submit("a", 2), return_exceptions=True)
            second = await batcher.submit("a", 5)  # the consumer still runs
            return first, second
        finally:
            await batcher.stop()

    first, second = asyncio.run(main())
    assert all(isinstance(e, RuntimeError) and str(e) == "disk gone" for e in first)
    assert second == "a:5"


def test_submit_before_start_and_bad_settings_are_refused():
    with pytest.raises(CbnsError, match="max_batch: must be >= 1, got 0"):
        MicroBatcher(Recorder(), max_batch=0)
    with pytest.raises(CbnsError, match="max_wait_s: must be >= 0"):
        MicroBatcher(Recorder(), max_wait_s=-1)
    with pytest.raises(CbnsError, match="not running"):
        asyncio.run(MicroBatcher(Recorder()).submit("a", 1))
