"""Choosing scoring settings from windows already scored: every candidate's per-query nDCG@10,
k-fold cross-validation against reranking off, and the ``Scoring`` a model card records.

Pure: ``crossrank tune`` feeds it windows collected through the proxy, ``crossrank finetune``
windows of its held-out queries scored by the model it just exported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crossrank.eval.metrics import score_rankings
from crossrank.models.manifest import Scoring
from crossrank.tune.candidates import Candidate, grid, rank
from crossrank.tune.collect import Window
from crossrank.tune.crossval import CrossValidation, cross_validate

PerQuery = dict[str, float]


@dataclass(frozen=True)
class Selection:
    candidates: list[Candidate]
    scores: dict[str, PerQuery]
    """Candidate name -> query id -> nDCG@10."""
    cv: CrossValidation

    def candidate(self, name: str) -> Candidate:
        return next(c for c in self.candidates if c.name == name)

    @property
    def recommended(self) -> Candidate:
        return self.candidate(self.cv.recommended)

    @property
    def best(self) -> Candidate:
        return self.candidate(self.cv.best)


def select(windows: Mapping[str, Window], qrels: Mapping[str, Mapping[str, int]],
           sizes: Sequence[int], weights: Sequence[float] | None, folds: int,
           seed: int) -> Selection:
    candidates = grid(sizes)
    scores: dict[str, PerQuery] = {}
    for candidate in candidates:
        ranked = {qid: rank(window, candidate, weights) for qid, window in windows.items()}
        scores[candidate.name] = score_rankings(dict(qrels), ranked, ["ndcg@10"])["ndcg@10"]
    return Selection(candidates, scores, cross_validate(scores, "off", folds, seed))


def scoring_of(selection: Selection, measured: str) -> Scoring:
    """The card's entry: the recommended candidate, or (when reranking is not recommended)
    reranking off with the best candidate's settings for a policy that turns it on anyway."""
    chosen = selection.recommended
    source = chosen if not chosen.off else selection.best
    return Scoring(
        rerank=not chosen.off,
        score_mode="replace" if source.alpha >= 1.0 else "blend",
        blend_alpha=min(source.alpha, 1.0), normalization=source.normalization,
        window=source.window or 20, measured=measured)
