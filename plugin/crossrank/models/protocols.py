"""The async surface of the model registry that the data path calls, as protocols: search
scores pairs, hybrid retrieval and the ingest hook embed texts. ``ModelRegistry`` provides
both; tests of pure pipeline logic may hand in anything with the same methods."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from crossrank.models.tokenization import Chunking
from crossrank.types import Pair, Scores

__all__ = ["Scorer", "TextEmbedder"]


class Scorer(Protocol):
    async def score(self, model: str, pairs: Sequence[Pair], *, max_length: int | None = None,
                    chunking: Chunking | None = None) -> Scores: ...


@runtime_checkable
class TextEmbedder(Protocol):
    async def embed(self, model: str, texts: Sequence[str], /) -> npt.NDArray[np.float32]: ...
