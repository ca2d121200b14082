"""The models a server holds: loaded once, warmed up, and run off the event loop."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from crossrank.models.batcher import Batcher, BatchLimits, BatchStats
from crossrank.models.cross_encoder import CrossEncoder
from crossrank.models.embedder import Embedder, Vectors
from crossrank.models.errors import ModelKindError, ModelLookupError
from crossrank.models.manifest import MANIFEST_NAME, FirstStageKind, Kind, Manifest, Scoring
from crossrank.models.onnx_session import usable_cores
from crossrank.models.token_batches import DEFAULT_MAX_BATCH_TOKENS
from crossrank.models.tokenization import Chunking
from crossrank.types import Pair, Scores

_T = TypeVar("_T")


def discover_models(directory: Path) -> dict[str, Path]:
    """``{name: model directory}`` for every ``directory/<name>/crossrank.json``."""
    return {manifest.parent.name: manifest.parent
            for manifest in sorted(directory.glob(f"*/{MANIFEST_NAME}"))}


class ModelRegistry:
    """Named models, each loaded once (lazily, or all at once by :meth:`warmup`).

    The async calls run the blocking work on the registry's own thread pool, sized to the
    cores by default, never on the event loop. With ``batching`` limits, concurrent
    :meth:`score` calls for one model are merged by that model's :class:`Batcher`; without,
    each call runs on its own.
    """

    def __init__(self, models: Mapping[str, Path], *, intra_op_threads: int = 1,
                 parallel_runs: int = 0, graph_optimization: str = "all",
                 execution_provider: str = "cpu",
                 max_workers: int | None = None,
                 max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
                 batching: BatchLimits | None = None) -> None:
        self._paths = dict(models)
        manifests = {name: Manifest.read(path) for name, path in self._paths.items()}
        self.kinds: dict[str, Kind] = {name: m.kind for name, m in manifests.items()}
        self.activations: dict[str, str] = {name: m.score.activation
                                            for name, m in manifests.items() if m.score}
        """Each cross-encoder's activation (none: raw logits; sigmoid: in [0, 1])."""
        self.cards: dict[str, dict[FirstStageKind, Scoring]] = {
            name: dict(m.recommended) for name, m in manifests.items()}
        """Each model's recommended scoring per kind of first stage (its card)."""
        self._intra_op_threads = intra_op_threads
        self._parallel_runs = parallel_runs
        self._graph_optimization = graph_optimization
        self._execution_provider = execution_provider
        self._max_batch_tokens = max_batch_tokens
        self._loaded: dict[str, CrossEncoder | Embedder] = {}
        self._batching = batching
        self._batchers: dict[str, Batcher] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=max_workers or usable_cores(),
                                            thread_name_prefix="crossrank-model")

    @property
    def names(self) -> list[str]:
        return sorted(self._paths)

    def warmup(self) -> None:
        """Load every model and run it once, so the first request pays neither cost."""
        for name in self.names:
            self._model(name).warmup()

    def cross_encoder(self, name: str) -> CrossEncoder:
        model = self._model(name, wanted="cross-encoder")
        assert isinstance(model, CrossEncoder)
        return model

    def embedder(self, name: str) -> Embedder:
        model = self._model(name, wanted="embedder")
        assert isinstance(model, Embedder)
        return model

    async def score(self, name: str, pairs: Sequence[Pair], *,
                    max_length: int | None = None,
                    chunking: Chunking | None = None) -> Scores:
        self._check(name, "cross-encoder")
        if self._batching is None:
            return await self._run(lambda: self._score_now(name, pairs, max_length, chunking))
        batcher = self._batchers.get(name)
        if batcher is None:
            limits = self._batching
            batcher = self._batchers[name] = Batcher(
                functools.partial(self._score_each_now, name), self._executor,
                max_batch_pairs=limits.max_batch_pairs, max_wait_ms=limits.max_wait_ms,
                max_queue_pairs=limits.max_queue_pairs)
        return await batcher.score(pairs, max_length, chunking)

    def batch_stats(self) -> dict[str, tuple[BatchStats, int]]:
        """Per batched model: its counters and the pairs waiting now."""
        return {name: (batcher.stats, batcher.queued_pairs)
                for name, batcher in self._batchers.items()}

    async def stop_batchers(self) -> None:
        """Stop the batchers' workers on this event loop (callers still waiting get an error);
        later calls start new ones. The models and the thread pool stay."""
        batchers, self._batchers = self._batchers, {}
        for batcher in batchers.values():
            await batcher.aclose()

    async def embed(self, name: str, texts: Sequence[str]) -> Vectors:
        self._check(name, "embedder")
        return await self._run(lambda: self.embedder(name).embed(texts))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            loaded, self._loaded = self._loaded, {}
        for model in loaded.values():
            model.close()

    def _score_now(self, name: str, pairs: Sequence[Pair], max_length: int | None,
                   chunking: Chunking | None) -> Scores:
        return self.cross_encoder(name).score(pairs, max_length=max_length, chunking=chunking)

    def _score_each_now(self, name: str, requests: Sequence[Sequence[Pair]],
                        max_length: int | None, chunking: Chunking | None,
                        done: Callable[[int, Scores], None]) -> None:
        self.cross_encoder(name).score_each(requests, done, max_length=max_length,
                                            chunking=chunking)

    async def _run(self, work: Callable[[], _T]) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(work))

    def _check(self, name: str, wanted: Kind) -> None:
        if name not in self.kinds:
            raise ModelLookupError(name, self.names)
        if self.kinds[name] != wanted:
            raise ModelKindError(name, self.kinds[name], wanted, self.names)

    def _model(self, name: str, wanted: Kind | None = None) -> CrossEncoder | Embedder:
        if wanted is not None:
            self._check(name, wanted)
        elif name not in self.kinds:
            raise ModelLookupError(name, self.names)
        model = self._loaded.get(name)
        if model is not None:
            return model
        with self._lock:
            model = self._loaded.get(name)
            if model is None:
                loader = CrossEncoder.load if self.kinds[name] == "cross-encoder" else Embedder.load
                model = loader(self._paths[name], intra_op_threads=self._intra_op_threads,
                               parallel_runs=self._parallel_runs,
                               graph_optimization=self._graph_optimization,
                               execution_provider=self._execution_provider,
                               max_batch_tokens=self._max_batch_tokens)
                self._loaded[name] = model
        return model
