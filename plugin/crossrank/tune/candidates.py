"""Candidate scoring settings, and the ranking each gives a collected window (pure).

A candidate is a window K, a normalisation and a blend weight alpha on the reranker (alpha 1
is the reranker alone, ``score_mode: replace``), or ``off``: the first stage as it is. The
ranking of a candidate is what the pipeline would answer: the top K re-ordered by
``crossrank.fusion.blend`` (ties in first-stage order), the rest after them in
first-stage order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crossrank.fusion import NORMALIZATIONS, blend
from crossrank.tune.collect import Window
from crossrank.types import JSONObject

DEFAULT_ALPHAS = tuple(round(0.05 * i, 2) for i in range(1, 21))


@dataclass(frozen=True)
class Candidate:
    window: int | None  # None: reranking off
    alpha: float = 1.0
    normalization: str = "min_max"

    @property
    def off(self) -> bool:
        return self.window is None

    @property
    def name(self) -> str:
        if self.window is None:
            return "off"
        if self.alpha >= 1.0:
            return f"replace@{self.window}"
        return f"blend {self.normalization} a={self.alpha:g}@{self.window}"

    def policy_fields(self) -> JSONObject:
        """What ``--apply`` writes into the policy."""
        if self.window is None:
            return {"enabled": False}
        if self.alpha >= 1.0:
            return {"enabled": True, "window": self.window, "score_mode": "replace"}
        return {"enabled": True, "window": self.window, "score_mode": "blend",
                "blend_alpha": self.alpha, "normalization": self.normalization}


def grid(windows: Sequence[int], alphas: Sequence[float] = DEFAULT_ALPHAS,
         normalizations: Sequence[str] = tuple(NORMALIZATIONS)) -> list[Candidate]:
    """``off`` first, then every (window, normalisation, alpha); alpha 1 once per window."""
    out = [Candidate(None)]
    for window in sorted(set(windows)):
        out.append(Candidate(window, 1.0))
        out += [Candidate(window, alpha, norm) for norm in normalizations
                for alpha in sorted(set(alphas)) if alpha < 1.0]
    return out


def rank(window: Window, candidate: Candidate,
         weights: Sequence[float] | None = None) -> list[str]:
    """The doc ids in the order the candidate would answer. ``weights``: the hybrid signals'
    (``bm25``, ``knn``), as the policy's ``hybrid.weights``."""
    if candidate.window is None:
        return list(window.doc_ids)
    k = min(candidate.window, len(window.doc_ids))
    rerank = window.rerank[:k]
    if any(score is None for score in rerank):
        raise ValueError(f"the window was collected narrower than {candidate.window}")
    scores = [float(score) for score in rerank if score is not None]
    if candidate.alpha >= 1.0:
        final = scores
    else:
        final = blend(scores, window.first_stage[:k],
                      {name: values[:k] for name, values in window.signals.items()},
                      alpha=candidate.alpha, normalization=candidate.normalization,
                      weights=weights)
    order = sorted(range(k), key=lambda i: -final[i])
    return [window.doc_ids[i] for i in order] + window.doc_ids[k:]
