"""Scoring (query, document) pairs with an exported cross-encoder."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from crossrank.models import token_batches
from crossrank.models.manifest import Manifest, ScoreHead
from crossrank.models.model_dir import open_model_dir
from crossrank.models.onnx_session import OnnxSession
from crossrank.models.token_batches import DEFAULT_MAX_BATCH_TOKENS
from crossrank.models.tokenization import Tokenizer
from crossrank.types import Pair, Scores


class CrossEncoder:
    """An ONNX cross-encoder: one score per (query, document) pair, higher is more relevant.

    Calls are blocking and thread-safe; per-call options never change the instance.
    """

    def __init__(self, manifest: Manifest, session: OnnxSession, tokenizer: Tokenizer, *,
                 max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS) -> None:
        if manifest.kind != "cross-encoder" or manifest.score is None:
            raise ValueError(f"manifest describes a {manifest.kind}, not a cross-encoder")
        if max_batch_tokens < 1:
            raise ValueError("max_batch_tokens must be positive")
        self.manifest = manifest
        self.quantization = manifest.quantization  # what runs (load() sets the local int8)
        self._head: ScoreHead = manifest.score
        self._session = session
        self._tokenizer = tokenizer
        self.max_batch_tokens = max_batch_tokens

    @classmethod
    def load(cls, directory: Path, *, intra_op_threads: int = 1, parallel_runs: int = 0,
             graph_optimization: str = "all", execution_provider: str = "cpu",
             max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
             verify_checksums: bool = True) -> CrossEncoder:
        files = open_model_dir(directory, intra_op_threads=intra_op_threads,
                               parallel_runs=parallel_runs,
                               graph_optimization=graph_optimization,
                               execution_provider=execution_provider,
                               verify_checksums=verify_checksums)
        model = cls(files.manifest, files.session, files.tokenizer,
                    max_batch_tokens=max_batch_tokens)
        model.quantization = files.quantization
        return model

    def score(self, pairs: Sequence[Pair], *, max_length: int | None = None) -> Scores:
        """One score per pair, in input order. ``max_length`` can only lower the model's own
        limit; the document is cut to fit, the query kept whole where it fits alone."""
        return self.activate(self.raw_scores(pairs, max_length=max_length))

    def raw_scores(self, pairs: Sequence[Pair], *, max_length: int | None = None) -> Scores:
        """Scores before the manifest's activation (logits or log-odds)."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        ((_, scores),) = self._raw_each([pairs], max_length)
        return scores

    def score_each(self, requests: Sequence[Sequence[Pair]],
                   done: Callable[[int, Scores], None] | None = None, *,
                   max_length: int | None = None) -> list[Scores]:
        """:meth:`score` for several requests in one pass over the runners.

        Each request's pairs are batched on their own, so no token batch mixes two requests
        and a request gets the scores it would get alone (int8 activation scales are per
        batch). The requests' batches run in order, and ``done(i, scores)`` is called for
        request ``i`` as soon as its last batch is back, on the calling thread.
        """
        results: list[Scores] = [np.zeros(0, dtype=np.float32)] * len(requests)
        for index, raw in self._raw_each(requests, max_length):
            results[index] = self.activate(raw)
            if done is not None:
                done(index, results[index])
        return results

    def _raw_each(self, requests: Sequence[Sequence[Pair]],
                  max_length: int | None) -> Iterator[tuple[int, Scores]]:
        """(request index, raw scores), each request as soon as its batches are done."""
        limit = self.manifest.max_length if max_length is None else min(
            max_length, self.manifest.max_length)
        # one tokenizer call for every pair, then each request's batches from its own rows
        encodings = self._tokenizer.encode_pairs(
            [pair for pairs in requests for pair in pairs], limit) if any(requests) else []
        jobs: list[tuple[int, Sequence[Any], npt.NDArray[np.intp]]] = []
        left = [0] * len(requests)
        scores = [np.empty(len(pairs), dtype=np.float32) for pairs in requests]
        start = 0
        for index, pairs in enumerate(requests):
            own = encodings[start:start + len(pairs)]
            start += len(pairs)
            for rows in token_batches.plan([len(e.ids) for e in own], self.max_batch_tokens):
                jobs.append((index, own, rows))
                left[index] += 1
        for index, pairs in enumerate(requests):
            if not pairs:
                yield index, scores[index]
        pad_id = self.manifest.pad_token_id
        batches = (token_batches.pad(own, rows, pad_id) for _, own, rows in jobs)
        outputs = self._session.run_all(batches, self.manifest.output_name)
        for (index, _, _), (batch, logits) in zip(jobs, outputs, strict=True):
            scores[index][batch.rows] = reduce_logits(logits, self._head)
            left[index] -= 1
            if left[index] == 0:
                yield index, scores[index]

    def rank(self, query: str, texts: Sequence[str],
             top_k: int | None = None) -> list[tuple[int, float]]:
        """(position in ``texts``, score), best first; ties keep input order."""
        if top_k is not None and top_k < 0:
            raise ValueError("top_k must be >= 0")
        scores = self.score([(query, text) for text in texts])
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [(int(i), float(scores[i])) for i in order]

    def close(self) -> None:
        """Stop the session's runner threads; the instance is not used afterwards."""
        self._session.close()

    def warmup(self) -> None:
        self.score([("warm up", "a short document to run the graph once")])

    def activate(self, raw: npt.NDArray[np.float32]) -> Scores:
        """The manifest's activation applied to :meth:`raw_scores`."""
        if self._head.activation == "sigmoid":
            # tanh form: no overflow warning for large logits, unlike 1 / (1 + exp(-x))
            return np.asarray(0.5 * (1.0 + np.tanh(0.5 * raw)), dtype=np.float32)
        return raw


def reduce_logits(logits: npt.NDArray[np.float32], head: ScoreHead) -> npt.NDArray[np.float32]:
    """``(rows, num_labels)`` logits to one raw score per row, as the manifest's head says."""
    chosen = logits[:, head.label]
    if head.reduce == "log_odds":
        return np.asarray(chosen - logits[:, 1 - head.label], dtype=np.float32)
    return np.asarray(chosen, dtype=np.float32)
