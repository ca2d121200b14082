"""Indices without a policy: through the proxy, everything behaves exactly as against OpenSearch.

Real clients (opensearch-py sync and async, raw httpx) talk to the real proxy and, for
comparison, to the same real node directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from opensearchpy import AsyncOpenSearch, NotFoundError, OpenSearch, RequestError, helpers

from crossrank.server import build_app

from proxy_fixtures import ServedProxy, proxy_settings
from relay import Relay

pytestmark = pytest.mark.integration


def _without_took(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "took"}


@pytest.fixture
def via_proxy(proxy_url: str) -> OpenSearch:
    return OpenSearch(proxy_url, timeout=30)


def test_document_lifecycle_matches_direct(via_proxy: OpenSearch, os_client: OpenSearch,
                                           index_name: str) -> None:
    created = via_proxy.indices.create(index=index_name, body={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {"properties": {"title": {"type": "text"}, "n": {"type": "integer"}}}})
    assert created == {"acknowledged": True, "shards_acknowledged": True, "index": index_name}
    put = via_proxy.index(index=index_name, id="1", body={"title": "first doc", "n": 1},
                          refresh=True)
    assert put["result"] == "created" and put["_id"] == "1"
    bulk_ok, errors = helpers.bulk(via_proxy, (
        {"_index": index_name, "_id": str(i), "title": f"bulk doc {i}", "n": i}
        for i in range(2, 12)), refresh=True)
    assert bulk_ok == 10 and errors == []
    upd = via_proxy.update(index=index_name, id="1", body={"doc": {"n": 100}}, refresh=True)
    assert upd["result"] == "updated"
    deleted = via_proxy.delete(index=index_name, id="11", refresh=True)
    assert deleted["result"] == "deleted"

    assert via_proxy.get(index=index_name, id="1") == os_client.get(index=index_name, id="1")
    assert via_proxy.count(index=index_name) == os_client.count(index=index_name)
    assert via_proxy.count(index=index_name)["count"] == 10
    query = {"query": {"match": {"title": "doc"}}, "size": 20,
             "aggs": {"total": {"sum": {"field": "n"}}}}
    assert _without_took(via_proxy.search(index=index_name, body=query)) == \
        _without_took(os_client.search(index=index_name, body=query))
    assert via_proxy.indices.get_mapping(index=index_name) == \
        os_client.indices.get_mapping(index=index_name)
    with pytest.raises(NotFoundError):
        via_proxy.get(index=index_name, id="11")
    with pytest.raises(RequestError) as bad:
        via_proxy.search(index=index_name, body={"query": {"no_such_query": {}}})
    assert bad.value.status_code == 400


def test_scroll_and_msearch_match_direct(via_proxy: OpenSearch, os_client: OpenSearch,
                                         index_name: str) -> None:
    helpers.bulk(os_client, ({"_index": index_name, "_id": str(i), "title": f"word{i % 3} x"}
                             for i in range(30)), refresh=True)
    first = via_proxy.search(index=index_name, body={"size": 10, "sort": ["_doc"]},
                             params={"scroll": "1m"})
    seen = [h["_id"] for h in first["hits"]["hits"]]
    scroll_id = first["_scroll_id"]
    while True:
        page = via_proxy.scroll(scroll_id=scroll_id, scroll="1m")
        if not page["hits"]["hits"]:
            break
        seen += [h["_id"] for h in page["hits"]["hits"]]
        scroll_id = page["_scroll_id"]
    via_proxy.clear_scroll(scroll_id=scroll_id)
    assert sorted(seen, key=int) == [str(i) for i in range(30)]

    body = [{"index": index_name}, {"query": {"match": {"title": "word1"}}},
            {"index": index_name}, {"query": {"match": {"title": "word2"}}, "size": 2}]
    proxied = via_proxy.msearch(body=body)
    direct = os_client.msearch(body=body)
    assert [_without_took(r) for r in proxied["responses"]] == \
        [_without_took(r) for r in direct["responses"]]


async def test_async_client_through_proxy(proxy_url: str, opensearch_url: str,
                                          index_name: str) -> None:
    proxied = AsyncOpenSearch(proxy_url)
    direct = AsyncOpenSearch(opensearch_url)
    try:
        await proxied.indices.create(index=index_name, body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0}})
        await proxied.index(index=index_name, id="a", body={"t": "async hello"}, refresh=True)
        assert await proxied.get(index=index_name, id="a") == \
            await direct.get(index=index_name, id="a")
        q = {"query": {"match": {"t": "hello"}}}
        assert _without_took(await proxied.search(index=index_name, body=q)) == \
            _without_took(await direct.search(index=index_name, body=q))
        assert (await proxied.cluster.health())["cluster_name"] == \
            (await direct.cluster.health())["cluster_name"]
    finally:
        await proxied.close()
        await direct.close()


@pytest.mark.parametrize(("method", "path_tpl", "body"), [
    ("GET", "/{index}/_doc/1", None),
    ("GET", "/{index}/_doc/missing", None),
    ("HEAD", "/{index}", None),
    ("GET", "/{index}/_mapping?pretty", None),
    ("GET", "/no-such-index-xyz/_search", None),
    ("POST", "/{index}/_search", b'{"query": {"term": {"k": "v"}}}'),
    ("POST", "/{index}/_search", b'{"query": '),
    ("GET", "/{index}/_doc/1?_source_includes=k&filter_path=_source", None),
])
def test_bytes_status_and_headers_are_unchanged(proxy_url: str, opensearch_url: str,
                                                os_client: OpenSearch, index_name: str,
                                                method: str, path_tpl: str,
                                                body: bytes | None) -> None:
    os_client.index(index=index_name, id="1", body={"k": "v", "other": [1, 2]}, refresh=True)
    path = path_tpl.format(index=index_name)
    headers = {"content-type": "application/json"} if body else {}
    with httpx.Client() as client:
        direct = client.request(method, opensearch_url + path, content=body, headers=headers)
        proxied = client.request(method, proxy_url + path, content=body, headers=headers)
    assert proxied.status_code == direct.status_code
    if b'"took"' in direct.content:
        assert _without_took(orjson.loads(proxied.content)) == \
            _without_took(orjson.loads(direct.content))
    else:
        assert proxied.content == direct.content
    assert proxied.headers.get("content-type") == direct.headers.get("content-type")


def test_compressed_responses_pass_through_raw(proxy_url: str, opensearch_url: str,
                                               os_client: OpenSearch, index_name: str) -> None:
    os_client.index(index=index_name, id="1", body={"k": "x" * 2000}, refresh=True)
    path = f"/{index_name}/_doc/1"
    with httpx.Client() as client:
        direct = client.get(opensearch_url + path, headers={"accept-encoding": "gzip"})
        proxied = client.get(proxy_url + path, headers={"accept-encoding": "gzip"})
    # httpx decodes for us; both sides must agree on what was on the wire
    assert proxied.headers.get("content-encoding") == direct.headers.get("content-encoding")
    assert proxied.content == direct.content


def test_small_and_large_answers_both_arrive_whole(proxy_url: str, opensearch_url: str,
                                                  os_client: OpenSearch, index_name: str) -> None:
    # answers with a Content-Length up to 256 KiB are read whole, larger ones stream in chunks
    os_client.index(index=index_name, id="small", body={"k": "s" * 100}, refresh=True)
    os_client.index(index=index_name, id="large", body={"k": "l" * 700_000}, refresh=True)
    with httpx.Client(timeout=30) as client:
        for doc in ("small", "large", "missing"):
            path = f"/{index_name}/_doc/{doc}"
            direct, proxied = client.get(opensearch_url + path), client.get(proxy_url + path)
            assert (proxied.status_code, proxied.content) == (direct.status_code, direct.content)
            for name in ("content-length", "transfer-encoding"):
                assert proxied.headers.get(name) == direct.headers.get(name), (doc, name)
    assert len(direct.content) < 1000 and len(orjson.dumps(
        os_client.get(index=index_name, id="large"))) > 256 * 1024


def test_headers_reach_opensearch_as_sent(opensearch_url: str,
                                          tiny_cross_encoder_dir: Path) -> None:
    relay = Relay(opensearch_url).start()
    settings = proxy_settings(relay.url, tiny_cross_encoder_dir, policy_refresh_s=60)
    served = ServedProxy(build_app(settings), settings.port).start()
    try:
        relay.sent.clear()
        response = httpx.get(served.url + "/_cluster/health?local=true",
                             headers={"authorization": "Basic dXNlcjpwdw==",
                                      "x-opaque-id": "trace-42", "host": "evil.example"})
        assert response.status_code == 200
        sent = bytes(relay.sent).lower()
        assert b"authorization: basic dxnlcjpwdw==" in sent
        assert b"x-opaque-id: trace-42" in sent
        # a request id joins the proxy's log line to OpenSearch's side, and comes back
        assert b"x-request-id: " + response.headers["x-request-id"].encode() in sent
        assert b"get /_cluster/health?local=true http/1.1" in sent
        # the request goes to the configured upstream, whatever Host the client named
        assert b"evil.example" not in sent
    finally:
        served.stop()
        relay.stop()


def test_crossrank_params_never_reach_opensearch(proxy_url: str, os_client: OpenSearch,
                                                 index_name: str) -> None:
    os_client.index(index=index_name, id="1", body={"t": "alpha"}, refresh=True)
    with httpx.Client() as client:
        response = client.post(
            f"{proxy_url}/{index_name}/_search?rerank=false&rerank_window=5",
            json={"query": {"match": {"t": "alpha"}}, "ext": {"crossrank": {"window": 5}}})
    # OpenSearch would answer 400 to an unknown parameter or ext section
    assert response.status_code == 200, response.text
    assert response.json()["hits"]["total"]["value"] == 1
    assert response.headers["x-crossrank-status"] == "bypassed"
    assert response.headers["x-crossrank-reason"] == "no_policy"
