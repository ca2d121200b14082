"""Reranking quality on judged claims: nDCG@10 of a first-stage window reordered by a scorer.

Pure numpy, no torch: the same functions judge the PyTorch student during training and the
exported ONNX model afterwards. Orders follow the proxy's ``merge.py``: ``replace`` sorts by
the reranker score, ``blend`` by ``alpha * minmax(rerank) + (1 - alpha) * minmax(bm25)`` over
the window; ties keep BM25 order; hits past the window follow in BM25 order. nDCG uses linear
gain and the ideal ranking of all judged documents (trec_eval's definition), binary here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossrank.train.proxy_mining import Ranked

Vector = npt.NDArray[np.float64]


def ndcg_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    gains = [relevant.get(doc_id, 0) for doc_id in ranked[:k]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g > 0)
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def minmax(values: Vector) -> Vector:
    low, high = float(values.min()), float(values.max())
    if high - low <= 0:
        return np.ones_like(values)
    return (values - low) / (high - low)


def reorder(window: Sequence[str], scores: Vector) -> list[str]:
    order = np.argsort(-scores, kind="stable")  # stable: ties keep first-stage order
    return [window[i] for i in order]


def blended(rerank: Vector, first: Vector, alpha: float) -> Vector:
    return alpha * minmax(rerank) + (1.0 - alpha) * minmax(first)


@dataclass(frozen=True)
class WindowReport:
    window: int
    queries: int
    bm25: float
    rerank: float
    blend: dict[float, float]

    @property
    def best_alpha(self) -> float:
        # the largest alpha among equals: more weight on the model when it costs nothing
        best = max(self.blend.values())
        return max(a for a, v in self.blend.items() if v >= best - 1e-12)

    @property
    def best_blend(self) -> float:
        return self.blend[self.best_alpha]

    def as_dict(self) -> dict[str, object]:
        return {"window": self.window, "queries": self.queries, "bm25": round(self.bm25, 4),
                "rerank": round(self.rerank, 4), "best_alpha": self.best_alpha,
                "best_blend": round(self.best_blend, 4),
                "blend": {str(a): round(v, 4) for a, v in self.blend.items()}}


def evaluate_window(candidates: Mapping[str, Ranked], scores: Mapping[str, Vector],
                    qrels: Mapping[str, Mapping[str, int]], window: int,
                    alphas: Sequence[float]) -> WindowReport:
    """``candidates[qid]`` is BM25's ranking; ``scores[qid]`` the model's scores for (at least)
    its first ``window`` hits, in the same order."""
    bm25: list[float] = []
    alone: list[float] = []
    blends: dict[float, list[float]] = {a: [] for a in alphas}
    for qid, ranked in candidates.items():
        ids = [doc_id for doc_id, _ in ranked]
        head, tail = ids[:window], ids[window:]
        first = np.array([s for _, s in ranked[:window]], dtype=np.float64)
        model = np.asarray(scores[qid][:len(head)], dtype=np.float64)
        relevant = qrels[qid]
        bm25.append(ndcg_at(ids, relevant))
        if not head:
            alone.append(0.0)
            for a in alphas:
                blends[a].append(0.0)
            continue
        alone.append(ndcg_at(reorder(head, model) + tail, relevant))
        for a in alphas:
            blends[a].append(ndcg_at(reorder(head, blended(model, first, a)) + tail, relevant))
    return WindowReport(window, len(bm25), float(np.mean(bm25)), float(np.mean(alone)),
                        {a: float(np.mean(v)) for a, v in blends.items()})
