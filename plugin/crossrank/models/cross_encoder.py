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
from crossrank.models.tokenization import Chunking, Tokenizer
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

    def score(self, pairs: Sequence[Pair], *, max_length: int | None = None,
              chunking: Chunking | None = None) -> Scores:
        """One score per pair, in input order. ``max_length`` can only lower the model's own
        limit; the document is cut to fit, the query kept whole where it fits alone, unless
        ``chunking`` reads it in several windows (the pair's score is then its best
        window's)."""
        return self.activate(self.raw_scores(pairs, max_length=max_length, chunking=chunking))

    def raw_scores(self, pairs: Sequence[Pair], *, max_length: int | None = None,
                   chunking: Chunking | None = None) -> Scores:
        """Scores before the manifest's activation (logits or log-odds)."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        ((_, scores),) = self._raw_each([pairs], max_length, chunking)
        return scores

    def overlong(self, pairs: Sequence[Pair], *, max_length: int | None = None) -> list[int]:
        """The positions of the pairs that do not fit the model's window whole."""
        limit = self.limit(max_length)
        return [i for i, n in enumerate(self._tokenizer.pair_lengths(pairs)) if n > limit]

    def limit(self, max_length: int | None = None) -> int:
        """The pair length scoring uses: the model's own, or ``max_length`` if lower."""
        return (self.manifest.max_length if max_length is None
                else min(max_length, self.manifest.max_length))

    def score_each(self, requests: Sequence[Sequence[Pair]],
                   done: Callable[[int, Scores], None] | None = None, *,
                   max_length: int | None = None,
                   chunking: Chunking | None = None) -> list[Scores]:
        """:meth:`score` for several requests in one pass over the runners.

        Each request's pairs are batched on their own, so no token batch mixes two requests
        and a request gets the scores it would get alone (int8 activation scales are per
        batch). The requests' batches run in order, and ``done(i, scores)`` is called for
        request ``i`` as soon as its last batch is back, on the calling thread.
        """
        results: list[Scores] = [np.zeros(0, dtype=np.float32)] * len(requests)
        for index, raw in self._raw_each(requests, max_length, chunking):
            results[index] = self.activate(raw)
            if done is not None:
                done(index, results[index])
        return results

    def _raw_each(self, requests: Sequence[Sequence[Pair]], max_length: int | None,
                  chunking: Chunking | None) -> Iterator[tuple[int, Scores]]:
        """(request index, raw scores), each request as soon as its batches are done."""
        limit = self.limit(max_length)
        flat = [pair for pairs in requests for pair in pairs]
        # one tokenizer call for every pair, then each request's batches from its own rows;
        # with chunking a pair is several windows (``owners``: the pair of each window)
        if chunking is None:
            windows = [[e] for e in self._tokenizer.encode_pairs(flat, limit)] if flat else []
        else:
            windows = self._tokenizer.encode_pair_windows(flat, limit, chunking) if flat else []
        jobs: list[tuple[int, Sequence[Any], npt.NDArray[np.intp]]] = []
        left = [0] * len(requests)
        owners: list[npt.NDArray[np.intp]] = []
        scores: list[Scores] = []
        start = 0
        for index, pairs in enumerate(requests):
            mine = windows[start:start + len(pairs)]
            start += len(pairs)
            own = [encoding for pair_windows in mine for encoding in pair_windows]
            owners.append(np.repeat(np.arange(len(mine)), [len(w) for w in mine]))
            scores.append(np.empty(len(own), dtype=np.float32))
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
                yield index, best_window(scores[index], owners[index], len(requests[index]))

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


def best_window(window_scores: Scores, owners: npt.NDArray[np.intp], pairs: int) -> Scores:
    """Each pair's score: the best of its windows' (one window each: the scores as they are)."""
    if len(window_scores) == pairs:
        return window_scores
    best = np.full(pairs, -np.inf, dtype=np.float32)
    np.maximum.at(best, owners, window_scores)
    return best


def reduce_logits(logits: npt.NDArray[np.float32], head: ScoreHead) -> npt.NDArray[np.float32]:
    """``(rows, num_labels)`` logits to one raw score per row, as the manifest's head says."""
    chosen = logits[:, head.label]
    if head.reduce == "log_odds":
        return np.asarray(chosen - logits[:, 1 - head.label], dtype=np.float32)
    return np.asarray(chosen, dtype=np.float32)
