"""Embedding texts with an exported sentence-transformers bi-encoder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from crossrank.models import token_batches
from crossrank.models.manifest import Manifest, Pooling
from crossrank.models.model_dir import open_model_dir
from crossrank.models.onnx_session import OnnxSession
from crossrank.models.token_batches import DEFAULT_MAX_BATCH_TOKENS
from crossrank.models.tokenization import Tokenizer

Vectors = npt.NDArray[np.float32]


class Embedder:
    """An ONNX text embedder: token vectors from the graph, pooled (and normalised) in numpy
    as the model's sentence-transformers modules say. Blocking and thread-safe."""

    def __init__(self, manifest: Manifest, session: OnnxSession, tokenizer: Tokenizer, *,
                 max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS) -> None:
        if manifest.kind != "embedder" or manifest.pooling is None:
            raise ValueError(f"manifest describes a {manifest.kind}, not an embedder")
        if max_batch_tokens < 1:
            raise ValueError("max_batch_tokens must be positive")
        self.manifest = manifest
        self.quantization = manifest.quantization  # what runs (load() sets the local int8)
        self._pooling: Pooling = manifest.pooling
        self._session = session
        self._tokenizer = tokenizer
        self.max_batch_tokens = max_batch_tokens

    @classmethod
    def load(cls, directory: Path, *, intra_op_threads: int = 1, parallel_runs: int = 0,
             graph_optimization: str = "all", execution_provider: str = "cpu",
             max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
             verify_checksums: bool = True) -> Embedder:
        files = open_model_dir(directory, intra_op_threads=intra_op_threads,
                               parallel_runs=parallel_runs,
                               graph_optimization=graph_optimization,
                               execution_provider=execution_provider,
                               verify_checksums=verify_checksums)
        model = cls(files.manifest, files.session, files.tokenizer,
                    max_batch_tokens=max_batch_tokens)
        model.quantization = files.quantization
        return model

    @property
    def dimension(self) -> int:
        return self._pooling.dimension

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One vector per text, in input order, shape ``(len(texts), dimension)``."""
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return vectors
        encodings = self._tokenizer.encode_texts(texts, self.manifest.max_length)
        batches = token_batches.batches(encodings, self.max_batch_tokens,
                                        self.manifest.pad_token_id)
        for batch, hidden in self._session.run_all(batches, self.manifest.output_name):
            vectors[batch.rows] = pool(hidden, batch.attention_mask, self._pooling)
        return vectors

    def close(self) -> None:
        """Stop the session's runner threads; the instance is not used afterwards."""
        self._session.close()

    def warmup(self) -> None:
        self.embed(["warm up"])


def pool(hidden: npt.NDArray[np.float32], mask: npt.NDArray[np.int64],
         pooling: Pooling) -> Vectors:
    """Token vectors ``(rows, length, dim)`` to one vector per row."""
    if pooling.mode == "cls":
        pooled = hidden[:, 0, :]
    elif pooling.mode == "max":
        pooled = np.where(mask[:, :, None] > 0, hidden, -np.inf).max(axis=1)
    else:
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    if pooling.normalize:
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        pooled = pooled / np.maximum(norms, 1e-12)
    return np.asarray(pooled, dtype=np.float32)
