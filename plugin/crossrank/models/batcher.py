"""Cross-request micro-batching: one queue and one worker per model.

Concurrent searches each bring a window of pairs. The worker takes waiting requests first come,
first served, up to ``max_batch_pairs`` (a request larger than that runs alone, so nothing
starves), waits at most ``max_wait_ms`` for company, and hands them to the scorer in one call,
run in an executor. The scorer batches each request's pairs on their own (no token batch mixes
two callers, so a caller's scores never depend on who else was merged), runs the batches in
request order, and each caller gets its scores, in its own order, as soon as its own batches are
done. With ``max_wait_ms`` 0 (the server's default) nobody waits on purpose: a lone request runs
at once, and requests that arrive while a call runs are merged into the next one, so an idle
server adds no latency. A caller that has gone (cancelled, for instance by its latency budget)
is skipped before its pairs are run. When more than ``max_queue_pairs`` wait, new requests are
refused with :class:`QueueFull` (the proxy answers 429).

What merging buys: one executor call per group of requests and one tokenizer call for all their
pairs. On CPU the scorer already keeps every core busy with one request's batches (one batch per
core), so merging adds no throughput there (0.99x the queries/s at concurrency 16 on 2 cores,
docs/benchmarks.md); the bounded queue is what it gives every deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from crossrank.models.errors import QueueFull
from crossrank.models.tokenization import Chunking
from crossrank.types import Pair, Scores

Done = Callable[[int, Scores], None]
ScoreEachFn = Callable[[Sequence[Sequence[Pair]], int | None, Chunking | None, Done], object]
"""Scores several requests' pairs (with a max_length and chunking), calling ``done(i, scores)``
for each
request as soon as it has them (from any thread); raises if the run fails."""


@dataclass(frozen=True)
class BatchLimits:
    """How a :class:`Batcher` merges: pairs per merged call, how long the oldest waiting request
    waits for company (0: only while a batch runs), and how many pairs may wait at most."""

    max_batch_pairs: int = 256
    max_wait_ms: float = 0.0
    max_queue_pairs: int = 8192


@dataclass
class _Request:
    pairs: Sequence[Pair]
    max_length: int | None
    chunking: Chunking | None
    future: asyncio.Future[Scores]
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    """Counters: merged calls started, pairs and requests answered, callers skipped."""

    batches: int = 0
    pairs: int = 0
    requests: int = 0
    skipped: int = 0
    last_batch_requests: int = 0


class Batcher:
    def __init__(self, score: ScoreEachFn, executor: Executor, *, max_batch_pairs: int = 256,
                 max_wait_ms: float = 2.0, max_queue_pairs: int = 8192) -> None:
        if max_batch_pairs < 1 or max_queue_pairs < 1 or max_wait_ms < 0:
            raise ValueError("batcher limits must be positive")
        self._score = score
        self._executor = executor
        self.max_batch_pairs = max_batch_pairs
        self.max_wait_s = max_wait_ms / 1000
        self.max_queue_pairs = max_queue_pairs
        self._queue: deque[_Request] = deque()
        self._queued_pairs = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = BatchStats()

    @property
    def queued_pairs(self) -> int:
        return self._queued_pairs

    async def score(self, pairs: Sequence[Pair], max_length: int | None = None,
                    chunking: Chunking | None = None) -> Scores:
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        if self._queued_pairs + len(pairs) > self.max_queue_pairs and self._queue:
            raise QueueFull(f"{self._queued_pairs} pairs are already waiting for this model")
        self._ensure_worker()
        assert self._wakeup is not None
        future: asyncio.Future[Scores] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(pairs, max_length, chunking, future))
        self._queued_pairs += len(pairs)
        self._wakeup.set()
        return await future

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while self._queue:
            request = self._queue.popleft()
            if not request.future.done():
                request.future.set_exception(RuntimeError("the batcher was closed"))

    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (a restarted app): start afresh there
            self._loop, self._worker = loop, None
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = asyncio.create_task(self._run(), name="crossrank-batcher")

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            # wait briefly for company, unless a full batch is already queued
            deadline = self._queue[0].queued_at + self.max_wait_s
            while self._queued_pairs < self.max_batch_pairs:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
            batch = self._take()
            if batch:
                await self._execute(batch)

    def _take(self) -> list[_Request]:
        """First come, first served, same max_length and chunking, up to max_batch_pairs (at
        least one)."""
        batch: list[_Request] = []
        size = 0
        while self._queue:
            request = self._queue[0]
            if request.future.done():  # the caller has gone: drop its work
                self._queue.popleft()
                self._queued_pairs -= len(request.pairs)
                self.stats.skipped += 1
                continue
            if batch and (size + len(request.pairs) > self.max_batch_pairs
                          or request.max_length != batch[0].max_length
                          or request.chunking != batch[0].chunking):
                break
            self._queue.popleft()
            self._queued_pairs -= len(request.pairs)
            batch.append(request)
            size += len(request.pairs)
        return batch

    async def _execute(self, batch: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        self.stats.batches += 1
        self.stats.last_batch_requests = len(batch)

        def done(index: int, scores: Scores) -> None:  # on the executor's thread
            loop.call_soon_threadsafe(self._settle, batch[index], scores)

        try:
            # the callbacks above are queued on the loop before this call's own completion,
            # so every finished request is settled before the except clause below can run
            await loop.run_in_executor(self._executor, self._score,
                                       [request.pairs for request in batch],
                                       batch[0].max_length, batch[0].chunking, done)
        except Exception as exc:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)

    def _settle(self, request: _Request, scores: Scores) -> None:
        """Answer one caller (counted first, so the stats are current when it wakes up)."""
        self.stats.requests += 1
        self.stats.pairs += len(request.pairs)
        if not request.future.done():  # a caller that has gone (cancelled) gets nothing
            request.future.set_result(scores)
