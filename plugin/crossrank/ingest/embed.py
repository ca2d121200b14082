"""Compute the vectors an ingest plan asks for: one embedder call per model for the whole
request, off the event loop (the embedder's own business), checked before anything is written.

The only awaiting module of ``ingest/``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from crossrank.ingest.errors import EmbeddingError
from crossrank.ingest.plan import IngestPlan, Slot
from crossrank.models.protocols import TextEmbedder

__all__ = ["embed_plan", "embedding_dimension"]


async def embedding_dimension(embedder: object, model: str) -> int | None:
    """The model's vector dimension (from the registry's loaded embedder), None when the
    registry cannot tell: then the dimension is that of the vectors computed."""
    kinds = getattr(embedder, "kinds", None)
    load = getattr(embedder, "embedder", None)
    if not isinstance(kinds, dict) or kinds.get(model) != "embedder" or not callable(load):
        return None
    loaded = await asyncio.to_thread(load, model)  # loaded once; a file read the first time
    dimension = getattr(loaded, "dimension", None)
    return dimension if isinstance(dimension, int) else None


async def embed_plan(plan: IngestPlan, embedder: object) -> dict[Slot, Any]:
    """One vector (a float32 array) per embedding of the plan, None where an update clears it.
    Raises ``EmbeddingError``."""
    by_model: dict[str, list[tuple[Slot, str]]] = {}
    vectors: dict[Slot, Any] = {}
    for embedding in plan.embeddings:
        if embedding.text is None:
            vectors[embedding.slot] = None
        else:
            by_model.setdefault(embedding.model, []).append((embedding.slot, embedding.text))
    for model, wanted in by_model.items():
        if not isinstance(embedder, TextEmbedder):
            raise EmbeddingError(model, "this crossrank has no embedder runtime")
        try:
            matrix = await embedder.embed(model, [text for _, text in wanted])
        except Exception as exc:  # any model failure fails the request as a whole
            raise EmbeddingError(model, str(exc) or type(exc).__name__) from exc
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or matrix.shape[0] != len(wanted):
            raise EmbeddingError(model, f"expected {len(wanted)} vectors, got an array of "
                                        f"shape {matrix.shape}")
        if not np.all(np.isfinite(matrix)):
            raise EmbeddingError(model, "the embedder returned non-finite values")
        matrix = matrix.astype(np.float32, copy=False)
        for (slot, _), row in zip(wanted, matrix, strict=True):
            vectors[slot] = row
    return vectors
