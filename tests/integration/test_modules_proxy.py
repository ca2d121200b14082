"""OpenSearch's standard modules answer through the proxy exactly as they do directly.

A client of a real distribution uses join fields, percolator queries, search templates
(mustache), ingest pipelines, expression scripts and ``_rank_eval``. The dev node loads those
modules; each test runs the same calls through the proxy and against the node and compares
the answers (``took`` aside).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opensearchpy import OpenSearch, TransportError

from proxy_fixtures import ADMIN_TOKEN

pytestmark = pytest.mark.integration

ADMIN = {"x-crossrank-admin-token": ADMIN_TOKEN}


def _without_took(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "took"}


@pytest.fixture
def via_proxy(proxy_url: str) -> OpenSearch:
    return OpenSearch(proxy_url, timeout=30)


@pytest.fixture
def reranked(proxy_url: str, index_name: str) -> Iterator[str]:
    """The test's index under a rerank policy, so that its searches go through the scorer."""
    with httpx.Client(base_url=proxy_url, headers=ADMIN, timeout=30) as http:
        answer = http.put(f"/_crossrank/policies/{index_name}",
                          json={"indices": [index_name], "text_fields": ["title"]})
        assert answer.status_code in (200, 201), answer.text
        yield index_name
        http.delete(f"/_crossrank/policies/{index_name}")


def test_join_field_parent_child_queries(via_proxy: OpenSearch, os_client: OpenSearch,
                                         reranked: str) -> None:
    index = reranked
    mapping = {"mappings": {"properties": {
        "title": {"type": "text"},
        "relation": {"type": "join", "relations": {"question": "answer"}}}}}
    assert via_proxy.indices.create(index=index, body={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0}, **mapping})[
        "acknowledged"]
    via_proxy.index(index=index, id="q1", body={"title": "how do plums ripen",
                                                "relation": "question"})
    via_proxy.index(index=index, id="q2", body={"title": "why are pears green",
                                                "relation": "question"})
    via_proxy.index(index=index, id="a1", routing="q1", refresh=True, body={
        "title": "plums ripen off the tree in a paper bag",
        "relation": {"name": "answer", "parent": "q1"}})
    assert via_proxy.indices.get_mapping(index=index) == os_client.indices.get_mapping(index=index)

    has_child = {"query": {"has_child": {"type": "answer", "query": {"match": {
        "title": "paper bag"}}}}}
    proxied = via_proxy.search(index=index, body=has_child)
    assert [h["_id"] for h in proxied["hits"]["hits"]] == ["q1"]
    # the proxy reranked it (one hit: nothing to reorder), the hits are OpenSearch's own
    direct = os_client.search(index=index, body=has_child)
    assert [h["_id"] for h in proxied["hits"]["hits"]] == [h["_id"] for h in direct["hits"]["hits"]]
    has_parent = {"query": {"has_parent": {"parent_type": "question", "query": {"match": {
        "title": "plums"}}}}}
    assert _without_took(via_proxy.search(index=index, body=has_parent,
                                          params={"rerank": "false"})) == \
        _without_took(os_client.search(index=index, body=has_parent))
    children = {"query": {"parent_id": {"type": "answer", "id": "q1"}}}
    assert _without_took(via_proxy.search(index=index, body=children,
                                          params={"rerank": "false"})) == \
        _without_took(os_client.search(index=index, body=children))

    # a child without its parent's routing is OpenSearch's own error, unchanged
    errors = []
    for client in (via_proxy, os_client):
        with pytest.raises(TransportError) as caught:
            client.index(index=index, id="a2", body={
                "title": "x", "relation": {"name": "answer", "parent": "q2"}})
        errors.append((caught.value.status_code, caught.value.info))
    assert errors[0] == errors[1] and errors[0][0] == 400


def test_search_templates(via_proxy: OpenSearch, os_client: OpenSearch, reranked: str) -> None:
    index = reranked
    os_client.indices.create(index=index, body={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    for n, title in enumerate(["red apple", "green apple pie", "plum jam"]):
        via_proxy.index(index=index, id=str(n), body={"title": title, "n": n})
    via_proxy.indices.refresh(index=index)
    script_id = f"{index}-tpl"
    stored = via_proxy.put_script(id=script_id, body={"script": {
        "lang": "mustache",
        "source": {"query": {"match": {"title": "{{text}}"}}, "size": "{{size}}"}}})
    try:
        assert stored == {"acknowledged": True}
        assert via_proxy.get_script(id=script_id) == os_client.get_script(id=script_id)
        params = {"text": "apple", "size": 5}
        body = {"id": script_id, "params": params}
        # the index has a policy: the rendered search is reranked (same hits, the scorer's
        # scores); with rerank=false the answer is OpenSearch's own
        direct = os_client.search_template(index=index, body=body)
        proxied = via_proxy.search_template(index=index, body=body)
        assert {h["_id"] for h in proxied["hits"]["hits"]} == \
            {h["_id"] for h in direct["hits"]["hits"]} == {"0", "1"}
        assert proxied["hits"]["total"] == direct["hits"]["total"]
        assert proxied["status"] == direct["status"] == 200
        as_sent = {"rerank": "false"}
        assert _without_took(via_proxy.search_template(index=index, body=body,
                                                       params=as_sent)) == _without_took(direct)
        inline = {"source": '{"query": {"term": {"n": {{n}}}}}', "params": {"n": 2}}
        assert _without_took(via_proxy.search_template(index=index, body=inline,
                                                       params=as_sent)) == \
            _without_took(os_client.search_template(index=index, body=inline))
        assert via_proxy.render_search_template(body=body) == \
            os_client.render_search_template(body=body)
        msearch = [{"index": index}, body, {"index": index}, inline]
        proxied_m = via_proxy.msearch_template(body=msearch, params=as_sent)
        direct_m = os_client.msearch_template(body=msearch)
        assert [_without_took(r) for r in proxied_m["responses"]] == \
            [_without_took(r) for r in direct_m["responses"]]
    finally:
        os_client.delete_script(id=script_id)


def test_ingest_pipeline_with_set_processor(via_proxy: OpenSearch, os_client: OpenSearch,
                                            index_name: str) -> None:
    pipeline = f"{index_name}-pipe"
    definition = {"description": "stamp and lowercase", "processors": [
        {"set": {"field": "source", "value": "crossrank-test"}},
        {"lowercase": {"field": "title"}}]}
    assert via_proxy.ingest.put_pipeline(id=pipeline, body=definition) == {"acknowledged": True}
    try:
        assert via_proxy.ingest.get_pipeline(id=pipeline) == \
            os_client.ingest.get_pipeline(id=pipeline)
        docs = {"docs": [{"_source": {"title": "Red APPLE"}}]}
        simulated = _strip_timestamps(via_proxy.ingest.simulate(id=pipeline, body=docs))
        assert simulated == _strip_timestamps(os_client.ingest.simulate(id=pipeline, body=docs))
        assert simulated["docs"][0]["doc"]["_source"] == {"title": "red apple",
                                                          "source": "crossrank-test"}
        via_proxy.index(index=index_name, id="1", body={"title": "Red APPLE"},
                        params={"pipeline": pipeline})
        via_proxy.bulk(body=[{"index": {"_index": index_name, "_id": "2"}},
                             {"title": "Green PEAR"}],
                       params={"pipeline": pipeline, "refresh": "true"})
        got = os_client.mget(index=index_name, body={"ids": ["1", "2"]})["docs"]
        assert [d["_source"] for d in got] == [
            {"title": "red apple", "source": "crossrank-test"},
            {"title": "green pear", "source": "crossrank-test"}]
        # an index's default pipeline applies to writes through the proxy too
        os_client.indices.put_settings(index=index_name,
                                       body={"index": {"default_pipeline": pipeline}})
        via_proxy.index(index=index_name, id="3", body={"title": "PLUM"}, refresh=True)
        assert os_client.get(index=index_name, id="3")["_source"] == \
            {"title": "plum", "source": "crossrank-test"}
    finally:
        os_client.indices.delete(index=index_name, ignore_unavailable=True)
        os_client.ingest.delete_pipeline(id=pipeline)


def _strip_timestamps(simulated: dict[str, Any]) -> dict[str, Any]:
    """simulate stamps each document with the time it ran; two runs differ only there."""
    for doc in simulated.get("docs", []):
        doc.get("doc", {}).get("_ingest", {}).pop("timestamp", None)
    return simulated


def test_rank_eval(via_proxy: OpenSearch, os_client: OpenSearch, reranked: str) -> None:
    index = reranked
    os_client.indices.create(index=index, body={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    for n, title in enumerate(["apple tart", "apple", "pear", "apple and pear salad"]):
        via_proxy.index(index=index, id=str(n), body={"title": title})
    via_proxy.indices.refresh(index=index)
    body = {"requests": [{"id": "apple", "request": {"query": {"match": {"title": "apple"}}},
                          "ratings": [{"_index": index, "_id": "1", "rating": 2},
                                      {"_index": index, "_id": "0", "rating": 1}]}],
            "metric": {"dcg": {"k": 3, "normalize": True}}}
    proxied = via_proxy.transport.perform_request("POST", f"/{index}/_rank_eval", body=body)
    direct = os_client.transport.perform_request("POST", f"/{index}/_rank_eval", body=body)
    assert proxied == direct
    assert 0.0 < proxied["metric_score"] <= 1.0


def test_percolator_and_expression_scripts(via_proxy: OpenSearch, os_client: OpenSearch,
                                           index_name: str) -> None:
    via_proxy.indices.create(index=index_name, body={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {"properties": {"query": {"type": "percolator"},
                                    "title": {"type": "text"}, "n": {"type": "integer"}}}})
    via_proxy.index(index=index_name, id="alert", refresh=True, body={
        "query": {"match": {"title": "apple"}}, "n": 3})
    percolate = {"query": {"percolate": {"field": "query",
                                         "document": {"title": "an apple a day"}}}}
    proxied = via_proxy.search(index=index_name, body=percolate)
    assert [h["_id"] for h in proxied["hits"]["hits"]] == ["alert"]
    assert _without_took(proxied) == _without_took(os_client.search(index=index_name,
                                                                    body=percolate))
    expression = {"query": {"function_score": {"query": {"match_all": {}}, "script_score": {
        "script": {"lang": "expression", "source": "doc['n'].value * 2"}}}}}
    proxied = via_proxy.search(index=index_name, body=expression)
    assert proxied["hits"]["hits"][0]["_score"] == 6.0
    assert _without_took(proxied) == _without_took(os_client.search(index=index_name,
                                                                    body=expression))
