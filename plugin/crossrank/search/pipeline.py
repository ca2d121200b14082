"""Score the retrieved windows of one or more planned searches, then merge.

The only awaiting module of ``search/``: it takes planned searches with their first-stage
responses, sends every (query, hit) pair to the scorer (all sub-searches of an ``_msearch``
together, one call per model), and merges each response. A scorer that fails or misses the
policy's latency budget never fails the search: that search keeps its first-stage order and is
marked ``fallback``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from crossrank.models.batcher import QueueFull
from crossrank.search.merge import document_texts, merge_response
from crossrank.search.plan import SearchPlan
from crossrank.search.score_cache import CacheKey, ScoreCache
from crossrank.types import JSONObject, Pair, Scores


class Scorer(Protocol):
    async def score(self, model: str, pairs: Sequence[Pair], *,
                    max_length: int | None = None) -> Scores: ...


Status = Literal["reranked", "fallback"]


@dataclass(frozen=True)
class Reranked:
    body: JSONObject
    status: Status
    reason: str | None
    score_ms: float
    pairs: int
    missing_fields: int


@dataclass
class _Job:
    plan: SearchPlan
    response: JSONObject
    pairs: list[Pair]
    missing: int
    keys: list[CacheKey]
    cached: list[float | None]
    scores: Scores | None = None
    reason: str | None = None

    def misses(self) -> list[int]:
        return [i for i, value in enumerate(self.cached) if value is None]


async def rerank(items: Sequence[tuple[SearchPlan, JSONObject]], scorer: Scorer, *,
                 started: float, cache: ScoreCache | None = None) -> list[Reranked]:
    """Rerank each (plan, first-stage response); ``started`` is the request's monotonic start,
    so that ``took`` can include crossrank's own time. Scores found in ``cache`` are reused."""
    jobs = []
    for plan, response in items:
        assert plan.policy is not None and plan.query_text is not None
        hits = response.get("hits", {}).get("hits", [])[: plan.window]
        texts, missing = document_texts(hits, plan.policy)
        keys = [ScoreCache.key(plan.policy.model, plan.policy.max_length, plan.query_text,
                               str(hit.get("_index", "")), str(hit.get("_id", "")), text)
                for hit, text in zip(hits, texts, strict=True)]
        cached: list[float | None] = (cache.get_many(keys) if cache is not None
                                      else [None] * len(keys))
        jobs.append(_Job(plan, response, [(plan.query_text, t) for t in texts], missing,
                         keys, cached))

    groups: dict[tuple[str, int | None], list[_Job]] = {}
    for job in jobs:
        assert job.plan.policy is not None
        groups.setdefault((job.plan.policy.model, job.plan.policy.max_length), []).append(job)
    score_began = time.perf_counter()
    await asyncio.gather(*(_score_group(model, max_length, group, scorer, cache)
                           for (model, max_length), group in groups.items()))
    score_ms = (time.perf_counter() - score_began) * 1000

    results = []
    for job in jobs:
        # took is OpenSearch's time plus everything crossrank spent outside the upstream call
        extra_ms = max(0, round((time.monotonic() - started) * 1000
                                - _upstream_ms(job.response)))
        body = merge_response(job.plan, job.response, job.scores, extra_took_ms=extra_ms)
        status: Status = "reranked" if job.scores is not None else "fallback"
        results.append(Reranked(body, status, job.reason, score_ms, len(job.pairs),
                                job.missing))
    return results


async def _score_group(model: str, max_length: int | None, group: list[_Job],
                       scorer: Scorer, cache: ScoreCache | None) -> None:
    todo = [(job, i) for job in group for i in job.misses()]
    budgets = [job.plan.policy.budget_ms for job in group
               if job.plan.policy is not None and job.plan.policy.budget_ms is not None]
    timeout = min(budgets) / 1000 if budgets else None
    fresh = np.zeros(0, dtype=np.float32)
    if todo:
        pairs = [job.pairs[i] for job, i in todo]
        try:
            fresh = await asyncio.wait_for(
                scorer.score(model, pairs, max_length=max_length), timeout)
            if len(fresh) != len(pairs) or not np.all(np.isfinite(fresh)):
                raise ValueError("scorer returned a wrong number of scores or non-finite values")
        except TimeoutError:
            _fail(group, "budget_exceeded")
            return
        except QueueFull:  # backpressure: the search is answered, in first-stage order
            _fail(group, "overloaded")
            return
        except Exception as exc:  # any scorer failure degrades to the first-stage order
            _fail(group, f"scorer_error:{type(exc).__name__}")
            return
        if cache is not None:
            cache.put_many([job.keys[i] for job, i in todo], fresh.tolist())
    for n, (job, i) in enumerate(todo):
        job.cached[i] = float(fresh[n])
    for job in group:
        job.scores = np.asarray(job.cached, dtype=np.float32)


def _fail(group: list[_Job], reason: str) -> None:
    for job in group:
        job.scores = None
        job.reason = reason


def _upstream_ms(response: JSONObject) -> float:
    took = response.get("took")
    return float(took) if isinstance(took, int | float) else 0.0
