"""The one search pipeline: plan → retrieve → score → merge, for every route.

``_search``, each sub-search of an ``_msearch`` and ``POST /_crossrank/rerank`` run through
``run``. The handlers plan (``crossrank.search.plan``), hand ``run`` their searches and a
``Retriever`` (``crossrank.search.retrieval``), and render the ``Outcome``s; this module does
the rest:

1. retrieve: one call for all the searches (the retriever decides how they go upstream);
2. score: every (query, hit) pair of every reranked window, grouped per model (and per pair
   length and chunking: a long document may be read in several windows), scores found in
   the score cache reused, one scorer call per model, under the tightest latency budget; a
   policy with a ``cascade`` is scored in two stages (its small model over the window, then
   its own model over the small model's top ``rescore``, ``combine_cascade``);
3. merge: re-order, page, restore ``_source``, fix ``max_score`` and ``took``
   (``crossrank.search.merge``).

Failure is never worse than no reranker: a scorer error, a missed budget, a full queue or a
non-finite score leaves that search in first-stage order, marked ``fallback`` with a reason.
A first stage that OpenSearch answered with an error is passed on as received.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from crossrank.models.errors import QueueFull
from crossrank.models.protocols import Scorer
from crossrank.models.tokenization import Chunking
from crossrank.search.merge import document_texts, final_scores, merge_response
from crossrank.search.plan import SearchPlan
from crossrank.search.retrieval import FirstStage, Retrieval, Retriever
from crossrank.search.score_cache import CacheKey, ScoreCache
from crossrank.types import JSONObject, Pair, Scores

__all__ = ["Outcome", "Scorer", "Status", "run"]


Status = Literal["reranked", "fallback", "bypassed"]


@dataclass(frozen=True)
class Outcome:
    """What became of one search.

    ``body`` is the answer to send (parsed or composed) when ``status_code`` is 200;
    ``content`` holds the first stage's own bytes (an upstream error, or a page that was not
    changed), to pass on unchanged when crossrank composed nothing.
    """

    plan: SearchPlan
    status: Status
    reason: str | None
    status_code: int
    body: JSONObject | None
    content: bytes
    hybrid: str | None
    retrieve_ms: float
    score_ms: float = 0.0
    pairs: int = 0
    missing_fields: int = 0
    scores: Scores | None = None
    """The reranker's score of each window hit, in first-stage order (None unless reranked)."""

    @property
    def timings(self) -> dict[str, float]:
        return {"retrieve": self.retrieve_ms, "score": self.score_ms}


@dataclass
class _Job:
    index: int
    plan: SearchPlan
    first_stage: FirstStage
    pairs: list[Pair]
    missing: int
    hit_ids: list[tuple[str, str]]  # (_index, _id) of each window hit
    scores: Scores | None = None
    reason: str | None = None

    def key(self, model: str, i: int) -> CacheKey:
        assert self.plan.policy is not None and self.plan.query_text is not None
        return ScoreCache.key(model, self.plan.policy.max_length, self.plan.query_text,
                              *self.hit_ids[i], self.pairs[i][1], self.plan.chunking)


@dataclass
class _Stage:
    """One model's scores for some of a job's window hits (``indices``, in window order)."""

    job: _Job
    model: str
    indices: list[int]
    scores: Scores | None = None


async def run(searches: Sequence[Retrieval], retriever: Retriever, scorer: Scorer, *,
              started: float, cache: ScoreCache | None = None) -> list[Outcome]:
    """One outcome per search, in order. ``started`` is the request's monotonic start, so that
    ``took`` includes crossrank's own time. Raises ``RetrievalFailed`` when the first stage of
    the whole request failed."""
    began = time.perf_counter()
    answers = await retriever.retrieve(searches)
    retrieve_ms = (time.perf_counter() - began) * 1000
    if len(answers) != len(searches):
        raise ValueError(f"the retriever answered {len(answers)} of {len(searches)} searches")

    outcomes: list[Outcome | None] = [None] * len(searches)
    jobs: list[_Job] = []
    for index, (search, answer) in enumerate(zip(searches, answers, strict=True)):
        plan = search.plan
        if search.mode != "window" or answer.status != 200 or answer.body is None:
            reason = plan.reason if search.mode != "window" else "upstream_status"
            outcomes[index] = Outcome(plan, "bypassed", reason, answer.status, answer.body,
                                      answer.content, answer.hybrid, retrieve_ms)
            continue
        if plan.proxy_hybrid and not answer.signals:  # BM25 answered alone: score it as BM25
            plan = plan.for_first_stage("bm25")
        jobs.append(_job(index, plan, answer))

    score_began = time.perf_counter()
    await _score(jobs, scorer, cache)
    score_ms = (time.perf_counter() - score_began) * 1000

    for job in jobs:
        body = job.first_stage.body
        assert body is not None
        # took is OpenSearch's time plus everything crossrank spent outside the upstream call
        extra_ms = max(0, round((time.monotonic() - started) * 1000 - _upstream_ms(body)))
        merged = merge_response(job.plan, body, job.scores, signals=job.first_stage.signals,
                                extra_took_ms=extra_ms)
        outcomes[job.index] = Outcome(
            job.plan, "reranked" if job.scores is not None else "fallback", job.reason, 200,
            merged, job.first_stage.content, job.first_stage.hybrid, retrieve_ms, score_ms,
            len(job.pairs), job.missing, job.scores)
    return [outcome for outcome in outcomes if outcome is not None]


def _job(index: int, plan: SearchPlan, answer: FirstStage) -> _Job:
    assert plan.policy is not None and plan.query_text is not None and answer.body is not None
    section = answer.body.get("hits")
    listed = section.get("hits") if isinstance(section, dict) else None
    hits = listed[: plan.window] if isinstance(listed, list) else []
    texts, missing = document_texts(hits, plan.policy)
    hit_ids = [(str(_field(hit, "_index")), str(_field(hit, "_id"))) for hit in hits]
    return _Job(index, plan, answer, [(plan.query_text, t) for t in texts], missing, hit_ids)


def _field(hit: object, name: str) -> object:
    return hit.get(name, "") if isinstance(hit, dict) else ""


async def _score(jobs: list[_Job], scorer: Scorer, cache: ScoreCache | None) -> None:
    """Every job's window scores, or its fallback reason."""
    first = [_Stage(job, job.plan.policy.cascade.model, list(range(len(job.pairs))))
             for job in jobs if job.plan.policy is not None and job.plan.policy.cascade]
    await _score_stages(first, scorer, cache)
    small = {id(stage.job): stage for stage in first}
    second = []
    for job in jobs:
        assert job.plan.policy is not None
        stage = small.get(id(job))
        if stage is None:
            second.append(_Stage(job, job.plan.policy.model, list(range(len(job.pairs)))))
        elif stage.scores is not None and job.plan.policy.cascade is not None:
            # the small model's list as the policy's scoring would rank it (its blend with
            # the first stage, if any): the full model rescores that list's top
            assert job.first_stage.body is not None  # scores are finite: _score_group checked
            ranked = final_scores(job.plan, job.first_stage.body, stage.scores,
                                  job.first_stage.signals)
            second.append(_Stage(job, job.plan.policy.model,
                                 rescored(np.asarray(ranked), job.plan.policy.cascade.rescore)))
    await _score_stages(second, scorer, cache)
    for stage in second:
        if stage.scores is None:
            continue
        prior = small.get(id(stage.job))  # a cascade's second stage ran only on its scores
        stage.job.scores = (stage.scores if prior is None or prior.scores is None else
                            combine_cascade(prior.scores, stage.indices, stage.scores))


def rescored(scores: Scores, rescore: int) -> list[int]:
    """The window positions of the ``rescore`` best-scored hits, in window order."""
    top = np.argsort(-scores, kind="stable")[:rescore]
    return sorted(int(i) for i in top)


def combine_cascade(small: Scores, indices: Sequence[int], full: Scores) -> Scores:
    """The small model's window scores with the rescored hits' replaced by the full model's,
    mapped onto the small model's mean and spread over those same hits."""
    combined = np.asarray(small, dtype=np.float32).copy()
    if not len(indices):
        return combined
    chosen = np.asarray(small, dtype=np.float64)[list(indices)]
    full64 = np.asarray(full, dtype=np.float64)
    spread = full64.std()
    scaled = (chosen.mean() + (full64 - full64.mean()) * (chosen.std() / spread)
              if spread > 0 else np.full_like(full64, chosen.mean()))
    combined[list(indices)] = scaled.astype(np.float32)
    return combined


async def _score_stages(stages: list[_Stage], scorer: Scorer,
                        cache: ScoreCache | None) -> None:
    groups: dict[tuple[str, int | None, Chunking | None], list[_Stage]] = {}
    for stage in stages:
        plan = stage.job.plan
        assert plan.policy is not None
        groups.setdefault((stage.model, plan.policy.max_length, plan.chunking),
                          []).append(stage)
    await asyncio.gather(*(_score_group(model, max_length, chunking, group, scorer, cache)
                           for (model, max_length, chunking), group in groups.items()))


async def _score_group(model: str, max_length: int | None, chunking: Chunking | None,
                       group: list[_Stage], scorer: Scorer, cache: ScoreCache | None) -> None:
    keys = [[stage.job.key(model, i) for i in stage.indices] for stage in group]
    cached: list[list[float | None]] = [
        cache.get_many(k) if cache is not None else [None] * len(k) for k in keys]
    todo = [(n, j) for n, values in enumerate(cached) for j, v in enumerate(values) if v is None]
    budgets = [stage.job.plan.policy.budget_ms for stage in group
               if stage.job.plan.policy is not None
               and stage.job.plan.policy.budget_ms is not None]
    timeout = min(budgets) / 1000 if budgets else None
    fresh = np.zeros(0, dtype=np.float32)
    if todo:
        pairs = [group[n].job.pairs[group[n].indices[j]] for n, j in todo]
        try:
            fresh = await asyncio.wait_for(
                scorer.score(model, pairs, max_length=max_length, chunking=chunking), timeout)
            if len(fresh) != len(pairs) or not np.all(np.isfinite(fresh)):
                _fail(group, "non_finite_scores" if len(fresh) == len(pairs)
                      else "wrong_score_count")
                return
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
            cache.put_many([keys[n][j] for n, j in todo], fresh.tolist())
    for value, (n, j) in zip(fresh.tolist(), todo, strict=True):
        cached[n][j] = value
    for stage, values in zip(group, cached, strict=True):
        stage.scores = np.asarray(values, dtype=np.float32)


def _fail(group: list[_Stage], reason: str) -> None:
    for stage in group:
        stage.scores = None
        stage.job.scores = None
        stage.job.reason = reason


def _upstream_ms(response: Mapping[str, object]) -> float:
    took = response.get("took")
    return float(took) if isinstance(took, int | float) else 0.0
