"""The seam between the search pipeline and whatever fetches first-stage hits.

The pipeline (``crossrank.search.pipeline``) says, per search, what it needs (a ``Retrieval``);
a ``Retriever`` answers each with a ``FirstStage``. The proxy's retriever talks to OpenSearch
(``crossrank.proxy.retrieval``: a ``_search``, one ``_msearch`` for the sub-searches of an
``_msearch``, or proxy-side hybrid); ``InlineRetriever`` here holds documents sent with the
request (``POST /_crossrank/rerank``). search/ never imports proxy/: the retriever is handed in.

What a search needs (``Retrieval.mode``, decided by ``retrieval_mode`` from the plan):

- ``window``: the first K candidates, to rerank;
- ``page``: the client's page from the hybrid first stage, for a search of a hybrid policy that
  is not reranked (the baseline arm differs from the rerank arm by the reranker only);
- ``as_sent``: the search as the client sent it (only crossrank's own parameters removed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import orjson

from crossrank.search.plan import SearchPlan
from crossrank.types import Hit, JSONObject

__all__ = ["HYBRID_BYPASS_REASONS", "FirstStage", "InlineRetriever", "Mode", "Retrieval",
           "RetrievalFailed", "Retriever", "retrieval_mode"]

Mode = Literal["window", "page", "as_sent"]

# Bypassed searches that still get the policy's hybrid first stage (the baseline arm of an A/B
# test must differ from the rerank arm by the reranker only). Other bypasses (sort, scroll,
# search_after, ...) ask for what hybrid cannot give, and go to OpenSearch as sent.
HYBRID_BYPASS_REASONS = frozenset({"rerank_false", "ab_baseline", "policy_disabled",
                                   "beyond_window", "not_recommended"})


def retrieval_mode(plan: SearchPlan) -> Mode:
    if plan.rerank:
        return "window"
    if plan.proxy_hybrid and plan.reason in HYBRID_BYPASS_REASONS:
        return "page"
    return "as_sent"


@dataclass(frozen=True)
class Retrieval:
    """One search the pipeline needs answered."""

    plan: SearchPlan
    path: str = "/_search"
    """The search's own ``_search`` path (``/index/_search``)."""
    header: JSONObject | None = None
    """Its header line, for a sub-search of an ``_msearch``."""

    @property
    def mode(self) -> Mode:
        return retrieval_mode(self.plan)


@dataclass(frozen=True)
class FirstStage:
    """A first-stage answer in ``_search`` format.

    ``body`` is the parsed answer when ``status`` is 200; otherwise ``content`` holds
    OpenSearch's own error bytes, passed on as received. ``signals`` holds, per first-stage
    signal (``bm25``, ``knn`` for proxy-side hybrid), the score of each hit that signal
    returned, keyed by ``crossrank.types.hit_key``; empty when the hit's ``_score`` is the
    only signal.
    ``hybrid`` says how a hybrid first stage was built: ``rrf`` / ``rsf`` when the lists were
    fused, ``skipped:<reason>`` or ``fallback:<reason>`` when BM25 answered alone.
    """

    status: int
    body: JSONObject | None = None
    content: bytes = b""
    hybrid: str | None = None
    signals: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @classmethod
    def parsed(cls, status: int, content: bytes, hybrid: str | None = None,
               signals: Mapping[str, Mapping[str, float]] | None = None) -> FirstStage:
        body = orjson.loads(content) if status == 200 else None
        return cls(status, body if isinstance(body, dict) else None, content, hybrid,
                   signals or {})


class RetrievalFailed(Exception):
    """The first stage of the whole request failed upstream (an ``_msearch`` answered with an
    error status): the answer is passed on to the client as OpenSearch gave it."""

    def __init__(self, status: int, content: bytes) -> None:
        super().__init__(f"first stage answered {status}")
        self.status = status
        self.content = content


class Retriever(Protocol):
    async def retrieve(self, searches: Sequence[Retrieval]) -> list[FirstStage]:
        """One answer per search, in order; raises ``RetrievalFailed``."""
        ...


class InlineRetriever:
    """First stages that are already here: one list of hits per search, as given (the rerank
    endpoint's documents, or fixed lists in unit tests of the pipeline)."""

    def __init__(self, hits: Sequence[Sequence[Hit]],
                 signals: Sequence[Mapping[str, Mapping[str, float]]] | None = None) -> None:
        self._hits = [list(h) for h in hits]
        self._signals = list(signals) if signals is not None else [{} for _ in hits]
        self.calls: list[list[Retrieval]] = []

    async def retrieve(self, searches: Sequence[Retrieval]) -> list[FirstStage]:
        self.calls.append(list(searches))
        if len(searches) != len(self._hits):
            raise ValueError(f"{len(searches)} searches for {len(self._hits)} hit lists")
        answers = []
        for search, hits, signals in zip(searches, self._hits, self._signals, strict=True):
            plan = search.plan
            shown = hits if search.mode == "window" else hits[plan.from_: plan.from_ + plan.size]
            scores = [h["_score"] for h in shown if isinstance(h.get("_score"), int | float)]
            body: JSONObject = {"took": 0, "timed_out": False, "hits": {
                "total": {"value": len(hits), "relation": "eq"},
                "max_score": max(scores) if scores else None, "hits": shown}}
            answers.append(FirstStage(200, body, b"", None, signals))
        return answers
