"""GET /_crossrank/health (liveness and readiness) and GET /_crossrank/metrics (Prometheus)."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from crossrank.proxy.errors import CrossrankError
from crossrank.proxy.http import JSON_HEADERS, Send, respond
from crossrank.proxy.metrics import Metrics
from crossrank.proxy.policy_store import PolicyStore
from crossrank.proxy.upstream import Upstream


async def handle_health(send: Send, upstream: Upstream, policies: PolicyStore,
                        models: Mapping[str, str]) -> None:
    try:
        response = await upstream.request("GET", "/_cluster/health")
        upstream_ok = response.status_code == 200
        cluster = orjson.loads(response.content).get("status") if upstream_ok else None
    except CrossrankError:
        upstream_ok, cluster = False, None
    ready = upstream_ok and "cross-encoder" in models.values()
    body = {"status": "ready" if ready else "not_ready", "upstream": {
        "reachable": upstream_ok, "cluster_status": cluster},
        "models": dict(models), "policies": len(policies.all()),
        "policies_refreshed_at": policies.last_refresh}
    await respond(send, 200 if ready else 503, orjson.dumps(body), JSON_HEADERS)


async def handle_metrics(send: Send, metrics: Metrics) -> None:
    await respond(send, 200, metrics.render(),
                  [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")])
