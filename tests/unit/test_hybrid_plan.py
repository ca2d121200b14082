"""Proxy-side hybrid, pure parts: the two sub-searches of the _msearch, and their fusion."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossrank.policy import HybridSection
from crossrank.search.errors import HybridSkip
from crossrank.search.hybrid_plan import fuse, knn_filter, plan_hybrid

RRF = HybridSection(vector_field="emb", model="minilm", depth=100)
RSF = RRF.model_copy(update={"fusion": "rsf", "weights": [0.3, 0.7]})
MATCH = {"match": {"text": "cancer cells"}}
YEAR = {"range": {"year": {"gte": 2010}}}


def test_bm25_side_is_the_client_search_and_knn_side_carries_its_filters() -> None:
    body = {"query": {"bool": {"must": [MATCH, YEAR], "filter": [{"term": {"lang": "en"}}],
                               "must_not": [{"term": {"retracted": True}}],
                               "should": [{"term": {"tag": "boost"}}]}},
            "post_filter": {"term": {"open": True}}, "_source": ["title"],
            "aggs": {"years": {"terms": {"field": "year"}}}, "from": 0, "size": 30,
            "highlight": {"fields": {"text": {}}}}
    request = plan_hybrid(body, [], RRF, from_=0, size=30)
    assert request.depth == 100
    assert request.bm25 == {**body, "from": 0, "size": 100}
    assert request.knn == {
        "query": {"knn": {"emb": {"vector": None, "k": 100, "filter": {"bool": {
            "filter": [{"term": {"lang": "en"}}, YEAR, {"term": {"open": True}}],
            "must_not": [{"term": {"retracted": True}}]}}}}},
        "size": 100, "_source": ["title"],
        "highlight": {"fields": {"text": {}}, "highlight_query": body["query"]}}
    lines = request.msearch_body([0.5, -0.25]).split(b"\n")
    assert len(lines) == 5 and lines[-1] == b""
    assert [orjson.loads(line) for line in lines[:4:2]] == [{}, {}]
    assert orjson.loads(lines[3])["query"]["knn"]["emb"]["vector"] == [0.5, -0.25]
    assert orjson.loads(lines[1]) == request.bm25


def test_depth_covers_the_page() -> None:
    request = plan_hybrid({"query": MATCH}, [], RRF, from_=150, size=20)
    assert request.depth == 170 and request.bm25["size"] == 170
    assert request.knn["query"]["knn"]["emb"] == {"vector": None, "k": 170}


@pytest.mark.parametrize(("query", "post_filter", "expected"), [
    (MATCH, None, None),
    (YEAR, None, YEAR),  # no full text at all: the whole query filters
    ({"match_all": {}}, None, None),
    ({"bool": {"filter": YEAR}}, None, {"bool": {"filter": YEAR}}),
    ({"bool": {"must": MATCH, "filter": YEAR}}, None, YEAR),
    ({"bool": {"must": {"bool": {"must": MATCH, "filter": [YEAR]}}}}, None, YEAR),
    ({"bool": {"should": [MATCH, YEAR]}}, None, None),
    ({"function_score": {"query": MATCH, "functions": []}}, YEAR, YEAR),
    ({"bool": {"must_not": YEAR, "must": MATCH}}, None, {"bool": {"must_not": [YEAR]}}),
])
def test_knn_filter(query: Any, post_filter: Any, expected: Any) -> None:
    assert knn_filter(query, post_filter) == expected


def test_url_parameters_go_where_msearch_takes_them() -> None:
    request = plan_hybrid({"query": MATCH}, [
        ("routing", "r1"), ("preference", "_local"), ("typed_keys", "true"),
        ("rest_total_hits_as_int", "true"), ("track_total_hits", "1000"), ("version", "true"),
        ("stored_fields", "a,b"), ("_source_includes", "title"), ("timeout", "5s"),
        ("pretty", "true")], RRF, from_=0, size=10)
    assert request.header == {"routing": "r1", "preference": "_local"}
    assert request.url_params == [("typed_keys", "true"), ("rest_total_hits_as_int", "true")]
    assert {k: request.bm25[k] for k in ("track_total_hits", "version", "stored_fields",
                                         "_source", "timeout")} == {
        "track_total_hits": 1000, "version": True, "stored_fields": ["a", "b"],
        "_source": {"includes": ["title"]}, "timeout": "5s"}
    assert "track_total_hits" not in request.knn and request.knn["version"] is True


def test_q_parameter_becomes_the_query() -> None:
    request = plan_hybrid(None, [("q", "title:cells"), ("df", "text")], RRF, from_=0, size=10)
    query = {"query_string": {"query": "title:cells", "default_field": "text"}}
    assert request.bm25["query"] == query
    assert "filter" not in request.knn["query"]["knn"]["emb"]


@pytest.mark.parametrize(("body", "params", "reason"), [
    ({"query": {"hybrid": {"queries": [MATCH]}}}, [], "client_vector_query"),
    ({"query": {"bool": {"should": [MATCH, {"knn": {"emb": {"vector": [1], "k": 5}}}]}}}, [],
     "client_vector_query"),
    ({"query": {"neural": {"emb": {"query_text": "x", "model_id": "m"}}}}, [],
     "client_vector_query"),
    ({"query": MATCH, "collapse": {"field": "doi"}}, [], "unsupported_body:collapse"),
    ({"query": MATCH, "pit": {"id": "x"}}, [], "unsupported_body:pit"),
    ({"query": MATCH}, [("search_pipeline", "p")], "unsupported_param:search_pipeline"),
    ({"query": MATCH}, [("filter_path", "hits")], "unsupported_param:filter_path"),
])
def test_searches_that_are_not_made_hybrid(body: Any, params: list[tuple[str, str]],
                                           reason: str) -> None:
    with pytest.raises(HybridSkip) as caught:
        plan_hybrid(body, params, RRF, from_=0, size=10)
    assert caught.value.reason == reason


def test_a_term_on_a_field_named_knn_is_not_a_vector_query() -> None:
    term = {"term": {"knn": "x"}}
    request = plan_hybrid({"query": {"bool": {"must": MATCH, "filter": term}}}, [], RRF,
                          from_=0, size=10)  # no HybridSkip("client_vector_query")
    assert request.bm25["query"] == {"bool": {"must": MATCH, "filter": term}}
    assert request.knn["query"]["knn"][request.vector_field]["filter"] == term


def hit(doc_id: str, score: float | None, index: str = "docs", **extra: Any) -> dict[str, Any]:
    return {"_index": index, "_id": doc_id, "_score": score, **extra}


def response(hits: list[dict[str, Any]], total: Any = None, **extra: Any) -> dict[str, Any]:
    if total is None:
        total = {"value": len(hits), "relation": "eq"}
    return {"took": 3, "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": total, "max_score": hits[0]["_score"] if hits else None,
                     "hits": hits}, **extra}


def test_rrf_fusion_hand_worked() -> None:
    # BM25: a b c; k-NN: b d a  (k = 60)
    #   b = 1/62 + 1/61 = 0.0325225   a = 1/61 + 1/63 = 0.0322664
    #   d = 1/62        = 0.0161290   c = 1/63        = 0.0158730
    bm25 = response([hit("a", 9.0, highlight={"text": ["x"]}), hit("b", 7.0), hit("c", 5.0)],
                    aggregations={"n": {"value": 3}})
    knn = response([hit("b", 0.9), hit("d", 0.8), hit("a", 0.7)])
    fused = fuse(bm25, knn, RRF, from_=0, size=10, took=12)
    hits = fused["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["b", "a", "d", "c"]
    assert [h["_score"] for h in hits] == pytest.approx([1 / 62 + 1 / 61, 1 / 61 + 1 / 63,
                                                         1 / 62, 1 / 63])
    assert hits[1]["highlight"] == {"text": ["x"]}  # the BM25 hit object when both have it
    assert fused["hits"]["max_score"] == hits[0]["_score"]
    assert fused["hits"]["total"] == {"value": 4, "relation": "eq"}
    assert fused["took"] == 12 and fused["aggregations"] == {"n": {"value": 3}}
    page = fuse(bm25, knn, RRF, from_=1, size=2)["hits"]["hits"]
    assert [h["_id"] for h in page] == ["a", "d"]


def test_rsf_fusion_normalises_weights_and_scores() -> None:
    bm25 = response([hit("a", 12.0), hit("b", 8.0), hit("c", 4.0)])
    knn = response([hit("c", 0.9), hit("d", 0.7), hit("a", 0.5)])
    fused = fuse(bm25, knn, RSF, from_=0, size=10)["hits"]["hits"]
    assert {h["_id"]: h["_score"] for h in fused} == pytest.approx(
        {"a": 0.3, "b": 0.15, "c": 0.7, "d": 0.35})
    assert [h["_id"] for h in fused] == ["c", "d", "a", "b"]


def test_same_id_in_two_indices_are_two_hits() -> None:
    bm25 = response([hit("1", 2.0, index="a"), hit("1", 1.0, index="b")])
    fused = fuse(bm25, response([]), RRF, from_=0, size=10)["hits"]["hits"]
    assert [(h["_index"], h["_id"]) for h in fused] == [("a", "1"), ("b", "1")]


def test_totals_and_shards() -> None:
    knn = response([hit("z", 0.5)], _shards={"total": 1, "successful": 0, "skipped": 0,
                                             "failed": 1, "failures": [{"shard": 0}]})
    partial = fuse(response([hit("a", 1.0)], total={"value": 50, "relation": "eq"}), knn, RRF,
                   from_=0, size=10)
    assert partial["hits"]["total"] == {"value": 50, "relation": "gte"}
    assert partial["_shards"]["failed"] == 1 and partial["_shards"]["failures"] == [{"shard": 0}]
    as_int = fuse(response([hit("a", 1.0)], total=1), response([hit("z", 0.5)]), RRF,
                  from_=0, size=10)
    assert as_int["hits"]["total"] == 2
    empty = fuse(response([]), response([]), RRF, from_=0, size=10)
    assert empty["hits"]["hits"] == [] and empty["hits"]["max_score"] is None
    assert empty["hits"]["total"] == {"value": 0, "relation": "eq"}


ids = st.lists(st.sampled_from("abcdefghij"), unique=True, max_size=10)


@given(ids, ids, st.integers(0, 12), st.integers(0, 12))
def test_fusion_invariants(bm25_ids: list[str], knn_ids: list[str], from_: int,
                           size: int) -> None:
    bm25 = response([hit(d, 10.0 - n) for n, d in enumerate(bm25_ids)])
    knn = response([hit(d, 1.0 - n / 20) for n, d in enumerate(knn_ids)])
    for section in (RRF, RSF):
        whole = fuse(bm25, knn, section, from_=0, size=100)["hits"]["hits"]
        assert {h["_id"] for h in whole} == set(bm25_ids) | set(knn_ids)
        scores = [h["_score"] for h in whole]
        assert scores == sorted(scores, reverse=True)
        page = fuse(bm25, knn, section, from_=from_, size=size)["hits"]["hits"]
        assert page == whole[from_: from_ + size]
