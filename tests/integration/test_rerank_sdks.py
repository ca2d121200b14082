"""The rerank APIs RAG code already calls, through their own clients, against the real proxy
scoring with the shipped default model: Cohere's SDK (v2 and v1 clients), Jina's shape and
Hugging Face TEI's, their error cases, and chunking of long documents (also on ``_search``).

Expected orders and scores come from the same model scored directly with ``CrossEncoder``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cohere
import httpx
import numpy as np
import orjson
import pytest
from opensearchpy import OpenSearch, helpers

from crossrank.models import CrossEncoder
from crossrank.server import build_app

from proxy_fixtures import ServedProxy, proxy_settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "onnx_models" / "crossrank-minilm-l6-scifact"
SCIFACT = REPO / "datasets" / "scifact"
QUERY = "cancer cells and tumour growth"
DOCS = ["tumour growth in mice is driven by cancer cells", "a recipe for sourdough bread",
        "cancer cells divide without control", "the history of the printing press"]


@pytest.fixture(scope="module")
def served(opensearch_url: str, tiny_cross_encoder_dir: Path) -> Iterator[ServedProxy]:
    settings = proxy_settings(opensearch_url, DEFAULT_MODEL,
                              models={"default": DEFAULT_MODEL, "tiny": tiny_cross_encoder_dir})
    proxy = ServedProxy(build_app(settings), settings.port).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def http(served: ServedProxy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def co(served: ServedProxy) -> Iterator[cohere.ClientV2]:
    with httpx.Client(timeout=60) as client:  # closed here: the SDK would leave its own open
        yield cohere.ClientV2(api_key="any-key", base_url=served.url, httpx_client=client)


@pytest.fixture(scope="module")
def co_v1(served: ServedProxy) -> Iterator[cohere.Client]:
    with httpx.Client(timeout=60) as client:
        yield cohere.Client(api_key="any-key", base_url=served.url, httpx_client=client)


@pytest.fixture(scope="module")
def default_model() -> CrossEncoder:
    return CrossEncoder.load(DEFAULT_MODEL)


def expected(model: CrossEncoder, query: str, docs: list[str]) -> tuple[list[int], np.ndarray]:
    raw = model.score([(query, d) for d in docs])  # activation none: the logits
    return [int(i) for i in np.argsort(-raw, kind="stable")], raw


def logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# --- Cohere ---------------------------------------------------------------------------------

def test_cohere_v2_rerank(co: cohere.ClientV2, default_model: CrossEncoder) -> None:
    response = co.rerank(model="default", query=QUERY, documents=DOCS, top_n=3)
    order, raw = expected(default_model, QUERY, DOCS)
    assert [r.index for r in response.results] == order[:3]
    for result in response.results:
        assert 0.0 <= result.relevance_score <= 1.0
        assert result.relevance_score == pytest.approx(logistic(raw[result.index]), abs=2e-3)
    assert response.id and response.meta is not None
    assert response.meta.api_version is not None and response.meta.api_version.version == "2"


def test_cohere_v1_rerank_returns_documents(co_v1: cohere.Client,
                                            default_model: CrossEncoder) -> None:
    response = co_v1.rerank(model="default", query=QUERY, documents=DOCS, top_n=2,
                         return_documents=True)
    order, _ = expected(default_model, QUERY, DOCS)
    assert [r.index for r in response.results] == order[:2]
    assert [r.document.text for r in response.results if r.document] == \
        [DOCS[i] for i in order[:2]]
    assert response.meta is not None and response.meta.api_version is not None
    assert response.meta.api_version.version == "1"


def test_cohere_v1_rank_fields_pick_what_is_scored(co_v1: cohere.Client,
                                                   default_model: CrossEncoder) -> None:
    docs = [{"title": d, "body": "unrelated words"} for d in DOCS]
    response = co_v1.rerank(model="default", query=QUERY, documents=docs, rank_fields=["title"])
    order, _ = expected(default_model, QUERY, DOCS)
    assert [r.index for r in response.results] == order


def test_cohere_unknown_model_is_the_sdks_not_found(co: cohere.ClientV2,
                                                    co_v1: cohere.Client) -> None:
    with pytest.raises(cohere.errors.NotFoundError) as caught:
        co.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS)
    assert "rerank-v3.5" in str(caught.value.body)
    with pytest.raises(cohere.errors.NotFoundError):
        co_v1.rerank(model="rerank-english-v3.0", query=QUERY, documents=DOCS)


def test_cohere_invalid_request_is_the_sdks_bad_request(co: cohere.ClientV2) -> None:
    with pytest.raises(cohere.errors.BadRequestError) as caught:
        co.rerank(model="default", query=QUERY, documents=DOCS, top_n=0)
    assert "top_n" in caught.value.body["message"]
    with pytest.raises(cohere.errors.BadRequestError):
        co.rerank(model="default", query="", documents=DOCS)


def test_cohere_max_tokens_per_doc_is_honoured(co: cohere.ClientV2,
                                               default_model: CrossEncoder) -> None:
    """Only the first N tokens of each document are read: a document whose relevant words
    come after them scores as its first words do."""
    docs = ["the history of the printing press " + DOCS[0], DOCS[3]]
    cut = co.rerank(model="default", query=QUERY, documents=docs, max_tokens_per_doc=6)
    whole = co.rerank(model="default", query=QUERY, documents=docs)
    scores = {r.index: r.relevance_score for r in cut.results}
    assert scores[0] == pytest.approx(scores[1], abs=1e-3)  # both read "the history of ..."
    assert {r.index: r.relevance_score for r in whole.results}[0] > scores[0] + 0.1


def test_cohere_tiny_model_selected_by_name(co: cohere.ClientV2,
                                            tiny_cross_encoder_dir: Path) -> None:
    tiny = CrossEncoder.load(tiny_cross_encoder_dir)  # activation sigmoid: already in [0, 1]
    response = co.rerank(model="tiny", query=QUERY, documents=DOCS)
    scores = tiny.score([(QUERY, d) for d in DOCS])
    for result in response.results:
        assert result.relevance_score == pytest.approx(float(scores[result.index]), abs=1e-5)


# --- Jina -----------------------------------------------------------------------------------

def test_jina_shape(http: httpx.Client, default_model: CrossEncoder) -> None:
    body = {"model": "default", "query": QUERY, "top_n": 3,
            "documents": [DOCS[0], {"text": DOCS[1]}, DOCS[2], {"text": DOCS[3]}]}
    response = http.post("/v1/rerank", json=body)
    assert response.status_code == 200, response.text
    order, _ = expected(default_model, QUERY, DOCS)
    results = response.json()["results"]
    assert [r["index"] for r in results] == order[:3]
    assert [r["document"]["text"] for r in results] == [DOCS[i] for i in order[:3]]
    assert response.json()["model"] == "default"
    quiet = http.post("/v1/rerank", json={**body, "return_documents": False}).json()
    assert all("document" not in r for r in quiet["results"])
    bad = http.post("/v1/rerank", json={"query": QUERY, "documents": [{"title": "no text"}]})
    assert bad.status_code == 400 and "text" in bad.json()["detail"]


# --- TEI ------------------------------------------------------------------------------------

# TEI's documented schemas (its docs/openapi.json, RerankResponse and ErrorResponse)
TEI_RANK_KEYS = {"index", "score", "text"}
TEI_ERROR_TYPES = {"unhealthy", "backend", "overloaded", "validation", "tokenizer", "empty"}


def test_tei_rerank(http: httpx.Client, default_model: CrossEncoder) -> None:
    response = http.post("/rerank", json={"query": QUERY, "texts": DOCS})
    assert response.status_code == 200, response.text
    ranks = response.json()
    order, raw = expected(default_model, QUERY, DOCS)
    assert isinstance(ranks, list) and [r["index"] for r in ranks] == order
    assert all(set(r) == {"index", "score"} for r in ranks)
    assert all(r["score"] == pytest.approx(logistic(raw[r["index"]]), abs=2e-3) for r in ranks)
    raw_answer = http.post("/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": True,
                                            "return_text": True,
                                            "truncation_direction": "Right"}).json()
    assert all(set(r) <= TEI_RANK_KEYS for r in raw_answer)
    assert all(r["score"] == pytest.approx(float(raw[r["index"]]), abs=5e-3) for r in raw_answer)
    assert [r["text"] for r in raw_answer] == [DOCS[i] for i in order]


def test_tei_errors_are_teis(http: httpx.Client) -> None:
    long_text = " ".join(["cancer"] * 400)
    cases = [
        ({"query": QUERY}, 422),  # not the schema: texts missing
        ({"query": QUERY, "texts": []}, 413),  # TEI: `texts` cannot be empty
        ({"query": QUERY, "texts": [long_text], "truncate": False}, 413),
        ({"query": QUERY, "texts": DOCS, "truncation_direction": "Left"}, 413),
        ({"query": QUERY, "texts": DOCS, "model": "nope"}, 424),
    ]
    for body, status in cases:
        response = http.post("/rerank", json=body)
        assert response.status_code == status, (body, response.text)
        error = response.json()
        assert set(error) == {"error", "error_type"} and error["error_type"] in TEI_ERROR_TYPES
    cut = http.post("/rerank", json={"query": QUERY, "texts": [long_text]})  # auto-truncate
    assert cut.status_code == 200 and len(cut.json()) == 1


def test_crossrank_endpoint_scores_in_unit_range_and_raw_on_request(
        http: httpx.Client, default_model: CrossEncoder) -> None:
    response = http.post("/_crossrank/rerank",
                         json={"query": QUERY, "documents": DOCS, "raw_scores": True}).json()
    _, raw = expected(default_model, QUERY, DOCS)
    for result in response["results"]:
        assert 0 <= result["relevance_score"] <= 1
        assert result["raw_score"] == pytest.approx(float(raw[result["index"]]), abs=5e-3)


# --- chunking -------------------------------------------------------------------------------

def _judged_pair() -> tuple[str, str, list[str]]:
    """A SciFact training claim, its judged abstract, and abstracts judged for other claims."""
    queries = {q["_id"]: q["text"] for q in map(
        orjson.loads, (SCIFACT / "queries.jsonl").read_bytes().splitlines())}
    rows = [line.split("\t") for line in (SCIFACT / "qrels_train.tsv").read_text().split("\n")[1:]
            if line.strip()]
    corpus = {}
    wanted = {row[1] for row in rows[:40]}
    with (SCIFACT / "corpus.jsonl").open("rb") as f:
        for doc in map(orjson.loads, f):
            if doc["_id"] in wanted:
                corpus[doc["_id"]] = f"{doc['title']}. {doc['text']}"
    query_id, doc_id = rows[0][0], rows[0][1]
    others = [corpus[row[1]] for row in rows[1:40] if row[1] in corpus and row[0] != query_id]
    return queries[query_id], corpus[doc_id], others


def _late_passage() -> tuple[str, str, list[str]]:
    """(claim, long document ending in its judged abstract, short distractors)."""
    claim, relevant, others = _judged_pair()
    filler = " ".join(others[:4])  # several hundred tokens of other abstracts first
    return claim, f"{filler} {relevant}", others[4:12]


def test_a_late_relevant_passage_is_found_only_with_chunking(http: httpx.Client) -> None:
    claim, long_doc, distractors = _late_passage()
    docs = [*distractors, long_doc]
    plain = http.post("/_crossrank/rerank", json={"query": claim, "documents": docs}).json()
    chunked = http.post("/_crossrank/rerank",
                        json={"query": claim, "documents": docs, "max_chunks": 32}).json()
    long_index = len(docs) - 1
    assert plain["results"][0]["index"] != long_index
    assert chunked["results"][0]["index"] == long_index
    v1 = http.post("/v1/rerank", json={"query": claim, "documents": docs,
                                       "max_chunks_per_doc": 32}).json()
    assert v1["results"][0]["index"] == long_index


@pytest.fixture(scope="module")
def long_index(os_client: OpenSearch) -> Iterator[tuple[str, str]]:
    name = "t-rerank-chunking"
    claim, long_doc, distractors = _late_passage()
    os_client.indices.delete(index=name, ignore_unavailable=True)
    os_client.indices.create(index=name, body={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {"properties": {"text": {"type": "text"}}}})
    docs = [("long", long_doc), *((f"d{i}", d) for i, d in enumerate(distractors))]
    helpers.bulk(os_client, ({"_index": name, "_id": i, "text": t} for i, t in docs),
                 refresh=True)
    yield name, claim
    os_client.indices.delete(index=name, ignore_unavailable=True)


def test_search_policy_chunking_and_per_search_override(
        http: httpx.Client, admin_token: str, long_index: tuple[str, str]) -> None:
    index, claim = long_index
    headers = {"x-crossrank-admin-token": admin_token}
    put = http.put("/_crossrank/policies/t-chunking", headers=headers, json={
        "indices": [index], "window": 20, "score_mode": "replace",
        "chunking": {"max_chunks": 32, "overlap": 16}})
    assert put.status_code in (200, 201), put.text
    try:
        # a query that matches every document, so BM25's order does not decide
        body: dict[str, Any] = {"query": {"match_all": {}}, "size": 3,
                                "ext": {"crossrank": {"query_text": claim}}}
        for attempt in itertools.count():  # the policy reaches this replica within 0.5 s
            chunked = http.post(f"/{index}/_search", json=body)
            if chunked.headers.get("x-crossrank-status") == "reranked" or attempt > 40:
                break
        assert chunked.headers["x-crossrank-status"] == "reranked", chunked.text
        assert chunked.json()["hits"]["hits"][0]["_id"] == "long"
        off = {**body, "ext": {"crossrank": {"query_text": claim, "max_chunks": 1}}}
        plain = http.post(f"/{index}/_search", json=off)
        assert plain.json()["hits"]["hits"][0]["_id"] != "long"
        bad = http.post(f"/{index}/_search",
                        json={**body, "ext": {"crossrank": {"max_chunks": 0}}})
        assert bad.status_code == 400 and "max_chunks" in bad.text
    finally:
        http.delete("/_crossrank/policies/t-chunking", headers=headers)
