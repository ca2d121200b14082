"""Fusion of several ranked lists of document ids, for proxy-side hybrid retrieval.

- ``rrf``: reciprocal rank fusion, ``score(d) = sum_i w_i / (rank_constant + rank_i(d))`` with
  1-based ranks, as OpenSearch's ``score-ranker-processor`` computes it.
- ``rsf``: relative score fusion, ``score(d) = sum_i w_i * minmax_i(d)``: each list's scores are
  min-max normalised to [0, 1] (a list whose scores are all equal, one hit say, gives 1.0 to
  each), and a list that lacks ``d`` adds nothing.

Both return ``(id, fused score)`` best first. Equal fused scores keep the order in which ids
were first seen, reading list 0 top to bottom, then list 1, and so on: deterministic, and the
first list acts as the tie-breaker. An id repeated within one list counts once, at its best
rank (rrf) or its highest score (rsf).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["rrf", "rsf"]


def rrf(ranked_lists: Sequence[Sequence[str]], *, rank_constant: int = 60,
        weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    if rank_constant < 1:
        raise ValueError("rank_constant must be at least 1")
    weights = _weights(weights, len(ranked_lists))
    fused: dict[str, float] = {}
    for ids, weight in zip(ranked_lists, weights, strict=True):
        seen: set[str] = set()
        for rank, doc_id in enumerate(ids, start=1):
            if doc_id in seen:
                continue
            seen.add(doc_id)
            fused[doc_id] = fused.get(doc_id, 0.0) + weight / (rank_constant + rank)
    return _best_first(fused)


def rsf(scored_lists: Sequence[Sequence[tuple[str, float]]], *,
        weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    weights = _weights(weights, len(scored_lists))
    fused: dict[str, float] = {}
    for scored, weight in zip(scored_lists, weights, strict=True):
        best: dict[str, float] = {}
        for doc_id, score in scored:
            if not math.isfinite(score):
                raise ValueError(f"non-finite score for {doc_id!r}")
            if doc_id not in best or score > best[doc_id]:
                best[doc_id] = score
        if not best:
            continue
        low, high = min(best.values()), max(best.values())
        spread = high / 2 - low / 2  # halved: high - low may overflow for extreme inputs
        for doc_id, score in best.items():
            normalised = (score / 2 - low / 2) / spread if spread > 0 else 1.0
            fused[doc_id] = fused.get(doc_id, 0.0) + weight * min(1.0, normalised)
    return _best_first(fused)


def _weights(weights: Sequence[float] | None, count: int) -> list[float]:
    if weights is None:
        return [1.0] * count
    if len(weights) != count:
        raise ValueError(f"{len(weights)} weights for {count} lists")
    if not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ValueError("weights must be finite and non-negative")
    return [float(w) for w in weights]


def _best_first(fused: dict[str, float]) -> list[tuple[str, float]]:
    # dicts keep first-insertion order and sorted() is stable: ties stay in first-seen order
    return sorted(fused.items(), key=lambda item: -item[1])
