"""Document texts for the scorer, and the reranked response in OpenSearch's format.

Scores (``merge_response``), by the plan's ``scoring`` (the policy's, else the model card's:
``crossrank.search.scoring``):

- ``replace``: ``_score`` is the reranker's score.
- ``blend``: ``alpha * norm(rerank) + (1 - alpha) * norm(first stage)``, each normalised over
  the window (``crossrank.fusion``; with ``min_max`` ``_score`` lies in [0, 1]); for
  proxy-side hybrid the first stage is its BM25 and k-NN scores, each normalised on its own
  and weighted as the policy's ``hybrid.weights``, not RRF's fused score. A list
  whose values are all equal (one hit, say) normalises to 1.0 everywhere; a missing
  first-stage score counts as the window's lowest.
- Ties keep first-stage order.
- Hits past the window follow in first-stage order with ``_score: null``: they have no reranker
  score, and their first-stage scores are on another scale (OpenSearch's rescore leaves them,
  so a tail hit can outscore the window; null keeps ``_score`` non-increasing down the page).
- ``max_score``, as in OpenSearch, is the best score of the whole result, not of the page: the
  top of the reranked window, so every page of one search reports the same value.
- Fallback (``scores=None``): first-stage order and OpenSearch's own scores and ``max_score``.
- ``ext.crossrank.explain: true`` adds to every returned hit
  ``"_crossrank": {"first_stage_score", "first_stage_rank" (1-based), "rerank_score"}``, and
  ``"signals": {"bm25", "knn"}`` for a hybrid window (null where a side lacks the hit)
  (``rerank_score`` is null past the window and in a fallback).
- Malformed input never fails the search: a hit that is not an object is passed on as received
  (it scores as a hit without text); a ``_source`` nested too deep to read recursively
  (OpenSearch stores up to 1,000 levels) has no text, and is returned as fetched, unfiltered.

Everything else in the response (aggregations, ``hits.total``, suggest, highlight, ``fields``,
``inner_hits``, ``matched_queries``, ``_shards``, ``pit_id``) is passed on as received. The input
response is not modified: the returned dict shares every part it does not change.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from crossrank.fusion import HYBRID_SIGNALS, blend
from crossrank.policy import Policy
from crossrank.search.doc_text import source_text
from crossrank.search.errors import ScoreError
from crossrank.search.plan import SearchPlan
from crossrank.search.source_filter import source_filterer
from crossrank.types import Hit, JSONObject, Scores, hit_key

__all__ = ["document_texts", "merge_response"]


def document_texts(hits: Sequence[Hit], policy: Policy) -> tuple[list[str], int]:
    """One text per hit from its ``_source`` (see ``doc_text``), and how many (hit, field)
    values were missing."""
    texts = []
    missing = 0
    for hit in hits:
        source = hit.get("_source") if isinstance(hit, dict) else None
        try:
            text, absent = source_text(source, policy.text_fields, policy.template,
                                       policy.separator)
        except RecursionError:  # OpenSearch stores sources nested up to 1,000 levels deep
            text, absent = "", len(policy.text_fields)
        texts.append(text)
        missing += absent
    return texts, missing


def merge_response(plan: SearchPlan, response: JSONObject, scores: Scores | Sequence[float] | None,
                   *, extra_took_ms: int,
                   signals: Mapping[str, Mapping[str, float]] | None = None) -> JSONObject:
    """The client's page of the reranked response. ``scores`` has one score per hit of
    ``hits.hits[:plan.window]``; None means fallback to the first-stage order. ``signals``:
    the first stage's separate scores by ``hit_key`` (``bm25``, ``knn`` of proxy-side
    hybrid), blended instead of the fused ``_score``."""
    merged = dict(response)
    took = response.get("took")
    if isinstance(took, int) and not isinstance(took, bool):
        merged["took"] = took + extra_took_ms
    hits_section = response.get("hits")
    if not plan.rerank or not isinstance(hits_section, dict):
        return merged
    hits = hits_section.get("hits")
    if not isinstance(hits, list):
        return merged

    window = hits[: plan.window]
    by_signal = _by_signal(plan, window, signals)
    final = _final_scores(plan, window, scores, by_signal)
    order = list(range(len(window)))
    if final is not None:
        order.sort(key=lambda i: -final[i])
    ranked = order + list(range(len(window), len(hits)))

    restore = source_filterer(plan.client_source) if plan.restore_source else None
    page = []
    for position in ranked[plan.from_: plan.from_ + plan.size]:
        if not isinstance(hits[position], dict):  # not a hit: passed on as received
            page.append(hits[position])
            continue
        hit = dict(hits[position])
        reranked = final is not None and position < len(window)
        if final is not None:
            hit["_score"] = final[position] if reranked else None
        if restore is not None:
            _restore_source(hit, plan, restore)
        if plan.explain:
            hit["_crossrank"] = {
                "first_stage_score": hits[position].get("_score"),
                "first_stage_rank": position + 1,
                "rerank_score": _raw(scores, position) if reranked else None,
            }
            if by_signal is not None:
                hit["_crossrank"]["signals"] = {
                    name: column[position] if position < len(window) else None
                    for name, column in by_signal.items()}
        page.append(hit)

    section = dict(hits_section)
    section["hits"] = page
    if final is not None:
        section["max_score"] = max(final) if final else None
    merged["hits"] = section
    return merged


def final_scores(plan: SearchPlan, response: JSONObject, scores: Scores | Sequence[float],
                 signals: Mapping[str, Mapping[str, float]] | None = None) -> list[float]:
    """The window's final scores (the reranker's, or its blend with the first stage), as
    ``merge_response`` orders them."""
    section = response.get("hits")
    hits = section.get("hits") if isinstance(section, dict) else None
    window = hits[: plan.window] if isinstance(hits, list) else []
    final = _final_scores(plan, window, scores, _by_signal(plan, window, signals))
    assert final is not None
    return final


def _restore_source(hit: Hit, plan: SearchPlan,
                    restore: Callable[[JSONObject], JSONObject]) -> None:
    if not plan.client_source.fetch:
        hit.pop("_source", None)
    elif isinstance(hit.get("_source"), dict):
        with contextlib.suppress(RecursionError):  # too deep to filter: kept as fetched
            hit["_source"] = restore(hit["_source"])


def _by_signal(plan: SearchPlan, window: list[Hit],
               signals: Mapping[str, Mapping[str, float]] | None
               ) -> dict[str, list[float | None]] | None:
    """Each hybrid signal's value per window hit (None where a side lacks the hit), when the
    retriever gave them and the policy is hybrid."""
    if not signals or plan.policy is None or plan.policy.hybrid is None \
            or not set(HYBRID_SIGNALS) <= set(signals):
        return None
    keys = [hit_key(hit) if isinstance(hit, dict) else None for hit in window]
    return {name: [signals[name].get(key) if key is not None else None for key in keys]
            for name in HYBRID_SIGNALS}


def _final_scores(plan: SearchPlan, window: list[Hit], scores: Scores | Sequence[float] | None,
                  by_signal: dict[str, list[float | None]] | None) -> list[float] | None:
    if scores is None:
        return None
    if len(scores) != len(window):
        raise ScoreError(f"{len(scores)} scores for a window of {len(window)} hits")
    rerank = [_raw(scores, i) for i in range(len(window))]
    if not all(math.isfinite(value) for value in rerank):
        raise ScoreError("non-finite reranker score")
    scoring = plan.scoring
    if scoring.score_mode == "replace":
        return rerank
    hybrid = plan.policy.hybrid if plan.policy is not None else None
    return blend(rerank, [_first_stage(hit) for hit in window], by_signal,
                 alpha=scoring.blend_alpha, normalization=scoring.normalization,
                 weights=hybrid.weights if hybrid is not None else None)


def _raw(scores: Scores | Sequence[float] | None, index: int) -> float:
    """A reranker score as JSON shows it: a float32 is written with its shortest digits
    (0.9, not 0.8999999761581421), which keeps the order of the float32 values."""
    assert scores is not None
    value = scores[index]
    if isinstance(value, np.float32):
        return float(str(value))
    return float(value)


def _first_stage(hit: Hit) -> float | None:
    score = hit.get("_score") if isinstance(hit, dict) else None
    if isinstance(score, int | float) and not isinstance(score, bool) and math.isfinite(score):
        return float(score)
    return None
