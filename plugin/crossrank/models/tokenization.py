"""Tokenising pairs and texts with a ``tokenizer.json`` (Hugging Face ``tokenizers``).

A ``tokenizers.Tokenizer`` keeps its truncation settings as mutable state, so one shared
instance cannot serve calls with different ``max_length`` from several threads. Each thread
gets its own copy (built once from the JSON); setting truncation on it is then race-free and
costs microseconds, and no call waits on another's tokenisation.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tokenizers  # type: ignore[import-untyped]  # ships .pyi stubs without py.typed

from crossrank.models.errors import ManifestError

# encode_batch_fast (tokenizers >= 0.21) skips character offsets, which scoring never reads:
# about a quarter less time on 100 SciFact pairs
_ENCODE_BATCH = ("encode_batch_fast" if hasattr(tokenizers.Tokenizer, "encode_batch_fast")
                 else "encode_batch")


@dataclass(frozen=True)
class Chunking:
    """How a document longer than the model's window is read (the default: cut to fit).

    ``max_chunks`` above 1: the document is read in up to that many windows of the pair's
    length, each with the query, consecutive windows sharing ``overlap`` tokens, and its score
    is the best window's (max over chunks, as Cohere's v1 rerank and Elasticsearch's chunk
    strategy score long documents). ``doc_tokens``: only the document's first ``doc_tokens``
    tokens are read at all (Cohere's ``max_tokens_per_doc``).
    """

    max_chunks: int = 1
    overlap: int = 32
    doc_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.max_chunks < 1:
            raise ValueError("max_chunks must be at least 1")
        if self.overlap < 0:
            raise ValueError("overlap must be 0 or more")
        if self.doc_tokens is not None and self.doc_tokens < 1:
            raise ValueError("doc_tokens must be at least 1")


class Tokenizer:
    """Thread-safe pair and text encoding with per-call truncation."""

    def __init__(self, path: Path) -> None:
        try:
            base: Any = tokenizers.Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises plain Exception for unreadable files
            raise ManifestError(f"{path}: not a valid tokenizer.json: {exc}") from exc
        base.no_padding()
        base.no_truncation()
        self._json: str = base.to_str()
        self._local = threading.local()
        self._local.tokenizer = base
        processor = base.post_processor
        self.pair_special_tokens = processor.num_special_tokens_to_add(True) if processor else 0
        self.text_special_tokens = processor.num_special_tokens_to_add(False) if processor else 0

    def _own(self) -> Any:
        tokenizer = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            tokenizer = tokenizers.Tokenizer.from_str(self._json)
            self._local.tokenizer = tokenizer
        return tokenizer

    def encode_pairs(self, pairs: Sequence[tuple[str, str]], max_length: int) -> list[Any]:
        """Encode (query, document) pairs, cutting the document so each pair fits ``max_length``.

        A query that alone fills ``max_length`` cannot be kept whole: those pairs are cut
        longest-first (query and document both) instead of failing the whole call.
        """
        self._check_room(max_length, self.pair_special_tokens)
        tokenizer = self._own()
        tokenizer.enable_truncation(max_length, strategy="only_second")
        try:
            return list(getattr(tokenizer, _ENCODE_BATCH)(list(pairs)))
        except Exception as exc:
            if "truncat" not in str(exc).lower():
                raise
        return self._encode_with_long_queries(tokenizer, pairs, max_length)

    def encode_pair_windows(self, pairs: Sequence[tuple[str, str]], max_length: int,
                            chunking: Chunking) -> list[list[Any]]:
        """Each pair's windows: the pair cut to ``max_length``, then (``max_chunks`` above 1)
        the rest of its document in further windows of the same length, the query in each,
        consecutive windows sharing ``chunking.overlap`` document tokens."""
        if chunking.doc_tokens is not None:
            cut = self.cut_texts([doc for _, doc in pairs], chunking.doc_tokens)
            pairs = [(query, doc) for (query, _), doc in zip(pairs, cut, strict=True)]
        if chunking.max_chunks == 1:
            return [[encoding] for encoding in self.encode_pairs(pairs, max_length)]
        self._check_room(max_length, self.pair_special_tokens)
        tokenizer = self._own()
        result: list[list[Any]] = [[] for _ in pairs]
        # pairs whose query leaves room for a document are read in windows; the rest, as
        # encode_pairs reads them (cut longest-first, one window)
        query_tokens = self._query_lengths(tokenizer, pairs)
        room = max_length - self.pair_special_tokens
        windowed = [i for i, (query, _) in enumerate(pairs) if query_tokens[query] < room]
        by_overlap: dict[int, list[int]] = {}
        for i in windowed:  # the stride must stay below each window's document part
            doc_room = room - query_tokens[pairs[i][0]]
            by_overlap.setdefault(min(chunking.overlap, doc_room // 2), []).append(i)
        for overlap, rows in by_overlap.items():
            tokenizer.enable_truncation(max_length, stride=overlap, strategy="only_second")
            # encode_batch, not encode_batch_fast: the fast path gives overflowing windows
            # wrong type ids (tokenizers 0.22)
            encodings = tokenizer.encode_batch([pairs[i] for i in rows])
            for row, encoding in zip(rows, encodings, strict=True):
                result[row] = [encoding, *encoding.overflowing][: chunking.max_chunks]
        rest = [i for i in range(len(pairs)) if not result[i]]
        if rest:
            for row, encoding in zip(rest, self.encode_pairs([pairs[i] for i in rest],
                                                             max_length), strict=True):
                result[row] = [encoding]
        return result

    def cut_texts(self, texts: Sequence[str], tokens: int) -> list[str]:
        """Each text cut after its first ``tokens`` tokens (at a character offset)."""
        tokenizer = self._own()
        tokenizer.enable_truncation(tokens, strategy="longest_first")
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
        cut = []
        for text, encoding in zip(texts, encodings, strict=True):
            whole = not encoding.overflowing
            cut.append(text if whole or not encoding.offsets else
                       text[: encoding.offsets[-1][1]])
        return cut

    def pair_lengths(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        """Each pair's length in tokens, special tokens included, before any cut."""
        tokenizer = self._own()
        tokenizer.no_truncation()
        return [len(e.ids) for e in getattr(tokenizer, _ENCODE_BATCH)(list(pairs))]

    def encode_texts(self, texts: Sequence[str], max_length: int) -> list[Any]:
        self._check_room(max_length, self.text_special_tokens)
        tokenizer = self._own()
        tokenizer.enable_truncation(max_length, strategy="longest_first")
        return list(getattr(tokenizer, _ENCODE_BATCH)(list(texts)))

    def _encode_with_long_queries(self, tokenizer: Any, pairs: Sequence[tuple[str, str]],
                                  max_length: int) -> list[Any]:
        query_tokens = self._query_lengths(tokenizer, pairs)
        room = max_length - self.pair_special_tokens
        long = [query_tokens[query] >= room for query, _ in pairs]
        result: list[Any] = [None] * len(pairs)
        for strategy, wanted in (("only_second", False), ("longest_first", True)):
            rows = [i for i, is_long in enumerate(long) if is_long == wanted]
            if not rows:
                continue
            tokenizer.enable_truncation(max_length, strategy=strategy)
            encodings = getattr(tokenizer, _ENCODE_BATCH)([pairs[i] for i in rows])
            for row, encoding in zip(rows, encodings, strict=True):
                result[row] = encoding
        return result

    @staticmethod
    def _query_lengths(tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> dict[str, int]:
        """Each distinct query's length in tokens, without special tokens (untruncated)."""
        tokenizer.no_truncation()
        queries = sorted({query for query, _ in pairs})
        return {query: len(encoding.ids) for query, encoding in
                zip(queries, tokenizer.encode_batch(queries, add_special_tokens=False),
                    strict=True)}

    @staticmethod
    def _check_room(max_length: int, special_tokens: int) -> None:
        if max_length < special_tokens + 2:
            raise ValueError(f"max_length {max_length} leaves no room for text "
                             f"({special_tokens} special tokens)")
