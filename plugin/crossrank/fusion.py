"""Every way crossrank combines scores, each one function under one name in a registry.

``LIST_FUSIONS`` fuse the ranked lists of proxy-side hybrid retrieval (BM25 and k-NN) into its
first stage; ``NORMALIZATIONS`` and ``fuse_scores`` make a reranked hit's final score. The
policy validates names against these registries (``crossrank.policy``), so a new method is
one function and one entry here.

List fusion (``LIST_FUSIONS``, each ``(lists of (id, score or None), weights, rank_constant)``
to ``(id, fused score)`` best first):

- ``rrf``: reciprocal rank fusion, ``score(d) = sum_i w_i / (rank_constant + rank_i(d))`` with
  1-based ranks, as OpenSearch's ``score-ranker-processor`` computes it (scores unused).
- ``rsf``: relative score fusion, ``score(d) = sum_i w_i * minmax_i(d)`` with the weights
  scaled to sum 1 (as OpenSearch's ``arithmetic_mean``): each list's scores are min-max
  normalised to [0, 1] (a list whose scores are all equal, one hit say, gives 1.0 to each),
  and a list that lacks ``d`` adds nothing; a hit without a numeric score is left out.

Equal fused scores keep the order in which ids were first seen, reading list 0 top to bottom,
then list 1, and so on: deterministic, and the first list acts as the tie-breaker. An id
repeated within one list counts once, at its best rank (rrf) or its highest score (rsf).

The final score of a reranked hit: the reranker's score fused with each first-stage signal.

A window holds, per hit, the reranker's score and one or more first-stage signals: the hit's
``_score`` for a plain first stage, or the BM25 and k-NN scores separately for proxy-side
hybrid (never RRF's already fused score, which is flat: 1/(60 + rank) sums). Each list is
normalised on its own, over the window, then::

    final = alpha * norm(rerank) + (1 - alpha) * sum_i v_i * norm(signal_i)

where ``v`` are the signals' weights scaled to sum 1 (for hybrid: the policy's
``hybrid.weights``). ``alpha = 1`` is the reranker alone (``score_mode: replace``).

Normalisations (``NORMALIZATIONS``, the one registry; a new one is one function here):

- ``min_max``: ``(v - min) / (max - min)`` into [0, 1]; all equal gives 1.0; a hit the signal
  does not have (a k-NN-only hit has no BM25 score) counts as the minimum, 0.0.
- ``z_score``: ``(v - mean) / std``; all equal gives 0.0; a missing value counts as the lowest
  present one.
- ``rrf``: rank-based, ``1 / (rank_constant + rank)`` with 1-based ranks by value (ties share
  the best rank); a missing value adds nothing (0.0), as a list that lacks a document in RRF.

All functions are pure: lists in, lists out, no numpy needed for a window of a few hundred.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

__all__ = ["HYBRID_SIGNALS", "LIST_FUSIONS", "NORMALIZATIONS", "RRF_RANK_CONSTANT", "blend",
           "fuse_lists", "fuse_scores",
           "min_max", "rrf", "rrf_ranks", "rsf", "z_score"]

RRF_RANK_CONSTANT = 60

Values = Sequence[float | None]


def min_max(values: Values) -> list[float]:
    present = [v for v in values if v is not None]
    if not present:
        return [1.0] * len(values)
    low, high = min(present), max(present)
    # halved so that high - low cannot overflow to inf for extreme finite inputs
    spread = high / 2 - low / 2
    if spread <= 0:
        return [1.0] * len(values)
    return [0.0 if v is None else min(1.0, max(0.0, (v / 2 - low / 2) / spread)) for v in values]


def z_score(values: Values) -> list[float]:
    present = [v for v in values if v is not None]
    if not present:
        return [0.0] * len(values)
    # scaled by the largest magnitude first, so squares of extreme finite inputs cannot overflow
    scale = max(abs(v) for v in present) or 1.0
    scaled = [v / scale for v in present]
    mean = math.fsum(scaled) / len(scaled)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in scaled) / len(scaled))
    if std <= 0:
        return [0.0] * len(values)
    lowest = (min(scaled) - mean) / std
    return [lowest if v is None else (v / scale - mean) / std for v in values]


def rrf_ranks(values: Values, rank_constant: int = RRF_RANK_CONSTANT) -> list[float]:
    present = sorted((v for v in values if v is not None), reverse=True)
    best_rank: dict[float, int] = {}
    for rank, value in enumerate(present, start=1):
        best_rank.setdefault(value, rank)
    return [0.0 if v is None else 1.0 / (rank_constant + best_rank[v]) for v in values]


NORMALIZATIONS: dict[str, Callable[[Values], list[float]]] = {
    "min_max": min_max,
    "z_score": z_score,
    "rrf": rrf_ranks,
}


def fuse_scores(rerank: Sequence[float], signals: Sequence[Values], *, alpha: float,
                normalization: str = "min_max",
                weights: Sequence[float] | None = None) -> list[float]:
    """One final score per hit. ``rerank`` has a score for every hit; each of ``signals`` is a
    first-stage signal over the same hits (None where a hit lacks it); ``weights`` (one per
    signal, default equal) are scaled to sum 1."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    normalize = NORMALIZATIONS.get(normalization)
    if normalize is None:
        raise ValueError(f"unknown normalization {normalization!r}; expected one of "
                         f"{', '.join(NORMALIZATIONS)}")
    for signal in signals:
        if len(signal) != len(rerank):
            raise ValueError(f"a signal has {len(signal)} values for {len(rerank)} hits")
    shares = _shares(weights, len(signals))
    final = [alpha * value for value in normalize(rerank)]
    if alpha < 1.0:
        for signal, share in zip(signals, shares, strict=True):
            if share > 0:
                for i, value in enumerate(normalize(signal)):
                    final[i] += (1.0 - alpha) * share * value
    return final


HYBRID_SIGNALS = ("bm25", "knn")
"""The separate first-stage signals of proxy-side hybrid, in ``hybrid.weights`` order."""


def blend(rerank: Sequence[float], first_stage: Values,
          signals: Mapping[str, Values] | None = None, *, alpha: float,
          normalization: str = "min_max",
          weights: Sequence[float] | None = None) -> list[float]:
    """The blended final score of each window hit: the reranker with the BM25 and k-NN signals
    (``weights``) when ``signals`` holds both, else with the hit's own first-stage score."""
    if signals is not None and set(HYBRID_SIGNALS) <= set(signals):
        return fuse_scores(rerank, [signals[name] for name in HYBRID_SIGNALS], alpha=alpha,
                           normalization=normalization, weights=weights)
    return fuse_scores(rerank, [first_stage], alpha=alpha, normalization=normalization)


def _shares(weights: Sequence[float] | None, count: int) -> list[float]:
    if weights is None:
        weights = [1.0] * count
    if len(weights) != count:
        raise ValueError(f"{len(weights)} weights for {count} signals")
    if not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ValueError("weights must be finite and non-negative")
    total = math.fsum(weights)
    return [w / total for w in weights] if total > 0 else [0.0] * count


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


Scored = Sequence[tuple[str, float | None]]


def _rrf_lists(lists: Sequence[Scored], weights: Sequence[float],
               rank_constant: int) -> list[tuple[str, float]]:
    return rrf([[doc_id for doc_id, _ in ranked] for ranked in lists],
               rank_constant=rank_constant, weights=weights)


def _rsf_lists(lists: Sequence[Scored], weights: Sequence[float],
               rank_constant: int) -> list[tuple[str, float]]:
    total = math.fsum(weights)
    return rsf([[(doc_id, score) for doc_id, score in ranked if score is not None]
                for ranked in lists], weights=[w / total for w in weights])


LIST_FUSIONS: dict[str, Callable[[Sequence[Scored], Sequence[float], int],
                                 list[tuple[str, float]]]] = {
    "rrf": _rrf_lists,
    "rsf": _rsf_lists,
}


def fuse_lists(method: str, lists: Sequence[Scored], *, weights: Sequence[float],
               rank_constant: int = RRF_RANK_CONSTANT) -> list[tuple[str, float]]:
    fusion = LIST_FUSIONS.get(method)
    if fusion is None:
        raise ValueError(f"unknown fusion {method!r}; expected one of {', '.join(LIST_FUSIONS)}")
    return fusion(lists, weights, rank_constant)
