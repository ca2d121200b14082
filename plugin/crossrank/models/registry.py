"""The models a server holds: loaded once, warmed up, and run off the event loop."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from crossrank.models.cross_encoder import CrossEncoder
from crossrank.models.embedder import Embedder, Vectors
from crossrank.models.errors import ModelKindError, ModelLookupError
from crossrank.models.manifest import MANIFEST_NAME, Kind, Manifest
from crossrank.models.token_batches import DEFAULT_MAX_BATCH_TOKENS
from crossrank.types import Pair, Scores

_T = TypeVar("_T")


def discover_models(directory: Path) -> dict[str, Path]:
    """``{name: model directory}`` for every ``directory/<name>/crossrank.json``."""
    return {manifest.parent.name: manifest.parent
            for manifest in sorted(directory.glob(f"*/{MANIFEST_NAME}"))}


class ModelRegistry:
    """Named models, each loaded once (lazily, or all at once by :meth:`warmup`).

    The async calls run the blocking work on the registry's own thread pool, sized to the
    cores by default, never on the event loop.
    """

    def __init__(self, models: Mapping[str, Path], *, intra_op_threads: int = 0,
                 graph_optimization: str = "all", max_workers: int | None = None,
                 max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS) -> None:
        self._paths = dict(models)
        self.kinds: dict[str, Kind] = {name: Manifest.read(path).kind
                                       for name, path in self._paths.items()}
        self._intra_op_threads = intra_op_threads
        self._graph_optimization = graph_optimization
        self._max_batch_tokens = max_batch_tokens
        self._loaded: dict[str, CrossEncoder | Embedder] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=max_workers or os.cpu_count() or 1,
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
                    max_length: int | None = None) -> Scores:
        self._check(name, "cross-encoder")
        return await self._run(lambda: self.cross_encoder(name).score(pairs,
                                                                      max_length=max_length))

    async def embed(self, name: str, texts: Sequence[str]) -> Vectors:
        self._check(name, "embedder")
        return await self._run(lambda: self.embedder(name).embed(texts))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

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
                               graph_optimization=self._graph_optimization,
                               max_batch_tokens=self._max_batch_tokens)
                self._loaded[name] = model
        return model
