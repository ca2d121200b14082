"""Indices with a policy: reranked order, pages, _source filters, aggregations, A/B, fallback.

Expected orders come from the same real ONNX model scored directly with CrossEncoder.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from opensearchpy import AsyncOpenSearch, OpenSearch, helpers

from crossrank.config import Settings
from crossrank.models import CrossEncoder
from crossrank.server import build_app

from proxy_fixtures import ServedProxy, proxy_settings
from scifact import scifact_docs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
N_DOCS = 300


def load_docs(n: int = N_DOCS) -> list[dict[str, Any]]:
    return scifact_docs(n)


@pytest.fixture(scope="module")
def scifact_index(os_client: OpenSearch) -> Iterator[str]:
    name = "t-scifact-rerank"
    os_client.indices.delete(index=name, ignore_unavailable=True)
    os_client.indices.create(index=name, body={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {"properties": {"title": {"type": "text"}, "text": {"type": "text"},
                                    "year": {"type": "integer"}}}})
    helpers.bulk(os_client, ({"_index": name, "_id": d["_id"], "title": d["title"],
                              "text": d["text"], "year": 2000 + i % 20}
                             for i, d in enumerate(load_docs())), refresh=True)
    yield name
    os_client.indices.delete(index=name, ignore_unavailable=True)


@pytest.fixture(scope="module")
def http(proxy_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def policy(http: httpx.Client, admin_token: str, scifact_index: str) -> Iterator[str]:
    name = "scifact-test"
    put = http.put(f"/_crossrank/policies/{name}", headers={"x-crossrank-admin-token": admin_token},
                   json={"indices": [scifact_index], "text_fields": ["title", "text"],
                         "template": "{title}. {text}", "window": 30, "max_window": 100})
    assert put.status_code in (200, 201), put.text
    yield name
    http.delete(f"/_crossrank/policies/{name}", headers={"x-crossrank-admin-token": admin_token})


@pytest.fixture(scope="module")
def model(tiny_cross_encoder_dir: Path) -> CrossEncoder:
    return CrossEncoder.load(tiny_cross_encoder_dir)


QUERY = "cancer cells and tumour growth"


def search(http: httpx.Client, index: str, body: dict[str, Any],
           params: dict[str, str] | None = None) -> httpx.Response:
    return http.post(f"/{index}/_search", json=body, params=params or {})


def test_reranked_order_follows_the_model(http: httpx.Client, policy: str, scifact_index: str,
                                          model: CrossEncoder, os_client: OpenSearch) -> None:
    body = {"query": {"multi_match": {"query": QUERY, "fields": ["title", "text"]}}, "size": 10}
    response = search(http, scifact_index, body)
    assert response.status_code == 200, response.text
    assert response.headers["x-crossrank-status"] == "reranked"
    assert response.headers["x-crossrank-arm"] == "rerank"
    assert response.headers["x-crossrank-window"] == "30"  # the policy's
    got = response.json()["hits"]["hits"]

    first_stage = os_client.search(index=scifact_index, body={**body, "size": 30})["hits"]["hits"]
    texts = [f"{h['_source']['title']}. {h['_source']['text']}" for h in first_stage]
    scores = model.score([(QUERY, t) for t in texts])
    order = np.argsort(-scores, kind="stable")[:10]
    assert [h["_id"] for h in got] == [first_stage[i]["_id"] for i in order]
    assert [h["_score"] for h in got] == pytest.approx([float(scores[i]) for i in order],
                                                       abs=1e-5)
    assert response.json()["hits"]["max_score"] == pytest.approx(float(scores[order[0]]),
                                                                 abs=1e-5)
    assert [h["_id"] for h in got] != [h["_id"] for h in first_stage[:10]]


CONCURRENT_QUERIES = ["insulin resistance in obese patients", "vitamin D and bone density",
                      "stem cell differentiation", "antibiotic resistance genes",
                      "blood pressure and salt intake", "tumour suppressor p53 mutations",
                      "neurons and synaptic plasticity", "malaria vaccine efficacy",
                      "gut microbiota and diet", "smoking and lung function",
                      "DNA methylation in ageing", "statins and cholesterol"]


async def test_concurrent_searches_are_batched_and_each_keeps_its_own_order(
        proxy_url: str, policy: str, scifact_index: str, model: CrossEncoder,
        os_client: OpenSearch) -> None:
    """Searches that arrive together share the model's micro-batches; every client still gets
    its own hits, in its own model order, whatever it was merged with."""
    def counter(text: str, name: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + '{model="default"}'))

    client = AsyncOpenSearch(proxy_url, timeout=60)
    try:
        before = httpx.get(f"{proxy_url}/_crossrank/metrics").text
        bodies = [{"query": {"multi_match": {"query": q, "fields": ["title", "text"]}},
                   "size": 10} for q in CONCURRENT_QUERIES]
        answers = await asyncio.gather(*(client.search(index=scifact_index, body=b)
                                         for b in bodies))
        after = httpx.get(f"{proxy_url}/_crossrank/metrics").text
    finally:
        await client.close()
    for query, body, answer in zip(CONCURRENT_QUERIES, bodies, answers, strict=True):
        first = os_client.search(index=scifact_index, body={**body, "size": 30})["hits"]["hits"]
        scores = model.score([(query, f"{h['_source']['title']}. {h['_source']['text']}")
                              for h in first])
        order = np.argsort(-scores, kind="stable")[:10]
        assert [h["_id"] for h in answer["hits"]["hits"]] == [first[i]["_id"] for i in order]
    merged = (counter(after, "crossrank_batch_requests_total")
              - counter(before, "crossrank_batch_requests_total"))
    batches = (counter(after, "crossrank_batches_total")
               - counter(before, "crossrank_batches_total"))
    assert merged == len(CONCURRENT_QUERIES)  # every window went through the batcher
    assert 1 <= batches <= merged
    assert 'crossrank_batch_queue_pairs{model="default"} 0.0' in after
    assert "process_resident_memory_bytes" in after
    # requests and latency by route and A/B arm (recorded just after each answer is sent)
    deadline = time.monotonic() + 10
    while True:
        by_arm = [float(line.rsplit(" ", 1)[1]) for line in after.splitlines()
                  if line.startswith('crossrank_request_seconds_count{arm="rerank",'
                                     'route="search"}')]
        if (by_arm and by_arm[0] >= len(CONCURRENT_QUERIES)) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
        after = httpx.get(f"{proxy_url}/_crossrank/metrics").text
    assert by_arm and by_arm[0] >= len(CONCURRENT_QUERIES)


def test_rerank_false_is_exactly_opensearch(http: httpx.Client, policy: str, scifact_index: str,
                                            opensearch_url: str) -> None:
    body = {"query": {"match": {"text": QUERY}}, "size": 7}
    proxied = search(http, scifact_index, body, {"rerank": "false"})
    direct = httpx.post(f"{opensearch_url}/{scifact_index}/_search", json=body)
    assert proxied.headers["x-crossrank-arm"] == "baseline"
    assert proxied.headers["x-crossrank-status"] == "bypassed"
    assert proxied.headers["x-crossrank-reason"] == "rerank_false"
    p, d = proxied.json(), direct.json()
    p.pop("took"), d.pop("took")
    assert p == d


def test_pages_inside_the_window_come_from_one_list(http: httpx.Client, policy: str,
                                                    scifact_index: str) -> None:
    q = {"query": {"match": {"text": QUERY}}}
    whole = search(http, scifact_index, {**q, "size": 30}).json()["hits"]["hits"]
    pages = [search(http, scifact_index, {**q, "from": f, "size": 10}).json()["hits"]["hits"]
             for f in (0, 10, 20)]
    assert [h["_id"] for page in pages for h in page] == [h["_id"] for h in whole]
    # beyond the window (30): first-stage order, as OpenSearch's rescore window does
    tail = search(http, scifact_index, {**q, "from": 30, "size": 5})
    baseline = search(http, scifact_index, {**q, "from": 30, "size": 5}, {"rerank": "false"})
    assert [h["_id"] for h in tail.json()["hits"]["hits"]] == \
        [h["_id"] for h in baseline.json()["hits"]["hits"]]


def test_source_filter_is_honoured(http: httpx.Client, policy: str, scifact_index: str) -> None:
    body = {"query": {"match": {"text": QUERY}}, "_source": ["year"], "size": 5}
    response = search(http, scifact_index, body)
    assert response.headers["x-crossrank-status"] == "reranked"
    for hit in response.json()["hits"]["hits"]:
        assert set(hit["_source"]) == {"year"}
    none = search(http, scifact_index, {**body, "_source": False}).json()["hits"]["hits"]
    assert all("_source" not in hit for hit in none)


def test_aggregations_and_total_are_opensearch_s(http: httpx.Client, policy: str,
                                                 scifact_index: str) -> None:
    body = {"query": {"match": {"text": QUERY}}, "size": 5,
            "aggs": {"years": {"terms": {"field": "year", "size": 30}}}}
    reranked = search(http, scifact_index, body).json()
    baseline = search(http, scifact_index, body, {"rerank": "false"}).json()
    assert reranked["aggregations"] == baseline["aggregations"]
    assert reranked["hits"]["total"] == baseline["hits"]["total"]


@pytest.mark.parametrize(("body", "params", "reason"), [
    ({"query": {"match": {"text": QUERY}}, "sort": [{"year": "desc"}]}, {}, "sort"),
    ({"query": {"match": {"text": QUERY}}, "size": 0}, {}, "size_zero"),
    ({"query": {"match": {"text": QUERY}}, "sort": ["_score", {"year": "asc"}],
      "search_after": [1.0, 2001]}, {}, "search_after"),
    ({"query": {"match": {"text": QUERY}}}, {"scroll": "1m"}, "scroll"),
    ({"query": {"match_all": {}}}, {}, "no_query_text"),
    ({"query": {"match": {"text": QUERY}}}, {"rerank": "false"}, "rerank_false"),
])
def test_bypass_reasons(http: httpx.Client, policy: str, scifact_index: str,
                        body: dict[str, Any], params: dict[str, str], reason: str) -> None:
    response = search(http, scifact_index, body, params)
    assert response.status_code == 200, response.text
    assert response.headers["x-crossrank-status"] == "bypassed"
    assert response.headers["x-crossrank-reason"] == reason


def test_query_text_override_and_window_param(http: httpx.Client, policy: str,
                                              scifact_index: str, model: CrossEncoder) -> None:
    body = {"query": {"match_all": {}}, "size": 3,
            "ext": {"crossrank": {"query_text": QUERY, "window": 8}}}
    response = search(http, scifact_index, body)
    assert response.headers["x-crossrank-status"] == "reranked"
    assert response.headers["x-crossrank-window"] == "8"
    given = search(http, scifact_index, body, {"rerank_window": "12"})
    assert given.headers["x-crossrank-window"] == "12"  # the parameter wins over ext
    too_wide = search(http, scifact_index, {"query": {"match": {"text": "x"}}},
                      {"rerank_window": "1000"})
    assert too_wide.status_code == 400
    assert "rerank_window" in too_wide.json()["error"]["reason"]


def test_explain_exposes_first_stage(http: httpx.Client, policy: str,
                                     scifact_index: str) -> None:
    body = {"query": {"match": {"text": QUERY}}, "size": 5,
            "ext": {"crossrank": {"explain": True}}}
    hits = search(http, scifact_index, body).json()["hits"]["hits"]
    for hit in hits:
        info = hit["_crossrank"]
        assert info["rerank_score"] == pytest.approx(hit["_score"])
        assert info["first_stage_rank"] >= 0 and info["first_stage_score"] > 0


def test_msearch_mixes_policies(http: httpx.Client, policy: str, scifact_index: str,
                                os_client: OpenSearch, index_name: str) -> None:
    os_client.index(index=index_name, id="1", body={"text": QUERY}, refresh=True)
    lines = [{"index": scifact_index}, {"query": {"match": {"text": QUERY}}, "size": 4},
             {"index": index_name}, {"query": {"match": {"text": QUERY}}},
             {"index": scifact_index}, {"query": {"match": {"text": QUERY}}, "size": 4}]
    ndjson = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    response = http.post("/_msearch", content=ndjson,
                         headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    first, plain, again = response.json()["responses"]
    single = search(http, scifact_index, {"query": {"match": {"text": QUERY}}, "size": 4}).json()
    assert [h["_id"] for h in first["hits"]["hits"]] == [h["_id"] for h in single["hits"]["hits"]]
    assert [h["_id"] for h in again["hits"]["hits"]] == [h["_id"] for h in single["hits"]["hits"]]
    assert [h["_id"] for h in plain["hits"]["hits"]] == ["1"]


@pytest.fixture(scope="module")
def stored_template(os_client: OpenSearch) -> Iterator[str]:
    name = "t-crossrank-claim-search"
    os_client.put_script(id=name, body={"script": {"lang": "mustache", "source": {
        "query": {"multi_match": {"query": "{{claim}}", "fields": ["title", "text"]}},
        "size": "{{size}}"}}})
    yield name
    os_client.delete_script(id=name)


def test_a_search_template_is_reranked_as_the_search_it_renders(
        http: httpx.Client, policy: str, scifact_index: str, stored_template: str,
        opensearch_url: str) -> None:
    rendered = {"query": {"multi_match": {"query": QUERY, "fields": ["title", "text"]}},
                "size": 10}
    plain = search(http, scifact_index, rendered)
    assert plain.headers["x-crossrank-status"] == "reranked"
    inline = {"source": '{"query": {"multi_match": {"query": "{{claim}}", '
                        '"fields": ["title", "text"]}}, "size": {{size}}}',
              "params": {"claim": QUERY, "size": 10}}
    for template in ({"id": stored_template, "params": {"claim": QUERY, "size": 10}}, inline):
        response = http.post(f"/{scifact_index}/_search/template", json=template)
        assert response.status_code == 200, response.text
        assert response.headers["x-crossrank-status"] == "reranked"
        assert response.headers["x-crossrank-window"] == "30"
        assert [h["_id"] for h in response.json()["hits"]["hits"]] == \
            [h["_id"] for h in plain.json()["hits"]["hits"]]
        # the template API's own shape (its top-level status), as OpenSearch answers it
        direct = httpx.post(f"{opensearch_url}/{scifact_index}/_search/template", json=template)
        assert set(response.json()) == set(direct.json())
        assert [h["_id"] for h in direct.json()["hits"]["hits"]] != \
            [h["_id"] for h in response.json()["hits"]["hits"]]


def test_search_templates_pass_through_where_nothing_is_reranked(
        http: httpx.Client, policy: str, scifact_index: str, stored_template: str,
        opensearch_url: str, os_client: OpenSearch, index_name: str) -> None:
    template = {"id": stored_template, "params": {"claim": QUERY, "size": 7}}
    off = http.post(f"/{scifact_index}/_search/template", params={"rerank": "false"},
                    json=template)
    direct = httpx.post(f"{opensearch_url}/{scifact_index}/_search/template", json=template)
    assert off.headers["x-crossrank-status"] == "bypassed"
    assert off.headers["x-crossrank-reason"] == "rerank_false"
    o, d = off.json(), direct.json()
    o.pop("took"), d.pop("took")
    assert o == d
    # explain and profile are the template API's switches for the search it renders
    explained = http.post(f"/{scifact_index}/_search/template", json={**template,
                                                                        "explain": True})
    assert explained.headers["x-crossrank-status"] == "reranked"
    assert all("_explanation" in h for h in explained.json()["hits"]["hits"])
    # an unknown template: OpenSearch's own answer
    missing = {"id": "t-crossrank-no-such-template", "params": {}}
    proxied = http.post(f"/{scifact_index}/_search/template", json=missing)
    direct = httpx.post(f"{opensearch_url}/{scifact_index}/_search/template", json=missing)
    assert proxied.status_code == direct.status_code == 404
    assert proxied.json() == direct.json()
    assert proxied.headers["x-crossrank-reason"] == "template_not_rendered"
    # an index without a policy: byte for byte
    os_client.index(index=index_name, id="1", body={"text": QUERY}, refresh=True)
    unmanaged = http.post(f"/{index_name}/_search/template", json=template)
    assert unmanaged.headers["x-crossrank-reason"] == "no_policy"
    assert [h["_id"] for h in unmanaged.json()["hits"]["hits"]] == ["1"]


def test_msearch_templates_rerank_each_by_its_own_policy(
        http: httpx.Client, policy: str, scifact_index: str, stored_template: str,
        os_client: OpenSearch, index_name: str, opensearch_url: str) -> None:
    os_client.index(index=index_name, id="1", body={"text": QUERY}, refresh=True)
    params = {"claim": QUERY, "size": 4}
    lines = [{"index": scifact_index}, {"id": stored_template, "params": params},
             {"index": index_name}, {"id": stored_template, "params": params}]
    ndjson = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    headers = {"content-type": "application/x-ndjson"}
    response = http.post("/_msearch/template", content=ndjson, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-crossrank-status"] == "reranked"
    reranked, plain = response.json()["responses"]
    single = search(http, scifact_index, {"query": {"multi_match": {
        "query": QUERY, "fields": ["title", "text"]}}, "size": 4}).json()
    assert [h["_id"] for h in reranked["hits"]["hits"]] == \
        [h["_id"] for h in single["hits"]["hits"]]
    assert [h["_id"] for h in plain["hits"]["hits"]] == ["1"]
    direct = httpx.post(f"{opensearch_url}/_msearch/template", content=ndjson, headers=headers)
    assert [set(r) for r in response.json()["responses"]] == \
        [set(r) for r in direct.json()["responses"]]
    # nothing reranked (rerank=false), or a template that does not render: OpenSearch's answer
    off = http.post("/_msearch/template", params={"rerank": "false"}, content=ndjson,
                    headers=headers)
    assert off.headers["x-crossrank-status"] == "bypassed"
    assert [[h["_id"] for h in r["hits"]["hits"]] for r in off.json()["responses"]] == \
        [[h["_id"] for h in r["hits"]["hits"]] for r in direct.json()["responses"]]
    broken = ndjson + orjson.dumps({"index": scifact_index}) + b"\n" + orjson.dumps(
        {"id": "t-crossrank-no-such-template"}) + b"\n"
    proxied = http.post("/_msearch/template", content=broken, headers=headers)
    assert proxied.headers["x-crossrank-reason"] == "template_not_rendered"
    direct = httpx.post(f"{opensearch_url}/_msearch/template", content=broken, headers=headers)
    assert proxied.status_code == direct.status_code
    assert [r.get("status") for r in proxied.json().get("responses", [])] == \
        [r.get("status") for r in direct.json().get("responses", [])]


def test_invalid_policy_is_refused_naming_the_field(http: httpx.Client,
                                                    admin_token: str) -> None:
    headers = {"x-crossrank-admin-token": admin_token}
    bad = http.put("/_crossrank/policies/bad", headers=headers, json={"window": -3})
    assert bad.status_code == 400
    assert "window" in bad.json()["error"]["reason"]
    unknown = http.put("/_crossrank/policies/bad", headers=headers, json={"windw": 3})
    assert unknown.status_code == 400 and "windw" in unknown.json()["error"]["reason"]
    no_token = http.put("/_crossrank/policies/bad", json={"window": 3})
    assert no_token.status_code == 401


def test_rerank_endpoint(http: httpx.Client, model: CrossEncoder) -> None:
    docs = ["tumour growth in mice", "a recipe for bread", {"id": "x", "text": "cancer cells"}]
    response = http.post("/_crossrank/rerank", json={
        "query": QUERY, "documents": docs, "top_n": 2, "return_documents": True})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    texts = ["tumour growth in mice", "a recipe for bread", "cancer cells"]
    scores = model.score([(QUERY, t) for t in texts])
    expected = list(np.argsort(-scores, kind="stable")[:2])
    assert [r["index"] for r in results] == expected
    assert results[0]["document"]["text"] == texts[expected[0]]
    empty = http.post("/_crossrank/rerank", json={"query": QUERY, "documents": []})
    assert empty.status_code == 200 and empty.json()["results"] == []
    bad = http.post("/_crossrank/rerank", json={"documents": ["x"]})
    assert bad.status_code == 400 and "query" in bad.json()["error"]["reason"]


class FailingScorer:
    """Fault injection: a scorer that raises, as a crashed model runtime would."""

    async def score(self, model: str, pairs: Any, *, max_length: int | None = None,
                    chunking: object = None) -> Any:
        raise RuntimeError("injected scorer failure")


@pytest.fixture
def faulty_proxy(opensearch_url: str, tiny_cross_encoder_dir: Path) -> Iterator[ServedProxy]:
    settings: Settings = proxy_settings(opensearch_url, tiny_cross_encoder_dir)
    app = build_app(settings)
    app.replace_scorer(FailingScorer())
    served = ServedProxy(app, settings.port).start()
    yield served
    served.stop()


def test_scorer_failure_falls_back_to_first_stage(faulty_proxy: ServedProxy, policy: str,
                                                  scifact_index: str, http: httpx.Client) -> None:
    body = {"query": {"match": {"text": QUERY}}, "size": 5, "_source": ["year"]}
    with httpx.Client(base_url=faulty_proxy.url, timeout=30) as client:
        # the policy is shared through OpenSearch; wait for this replica to read it
        response = client.post(f"/{scifact_index}/_search", json=body)
    baseline = search(http, scifact_index, body, {"rerank": "false"}).json()
    assert response.status_code == 200
    assert response.headers["x-crossrank-status"] == "fallback"
    assert response.headers["x-crossrank-reason"].startswith("scorer_error")
    assert [h["_id"] for h in response.json()["hits"]["hits"]] == \
        [h["_id"] for h in baseline["hits"]["hits"]]
    assert all(set(h["_source"]) == {"year"} for h in response.json()["hits"]["hits"])


def test_rerank_endpoint_falls_back_and_counts_as_search_does(faulty_proxy: ServedProxy,
                                                              http: httpx.Client) -> None:
    """``POST /_crossrank/rerank`` runs the search pipeline: a failing scorer gives the
    documents in the order given with no score, marked fallback, and is counted."""
    docs = ["a recipe for bread", "tumour growth in mice", "cancer cells"]
    with httpx.Client(base_url=faulty_proxy.url, timeout=30) as client:
        response = client.post("/_crossrank/rerank",
                               json={"query": QUERY, "documents": docs, "top_n": 2})
        metrics = client.get("/_crossrank/metrics").text
    assert response.status_code == 200, response.text
    assert response.headers["x-crossrank-status"] == "fallback"
    assert response.headers["x-crossrank-reason"] == "scorer_error:RuntimeError"
    assert [(r["index"], r["relevance_score"]) for r in response.json()["results"]] == [
        (0, None), (1, None)]
    assert ('crossrank_search_outcomes_total{arm="rerank",outcome="fallback",'
            'policy="rerank-api",reason="scorer_error:RuntimeError"} 1.0') in metrics
    ok = http.post("/_crossrank/rerank", json={"query": QUERY, "documents": docs})
    assert ok.headers["x-crossrank-status"] == "reranked" and "server-timing" in ok.headers


def test_budget_of_one_ms_falls_back(http: httpx.Client, admin_token: str,
                                     scifact_index: str, policy: str) -> None:
    headers = {"x-crossrank-admin-token": admin_token}
    current = http.get(f"/_crossrank/policies/{policy}").json()
    tight = http.put(f"/_crossrank/policies/{policy}", headers=headers,
                     json={**current, "budget_ms": 1, "window": 100})
    assert tight.status_code == 200, tight.text
    try:
        body = {"query": {"match": {"text": QUERY}}, "size": 5}
        response = search(http, scifact_index, body, {"rerank_window": "100"})
        baseline = search(http, scifact_index, body, {"rerank": "false"}).json()
        assert response.headers["x-crossrank-status"] == "fallback"
        assert response.headers["x-crossrank-reason"] == "budget_exceeded"
        assert "x-crossrank-window" not in response.headers  # nothing was reranked
        assert [h["_id"] for h in response.json()["hits"]["hits"]] == \
            [h["_id"] for h in baseline["hits"]["hits"]]
    finally:
        http.put(f"/_crossrank/policies/{policy}", headers=headers, json=current)


def test_unreachable_opensearch_is_a_clean_502(tiny_cross_encoder_dir: Path) -> None:
    from proxy_fixtures import free_port
    settings = proxy_settings(f"http://127.0.0.1:{free_port()}", tiny_cross_encoder_dir,
                              policy_refresh_s=60)
    served = ServedProxy(build_app(settings), settings.port).start()
    try:
        response = httpx.post(f"{served.url}/anything/_search", json={"query": {}})
        assert response.status_code == 502
        error = response.json()
        assert error["status"] == 502
        assert error["error"]["root_cause"][0]["type"] == "crossrank_upstream_unavailable"
    finally:
        served.stop()


def test_read_only_proxy_refuses_admin_writes_but_serves(
        opensearch_url: str, admin_token: str, tiny_cross_encoder_dir: Path, policy: str,
        scifact_index: str) -> None:
    """admin.enabled false: policies come from the shared index, nobody changes them here."""
    from crossrank.config import AdminSettings
    settings = proxy_settings(opensearch_url, tiny_cross_encoder_dir,
                              admin=AdminSettings(enabled=False))
    served = ServedProxy(build_app(settings), settings.port).start()
    try:
        for method, path in (("PUT", "/_crossrank/policies/ro-test"),
                             ("DELETE", f"/_crossrank/policies/{policy}"),
                             ("PUT", f"/_crossrank/mappings/{scifact_index}")):
            refused = httpx.request(method, served.url + path, json={"indices": ["x"]},
                                    headers={"x-crossrank-admin-token": admin_token})
            assert refused.status_code == 403, (method, path, refused.text)
            assert refused.json()["error"]["type"] == "security_exception"
        deadline = time.monotonic() + 10
        while httpx.get(f"{served.url}/_crossrank/policies/{policy}").status_code != 200:
            assert time.monotonic() < deadline, "the read-only proxy never saw the policy"
            time.sleep(0.2)
        answer = httpx.post(f"{served.url}/{scifact_index}/_search", json={
            "query": {"match": {"text": "cancer"}}, "size": 3}, timeout=60)
        assert answer.status_code == 200
        assert answer.headers["x-crossrank-status"] == "reranked"
    finally:
        served.stop()


def test_second_replica_picks_up_policy_changes(opensearch_url: str, admin_token: str,
                                                tiny_cross_encoder_dir: Path,
                                                scifact_index: str) -> None:
    """Two proxies against one node share policies through OpenSearch."""
    settings = proxy_settings(opensearch_url, tiny_cross_encoder_dir)
    first = ServedProxy(build_app(settings), settings.port).start()
    other = proxy_settings(opensearch_url, tiny_cross_encoder_dir)
    second = ServedProxy(build_app(other), other.port).start()
    name = "replica-shared"
    headers = {"x-crossrank-admin-token": admin_token}
    try:
        put = httpx.put(f"{first.url}/_crossrank/policies/{name}", headers=headers,
                        json={"indices": ["replica-only-index"], "window": 7})
        assert put.status_code == 201, put.text
        deadline = time.monotonic() + 10
        seen = None
        while time.monotonic() < deadline:
            seen = httpx.get(f"{second.url}/_crossrank/policies/{name}")
            if seen.status_code == 200:
                break
            time.sleep(0.2)
        assert seen is not None and seen.status_code == 200 and seen.json()["window"] == 7
        httpx.delete(f"{second.url}/_crossrank/policies/{name}", headers=headers)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if httpx.get(f"{first.url}/_crossrank/policies/{name}").status_code == 404:
                break
            time.sleep(0.2)
        assert httpx.get(f"{first.url}/_crossrank/policies/{name}").status_code == 404
    finally:
        first.stop()
        second.stop()


def test_ab_split_is_stable_per_user(http: httpx.Client, admin_token: str, policy: str,
                                     scifact_index: str) -> None:
    headers = {"x-crossrank-admin-token": admin_token}
    current = http.get(f"/_crossrank/policies/{policy}").json()
    split = {**current, "ab": {"mode": "split", "rerank_share": 0.5}}
    assert http.put(f"/_crossrank/policies/{policy}", headers=headers,
                    json=split).status_code == 200
    try:
        body = {"query": {"match": {"text": QUERY}}, "size": 3}
        arms = {}
        for user in (f"user-{n}" for n in range(20)):
            first = http.post(f"/{scifact_index}/_search", json=body,
                              headers={"x-crossrank-user": user})
            again = http.post(f"/{scifact_index}/_search", json=body,
                              headers={"x-crossrank-user": user})
            assert first.headers["x-crossrank-arm"] == again.headers["x-crossrank-arm"]
            arms[user] = first.headers["x-crossrank-arm"]
            if arms[user] == "baseline":
                assert first.headers["x-crossrank-reason"] == "ab_baseline"
        assert set(arms.values()) == {"rerank", "baseline"}
        forced = http.post(f"/{scifact_index}/_search", json=body, params={"rerank": "true"},
                           headers={"x-crossrank-user": next(
                               u for u, arm in arms.items() if arm == "baseline")})
        assert forced.headers["x-crossrank-arm"] == "rerank"
    finally:
        http.put(f"/_crossrank/policies/{policy}", headers=headers, json=current)


def test_bad_input_on_a_policy_index_is_a_400_or_413(http: httpx.Client, policy: str,
                                                     scifact_index: str,
                                                     opensearch_url: str,
                                                     tiny_cross_encoder_dir: Path) -> None:
    malformed = http.post(f"/{scifact_index}/_search", content=b'{"query": {"match": ',
                          headers={"content-type": "application/json"})
    assert malformed.status_code == 400
    assert malformed.json()["error"]["root_cause"][0]["type"] == "parse_exception"
    wrong_type = http.post(f"/{scifact_index}/_search",
                           json={"query": {"match": {"text": QUERY}},
                                 "ext": {"crossrank": {"window": "wide"}}})
    assert wrong_type.status_code == 400 and "window" in wrong_type.json()["error"]["reason"]

    settings = proxy_settings(opensearch_url, tiny_cross_encoder_dir,
                              limits={"max_body_bytes": 2048, "max_json_depth": 10})
    small = ServedProxy(build_app(settings), settings.port).start()
    try:
        big = httpx.post(f"{small.url}/{scifact_index}/_search",
                         json={"query": {"match": {"text": "x" * 4096}}})
        assert big.status_code == 413
        assert big.json()["error"]["type"] == "content_too_long_exception"
        deep: dict[str, Any] = {"match_all": {}}
        for _ in range(12):
            deep = {"bool": {"must": [deep]}}
        nested = httpx.post(f"{small.url}/{scifact_index}/_search", json={"query": deep})
        assert nested.status_code == 400 and "deeper" in nested.json()["error"]["reason"]
        # the same inside _msearch, as the second of two searches
        msearch = (orjson.dumps({"index": scifact_index}) + b"\n{}\n"
                   + orjson.dumps({"index": scifact_index}) + b"\n"
                   + orjson.dumps({"query": deep}) + b"\n")
        nested = httpx.post(f"{small.url}/_msearch", content=msearch,
                            headers={"content-type": "application/x-ndjson"})
        assert nested.status_code == 400
        assert "search 2: nests deeper than 10" in nested.json()["error"]["reason"]
    finally:
        small.stop()


def test_slow_opensearch_is_a_clean_504(opensearch_url: str,
                                        tiny_cross_encoder_dir: Path) -> None:
    from relay import Relay

    relay = Relay(opensearch_url, delay_s=3.0).start()
    settings = proxy_settings(relay.url, tiny_cross_encoder_dir, policy_refresh_s=60,
                              upstream={"url": relay.url, "read_timeout_s": 0.5})
    served = ServedProxy(build_app(settings), settings.port).start()
    try:
        began = time.monotonic()
        response = httpx.get(f"{served.url}/_cluster/health", timeout=10)
        assert response.status_code == 504
        assert response.json()["error"]["type"] == "crossrank_upstream_timeout"
        assert time.monotonic() - began < 3.0  # bounded by the read timeout, not the relay
    finally:
        served.stop()
        relay.stop()


@pytest.fixture(scope="module")
def cascade_proxy(opensearch_url: str, tiny_cross_encoder_dir: Path,
                  model_factory: Any) -> Iterator[ServedProxy]:
    """A replica with a second, smaller cross-encoder loaded as "small"."""
    settings = proxy_settings(opensearch_url, tiny_cross_encoder_dir, models={
        "default": tiny_cross_encoder_dir, "small": model_factory.exported("bert-64")})
    served = ServedProxy(build_app(settings), settings.port).start()
    yield served
    served.stop()


def test_a_cascade_policy_rescores_the_small_models_top_with_its_model(
        cascade_proxy: ServedProxy, admin_token: str, scifact_index: str,
        tiny_cross_encoder_dir: Path, model_factory: Any) -> None:
    from crossrank.search.pipeline import combine_cascade, rescored

    headers = {"x-crossrank-admin-token": admin_token}
    name = "scifact-cascade"
    with httpx.Client(base_url=cascade_proxy.url, timeout=60) as client:
        bad = client.put(f"/_crossrank/policies/{name}", headers=headers, json={
            "indices": [scifact_index], "cascade": {"model": "nope", "rescore": 5}})
        assert bad.status_code == 400 and "cascade.model" in bad.text
        put = client.put(f"/_crossrank/policies/{name}", headers=headers, json={
            "indices": [scifact_index], "text_fields": ["title", "text"],
            "template": "{title}. {text}", "window": 20, "score_mode": "replace",
            "cascade": {"model": "small", "rescore": 5}})
        assert put.status_code in (200, 201), put.text
        try:
            body = {"query": {"match": {"text": QUERY}}, "size": 20}
            baseline = client.post(f"/{scifact_index}/_search", params={"rerank": "false"},
                                   json=body).json()["hits"]["hits"]
            answer = client.post(f"/{scifact_index}/_search", json=body)
            assert answer.headers["x-crossrank-status"] == "reranked"
            texts = [f"{h['_source']['title']}. {h['_source']['text']}" for h in baseline]
            pairs = [(QUERY, t) for t in texts]
            small = CrossEncoder.load(model_factory.exported("bert-64")).score(pairs)
            top = rescored(small, 5)
            full = CrossEncoder.load(tiny_cross_encoder_dir).score([pairs[i] for i in top])
            combined = combine_cascade(small, top, full)
            expected = [baseline[i]["_id"] for i in np.argsort(-combined, kind="stable")]
            got = [h["_id"] for h in answer.json()["hits"]["hits"]]
            assert got == expected
        finally:
            client.delete(f"/_crossrank/policies/{name}", headers=headers)
