"""Hybrid retrieval against the real node: proxy-side fusion of BM25 and k-NN, native hybrid
queries (neural-search's ``hybrid`` query with an RRF ``score-ranker-processor``), filters.

The documents get their vectors through the proxy's ingest hook; query vectors in the tests
come from the same embedder called directly. The first stage of a reranked search is read
from ``ext.crossrank.explain`` (``first_stage_rank`` and ``first_stage_score`` of each hit).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from opensearchpy import OpenSearch, helpers

from crossrank.config import UpstreamSettings
from crossrank.models import Embedder, ModelRegistry
from crossrank.policy import Policy
from crossrank.proxy.retrieval import UpstreamRetriever
from crossrank.proxy.upstream import Upstream
from crossrank.search.plan import plan_search
from crossrank.search.retrieval import Retrieval
from crossrank.server import build_app

from proxy_fixtures import ADMIN_TOKEN, ServedProxy, proxy_settings
from scifact import scifact_docs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
N_DOCS = 150
DEPTH = 40
INDEX = "t-hybrid-scifact"
ADMIN = {"x-crossrank-admin-token": ADMIN_TOKEN}
QUERIES = ["Vitamin D deficiency increases the risk of disease",
           "stem cells differentiate into neurons",
           "cancer cells and tumour growth"]
PIPELINE = "t-hybrid-rrf"
BASE_POLICY = {"text_fields": ["title", "text"], "template": "{title}. {text}", "window": DEPTH,
               "max_window": 100}




@pytest.fixture(scope="module")
def served(opensearch_url: str, tiny_cross_encoder_dir: Path,
           minilm_embedder_dir: Path) -> Iterator[ServedProxy]:
    settings = proxy_settings(
        opensearch_url, tiny_cross_encoder_dir,
        models={"default": tiny_cross_encoder_dir, "minilm": minilm_embedder_dir},
        policy_index=".crossrank-policies-hybrid-test")
    proxy = ServedProxy(build_app(settings), settings.port).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def http(served: ServedProxy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def embedder(minilm_embedder_dir: Path) -> Embedder:
    return Embedder.load(minilm_embedder_dir)


def put_policy(http: httpx.Client, name: str, body: dict[str, Any]) -> None:
    response = http.put(f"/_crossrank/policies/{name}", headers=ADMIN, json=body)
    assert response.status_code in (200, 201), response.text


@pytest.fixture(scope="module")
def scifact(http: httpx.Client, served: ServedProxy, os_client: OpenSearch) -> Iterator[str]:
    """SciFact documents with a year, written through the proxy (which embeds them), and
    three names for them, one per policy: RRF (the index), RSF and a missing vector field."""
    os_client.indices.delete(index=INDEX, ignore_unavailable=True)
    os_client.indices.create(index=INDEX, body={
        "settings": {"index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}},
        "mappings": {"properties": {
            "title": {"type": "text"}, "text": {"type": "text"}, "year": {"type": "integer"},
            "emb": {"type": "knn_vector", "dimension": 384, "method": {
                "name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}}}}})
    embed = {"model": "minilm", "vector_field": "emb"}
    put_policy(http, INDEX, {**BASE_POLICY, "indices": [INDEX], "embed": embed,
                             "hybrid": {"fusion": "rrf", "rank_constant": 60, "depth": DEPTH}})
    put_policy(http, INDEX + "-rsf", {**BASE_POLICY, "hybrid": {
        "fusion": "rsf", "weights": [0.3, 0.7], "depth": DEPTH, **embed}})
    put_policy(http, INDEX + "-nofield", {**BASE_POLICY, "hybrid": {
        "model": "minilm", "vector_field": "not_a_vector", "depth": DEPTH}})
    os_client.indices.update_aliases(body={"actions": [
        {"add": {"index": INDEX, "alias": INDEX + "-rsf"}},
        {"add": {"index": INDEX, "alias": INDEX + "-nofield"}}]})
    client = OpenSearch(served.url, timeout=120)
    helpers.bulk(client, ({"_index": INDEX, "_id": d["_id"], "title": d["title"],
                           "text": d["text"], "year": 2000 + n % 20}
                          for n, d in enumerate(scifact_docs(N_DOCS))), refresh=True)
    yield INDEX
    for name in (INDEX, INDEX + "-rsf", INDEX + "-nofield"):
        http.delete(f"/_crossrank/policies/{name}", headers=ADMIN)
    os_client.indices.delete(index=INDEX, ignore_unavailable=True)


@pytest.fixture(scope="module")
def rrf_pipeline(native_hybrid: None, os_client: OpenSearch) -> Iterator[str]:
    """neural-search's RRF search pipeline, for comparing with OpenSearch's own hybrid query."""
    os_client.transport.perform_request("PUT", f"/_search/pipeline/{PIPELINE}", body={
        "phase_results_processors": [{"score-ranker-processor": {"combination": {
            "technique": "rrf", "parameters": {"rank_constant": 60}}}}]})
    yield PIPELINE
    os_client.transport.perform_request("DELETE", f"/_search/pipeline/{PIPELINE}")


def bm25(text: str) -> dict[str, Any]:
    return {"multi_match": {"query": text, "fields": ["title", "text"]}}


def knn(vector: np.ndarray, k: int = DEPTH) -> dict[str, Any]:
    return {"knn": {"emb": {"vector": vector.tolist(), "k": k}}}


def first_stage(http: httpx.Client, index: str, body: dict[str, Any],
                params: dict[str, str] | None = None) -> list[tuple[str, float]]:
    """(id, first-stage score) of the reranked window, in first-stage order."""
    body = {**body, "size": DEPTH, "ext": {"crossrank": {"explain": True}}}
    response = http.post(f"/{index}/_search", json=body, params=params or {})
    assert response.status_code == 200, response.text
    assert response.headers["x-crossrank-status"] == "reranked", response.headers
    hits = sorted(response.json()["hits"]["hits"],
                  key=lambda h: h["_crossrank"]["first_stage_rank"])
    assert [h["_crossrank"]["first_stage_rank"] for h in hits] == list(range(1, len(hits) + 1))
    return [(h["_id"], h["_crossrank"]["first_stage_score"]) for h in hits]


def tie_groups(ranked: list[tuple[str, float]]) -> list[frozenset[str]]:
    """The ranked ids cut into groups of equal score (float32 precision): the order inside
    a group is a tie-break, which OpenSearch and the proxy are free to make differently."""
    groups: list[tuple[float, set[str]]] = []
    for doc_id, score in ranked:
        if groups and abs(groups[-1][0] - score) <= 1e-6 * max(abs(score), 1e-9):
            groups[-1][1].add(doc_id)
        else:
            groups.append((score, {doc_id}))
    return [frozenset(ids) for _, ids in groups]


@pytest.mark.parametrize("text", QUERIES)
def test_proxy_side_rrf_agrees_with_native_hybrid(http: httpx.Client, os_client: OpenSearch,
                                                  scifact: str, embedder: Embedder,
                                                  rrf_pipeline: str, text: str) -> None:
    vector = embedder.embed([text])[0]
    native = os_client.search(index=scifact, params={"search_pipeline": PIPELINE}, body={
        "size": DEPTH, "query": {"hybrid": {"queries": [bm25(text), knn(vector)]}}})
    native_ranked = [(h["_id"], h["_score"]) for h in native["hits"]["hits"]]
    proxy_ranked = first_stage(http, scifact, {"query": bm25(text)})

    assert len(proxy_ranked) == len(native_ranked) == DEPTH
    assert dict(proxy_ranked) == pytest.approx(dict(native_ranked), rel=1e-5)
    assert tie_groups(proxy_ranked) == tie_groups(native_ranked)
    # Both sides contributed: the fused list is neither side's own list.
    bm25_ids = [h["_id"] for h in os_client.search(index=scifact, body={
        "size": DEPTH, "query": bm25(text)})["hits"]["hits"]]
    knn_ids = [h["_id"] for h in os_client.search(index=scifact, body={
        "size": DEPTH, "query": knn(vector)})["hits"]["hits"]]
    fused = [doc_id for doc_id, _ in proxy_ranked]
    assert fused != bm25_ids and fused != knn_ids
    assert set(fused) - set(bm25_ids) and set(fused) - set(knn_ids)


def test_a_native_hybrid_query_is_reranked_as_sent(http: httpx.Client, os_client: OpenSearch,
                                                   scifact: str, embedder: Embedder,
                                                   rrf_pipeline: str) -> None:
    text = QUERIES[0]
    query = {"hybrid": {"queries": [bm25(text), knn(embedder.embed([text])[0])]}}
    native = os_client.search(index=scifact, params={"search_pipeline": PIPELINE},
                              body={"size": DEPTH, "query": query})
    proxied = first_stage(http, scifact, {"query": query}, {"search_pipeline": PIPELINE})
    assert [doc_id for doc_id, _ in proxied] == [h["_id"] for h in native["hits"]["hits"]]


def test_filters_apply_to_both_sides(http: httpx.Client, os_client: OpenSearch,
                                     scifact: str) -> None:
    text = QUERIES[1]
    year = {"range": {"year": {"gte": 2015}}}
    body = {"query": {"bool": {"must": [bm25(text)], "filter": [year]}},
            "post_filter": {"range": {"year": {"lte": 2018}}}, "_source": ["year"]}
    response = http.post(f"/{scifact}/_search", json={**body, "size": DEPTH})
    hits = response.json()["hits"]["hits"]
    assert hits and all(2015 <= h["_source"]["year"] <= 2018 for h in hits)
    assert all(set(h["_source"]) == {"year"} for h in hits)  # the client's _source filter
    matching = {h["_id"] for h in os_client.search(index=scifact, body={**body, "size": 500})[
        "hits"]["hits"]}
    assert {h["_id"] for h in hits} - matching, "the k-NN side found filtered documents too"
    eligible = os_client.count(index=scifact, body={"query": {"range": {"year": {
        "gte": 2015, "lte": 2018}}}})["count"]
    assert len(hits) == min(DEPTH, eligible)


def test_rsf_is_the_weighted_min_max_of_both_sides(http: httpx.Client, os_client: OpenSearch,
                                                   scifact: str, embedder: Embedder) -> None:
    text = QUERIES[2]
    vector = embedder.embed([text])[0]
    sides = []
    for query in (bm25(text), knn(vector)):
        hits = os_client.search(index=scifact, body={"size": DEPTH, "query": query})
        scores = {h["_id"]: h["_score"] for h in hits["hits"]["hits"]}
        low, high = min(scores.values()), max(scores.values())
        sides.append({d: (s - low) / (high - low) for d, s in scores.items()})
    expected = {d: 0.3 * sides[0].get(d, 0.0) + 0.7 * sides[1].get(d, 0.0)
                for d in set(sides[0]) | set(sides[1])}
    best = sorted(expected.items(), key=lambda item: -item[1])[:DEPTH]

    ranked = first_stage(http, scifact + "-rsf", {"query": bm25(text)})
    assert dict(ranked) == pytest.approx(dict(best), abs=1e-6)
    assert tie_groups(ranked) == tie_groups(best)


def test_a_failing_knn_side_falls_back_to_bm25(http: httpx.Client, os_client: OpenSearch,
                                               scifact: str) -> None:
    text = QUERIES[0]
    ranked = first_stage(http, scifact + "-nofield", {"query": bm25(text)})
    direct = os_client.search(index=scifact, body={"size": DEPTH, "query": bm25(text)})
    assert ranked == [(h["_id"], h["_score"]) for h in direct["hits"]["hits"]]


async def test_a_page_that_is_not_reranked_comes_from_the_hybrid_first_stage(
        http: httpx.Client, opensearch_url: str, scifact: str,
        minilm_embedder_dir: Path) -> None:
    """The baseline arm (``?rerank=false``) gets the same first stage as the rerank arm,
    paged as OpenSearch pages (a ``page`` retrieval)."""
    text = QUERIES[1]
    fused = first_stage(http, scifact, {"query": bm25(text)})
    policy = Policy.model_validate(
        http.get(f"/_crossrank/policies/{scifact}").json())
    plan = plan_search({"query": bm25(text), "from": 5, "size": 10}, [("rerank", "false")],
                       policy, {})
    assert plan.reason == "rerank_false"
    upstream = Upstream(UpstreamSettings(url=opensearch_url))
    registry = ModelRegistry({"minilm": minilm_embedder_dir})
    try:
        retriever = UpstreamRetriever(upstream, registry,
                                      [(b"content-type", b"application/json")])
        search = Retrieval(plan, f"/{scifact}/_search")
        assert search.mode == "page"
        [answer] = await retriever.retrieve([search])
        assert answer.hybrid == "rrf" and answer.body is not None
        hits = answer.body["hits"]["hits"]
        assert [(h["_id"], pytest.approx(h["_score"])) for h in hits] == fused[5:15]
        sorted_plan = plan_search({"query": bm25(text), "sort": ["year"]}, [], policy, {})
        assert Retrieval(sorted_plan).mode == "as_sent"  # what hybrid cannot page: as sent
    finally:
        await upstream.aclose()
        registry.close()


def test_msearch_sub_searches_get_the_hybrid_first_stage(http: httpx.Client, scifact: str,
                                                         os_client: OpenSearch,
                                                         index_name: str) -> None:
    """A sub-search of _msearch on a hybrid policy answers as the same _search would; the
    others in the same request are OpenSearch's own."""
    os_client.index(index=index_name, id="1", body={"t": "plain"}, refresh=True)
    query = {"query": {"match": {"text": QUERIES[0]}}, "size": 5}
    lines = [{"index": scifact}, query, {"index": index_name}, {"query": {"match_all": {}}},
             {"index": scifact}, query]
    reply = http.post("/_msearch", content=b"".join(orjson.dumps(x) + b"\n" for x in lines),
                      headers={"content-type": "application/x-ndjson"},
                      params={"rerank": "false"})
    assert reply.status_code == 200, reply.text
    first, plain, baseline = reply.json()["responses"]
    alone = http.post(f"/{scifact}/_search", json=query, params={"rerank": "false"})
    assert alone.headers["x-crossrank-hybrid"] == "rrf"
    expected = [(h["_id"], h["_score"]) for h in alone.json()["hits"]["hits"]]
    assert [(h["_id"], h["_score"]) for h in baseline["hits"]["hits"]] == expected
    assert first["status"] == 200 and plain["status"] == 200
    assert [h["_id"] for h in plain["hits"]["hits"]] == ["1"]

    reranked = http.post("/_msearch", content=b"".join(orjson.dumps(x) + b"\n"
                                                        for x in lines[:2]),
                         headers={"content-type": "application/x-ndjson"})
    single = http.post(f"/{scifact}/_search", json=query)
    assert single.headers["x-crossrank-status"] == "reranked"
    [sub] = reranked.json()["responses"]
    assert [h["_id"] for h in sub["hits"]["hits"]] == \
        [h["_id"] for h in single.json()["hits"]["hits"]]
