"""Cross-request micro-batching: one queue and one worker per model.

Concurrent searches each bring a window of pairs. Merged, one call scores them all: fewer calls,
and short requests fill token batches together. (On CPU the scorer already runs its small
batches side by side, one per core, so merging buys little there: 0.99x the queries/s at
concurrency 16 on 2 cores, docs/benchmarks.md; the bounded queue below is what it still gives
every deployment.) The worker takes requests first come, first served, up to ``max_batch_pairs``
(a request larger than that runs alone, so nothing starves), waits at most ``max_wait_ms`` for
company, runs the blocking scorer in an executor, and hands each caller its own slice in its own
order. With ``max_wait_ms`` 0 (the server's default) nobody waits on purpose: a lone request
runs at once, and requests that arrive while a batch runs are merged into the next one, so
batches grow with the load and an idle server adds no latency. Inside a merged call, the scorer
still splits the pairs into length-sorted runs bounded by its token budget. A caller that has
gone (cancelled, for instance by its latency budget) is skipped before its pairs are run. When
more than ``max_queue_pairs`` wait, new requests are refused with :class:`QueueFull` (the proxy
answers 429).
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

from crossrank.types import Pair, Scores

ScoreFn = Callable[[Sequence[Pair], int | None], Scores]


class QueueFull(Exception):
    """Too many pairs are waiting for this model; try again later."""


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
    future: asyncio.Future[Scores]
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    batches: int = 0
    pairs: int = 0
    requests: int = 0
    skipped: int = 0
    last_batch_requests: int = 0


class Batcher:
    def __init__(self, score: ScoreFn, executor: Executor, *, max_batch_pairs: int = 256,
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

    async def score(self, pairs: Sequence[Pair], max_length: int | None = None) -> Scores:
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        if self._queued_pairs + len(pairs) > self.max_queue_pairs and self._queue:
            raise QueueFull(f"{self._queued_pairs} pairs are already waiting for this model")
        self._ensure_worker()
        assert self._wakeup is not None
        future: asyncio.Future[Scores] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(pairs, max_length, future))
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
        """First come, first served, same max_length, up to max_batch_pairs (at least one)."""
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
                          or request.max_length != batch[0].max_length):
                break
            self._queue.popleft()
            self._queued_pairs -= len(request.pairs)
            batch.append(request)
            size += len(request.pairs)
        return batch

    async def _execute(self, batch: list[_Request]) -> None:
        pairs = [pair for request in batch for pair in request.pairs]
        loop = asyncio.get_running_loop()
        try:
            scores = await loop.run_in_executor(self._executor, self._score, pairs,
                                                batch[0].max_length)
        except Exception as exc:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.pairs += len(pairs)
        self.stats.requests += len(batch)
        self.stats.last_batch_requests = len(batch)
        offset = 0
        for request in batch:
            part = scores[offset: offset + len(request.pairs)]
            offset += len(request.pairs)
            if not request.future.done():
                request.future.set_result(part)
