"""The development node is a real, complete OpenSearch: BM25, k-NN (lucene), and, where
neural-search is there (2.x), the native hybrid query with its normalization and RRF pipelines."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from opensearchpy import OpenSearch

from crossrank.devnode import DISTRIBUTIONS

pytestmark = pytest.mark.integration

DOCS = [
    ("apple", "red apple from the orchard", [1.0, 0.0, 0.0]),
    ("pear", "green pear with a long stem", [0.0, 1.0, 0.0]),
    ("plum", "purple plum jam made with a little apple and cane sugar", [0.7, 0.0, 0.7]),
]


def test_node_reports_its_version_and_plugins(os_client: OpenSearch) -> None:
    info = os_client.info()
    assert info["version"]["distribution"] == "opensearch"
    version = info["version"]["number"]
    wanted = os.environ.get("CROSSRANK_TEST_OPENSEARCH_VERSION")
    if wanted and not os.environ.get("CROSSRANK_TEST_OPENSEARCH_URL"):
        assert version == wanted
    assert version in DISTRIBUTIONS
    plugins = {row["component"] for row in os_client.cat.plugins(format="json")}
    # classpath plugins and modules are listed by class name
    assert set(DISTRIBUTIONS[version].plugin_classes) <= plugins
    assert "org.opensearch.knn.plugin.KNNPlugin" in plugins


def test_bm25_search(os_client: OpenSearch, index_name: str) -> None:
    os_client.indices.create(index=index_name, body={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    for doc_id, text, _ in DOCS:
        os_client.index(index=index_name, id=doc_id, body={"text": text})
    os_client.indices.refresh(index=index_name)
    hits = os_client.search(index=index_name, body={"query": {"match": {"text": "apple"}}})
    ids = [h["_id"] for h in hits["hits"]["hits"]]
    assert ids == ["apple", "plum"]  # the shorter field scores higher under BM25
    assert hits["hits"]["hits"][0]["_score"] > hits["hits"]["hits"][1]["_score"] > 0


@pytest.fixture
def vector_index(os_client: OpenSearch, index_name: str) -> Iterator[str]:
    os_client.indices.create(index=index_name, body={
        "settings": {"index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}},
        "mappings": {"properties": {
            "text": {"type": "text"},
            "emb": {"type": "knn_vector", "dimension": 3,
                    "method": {"name": "hnsw", "engine": "lucene", "space_type": "l2"}}}}})
    for doc_id, text, vector in DOCS:
        os_client.index(index=index_name, id=doc_id, body={"text": text, "emb": vector})
    os_client.indices.refresh(index=index_name)
    yield index_name


def test_knn_query_on_lucene_engine(os_client: OpenSearch, vector_index: str) -> None:
    res = os_client.search(index=vector_index, body={
        "size": 3, "query": {"knn": {"emb": {"vector": [0.0, 0.9, 0.1], "k": 3}}}})
    assert res["hits"]["hits"][0]["_id"] == "pear"
    # lucene l2 score is 1 / (1 + d^2): pear is at squared distance 0.02
    assert res["hits"]["hits"][0]["_score"] == pytest.approx(1 / 1.02, rel=1e-5)


def _hybrid_body(vector: list[float]) -> dict[str, object]:
    return {"size": 3, "query": {"hybrid": {"queries": [
        {"match": {"text": "apple"}},
        {"knn": {"emb": {"vector": vector, "k": 3}}},
    ]}}}


def test_hybrid_with_normalization_pipeline(os_client: OpenSearch, vector_index: str,
                                           native_hybrid: None) -> None:
    pipeline = f"{vector_index}-norm"
    os_client.transport.perform_request("PUT", f"/_search/pipeline/{pipeline}", body={
        "phase_results_processors": [{"normalization-processor": {
            "normalization": {"technique": "min_max"},
            "combination": {"technique": "arithmetic_mean",
                            "parameters": {"weights": [0.5, 0.5]}}}}]})
    try:
        res = os_client.search(index=vector_index, body=_hybrid_body([0.0, 1.0, 0.0]),
                               params={"search_pipeline": pipeline})
    finally:
        os_client.transport.perform_request("DELETE", f"/_search/pipeline/{pipeline}")
    hits = res["hits"]["hits"]
    assert {h["_id"] for h in hits} == {"apple", "pear", "plum"}
    # scores are normalised and combined into [0, 1]; the text-only winner and the
    # vector-only winner both get 0.5 from their own side
    assert all(0.0 <= h["_score"] <= 1.0 for h in hits)
    by_id = {h["_id"]: h["_score"] for h in hits}
    assert by_id["pear"] == pytest.approx(0.5, abs=1e-3)


def test_hybrid_with_rrf_pipeline(os_client: OpenSearch, vector_index: str,
                                  native_hybrid: None) -> None:
    pipeline = f"{vector_index}-rrf"
    os_client.transport.perform_request("PUT", f"/_search/pipeline/{pipeline}", body={
        "phase_results_processors": [{"score-ranker-processor": {
            "combination": {"technique": "rrf", "parameters": {"rank_constant": 60}}}}]})
    try:
        res = os_client.search(index=vector_index, body=_hybrid_body([1.0, 0.0, 0.0]),
                               params={"search_pipeline": pipeline})
    finally:
        os_client.transport.perform_request("DELETE", f"/_search/pipeline/{pipeline}")
    hits = res["hits"]["hits"]
    # apple is first in both lists: 1/61 + 1/61
    assert hits[0]["_id"] == "apple"
    assert hits[0]["_score"] == pytest.approx(2 / 61, rel=1e-5)
