"""The deployment recipe with a C proxy in front: a real nginx, rendered by
`crossrank front-config`, in front of the real proxy and node. nginx sends exactly the routes
its generated map names to crossrank (told by the X-Request-Id crossrank adds to every answer)
and everything else straight to OpenSearch, with bytes, status and query strings unchanged."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from crossrank.devnode.nginx import FrontNginx, find_nginx
from crossrank.proxy.front import FrontTargets, nginx_pattern
from crossrank.proxy.routes import RouteKind, classify, front_rules

from proxy_fixtures import ServedProxy, free_port

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(find_nginx() is None,
                                 reason="nginx is not installed (apt-get install nginx-light)")]
ADMIN = {"x-crossrank-admin-token": "test-admin-token"}


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, proxy: ServedProxy,
          opensearch_url: str) -> Iterator[FrontNginx]:
    node = urlsplit(opensearch_url)
    targets = FrontTargets(str(free_port()), (f"127.0.0.1:{proxy.port}",),
                           (f"{node.hostname}:{node.port}",))
    nginx = FrontNginx(tmp_path_factory.mktemp("nginx"), targets).start()
    yield nginx
    nginx.stop()


@pytest.fixture(scope="module")
def index(opensearch_url: str) -> Iterator[str]:
    name = "front-proxy-test"
    with httpx.Client(base_url=opensearch_url) as direct:
        direct.delete(f"/{name}")
        direct.put(f"/{name}", json={"settings": {"number_of_shards": 1,
                                                  "number_of_replicas": 0}})
        lines = b"".join(orjson.dumps({"index": {"_id": str(i)}}) + b"\n" +
                         orjson.dumps({"title": f"fox {i}", "text": f"the quick fox {i}"}) + b"\n"
                         for i in range(20))
        direct.post(f"/{name}/_bulk", params={"refresh": "true"}, content=lines,
                    headers={"content-type": "application/x-ndjson"})
        yield name
        direct.delete(f"/{name}")


def went_to_crossrank(response: httpx.Response) -> bool:
    return "x-request-id" in response.headers


def test_nginx_routes_as_the_generated_map_says(front: FrontNginx, index: str) -> None:
    patterns = [re.compile(nginx_pattern(rule)) for rule in front_rules()]
    requests = [
        ("GET", "/_cluster/health", None), ("GET", "/_cat/indices?v", None),
        ("GET", f"/{index}/_doc/1", None), ("HEAD", f"/{index}", None),
        ("GET", f"/{index}/_mapping", None), ("POST", f"/{index}/_count", b"{}"),
        ("GET", f"/{index}/_search?q=fox", None), ("POST", "/_search", b"{}"),
        ("POST", f"/{index}%2C{index}/_search?size=2", b"{}"),
        ("POST", f"/{index}/_msearch", b"{}\n{}\n"),
        ("POST", "/_bulk", orjson.dumps({"index": {"_index": index, "_id": "b1"}}) + b"\n" +
         orjson.dumps({"title": "bulk"}) + b"\n"),
        ("PUT", f"/{index}/_doc/p1", b'{"title": "put"}'),
        ("POST", f"/{index}/_doc", b'{"title": "auto id"}'),
        ("POST", f"/{index}/_update/p1", b'{"doc": {"title": "updated"}}'),
        ("DELETE", f"/{index}/_doc/p1", None),
        ("GET", "/_crossrank/health", None), ("GET", "/_crossrank/policies", None),
        ("POST", "/_search/scroll", b'{"scroll_id": "nope"}'),
        ("POST", "/v2/rerank", b'{"model": "default", "query": "q", "documents": []}'),
        ("POST", "/rerank", b'{"query": "q", "texts": ["a"]}'), ("GET", "/rerank", None),
    ]
    with httpx.Client(base_url=front.url, timeout=30) as client:
        for method, uri, body in requests:
            response = client.request(method, uri, content=body,
                                      headers={"content-type": "application/x-ndjson"}
                                      if body else {})
            expected = any(p.match(f"{method} {uri}") for p in patterns)
            assert went_to_crossrank(response) is expected, (method, uri, response.status_code)
            acts = classify(method, uri.split("?")[0]).kind is not RouteKind.PASS_THROUGH
            assert not acts or expected, (method, uri)


def test_answers_through_nginx_are_the_backends_answers(front: FrontNginx, proxy: ServedProxy,
                                                        opensearch_url: str, index: str) -> None:
    with httpx.Client(base_url=front.url, timeout=30) as via, \
            httpx.Client(base_url=opensearch_url, timeout=30) as direct:
        for uri in (f"/{index}/_doc/3", f"/{index}/_doc/nope", "/_cat/indices/" + index,
                    f"/{index}/_mapping?pretty"):
            a, b = via.get(uri), direct.get(uri)
            assert (a.status_code, a.content) == (b.status_code, b.content), uri
            assert a.headers.get("content-type") == b.headers.get("content-type")
        gzipped = via.get(f"/{index}/_doc/3", headers={"accept-encoding": "gzip"})
        assert gzipped.json()["_source"]["title"] == "fox 3"
        query = {"query": {"match": {"text": "quick fox"}}, "size": 5, "sort": ["_doc"]}
        a = via.post(f"/{index}/_search", json=query)
        b = direct.post(f"/{index}/_search", json=query)
        assert a.headers["x-crossrank-status"] == "bypassed"  # no policy: crossrank's verdict
        assert [h["_id"] for h in a.json()["hits"]["hits"]] == \
            [h["_id"] for h in b.json()["hits"]["hits"]]
        missing = via.post("/no-such-index-front/_search", json={})
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "index_not_found_exception"


def test_reranked_search_through_nginx(front: FrontNginx, proxy: ServedProxy,
                                       index: str) -> None:
    name = "front-proxy-policy"
    with httpx.Client(base_url=front.url, timeout=60) as via, \
            httpx.Client(base_url=proxy.url, timeout=60) as crossrank:
        put = via.put(f"/_crossrank/policies/{name}", headers=ADMIN,
                      json={"indices": [index], "text_fields": ["text"], "window": 10})
        assert put.status_code in (200, 201), put.text
        try:
            body = {"query": {"match": {"text": "quick fox"}}, "size": 5}
            for _ in range(50):  # the policy is seen once the store has re-read it
                a = via.post(f"/{index}/_search", json=body)
                if a.headers.get("x-crossrank-status") == "reranked":
                    break
            b = crossrank.post(f"/{index}/_search", json=body)
            assert a.headers["x-crossrank-status"] == "reranked"
            assert [h["_id"] for h in a.json()["hits"]["hits"]] == \
                [h["_id"] for h in b.json()["hits"]["hits"]]
            off = via.post(f"/{index}/_search", params={"rerank": "false"}, json=body)
            assert off.headers["x-crossrank-status"] == "bypassed"
        finally:
            via.delete(f"/_crossrank/policies/{name}", headers=ADMIN)
