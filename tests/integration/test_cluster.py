"""A real 3-node OpenSearch cluster on loopback, behind two proxy replicas.

The cluster is ``DevCluster`` (what ``crossrank opensearch start --nodes 3`` starts): three
nodes of 512 MiB heap, one cluster name, distinct HTTP and transport ports. Replica A talks to
node 0, replica B to node 1; both keep their policies in the same cluster index. Replica C
knows all three nodes and keeps answering while one of them is down.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opensearchpy import OpenSearch, helpers

from crossrank.config import UpstreamSettings
from crossrank.devnode import DevCluster, NodeError, free_cluster_port
from crossrank.proxy.errors import UpstreamUnavailable
from crossrank.proxy.upstream import Upstream
from crossrank.server import build_app

from proxy_fixtures import ADMIN_TOKEN, ServedProxy, proxy_settings
from scifact import scifact_docs

pytestmark = pytest.mark.integration

ADMIN = {"x-crossrank-admin-token": ADMIN_TOKEN}
INDEX = "t-cluster-docs"
SCI, SCI_HYBRID, SCI_DOCS = "t-cluster-scifact", "t-cluster-scifact-hybrid", 120
SCI_QUERIES = ["Vitamin D deficiency increases the risk of disease",
               "stem cells differentiate into neurons"]
TITLES = [f"{fruit} {dish} number {n}" for n, (fruit, dish) in enumerate(
    (fruit, dish) for fruit in ("apple", "pear", "plum", "cherry", "quince")
    for dish in ("pie", "jam", "tart", "salad", "juice", "cake"))]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, opensearch_version: str
            ) -> Iterator[DevCluster]:
    nodes = DevCluster(home=tmp_path_factory.mktemp("cluster"), port=free_cluster_port(3), size=3,
                       heap="512m", version=opensearch_version)
    try:
        nodes.start(timeout_s=240)
    except NodeError as exc:
        nodes.stop()
        pytest.fail(f"could not start the 3-node cluster: {exc}", pytrace=False)
    yield nodes
    nodes.stop()


def _serve(url: str, tiny_cross_encoder_dir: Path, minilm_embedder_dir: Path) -> ServedProxy:
    settings = proxy_settings(url, tiny_cross_encoder_dir, policy_refresh_s=0.5,
                              policy_index=".crossrank-policies-cluster",
                              models={"default": tiny_cross_encoder_dir,
                                      "minilm": minilm_embedder_dir})
    return ServedProxy(build_app(settings), settings.port).start()


@pytest.fixture(scope="module")
def replicas(cluster: DevCluster, tiny_cross_encoder_dir: Path, minilm_embedder_dir: Path
             ) -> Iterator[list[ServedProxy]]:
    served = [_serve(url, tiny_cross_encoder_dir, minilm_embedder_dir)
              for url in cluster.urls[:2]]
    yield served
    for proxy in served:
        proxy.stop()


@pytest.fixture(scope="module")
def single(opensearch_url: str, tiny_cross_encoder_dir: Path, minilm_embedder_dir: Path
           ) -> Iterator[ServedProxy]:
    """A proxy with the same models and settings in front of the session's single node."""
    served = _serve(opensearch_url, tiny_cross_encoder_dir, minilm_embedder_dir)
    yield served
    served.stop()


@pytest.fixture(scope="module")
def indexed(cluster: DevCluster, replicas: list[ServedProxy], os_client: OpenSearch
            ) -> Iterator[str]:
    """The same documents in a 3-shard, 1-replica index on the cluster (written through
    replica A) and in a 1-shard index on the session's single node."""
    body = {"settings": {"number_of_shards": 3, "number_of_replicas": 1}}
    via_a = OpenSearch(replicas[0].url, timeout=60)
    via_a.indices.create(index=INDEX, body=body)
    os_client.indices.create(index=INDEX, body={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    docs = [{"_index": INDEX, "_id": str(n), "title": title} for n, title in enumerate(TITLES)]
    for client in (via_a, os_client):
        assert helpers.bulk(client, docs, refresh=True) == (len(docs), [])
    health = httpx.get(f"{cluster.urls[2]}/_cluster/health/{INDEX}",
                       params={"wait_for_status": "green", "timeout": "60s"}, timeout=90).json()
    assert health["status"] == "green" and health["active_shards"] == 6
    yield INDEX
    os_client.indices.delete(index=INDEX, ignore_unavailable=True)


def _put_policy(url: str) -> None:
    answer = httpx.put(f"{url}/_crossrank/policies/{INDEX}", headers=ADMIN, json={
        "indices": [INDEX], "text_fields": ["title"], "window": 50}, timeout=30)
    assert answer.status_code in (200, 201), answer.text


def _reranked(url: str, body: dict[str, Any]) -> list[str]:
    answer = httpx.post(f"{url}/{INDEX}/_search", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-crossrank-status"] == "reranked", answer.headers
    return [hit["_id"] for hit in answer.json()["hits"]["hits"]]


def test_cluster_has_three_nodes_and_one_name(cluster: DevCluster) -> None:
    nodes = OpenSearch(cluster.urls[0]).cat.nodes(format="json", h="name,node.role")
    assert sorted(n["name"] for n in nodes) == [f"crossrank-node-{i}" for i in range(3)]
    names = {OpenSearch(url).info()["cluster_name"] for url in cluster.urls}
    assert names == {"crossrank-dev"}


def test_a_policy_written_through_one_replica_is_used_by_the_other(
        replicas: list[ServedProxy], indexed: str, proxy_url: str) -> None:
    _put_policy(replicas[0].url)
    body = {"query": {"match": {"title": "apple pie tart"}}, "size": 10}
    deadline = time.monotonic() + 10
    while True:  # replica B re-reads the cluster's policies every 0.5 s
        answer = httpx.post(f"{replicas[1].url}/{INDEX}/_search", json=body, timeout=60)
        if answer.headers.get("x-crossrank-status") == "reranked":
            break
        assert time.monotonic() < deadline, answer.headers
        time.sleep(0.2)
    on_a, on_b = _reranked(replicas[0].url, body), _reranked(replicas[1].url, body)
    assert on_a == on_b and len(on_a) == 10
    # The session's single node, through the session proxy under the same policy: every
    # matching document is in the window on both, so the model alone orders them, and the
    # 3-shard cluster and the 1-shard node give the same hits in the same order.
    _put_policy(proxy_url)
    try:
        deadline = time.monotonic() + 10
        while True:
            answer = httpx.post(f"{proxy_url}/{INDEX}/_search", json=body, timeout=60)
            if answer.headers.get("x-crossrank-status") == "reranked":
                break
            assert time.monotonic() < deadline, answer.headers
            time.sleep(0.2)
        assert _reranked(proxy_url, body) == on_a
    finally:
        httpx.delete(f"{proxy_url}/_crossrank/policies/{INDEX}", headers=ADMIN, timeout=30)


def test_msearch_through_both_replicas(replicas: list[ServedProxy], indexed: str) -> None:
    _put_policy(replicas[0].url)
    lines = b"".join(
        b'{"index": "%s"}\n{"query": {"match": {"title": "%s"}}, "size": 5}\n'
        % (INDEX.encode(), text) for text in (b"plum jam", b"cherry cake juice"))
    answers = []
    for proxy in replicas:
        answer = httpx.post(f"{proxy.url}/_msearch", content=lines, timeout=60,
                            headers={"content-type": "application/x-ndjson"})
        assert answer.status_code == 200, answer.text
        answers.append([[h["_id"] for h in r["hits"]["hits"]]
                        for r in answer.json()["responses"]])
    assert answers[0] == answers[1] and all(len(ids) == 5 for ids in answers[0])
    for text, ids in zip(("plum jam", "cherry cake juice"), answers[0], strict=True):
        assert ids == _reranked(replicas[1].url, {"query": {"match": {"title": text}}, "size": 5})


@pytest.fixture(scope="module")
def scifact_everywhere(cluster: DevCluster, replicas: list[ServedProxy], single: ServedProxy,
                       os_client: OpenSearch) -> Iterator[None]:
    """The same SciFact documents, embedded by the proxy's ingest hook, in a 3-shard,
    1-replica index on the cluster (through replica A) and a 1-shard index on the single
    node; on both, the index's policy reranks BM25 and an alias's policy reranks hybrid."""
    index = {"settings": {"index": {"knn": True}}, "mappings": {"properties": {
        "title": {"type": "text"}, "text": {"type": "text"},
        "emb": {"type": "knn_vector", "dimension": 384, "method": {
            "name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}}}}}
    embed = {"model": "minilm", "vector_field": "emb"}
    base = {"text_fields": ["title", "text"], "template": "{title}. {text}", "window": 20}
    docs = scifact_docs(SCI_DOCS)
    for proxy, shards, copies in ((replicas[0], 3, 1), (single, 1, 0)):
        client = OpenSearch(proxy.url, timeout=120)
        client.indices.create(index=SCI, body={**index, "settings": {"index": {
            "knn": True, "number_of_shards": shards, "number_of_replicas": copies}}})
        client.indices.put_alias(index=SCI, name=SCI_HYBRID)
        for name, policy in ((SCI, {**base, "indices": [SCI], "embed": embed}),
                             (SCI_HYBRID, {**base, "indices": [SCI_HYBRID], "hybrid": {
                                 "fusion": "rrf", "rank_constant": 60, "depth": SCI_DOCS,
                                 **embed}})):
            answer = httpx.put(f"{proxy.url}/_crossrank/policies/{name}", headers=ADMIN,
                               json=policy, timeout=30)
            assert answer.status_code in (200, 201), answer.text
        time.sleep(1)  # the embed policy is read before the first write
        assert helpers.bulk(client, ({"_index": SCI, "_id": d["_id"], "title": d["title"],
                                      "text": d["text"]} for d in docs),
                            refresh=True) == (len(docs), [])
    health = httpx.get(f"{cluster.urls[2]}/_cluster/health/{SCI}",
                       params={"wait_for_status": "green", "timeout": "60s"}, timeout=90).json()
    assert health["status"] == "green" and health["active_shards"] == 6
    yield
    os_client.indices.delete(index=SCI, ignore_unavailable=True)


def _window(url: str, index: str, body: dict[str, Any], **params: str
            ) -> tuple[list[str], list[str]]:
    """(final ids, first-stage ids of the window) of one reranked search."""
    answer = httpx.post(f"{url}/{index}/_search", timeout=60, params=params, json={
        **body, "ext": {"crossrank": {"explain": True}}})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-crossrank-status"] == "reranked", answer.headers
    hits = answer.json()["hits"]["hits"]
    first = sorted(hits, key=lambda h: h["_crossrank"]["first_stage_rank"])
    return [h["_id"] for h in hits], [h["_id"] for h in first]


DFS = {"search_type": "dfs_query_then_fetch"}


@pytest.mark.parametrize("text", SCI_QUERIES)
def test_paging_a_reranked_window_on_three_shards_matches_one_node(
        replicas: list[ServedProxy], single: ServedProxy, scifact_everywhere: None,
        text: str) -> None:
    """BM25's statistics are per shard, so a 3-shard index can rank differently from a 1-shard
    one unless the client asks for dfs_query_then_fetch; with it, the first stage agrees, the
    reranked window is the same, and each page of it is the same slice on both."""
    query = {"multi_match": {"query": text, "fields": ["title", "text"]}}
    whole, first = _window(single.url, SCI, {"query": query, "size": 20}, **DFS)
    assert _window(replicas[1].url, SCI, {"query": query, "size": 20}, **DFS) == (whole, first)
    for start in (0, 5, 15):
        page = {"query": query, "from": start, "size": 5}
        on_cluster, _ = _window(replicas[1].url, SCI, page, **DFS)
        assert on_cluster == _window(single.url, SCI, page, **DFS)[0] == whole[start:start + 5]


@pytest.mark.parametrize("text", SCI_QUERIES)
def test_proxy_side_hybrid_on_three_shards_matches_one_node(
        replicas: list[ServedProxy], single: ServedProxy, scifact_everywhere: None,
        text: str) -> None:
    """The proxy fuses the global BM25 and k-NN top lists (each side already merged across
    shards by OpenSearch), so with dfs_query_then_fetch the fused window, and the reranked
    order, are those of one node. (neural-search's native hybrid normalises each shard's
    scores before the coordinator merges: on a sharded index it can differ.)

    The hybrid depth is the whole corpus: HNSW is approximate and every shard copy (primary
    or replica) builds its own graph, so a k-NN top 40 of 120 can differ by a document near
    its end between copies (seen: one in three runs). Asking for every document makes each
    side's list exact on both layouts, and only the proxy's fusion is compared."""
    body = {"query": {"multi_match": {"query": text, "fields": ["title", "text"]}}, "size": 10}
    on_node = _window(single.url, SCI_HYBRID, body, **DFS)
    assert _window(replicas[0].url, SCI_HYBRID, body, **DFS) == on_node
    assert _window(replicas[1].url, SCI_HYBRID, {**body, "from": 5, "size": 5},
                   **DFS)[0] == on_node[0][5:]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the socket is


async def test_upstream_skips_a_node_that_refuses(opensearch_url: str) -> None:
    """A node that refuses the connection is skipped (nothing was sent to it) and tried last
    for the next NODE_RETRY_S; with no node left, the error is the usual unavailable one."""
    dead = f"http://127.0.0.1:{_closed_port()}"
    upstream = Upstream(UpstreamSettings(url=f"{dead}, {opensearch_url}/"))
    try:
        assert upstream.settings.urls == [dead, opensearch_url]
        for _ in range(4):  # every turn, whichever node comes first
            reply = await upstream.request("GET", "/_cluster/health")
            assert reply.status_code == 200
        assert upstream._down_until[0] > time.monotonic()
        assert upstream._down_until[1] == 0.0
    finally:
        await upstream.aclose()
    nowhere = Upstream(UpstreamSettings(url=f"{dead},http://127.0.0.1:{_closed_port()}"))
    try:
        with pytest.raises(UpstreamUnavailable):
            await nowhere.request("GET", "/")
    finally:
        await nowhere.aclose()


def test_a_replica_with_every_node_keeps_answering_when_one_stops(
        cluster: DevCluster, indexed: str, tiny_cross_encoder_dir: Path) -> None:
    """Replica C knows all three nodes (the stopped one first). While node 2 is down, its
    searches are reranked and its writes acknowledged; the node then rejoins. Last in this
    module: the cluster is green again afterwards, but its shards have moved."""
    urls = [cluster.urls[2], *cluster.urls[:2]]
    settings = proxy_settings(",".join(urls), tiny_cross_encoder_dir, policy_refresh_s=0.5,
                              policy_index=".crossrank-policies-cluster")
    replica = ServedProxy(build_app(settings), settings.port).start()
    try:
        _put_policy(replica.url)
        cluster.nodes[2].stop()
        body = {"query": {"match": {"title": "quince salad"}}, "size": 5}
        deadline = time.monotonic() + 60
        for n in range(12):
            while True:  # the cluster may briefly answer 503 while it re-elects and promotes
                answer = httpx.post(f"{replica.url}/{INDEX}/_doc/down-{n}?refresh=true",
                                    json={"title": f"written while node 2 was down {n}"},
                                    timeout=60)
                if answer.status_code == 201 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert answer.status_code == 201, answer.text
            assert len(_reranked(replica.url, body)) == 5
        cluster.start_node(2)
        health = httpx.get(f"{cluster.urls[2]}/_cluster/health/{INDEX}",
                           params={"wait_for_status": "green", "timeout": "90s"},
                           timeout=120).json()
        assert health["status"] == "green" and health["number_of_nodes"] == 3
        found = OpenSearch(cluster.urls[2]).mget(index=INDEX, body={
            "ids": [f"down-{n}" for n in range(12)]})["docs"]
        assert all(doc["found"] for doc in found)
    finally:
        replica.stop()
