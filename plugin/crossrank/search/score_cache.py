"""A bounded in-memory cache of reranker scores.

Key: (model, max_length, chunking, query text, index, document id, hash of the scored text).
The text hash makes a changed document miss, so an update is never answered with a stale
score; paging through one window or repeating a query costs no model time. Used from the
event loop only.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

from crossrank.models.tokenization import Chunking

CacheKey = tuple[str, int | None, Chunking | None, str, str, str, bytes]


def text_digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).digest()


class ScoreCache:
    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, float] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(model: str, max_length: int | None, query: str, index: str, doc_id: str,
            text: str, chunking: Chunking | None = None) -> CacheKey:
        return (model, max_length, chunking, query, index, doc_id, text_digest(text))

    def get_many(self, keys: Sequence[CacheKey]) -> list[float | None]:
        found: list[float | None] = []
        for key in keys:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
                self._entries.move_to_end(key)
            found.append(value)
        return found

    def put_many(self, keys: Sequence[CacheKey], values: Sequence[float]) -> None:
        if self.max_entries <= 0:
            return
        for key, value in zip(keys, values, strict=True):
            self._entries[key] = float(value)
            self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
