"""Properties of merging reranker scores into OpenSearch's response, over arbitrary responses,
pages, windows, scores and ``_source`` filters: nothing lost or duplicated, the page the client
asked for, scores non-increasing, and everything crossrank does not change passed on as is."""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossrank.fusion import min_max as minmax
from crossrank.policy import Policy
from crossrank.search.errors import ScoreError
from crossrank.search.merge import document_texts, merge_response
from crossrank.search.plan import SearchPlan, plan_search
from properties_profile import deep, json_objects, json_values, props

QUERY = {"match": {"title": "gout"}}
SOURCES = [None, True, False, "title", ["id", "title"], {"excludes": ["title"]},
           {"includes": ["meta.*"], "excludes": ["meta.text"]}, "nothing"]
first_stage_scores = (st.none() | st.floats() | st.integers(-10, 10) | st.booleans()
                      | st.just("1.5"))
sources = st.none() | json_values(8) | st.fixed_dictionaries(
    {}, optional={"title": json_values(3), "text": json_values(3), "id": st.integers(),
                  "meta": st.fixed_dictionaries({}, optional={"title": st.text(max_size=5),
                                                              "text": st.text(max_size=5)})})


@st.composite
def plans(draw: st.DrawFn) -> SearchPlan:
    window = draw(st.integers(1, 12))
    policy = Policy(name="docs", text_fields=draw(st.sampled_from([["title"], ["meta.title"],
                                                                   ["title", "text"]])),
                    window=window, max_window=12, score_mode=draw(st.sampled_from(
                        ["replace", "blend"])), blend_alpha=draw(st.floats(0, 1)))
    body: dict[str, Any] = {"query": QUERY, "from": draw(st.integers(0, window - 1)),
                            "size": draw(st.integers(1, 15))}
    source = draw(st.sampled_from(SOURCES))
    if source is not None:
        body["_source"] = source
    if draw(st.booleans()):
        body["ext"] = {"crossrank": {"explain": True}}
    plan = plan_search(body, [], policy, {})
    assert plan.rerank
    return plan


@st.composite
def responses(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(0, 20))
    hits: list[Any] = []
    for n in range(count):
        if draw(st.integers(0, 19)) == 0:
            # not an object (OpenSearch never sends one): passed on as received
            hits.append(draw(st.sampled_from([[n], f"hit{n}", n, [None, n]])))
            continue
        hit: dict[str, Any] = {"_index": "docs", "_id": str(n),
                               "_score": draw(first_stage_scores)}
        hit.update(draw(st.dictionaries(st.sampled_from(["highlight", "fields", "sort",
                                                         "inner_hits", "_ignored"]),
                                        json_values(3), max_size=2)))
        source = draw(sources)
        if source is not None:
            hit["_source"] = source
        hits.append(hit)
    section: dict[str, Any] = {"hits": hits}
    section.update(draw(st.dictionaries(st.sampled_from(["total", "max_score", "x"]),
                                        json_values(3), max_size=3)))
    response: dict[str, Any] = draw(json_objects(6))
    response["hits"] = section
    if draw(st.booleans()):
        response["took"] = draw(st.integers(0, 10**6) | st.booleans() | st.floats())
    return response


def score_lists(count: int) -> st.SearchStrategy[Any]:
    finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
    return st.one_of(
        st.lists(finite, min_size=count, max_size=count),
        st.lists(finite, min_size=count, max_size=count).map(
            lambda values: np.asarray(values, dtype=np.float32)),
        st.none())


def ident(hit: Any) -> Any:
    return hit.get("_id") if isinstance(hit, dict) else repr(hit)  # unique in responses()


@props(share=0.25)
@given(plans(), responses(), st.data(), st.integers(0, 10**4))
def test_merge_pages_the_reranked_window_then_the_tail(
        plan: SearchPlan, response: dict[str, Any], data: st.DataObject, extra: int) -> None:
    hits = response["hits"]["hits"]
    window = hits[: plan.window]
    scores = data.draw(score_lists(len(window)))
    original = copy.deepcopy(response)
    merged = merge_response(plan, response, scores, extra_took_ms=extra)
    assert _same(response, original)  # the input is not modified

    for key, value in response.items():  # unknown fields pass through, the very objects
        if key not in ("hits", "took"):
            assert merged[key] is value
    took = response.get("took")
    if isinstance(took, int) and not isinstance(took, bool):
        assert merged["took"] == took + extra
    else:
        assert merged.get("took", "absent") is response.get("took", "absent")
    section = merged["hits"]
    for key, value in response["hits"].items():
        if key not in ("hits", "max_score") or (key == "max_score" and scores is None):
            assert section[key] is value

    page = section["hits"]
    assert len(page) == max(0, min(plan.size, len(hits) - plan.from_))
    shown = [ident(hit) for hit in page]
    assert all(shown.count(key) == 1 for key in shown)  # nothing duplicated
    assert set(shown) <= {ident(hit) for hit in hits}  # nothing invented
    reranked = {ident(hit) for hit in window}
    in_window = [hit for hit in page if ident(hit) in reranked]
    assert page[: len(in_window)] == in_window  # the window first, then the tail
    tail_ids = [ident(hit) for hit in hits[plan.window:]]
    assert shown[len(in_window):] == tail_ids[max(0, plan.from_ - len(window)):][
        : len(page) - len(in_window)]

    if scores is None:  # fallback: first-stage order and scores
        assert shown == [ident(hit) for hit in hits[plan.from_: plan.from_ + plan.size]]
        return
    final = [hit["_score"] for hit in in_window if isinstance(hit, dict)]
    assert all(isinstance(s, float) and math.isfinite(s) for s in final)
    assert final == sorted(final, reverse=True)
    assert all(hit["_score"] is None for hit in page[len(in_window):] if isinstance(hit, dict))
    if any(isinstance(hit, dict) for hit in window):
        assert section["max_score"] is not None and all(s <= section["max_score"]
                                                         for s in final)
    if plan.policy is not None and plan.scoring.score_mode == "blend":
        assert all(-1e-9 <= s <= 1 + 1e-9 for s in final)


@props(share=0.2)
@given(plans(), responses(), st.sampled_from([math.nan, math.inf, -math.inf]), st.data())
def test_bad_scores_raise_score_error(plan: SearchPlan, response: dict[str, Any], bad: float,
                                      data: st.DataObject) -> None:
    window = response["hits"]["hits"][: plan.window]
    count = data.draw(st.integers(0, 15))
    wrong_count = [0.5] * (count if count != len(window) else count + 1)
    with pytest.raises(ScoreError):
        merge_response(plan, response, wrong_count, extra_took_ms=0)
    if window:
        scores = [0.0] * len(window)
        scores[data.draw(st.integers(0, len(window) - 1))] = bad
        with pytest.raises(ScoreError):
            merge_response(plan, response, scores, extra_took_ms=0)


@props()
@given(st.lists(st.none() | st.floats(allow_nan=False), max_size=20))
def test_minmax_stays_in_the_unit_interval_and_keeps_the_order(
        values: list[float | None]) -> None:
    out = minmax(values)
    assert len(out) == len(values) and all(0.0 <= v <= 1.0 for v in out)
    present = [(v, o) for v, o in zip(values, out, strict=True) if v is not None]
    for (a, out_a), (b, out_b) in itertools.pairwise(present):
        if a < b:
            assert out_a <= out_b
        elif a > b:
            assert out_a >= out_b


@props()
@given(st.lists(json_values(6), max_size=6), st.sampled_from([["title"], ["meta.title", "text"]]))
def test_document_texts_read_any_hit(hits: list[Any], fields: list[str]) -> None:
    texts, missing = document_texts(hits, Policy(name="docs", text_fields=fields))
    assert len(texts) == len(hits) and all(isinstance(text, str) for text in texts)
    assert 0 <= missing <= len(hits) * len(fields)


def _same(a: Any, b: Any) -> bool:
    """Equality that counts NaN equal to NaN (first-stage scores may be NaN here)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(type(a) is type(b) and a == b)


# Regression: a hit that is not an object raised TypeError, ValueError or AttributeError (the
# proxy answered 500); it is now passed on as received, in its place.
@pytest.mark.parametrize("mode", ["replace", "blend"])
def test_hits_that_are_not_objects_are_passed_on(mode: str) -> None:
    policy = Policy(name="docs", text_fields=["title"], score_mode=mode)
    plan = plan_search({"query": QUERY, "ext": {"crossrank": {"explain": True}}}, [], policy, {})
    hits = [{"_id": "a", "_score": 2.0}, 5, "ab", [], {"_id": "b", "_score": 1.0}]
    merged = merge_response(plan, {"hits": {"hits": hits}}, [0.0, 9.0, 9.0, 9.0, 1.0],
                            extra_took_ms=0)
    page = merged["hits"]["hits"]
    assert [hit for hit in page if not isinstance(hit, dict)] == [5, "ab", []]
    if mode == "replace":
        assert page[:3] == [5, "ab", []] and [hit["_id"] for hit in page[3:]] == ["b", "a"]
    fallback = merge_response(plan, {"hits": {"hits": hits}}, None, extra_took_ms=0)
    assert fallback["hits"]["hits"][1:4] == [5, "ab", []]


def _in_deep_stack(frames: int, call: Any) -> Any:
    return _in_deep_stack(frames - 1, call) if frames else call()


# Regression: a _source nested about 1,000 levels deep (OpenSearch stores up to 1,000, orjson
# reads 1,024) raised RecursionError in reading its text and in filtering it back to the
# client's _source; the search failed with 500. It now has no text and is returned unfiltered.
@pytest.mark.parametrize("depth", [10, 1020])
def test_deeply_nested_sources_never_fail_the_search(depth: int) -> None:
    source = {"title": "gout", "text": deep("x", depth), "other": deep("y", depth)}
    hits = [{"_id": "deep", "_score": 1.0, "_source": source},
            {"_id": "flat", "_score": 0.5, "_source": {"title": "gout", "other": 1}}]
    texts, missing = _in_deep_stack(100, lambda: document_texts(hits, Policy(
        name="docs", text_fields=["text"])))
    assert texts == ["" if depth > 100 else "x", ""] and missing == (2 if depth > 100 else 1)
    plan = plan_search({"query": QUERY, "_source": {"excludes": ["title", "other.z"]}}, [],
                       Policy(name="docs", text_fields=["title"]), {})
    assert plan.restore_source
    merged = _in_deep_stack(100, lambda: merge_response(
        plan, {"hits": {"hits": hits}}, [0.0, 1.0], extra_took_ms=0))
    by_id = {hit["_id"]: hit["_source"] for hit in merged["hits"]["hits"]}
    assert by_id["flat"] == {"other": 1}
    assert ("title" in by_id["deep"]) == (depth > 100)
