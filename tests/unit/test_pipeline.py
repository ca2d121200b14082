"""The one search pipeline (plan → retrieve → score → merge) over fixed hit lists.

The retriever here is ``InlineRetriever`` (the rerank endpoint's own retriever: documents that
came with the request); the scorers are small async objects with the registry's ``score``
signature that score by a rule the test can predict. The pipeline logic is pure apart from
awaiting them, so no OpenSearch and no model is needed; integration tests cover both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from crossrank.models.errors import QueueFull
from crossrank.policy import Policy
from crossrank.search import pipeline
from crossrank.search.plan import SearchPlan, plan_inline, plan_search
from crossrank.search.retrieval import InlineRetriever, Retrieval
from crossrank.search.score_cache import ScoreCache
from crossrank.types import Pair, Scores

POLICY = Policy(name="docs", text_fields=["text"], window=5, max_window=10, budget_ms=1000)


def hits(n: int) -> list[dict[str, Any]]:
    """First-stage order d0, d1, ...; the text says the reranker's score ("s<k>")."""
    return [{"_index": "docs", "_id": f"d{i}", "_score": float(n - i),
             "_source": {"text": f"s{i}"}} for i in range(n)]


class ByText:
    """Scores a pair by the number in its document text: "s3" scores 3 (so d{n-1} is best)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Pair]]] = []

    async def score(self, model: str, pairs: Sequence[Pair], *,
                    max_length: int | None = None, chunking: object = None) -> Scores:
        self.calls.append((model, list(pairs)))
        return np.array([float(doc[1:]) for _, doc in pairs], dtype=np.float32)


class Failing:
    def __init__(self, error: BaseException | None = None, scores: list[float] | None = None,
                 delay: float = 0.0) -> None:
        self.error, self.scores, self.delay = error, scores, delay

    async def score(self, model: str, pairs: Sequence[Pair], *,
                    max_length: int | None = None, chunking: object = None) -> Scores:
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return np.array(self.scores or [], dtype=np.float32)


def plan(body: dict[str, Any] | None = None, policy: Policy = POLICY,
         params: list[tuple[str, str]] | None = None) -> SearchPlan:
    return plan_search({"query": {"match": {"text": "q"}}, **(body or {})}, params or [],
                       policy, {})


def ids(outcome: pipeline.Outcome) -> list[str]:
    assert outcome.body is not None
    return [hit["_id"] for hit in outcome.body["hits"]["hits"]]


async def run(plans: list[SearchPlan], lists: list[list[dict[str, Any]]], scorer: Any,
              cache: ScoreCache | None = None) -> list[pipeline.Outcome]:
    return await pipeline.run([Retrieval(p) for p in plans], InlineRetriever(lists), scorer,
                              started=0.0, cache=cache)


async def test_the_window_is_reordered_and_the_tail_follows_in_first_stage_order() -> None:
    [outcome] = await run([plan({"size": 8})], [hits(8)], ByText())
    assert outcome.status == "reranked" and outcome.reason is None
    assert ids(outcome) == ["d4", "d3", "d2", "d1", "d0", "d5", "d6", "d7"]
    assert outcome.pairs == 5 and outcome.scores is not None
    assert outcome.body is not None and outcome.body["hits"]["max_score"] == 4.0


async def test_pages_inside_and_past_the_window() -> None:
    first = (await run([plan({"size": 2})], [hits(8)], ByText()))[0]
    second = (await run([plan({"from": 2, "size": 2})], [hits(8)], ByText()))[0]
    straddling = (await run([plan({"from": 4, "size": 3})], [hits(8)], ByText()))[0]
    assert ids(first) == ["d4", "d3"] and ids(second) == ["d2", "d1"]
    assert ids(straddling) == ["d0", "d5", "d6"]  # the window's last, then the tail
    assert straddling.body is not None
    assert [h["_score"] for h in straddling.body["hits"]["hits"]] == [0.0, None, None]


@pytest.mark.parametrize("scorer, reason", [
    (Failing(RuntimeError("boom")), "scorer_error:RuntimeError"),
    (Failing(QueueFull("full")), "overloaded"),
    (Failing(scores=[1.0, float("nan"), 2.0, 3.0, 4.0]), "non_finite_scores"),
    (Failing(scores=[1.0]), "wrong_score_count"),
    (Failing(delay=5.0), "budget_exceeded"),
])
async def test_a_scorer_failure_falls_back_to_first_stage_order(scorer: Any,
                                                                reason: str) -> None:
    budget = POLICY.model_copy(update={"budget_ms": 50.0})
    [outcome] = await run([plan({"size": 3}, budget)], [hits(8)], scorer)
    assert (outcome.status, outcome.reason) == ("fallback", reason)
    assert ids(outcome) == ["d0", "d1", "d2"]
    assert outcome.body is not None and outcome.body["hits"]["hits"][0]["_score"] == 8.0


async def test_searches_are_scored_together_per_model_and_each_merged_alone() -> None:
    other = POLICY.model_copy(update={"model": "other"})
    scorer = ByText()
    outcomes = await run([plan({"size": 2}), plan({"size": 2}, other), plan({"size": 1})],
                         [hits(6), hits(3), hits(2)], scorer)
    assert [ids(o) for o in outcomes] == [["d4", "d3"], ["d2", "d1"], ["d1"]]
    assert sorted((model, len(pairs)) for model, pairs in scorer.calls) == [
        ("default", 7), ("other", 3)]  # one call per model, the pairs of all its searches


async def test_one_model_failing_leaves_the_other_models_searches_reranked() -> None:
    class OneFails(ByText):
        async def score(self, model: str, pairs: Sequence[Pair], *,
                        max_length: int | None = None, chunking: object = None) -> Scores:
            if model == "other":
                raise RuntimeError("other is down")
            return await super().score(model, pairs, max_length=max_length)

    other = POLICY.model_copy(update={"model": "other"})
    ok, failed = await run([plan(), plan({}, other)], [hits(3), hits(3)], OneFails())
    assert (ok.status, failed.status) == ("reranked", "fallback")


async def test_bypassed_searches_are_passed_on_as_retrieved() -> None:
    bypassed = plan(params=[("rerank", "false")])
    scorer = ByText()
    [outcome] = await run([bypassed], [hits(3)], scorer)
    assert (outcome.status, outcome.reason) == ("bypassed", "rerank_false")
    assert ids(outcome) == ["d0", "d1", "d2"] and scorer.calls == []


async def test_the_score_cache_spares_the_scorer_on_the_next_page() -> None:
    cache = ScoreCache(100)
    scorer = ByText()
    await run([plan({"size": 2})], [hits(6)], scorer, cache)
    [page2] = await run([plan({"from": 2, "size": 2})], [hits(6)], scorer, cache)
    assert len(scorer.calls) == 1 and ids(page2) == ["d2", "d1"]


async def test_an_inline_plan_ranks_documents_by_the_reranker_alone() -> None:
    documents = [{"_index": "", "_id": str(i), "_score": None, "_source": {"text": text}}
                 for i, text in enumerate(["s1", "s7", "s3"])]
    top = plan_inline("q", 3, model="default", max_length=None, top_n=2)
    [outcome] = await pipeline.run([Retrieval(top)], InlineRetriever([documents]), ByText(),
                                   started=0.0)
    assert ids(outcome) == ["1", "2"]
    assert outcome.body is not None
    assert [h["_score"] for h in outcome.body["hits"]["hits"]] == [7.0, 3.0]
    [failed] = await pipeline.run([Retrieval(top)], InlineRetriever([documents]),
                                  Failing(RuntimeError("x")), started=0.0)
    assert failed.status == "fallback" and ids(failed) == ["0", "1"]  # the order given


async def test_hybrid_windows_blend_each_signal_not_the_fused_score() -> None:
    """The reranker agrees with neither side; BM25 ranks d0 first, k-NN d2. With BM25 weighted
    3:1 the blend must follow BM25's own scores, whatever the fused _score says."""
    hybrid = Policy.model_validate({
        "name": "docs", "text_fields": ["text"], "window": 3, "score_mode": "blend",
        "blend_alpha": 0.0, "hybrid": {"vector_field": "v", "model": "m",
                                       "weights": [3.0, 1.0]}})
    window = [{"_index": "docs", "_id": f"d{i}", "_score": 1.0, "_source": {"text": "s0"}}
              for i in range(3)]
    signals = {"bm25": {"docs\0d0": 9.0, "docs\0d1": 5.0},
               "knn": {"docs\0d0": 0.1, "docs\0d1": 0.5, "docs\0d2": 0.9}}
    searched = plan_search({"query": {"match": {"text": "q"}}, "size": 3}, [], hybrid, {})
    assert searched.first_stage == "hybrid"
    [outcome] = await pipeline.run([Retrieval(searched)],
                                   InlineRetriever([window], [signals]), ByText(), started=0.0)
    # min-max: bm25 d0 1, d1 0, d2 (absent) 0; knn d0 0, d1 0.5, d2 1
    # final = 0.75 * bm25 + 0.25 * knn: d0 0.75, d1 0.125, d2 0.25
    assert ids(outcome) == ["d0", "d2", "d1"]


class TwoModels:
    """"small" scores by the text's number, except that it misjudges d0 as the best; "full"
    scores by the number. Records each call's model and documents."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    async def score(self, model: str, pairs: Sequence[Pair], *,
                    max_length: int | None = None, chunking: object = None) -> Scores:
        self.calls.append((model, [doc for _, doc in pairs]))
        values = [float(doc[1:]) for _, doc in pairs]
        if model == "small":
            values = [100.0 if doc == "s0" else v
                      for (_, doc), v in zip(pairs, values, strict=True)]
        return np.array(values, dtype=np.float32)


def cascade_policy(rescore: int) -> Policy:
    from crossrank.policy import CascadeSection

    return POLICY.model_copy(update={"model": "full", "score_mode": "replace",
                                     "cascade": CascadeSection(model="small",
                                                               rescore=rescore)})


async def test_a_cascade_rescores_only_the_small_models_top_with_the_full_model() -> None:
    scorer = TwoModels()
    [outcome] = await run([plan({"size": 5}, cascade_policy(3))], [hits(8)], scorer)
    # small over the window d0..d4: d0 (100), d4, d3 first; full rescores those three
    assert scorer.calls == [("small", ["s0", "s1", "s2", "s3", "s4"]),
                            ("full", ["s0", "s3", "s4"])]
    assert outcome.status == "reranked"
    # the three rescored hits get the full model's order on the small model's scale over
    # them (mean 35.7, spread 45.5): d4 and d3 stay on top, d0 falls below d2 and d1, which
    # only the small model scored
    assert ids(outcome) == ["d4", "d3", "d2", "d1", "d0"]
    assert outcome.scores is not None and outcome.scores[0] < 1.0


async def test_a_cascade_over_the_whole_window_is_the_full_model_alone() -> None:
    whole = await run([plan({"size": 5}, cascade_policy(5))], [hits(8)], TwoModels())
    alone = await run([plan({"size": 5}, cascade_policy(5).model_copy(
        update={"cascade": None}))], [hits(8)], TwoModels())
    assert ids(whole[0]) == ids(alone[0]) == ["d4", "d3", "d2", "d1", "d0"]


async def test_a_cascade_stage_failing_falls_back_to_first_stage_order() -> None:
    class SmallFails(TwoModels):
        async def score(self, model: str, pairs: Sequence[Pair], *,
                        max_length: int | None = None, chunking: object = None) -> Scores:
            if model == "small":
                raise RuntimeError("small is down")
            return await super().score(model, pairs, max_length=max_length)

    [outcome] = await run([plan({"size": 3}, cascade_policy(2))], [hits(8)], SmallFails())
    assert (outcome.status, outcome.reason) == ("fallback", "scorer_error:RuntimeError")
    assert ids(outcome) == ["d0", "d1", "d2"]


def test_combine_cascade_maps_the_full_scores_onto_the_small_scale() -> None:
    small = np.array([1.0, 5.0, 3.0, 0.0], dtype=np.float32)
    combined = pipeline.combine_cascade(small, [1, 2], np.array([-10.0, 10.0]))
    assert combined[1] == pytest.approx(3.0) and combined[2] == pytest.approx(5.0)
    assert combined[0] == 1.0 and combined[3] == 0.0
    flat = pipeline.combine_cascade(small, [1, 2], np.array([2.0, 2.0]))
    assert flat[1] == flat[2] == pytest.approx(4.0)


async def test_a_cascade_with_a_blend_rescores_the_top_of_the_blended_small_list() -> None:
    # blend alpha 0.5 of min-max scores. First stage d0..d4: 1, .75, .5, .25, 0; small
    # model (d0 = 100, else the number): 1, 0, .01, .02, .03. Blended: d0 1.0, d1 .375,
    # d2 .255, d3 .135, d4 .015, so the top 2 rescored are d0 and d1 (by the small model
    # alone they would be d0 and d4)
    blend = cascade_policy(2).model_copy(update={"score_mode": "blend", "blend_alpha": 0.5,
                                                 "normalization": "min_max"})
    scorer = TwoModels()
    await run([plan({"size": 5}, blend)], [hits(5)], scorer)
    assert scorer.calls[1] == ("full", ["s0", "s1"])
