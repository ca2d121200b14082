"""Document texts and the merged response (pure: plain dicts, no network, no model)."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank.fusion import min_max as minmax
from crossrank.policy import Policy
from crossrank.search.errors import ScoreError
from crossrank.search.merge import document_texts, merge_response
from crossrank.search.plan import SearchPlan, plan_search

POLICY = Policy(name="docs", text_fields=["title", "text"])
QUERY = {"match": {"text": "gout"}}


def policy(**changes: Any) -> Policy:
    return Policy.model_validate({**POLICY.model_dump(), **changes})


def hits(n: int, **source: Any) -> list[dict[str, Any]]:
    return [{"_index": "docs", "_id": str(i), "_score": float(n - i),
             "_source": {"title": f"t{i}", "text": f"x{i}", "id": i, **source},
             "highlight": {"text": [f"<em>x{i}</em>"]}} for i in range(n)]


def response(hit_list: list[dict[str, Any]]) -> dict[str, Any]:
    return {"took": 7, "timed_out": False, "_shards": {"total": 1, "successful": 1},
            "hits": {"total": {"value": 123, "relation": "eq"},
                     "max_score": hit_list[0]["_score"] if hit_list else None,
                     "hits": hit_list},
            "aggregations": {"tags": {"buckets": [{"key": "a", "doc_count": 3}]}},
            "suggest": {"s": []}, "pit_id": "abc"}


def plan(body: dict[str, Any] | None = None, params: list[tuple[str, str]] | None = None,
         chosen: Policy = POLICY) -> SearchPlan:
    result = plan_search({"query": QUERY, **(body or {})}, params or [], chosen, {})
    assert result.rerank
    return result


def ids(merged: dict[str, Any]) -> list[str]:
    return [hit["_id"] for hit in merged["hits"]["hits"]]


# document_texts ---------------------------------------------------------------------------

def test_texts_join_fields_with_the_separator() -> None:
    texts, missing = document_texts(hits(2), POLICY)
    assert texts == ["t0 x0", "t1 x1"] and missing == 0


def test_template_with_dotted_paths() -> None:
    chosen = policy(text_fields=["meta.title", "body"], template="{meta.title}. {body}")
    texts, missing = document_texts(
        [{"_source": {"meta": {"title": "Gout"}, "body": "Uric acid."}}], chosen)
    assert texts == ["Gout. Uric acid."] and missing == 0


def test_arrays_nested_objects_and_dotted_keys_are_flattened() -> None:
    chosen = policy(text_fields=["authors.name", "tags", "a.b"], separator=" | ")
    source = {"authors": [{"name": "Ann"}, {"name": ["Bo", "Cy"]}, {"x": 1}],
              "tags": ["gout", 3, True, None, ""], "a.b": "dotted", "a": {"b": "nested"}}
    texts, missing = document_texts([{"_source": source}], chosen)
    assert texts == ["Ann | Bo | Cy | gout | 3 | true | dotted | nested"] and missing == 0


def test_an_object_at_the_path_gives_all_its_text() -> None:
    chosen = policy(text_fields=["meta"])
    texts, _ = document_texts([{"_source": {"meta": {"title": "A", "sub": {"x": "B"}}}}], chosen)
    assert texts == ["A B"]


def test_missing_fields_are_empty_and_counted() -> None:
    chosen = policy(template="{title}: {text}")
    batch = [{"_source": {"title": "A"}}, {"_source": {"title": None, "text": ""}},
             {"_id": "no-source"}, {"_source": {"title": {"deep": []}, "text": "B"}}]
    texts, missing = document_texts(batch, chosen)
    assert texts == ["A:", ":", ":", ": B"]
    assert missing == 1 + 2 + 2 + 1
    texts, missing = document_texts(batch, POLICY)
    assert texts == ["A", "", "", "B"] and missing == 6


# merge_response ---------------------------------------------------------------------------

def test_window_is_reordered_by_score_and_scores_replaced() -> None:
    merged = merge_response(plan({"size": 4}, [("rerank_window", "5")]), response(hits(8)),
                            np.array([0.1, 0.9, 0.5, 0.9, 0.2], dtype=np.float32),
                            extra_took_ms=5)
    assert ids(merged) == ["1", "3", "2", "4"]  # tie between 1 and 3 keeps first-stage order
    assert [h["_score"] for h in merged["hits"]["hits"]] == [0.9, 0.9, 0.5, 0.2]
    assert merged["hits"]["max_score"] == 0.9
    assert merged["took"] == 12


def test_pages_are_slices_of_one_reranked_window() -> None:
    scores = np.array([3.0, -1.0, 7.0, 0.0, 5.0, 2.0], dtype=np.float32)
    full = ids(merge_response(plan({"size": 6}, [("rerank_window", "6")]), response(hits(10)),
                              scores, extra_took_ms=0))
    pages = []
    for start in range(0, 6, 2):
        page_plan = plan({"from": start, "size": 2}, [("rerank_window", "6")])
        page = merge_response(page_plan, response(hits(10)), scores, extra_took_ms=0)
        assert page["hits"]["max_score"] == 7.0  # the result's best, on every page
        pages += ids(page)
    assert pages == full == ["2", "4", "0", "5", "3", "1"]


def test_hits_past_the_window_follow_in_first_stage_order_with_null_scores() -> None:
    page_plan = plan({"from": 2, "size": 4}, [("rerank_window", "3")])
    merged = merge_response(page_plan, response(hits(8)), [0.0, 1.0, 2.0], extra_took_ms=0)
    assert ids(merged) == ["0", "3", "4", "5"]
    assert [h["_score"] for h in merged["hits"]["hits"]] == [0.0, None, None, None]
    assert merged["hits"]["max_score"] == 2.0


def test_blend_mixes_normalised_scores() -> None:
    chosen = policy(score_mode="blend", blend_alpha=0.25)
    page_plan = plan({"size": 3}, [("rerank_window", "3")], chosen)
    # first stage 3, 2, 1 -> 1, .5, 0 ; rerank 0, 10, 5 -> 0, 1, .5
    merged = merge_response(page_plan, response(hits(3)), [0.0, 10.0, 5.0], extra_took_ms=0)
    scores = {h["_id"]: h["_score"] for h in merged["hits"]["hits"]}
    assert scores == pytest.approx({"0": 0.75, "1": 0.25 + 0.375, "2": 0.125})
    assert ids(merged) == ["0", "1", "2"]


def test_blend_with_all_equal_scores_has_no_nan() -> None:
    chosen = policy(score_mode="blend", blend_alpha=0.5)
    one = merge_response(plan({}, [], chosen), response(hits(1)), [4.2], extra_took_ms=0)
    assert one["hits"]["hits"][0]["_score"] == 1.0
    flat = [dict(h, _score=1.0) for h in hits(3)]
    merged = merge_response(plan({}, [], chosen), response(flat), [1.0, 3.0, 2.0],
                            extra_took_ms=0)
    assert [h["_score"] for h in merged["hits"]["hits"]] == [1.0, 0.75, 0.5]


def test_minmax() -> None:
    assert minmax([2.0, 4.0, 3.0]) == [0.0, 1.0, 0.5]
    assert minmax([5.0, 5.0]) == [1.0, 1.0]
    assert minmax([None, 1.0, 3.0]) == [0.0, 0.0, 1.0]
    assert minmax([]) == []
    assert minmax([-1.7e308, 1.7e308]) == [0.0, 1.0]


def test_fallback_keeps_first_stage_order_and_opensearch_scores() -> None:
    source = response(hits(8))
    merged = merge_response(plan({"from": 1, "size": 3}), source, None, extra_took_ms=9)
    assert ids(merged) == ["1", "2", "3"]
    assert [h["_score"] for h in merged["hits"]["hits"]] == [7.0, 6.0, 5.0]
    assert merged["hits"]["max_score"] == 8.0 and merged["took"] == 16


def test_everything_but_the_page_passes_through() -> None:
    source = response(hits(4))
    merged = merge_response(plan({"size": 2}), source, [0.0, 1.0, 2.0, 3.0], extra_took_ms=0)
    for key in ("aggregations", "suggest", "pit_id", "_shards", "timed_out"):
        assert merged[key] is source[key]
    assert merged["hits"]["total"] is source["hits"]["total"]
    top = merged["hits"]["hits"][0]
    assert top["highlight"] is source["hits"]["hits"][3]["highlight"]
    assert top["_index"] == "docs"


def test_input_response_is_not_mutated() -> None:
    source = response(hits(6))
    before = copy.deepcopy(source)
    merge_response(plan({"_source": ["id"], "ext": {"crossrank": {"explain": True}}}),
                   source, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], extra_took_ms=3)
    assert source == before


def test_client_source_filter_is_restored() -> None:
    page_plan = plan({"_source": {"includes": ["id", "title"], "excludes": ["title"]}})
    assert page_plan.restore_source
    merged = merge_response(page_plan, response(hits(3)), [1.0, 2.0, 3.0], extra_took_ms=0)
    assert [h["_source"] for h in merged["hits"]["hits"]] == [{"id": 2}, {"id": 1}, {"id": 0}]


def test_source_false_removes_the_source() -> None:
    page_plan = plan({"_source": False})
    merged = merge_response(page_plan, response(hits(2)), [1.0, 2.0], extra_took_ms=0)
    assert all("_source" not in h for h in merged["hits"]["hits"])
    assert merged["hits"]["hits"][0]["highlight"] == {"text": ["<em>x1</em>"]}


def test_explain_reports_first_stage_score_and_rank() -> None:
    page_plan = plan({"size": 4, "ext": {"crossrank": {"explain": True}}},
                     [("rerank_window", "2")])
    merged = merge_response(page_plan, response(hits(3)), [1.0, 5.0], extra_took_ms=0)
    assert [h["_crossrank"] for h in merged["hits"]["hits"]] == [
        {"first_stage_score": 2.0, "first_stage_rank": 2, "rerank_score": 5.0},
        {"first_stage_score": 3.0, "first_stage_rank": 1, "rerank_score": 1.0},
        {"first_stage_score": 1.0, "first_stage_rank": 3, "rerank_score": None},
    ]
    plain = merge_response(plan(), response(hits(3)), [1.0, 5.0, 2.0], extra_took_ms=0)
    assert all("_crossrank" not in h for h in plain["hits"]["hits"])


def test_empty_results() -> None:
    merged = merge_response(plan(), response([]), [], extra_took_ms=1)
    assert merged["hits"]["hits"] == [] and merged["hits"]["max_score"] is None


@pytest.mark.parametrize("scores", [[1.0], [1.0, float("nan"), 2.0], [math.inf, 1.0, 2.0]])
def test_unusable_scores_raise(scores: list[float]) -> None:
    with pytest.raises(ScoreError):
        merge_response(plan(), response(hits(3)), scores, extra_took_ms=0)


def test_a_bypassed_plan_returns_the_response() -> None:
    bypass = plan_search({"query": QUERY, "size": 0}, [], POLICY, {})
    source = response(hits(2))
    assert merge_response(bypass, source, None, extra_took_ms=0) == {**source, "took": 7}


# Property: the merged page is a slice of (window in score order, then the tail in first-stage
# order), and max_score is consistent with the scores shown.
@settings(max_examples=300)
@given(st.integers(0, 30), st.integers(1, 20), st.integers(0, 30), st.integers(1, 15),
       st.data(), st.sampled_from(["replace", "blend"]))
def test_merge_is_a_permutation_of_the_window_then_the_tail(
        n: int, window: int, from_: int, size: int, data: st.DataObject, mode: str) -> None:
    chosen = policy(score_mode=mode, max_window=50)
    if from_ >= window:
        from_ = window - 1
    page_plan = plan({"from": from_, "size": size}, [("rerank_window", str(window))], chosen)
    source = response(hits(n))
    k = min(n, window)
    scores = data.draw(st.lists(st.sampled_from([-2.0, 0.0, 0.5, 1.0, 3.0]) | st.floats(-1e6, 1e6),
                                min_size=k, max_size=k))
    merged = merge_response(page_plan, source, scores, extra_took_ms=0)
    shown = merged["hits"]["hits"]

    final = {h["_id"]: h["_score"] for h in shown}
    window_ids = [str(i) for i in range(k)]
    tail_ids = [str(i) for i in range(k, n)]
    expected_scores = (scores if mode == "replace" else [
        0.5 * r + 0.5 * f for r, f in zip(minmax(scores), minmax([float(n - i) for i in range(k)]),
                                          strict=True)])
    ranked = sorted(range(k), key=lambda i: -expected_scores[i])
    expected = [window_ids[i] for i in ranked] + tail_ids
    assert [h["_id"] for h in shown] == expected[from_: from_ + size]
    assert len(set(final)) == len(shown)
    window_scores = [s for s in final.values() if s is not None]
    assert all(final[i] is None for i in tail_ids if i in final)
    assert window_scores == sorted(window_scores, reverse=True)
    if k:
        assert merged["hits"]["max_score"] == pytest.approx(max(expected_scores))
        assert all(s <= merged["hits"]["max_score"] for s in window_scores)
    else:
        assert merged["hits"]["max_score"] is None
    if mode == "blend":
        assert all(0.0 <= s <= 1.0 for s in window_scores)
