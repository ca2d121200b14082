"""Which scoring settings a search gets: the policy's own, else the model card's for the kind of
first stage, else the built-in defaults.

The first stage's kind (``first_stage_kind``):

- proxy-side hybrid (a policy whose ``hybrid`` section is enabled, on a query without a vector
  clause of its own): ``hybrid``, or ``knn`` / ``bm25`` when one side's weight is 0;
- a query with a native ``hybrid`` clause: ``hybrid``; with ``knn`` or ``neural``: ``knn``;
- anything else: ``bm25`` (full-text retrieval).

Resolution (``resolve_scoring``), field by field: a field the policy sets wins; a field it
leaves out (``null``) comes from the card's entry for the kind (``crossrank.json``,
``recommended``), else from ``Scoring()``'s defaults. The card's ``rerank: false`` (the model
did not beat that first stage where the card was measured) applies only to a policy that
chose no ``score_mode``: a team that set its own scoring has decided for itself. The window is
capped by the policy's ``max_window``.
"""

from __future__ import annotations

from collections.abc import Mapping

from crossrank.models.manifest import FirstStageKind, Scoring
from crossrank.policy import Policy
from crossrank.search.hybrid_plan import has_vector_clause, is_hybrid_clause, query_clauses
from crossrank.types import JSON

__all__ = ["Card", "first_stage_kind", "resolve_scoring"]

Card = Mapping[FirstStageKind, Scoring]
"""A model's recommended scoring per kind of first stage (may be empty)."""

_SCORING_FIELDS = ("score_mode", "blend_alpha", "normalization", "window")


def first_stage_kind(policy: Policy, query: JSON, *, has_text: bool = True) -> FirstStageKind:
    """The kind of the search's first stage; ``has_text``: the search has query text (without
    it, proxy-side hybrid has nothing to embed and BM25 answers as sent)."""
    hybrid = policy.hybrid
    if hybrid is not None and hybrid.enabled and has_text and not has_vector_clause(query):
        bm25_weight, knn_weight = hybrid.weights
        if bm25_weight == 0:
            return "knn"
        return "bm25" if knn_weight == 0 else "hybrid"
    if any(is_hybrid_clause(key, value) for key, value in query_clauses(query)):
        return "hybrid"
    if has_vector_clause(query):
        return "knn"
    return "bm25"


def resolve_scoring(policy: Policy, kind: FirstStageKind,
                    card: Card | None = None) -> tuple[Scoring, str]:
    """The settings, and where they came from: ``policy`` (it set at least one scoring field),
    ``model_card`` or ``default``."""
    recommended = (card or {}).get(kind)
    base = recommended if recommended is not None else Scoring()
    chosen = {name: getattr(policy, name) for name in _SCORING_FIELDS
              if getattr(policy, name) is not None}
    rerank = base.rerank if policy.score_mode is None else True
    window = min(chosen.get("window", base.window), policy.max_window)
    source = "policy" if chosen else ("model_card" if recommended is not None else "default")
    return base.model_copy(update={**chosen, "rerank": rerank, "window": window}), source
