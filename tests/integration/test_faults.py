"""Faults: OpenSearch stopped and restarted under load, a stalled scorer, a client that hangs
up mid-request, and a shutdown with requests in flight.

In every case the proxy answers in bounded time, in OpenSearch's error shape when it cannot
answer, falls back to first-stage order for searches, keeps no request stuck, and serves
normally afterwards. The node here is a real OpenSearch started for the test (the session's
node is not disturbed); the slow path is the loopback relay in front of the session's node.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opensearchpy import OpenSearch

from crossrank.devnode import DevNode
from crossrank.policy import Policy
from crossrank.server import build_app

from proxy_fixtures import ServedProxy, free_port, proxy_settings
from relay import Relay

pytestmark = pytest.mark.integration

INDEX = "faults-docs"
POLICY = Policy(name="faults", indices=[INDEX], text_fields=["text"], window=20)


def in_flight(proxy: ServedProxy) -> float:
    for line in httpx.get(f"{proxy.url}/_crossrank/metrics").text.splitlines():
        if line.startswith("crossrank_in_flight_requests "):
            return float(line.split()[1]) - 1  # this scrape is in flight itself
    raise AssertionError("no in-flight gauge")


def wait_idle(proxy: ServedProxy, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while in_flight(proxy) != 0:
        assert time.monotonic() < deadline, "requests stayed in flight"
        time.sleep(0.1)


def opensearch_shaped(response: httpx.Response) -> bool:
    body = response.json()
    return (isinstance(body, dict) and body.get("status") == response.status_code
            and isinstance(body.get("error"), dict) and "type" in body["error"])


@pytest.fixture
def own_node(tmp_path: Path) -> Iterator[DevNode]:
    node = DevNode(home=tmp_path / "node", port=free_port(), heap="512m")
    node.start(timeout_s=240)
    yield node
    node.stop()


def test_opensearch_stopped_and_restarted_under_load(own_node: DevNode,
                                                     tiny_cross_encoder_dir: Path) -> None:
    client = OpenSearch(own_node.url, timeout=60)
    client.indices.create(index=INDEX, body={"settings": {"number_of_replicas": 0}})
    for i in range(40):
        client.index(index=INDEX, id=f"seed-{i}", body={"text": f"seed document {i} about cells"})
    client.indices.refresh(index=INDEX)
    settings = proxy_settings(own_node.url, tiny_cross_encoder_dir, policies=[POLICY],
                              policy_index=".crossrank-policies-faults")
    proxy = ServedProxy(build_app(settings), settings.port).start()
    outcomes: list[tuple[str, int, float]] = []  # (kind, status, seconds)
    acked: list[str] = []
    refused: list[str] = []
    bad_shape: list[str] = []
    stop = threading.Event()

    def worker(n: int) -> None:
        with httpx.Client(base_url=proxy.url, timeout=60) as http:
            i = 0
            while not stop.is_set():
                i += 1
                kind = ("rerank", "plain", "write")[i % 3]
                began = time.monotonic()
                try:
                    if kind == "write":
                        doc_id = f"w{n}-{i}"
                        reply = http.put(f"/{INDEX}/_doc/{doc_id}", json={"text": f"write {i}"})
                        (acked if reply.status_code in (200, 201) else refused).append(doc_id)
                    else:
                        reply = http.post(f"/{INDEX}/_search",
                                          params={"rerank": str(kind == "rerank").lower()},
                                          json={"query": {"match": {"text": "cells"}}})
                except httpx.HTTPError as exc:  # the proxy itself must never drop us
                    bad_shape.append(f"{kind}: {exc!r}")
                    continue
                outcomes.append((kind, reply.status_code, time.monotonic() - began))
                if reply.status_code >= 300 and not opensearch_shaped(reply):
                    bad_shape.append(f"{kind} {reply.status_code}: {reply.text[:200]}")
                time.sleep(0.02)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(2)
        own_node.stop()
        time.sleep(2)
        down = len(outcomes)
        own_node.start(timeout_s=240)
        OpenSearch(own_node.url, timeout=60).cluster.health(index=INDEX,
                                                            wait_for_status="yellow")
        time.sleep(3)
        stop.set()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads)

        statuses = {status for _, status, _ in outcomes}
        assert bad_shape == []
        assert statuses <= {200, 201, 502, 503, 504}, statuses
        assert 502 in statuses  # the outage was seen, and answered cleanly
        assert max(seconds for *_, seconds in outcomes) < 35  # bounded: read timeout is 30 s
        assert any(status == 200 for _, status, _ in outcomes[down:])
        wait_idle(proxy)

        after = httpx.post(f"{proxy.url}/{INDEX}/_search",
                           json={"query": {"match": {"text": "cells"}}}, timeout=60)
        assert after.status_code == 200
        assert after.headers["x-crossrank-status"] == "reranked"
        # nothing acknowledged was lost, nothing refused was written twice or half
        client = OpenSearch(own_node.url, timeout=60)
        client.indices.refresh(index=INDEX)
        assert acked
        found = client.mget(index=INDEX, body={"ids": acked})["docs"]
        assert [d["_id"] for d in found if not d.get("found")] == []
    finally:
        stop.set()
        proxy.stop()


class StallingScorer:
    """Fault injection: a model runtime that never answers."""

    async def score(self, model: str, pairs: Any, *, max_length: int | None = None,
                    chunking: object = None) -> Any:
        await asyncio.sleep(3600)


def test_stalled_scorer_falls_back_within_the_budget(
        opensearch_url: str, os_client: OpenSearch, tiny_cross_encoder_dir: Path,
        index_name: str) -> None:
    os_client.index(index=index_name, id="1", body={"text": "cells divide"}, refresh=True)
    policy = Policy(name="stall", indices=[index_name], budget_ms=300)
    settings = proxy_settings(opensearch_url, tiny_cross_encoder_dir, policies=[policy],
                              policy_index=".crossrank-policies-stall")
    app = build_app(settings)
    app.replace_scorer(StallingScorer())
    proxy = ServedProxy(app, settings.port).start()
    try:
        began = time.monotonic()
        reply = httpx.post(f"{proxy.url}/{index_name}/_search",
                           json={"query": {"match": {"text": "cells"}}}, timeout=30)
        assert time.monotonic() - began < 5
        assert reply.status_code == 200
        assert reply.headers["x-crossrank-status"] == "fallback"
        assert reply.headers["x-crossrank-reason"] == "budget_exceeded"
        assert [h["_id"] for h in reply.json()["hits"]["hits"]] == ["1"]
        wait_idle(proxy)
    finally:
        proxy.stop()


def raw_request(port: int, method: str, path: str, body: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return sock


def test_client_hanging_up_mid_request_leaves_nothing_stuck(
        opensearch_url: str, os_client: OpenSearch, tiny_cross_encoder_dir: Path,
        index_name: str) -> None:
    os_client.index(index=index_name, id="1", body={"text": "cells divide"}, refresh=True)
    relay = Relay(opensearch_url, delay_s=1.0).start()
    policy = Policy(name="hangup", indices=[index_name])
    settings = proxy_settings(relay.url, tiny_cross_encoder_dir, policies=[policy],
                              policy_index=".crossrank-policies-hangup")
    proxy = ServedProxy(build_app(settings), settings.port).start()
    try:
        search = b'{"query": {"match": {"text": "cells"}}}'
        for method, path, body in (("POST", f"/{index_name}/_search", search),
                                   ("POST", f"/{index_name}/_search?rerank=false", search),
                                   ("GET", f"/{index_name}/_doc/1", b"")):
            sock = raw_request(proxy.port, method, path, body)
            time.sleep(0.3)  # the proxy is waiting on the slow upstream now
            sock.close()
        # half a body, then gone
        sock = socket.create_connection(("127.0.0.1", proxy.port))
        sock.sendall(f"POST /{index_name}/_search HTTP/1.1\r\nHost: x\r\n"
                     "Content-Length: 100\r\n\r\n{\"query\"".encode())
        sock.close()
        wait_idle(proxy, 15)
        reply = httpx.post(f"{proxy.url}/{index_name}/_search",
                           json={"query": {"match": {"text": "cells"}}}, timeout=30)
        assert reply.status_code == 200 and reply.headers["x-crossrank-status"] == "reranked"
    finally:
        proxy.stop()
        relay.stop()


def test_shutdown_drains_requests_in_flight(opensearch_url: str, os_client: OpenSearch,
                                            tiny_cross_encoder_dir: Path,
                                            index_name: str) -> None:
    os_client.index(index=index_name, id="1", body={"text": "cells divide"}, refresh=True)
    relay = Relay(opensearch_url, delay_s=1.5).start()
    settings = proxy_settings(relay.url, tiny_cross_encoder_dir,
                              policy_index=".crossrank-policies-drain")
    proxy = ServedProxy(build_app(settings), settings.port).start()
    answers: list[httpx.Response] = []

    def call() -> None:
        answers.append(httpx.get(f"{proxy.url}/{index_name}/_doc/1", timeout=30))

    try:
        callers = [threading.Thread(target=call) for _ in range(3)]
        for caller in callers:
            caller.start()
        # all three are waiting on the slow upstream
        relay.wait_sent(f"GET /{index_name}/_doc/1 ".encode(), count=3)
        proxy.server.should_exit = True
        for caller in callers:
            caller.join(30)
        proxy.thread.join(30)
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert all(a.json()["_source"] == {"text": "cells divide"} for a in answers)
        with pytest.raises(httpx.ConnectError):  # and it no longer accepts
            httpx.get(f"{proxy.url}/", timeout=5)
    finally:
        proxy.stop()
        relay.stop()
