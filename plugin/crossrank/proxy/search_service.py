"""What every searching route shares: the pipeline call, its metrics and its headers.

``_search``, ``_msearch`` and ``POST /_crossrank/rerank`` each parse their request, plan, and
call ``SearchService.run``; the outcome is counted here (arm, outcome and reason; pairs, score
time, missing text fields; score cache hits) and described by ``outcome_headers``, so no
handler records or names an outcome by itself.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from crossrank.models.protocols import Scorer
from crossrank.policy import Policy
from crossrank.proxy.metrics import Metrics
from crossrank.proxy.policy_store import PolicyStore
from crossrank.proxy.retrieval import HYBRID_HEADER, UpstreamRetriever
from crossrank.proxy.upstream import Upstream
from crossrank.search import pipeline
from crossrank.search.pipeline import Outcome
from crossrank.search.plan import SearchPlan
from crossrank.search.retrieval import Retrieval, Retriever
from crossrank.search.score_cache import ScoreCache
from crossrank.search.scoring import Card

Headers = list[tuple[bytes, bytes]]


@dataclass
class SearchService:
    upstream: Upstream
    policies: PolicyStore
    scorer: Scorer
    metrics: Metrics
    max_json_depth: int = 100
    cache: ScoreCache | None = None
    cards: Mapping[str, Card] = field(default_factory=dict)
    """Each model's recommended scoring (``ModelRegistry.cards``)."""

    def card(self, policy: Policy | None) -> Card | None:
        return self.cards.get(policy.model) if policy is not None else None

    def retriever(self, headers: Headers, *,
                  msearch: tuple[str, bytes] | None = None) -> UpstreamRetriever:
        return UpstreamRetriever(self.upstream, self.scorer, headers, msearch=msearch)

    async def run(self, searches: Sequence[Retrieval], retriever: Retriever,
                  started: float | None = None) -> list[Outcome]:
        """The pipeline, counted: one outcome per search."""
        hits, misses = (self.cache.hits, self.cache.misses) if self.cache else (0, 0)
        outcomes = await pipeline.run(searches, retriever, self.scorer, cache=self.cache,
                                      started=time.monotonic() if started is None else started)
        if self.cache is not None:
            self.metrics.cache_lookups.labels("hit").inc(self.cache.hits - hits)
            self.metrics.cache_lookups.labels("miss").inc(self.cache.misses - misses)
        for outcome in outcomes:
            self.record(outcome)
        return outcomes

    def count(self, plan: SearchPlan | None, outcome: str, reason: str | None) -> None:
        """A search answered without the pipeline (a pass-through)."""
        name = plan.policy.name if plan is not None and plan.policy else ""
        arm = (plan.arm or "") if plan is not None else ""
        self.metrics.outcomes.labels(name, arm, outcome, reason or "").inc()

    def record(self, outcome: Outcome) -> None:
        plan = outcome.plan
        self.count(plan, outcome.status, outcome.reason)
        if outcome.status == "bypassed" or plan.policy is None:
            return
        if outcome.missing_fields:
            self.metrics.missing_fields.labels(plan.policy.name).inc(outcome.missing_fields)
        self.metrics.pairs.labels(plan.policy.model).observe(outcome.pairs)
        self.metrics.score_seconds.labels(plan.policy.model).observe(outcome.score_ms / 1000)


def outcome_headers(plan: SearchPlan | None, status: str, reason: str | None,
                    timings: Mapping[str, float] | None = None,
                    hybrid: str | None = None) -> Headers:
    """``X-Crossrank-Status``, ``-Arm``, ``-Window`` (the window K a reranked search
    scored), ``-Reason``, ``-Hybrid`` and ``Server-Timing``."""
    headers = [(b"x-crossrank-status", status.encode())]
    if plan is not None and plan.arm is not None:
        headers.append((b"x-crossrank-arm", plan.arm.encode()))
    if plan is not None and plan.rerank and status == "reranked" and plan.window:
        headers.append((b"x-crossrank-window", str(plan.window).encode()))
    if reason:
        headers.append((b"x-crossrank-reason", reason.encode("latin-1", "replace")))
    if hybrid:
        headers.append((HYBRID_HEADER.encode(), hybrid.encode("latin-1", "replace")))
    if timings:
        value = ", ".join(f"{name};dur={ms:.1f}" for name, ms in timings.items())
        headers.append((b"server-timing", value.encode()))
    return headers


def headers_of(outcome: Outcome) -> Headers:
    """The headers of one search's answer (timings only where the pipeline scored)."""
    timings = outcome.timings if outcome.status != "bypassed" else None
    return outcome_headers(outcome.plan, outcome.status, outcome.reason, timings,
                           outcome.hybrid)
