"""Micro-batching: merged across concurrent callers, each gets its own scores in its own order,
large requests run alone, gone callers are skipped, a full queue refuses."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from crossrank.models.batcher import Batcher
from crossrank.models.errors import QueueFull
from crossrank.models.tokenization import Chunking
from crossrank.types import Pair, Scores


class LengthScorer:
    """A deterministic scoring function (document length) that records each call's size; the
    batching logic under test does not depend on what the scores mean."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay_s = delay_s
        self.release = threading.Event()

    def __call__(self, requests: Sequence[Sequence[Pair]], max_length: int | None,
                 chunking: Chunking | None,
                 done: Callable[[int, Scores], None]) -> None:
        self.calls.append(sum(len(pairs) for pairs in requests))
        if self.delay_s:
            self.release.wait(self.delay_s)
        for index, pairs in enumerate(requests):
            done(index, np.array([float(len(doc)) for _, doc in pairs], dtype=np.float32))


def pairs_of(n: int, tag: str) -> list[Pair]:
    return [("q", tag * (i + 1)) for i in range(n)]


async def test_concurrent_requests_are_merged_and_keep_their_order() -> None:
    scorer = LengthScorer()
    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(scorer, pool, max_batch_pairs=100, max_wait_ms=20)
        results = await asyncio.gather(*(batcher.score(pairs_of(5, t)) for t in "abcd"))
        await batcher.aclose()
    for result in results:
        assert result.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert scorer.calls == [20]  # one merged call
    assert batcher.stats.requests == 4 and batcher.stats.batches == 1


async def test_batches_are_bounded_and_a_large_request_runs_alone() -> None:
    scorer = LengthScorer()
    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(scorer, pool, max_batch_pairs=10, max_wait_ms=20)
        big, *small = await asyncio.gather(batcher.score(pairs_of(25, "x")),
                                           *(batcher.score(pairs_of(4, t)) for t in "abc"))
        await batcher.aclose()
    assert big.tolist() == [float(i + 1) for i in range(25)]
    assert all(r.tolist() == [1.0, 2.0, 3.0, 4.0] for r in small)
    assert scorer.calls[0] == 25 and all(size <= 10 for size in scorer.calls[1:])
    assert sum(scorer.calls) == 37


async def test_first_come_first_served() -> None:
    scorer = LengthScorer()
    finished: list[str] = []
    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(scorer, pool, max_batch_pairs=3, max_wait_ms=1)

        async def call(tag: str) -> None:
            await batcher.score(pairs_of(3, tag))
            finished.append(tag)

        tasks = []
        for tag in "abcde":
            tasks.append(asyncio.create_task(call(tag)))
            await asyncio.sleep(0)  # queue in this order
        await asyncio.gather(*tasks)
        await batcher.aclose()
    assert finished == list("abcde")


async def test_cancelled_callers_are_skipped_and_others_served() -> None:
    scorer = LengthScorer(delay_s=0.3)
    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(scorer, pool, max_batch_pairs=5, max_wait_ms=0)
        first = asyncio.create_task(batcher.score(pairs_of(5, "a")))  # occupies the worker
        await asyncio.sleep(0.05)
        gone = asyncio.create_task(batcher.score(pairs_of(5, "b")))
        kept = asyncio.create_task(batcher.score(pairs_of(2, "c")))
        await asyncio.sleep(0.01)
        gone.cancel()
        scorer.release.set()
        assert (await first).tolist() == [1, 2, 3, 4, 5]
        assert (await kept).tolist() == [1, 2]
        await batcher.aclose()
    assert batcher.stats.skipped == 1
    assert 5 not in scorer.calls[1:]  # the cancelled request's pairs never ran


async def test_full_queue_refuses() -> None:
    scorer = LengthScorer(delay_s=1.0)
    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(scorer, pool, max_batch_pairs=4, max_wait_ms=0, max_queue_pairs=8)
        running = asyncio.create_task(batcher.score(pairs_of(4, "a")))
        await asyncio.sleep(0.05)
        queued = asyncio.create_task(batcher.score(pairs_of(8, "b")))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull):
            await batcher.score(pairs_of(1, "c"))
        scorer.release.set()
        await asyncio.gather(running, queued)
        await batcher.aclose()


async def test_a_failing_run_fails_only_its_batch() -> None:
    calls = 0

    def flaky(requests: Sequence[Sequence[Pair]], max_length: int | None,
              chunking: Chunking | None, done: Callable[[int, Scores], None]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("model crashed")
        for index, pairs in enumerate(requests):
            done(index, np.ones(len(pairs), dtype=np.float32))

    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(flaky, pool, max_batch_pairs=4, max_wait_ms=0)
        with pytest.raises(RuntimeError, match="model crashed"):
            await batcher.score(pairs_of(2, "a"))
        assert (await batcher.score(pairs_of(2, "b"))).tolist() == [1.0, 1.0]
        await batcher.aclose()


async def test_each_caller_is_answered_when_its_own_pairs_are_done() -> None:
    """A merged call answers its first request before it has finished the others."""
    second_may_finish = threading.Event()

    def staged(requests: Sequence[Sequence[Pair]], max_length: int | None,
               chunking: Chunking | None, done: Callable[[int, Scores], None]) -> None:
        for index, pairs in enumerate(requests):
            if index == 1:
                assert second_may_finish.wait(5)
            done(index, np.full(len(pairs), float(index), dtype=np.float32))

    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(staged, pool, max_batch_pairs=10, max_wait_ms=50)
        first = asyncio.create_task(batcher.score(pairs_of(2, "a")))
        second = asyncio.create_task(batcher.score(pairs_of(3, "b")))
        assert (await asyncio.wait_for(first, 5)).tolist() == [0.0, 0.0]
        assert not second.done()
        second_may_finish.set()
        assert (await second).tolist() == [1.0, 1.0, 1.0]
        await batcher.aclose()
    assert batcher.stats.batches == 1 and batcher.stats.requests == 2


async def test_a_failure_after_some_callers_were_answered_fails_only_the_rest() -> None:
    def half(requests: Sequence[Sequence[Pair]], max_length: int | None,
             chunking: Chunking | None, done: Callable[[int, Scores], None]) -> None:
        done(0, np.zeros(len(requests[0]), dtype=np.float32))
        raise RuntimeError("model crashed")

    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(half, pool, max_batch_pairs=10, max_wait_ms=50)
        first, second = await asyncio.gather(batcher.score(pairs_of(2, "a")),
                                             batcher.score(pairs_of(2, "b")),
                                             return_exceptions=True)
        await batcher.aclose()
    assert isinstance(first, np.ndarray) and first.tolist() == [0.0, 0.0]
    assert isinstance(second, RuntimeError)
