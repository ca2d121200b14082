"""crossrank's own API under /_crossrank: policies, the rerank endpoint, health and metrics.

    GET    /_crossrank/policies              all policies
    GET    /_crossrank/policies/{name}       one policy
    PUT    /_crossrank/policies/{name}       create or replace (admin token)
    DELETE /_crossrank/policies/{name}       remove (admin token)
    POST   /_crossrank/rerank                query + documents -> scores (Cohere/Jina shape)
    GET    /_crossrank/mappings/{index}      check an index's vector mapping for its policy
    PUT    /_crossrank/mappings/{index}      create it (admin token)
    GET    /_crossrank/health                liveness and readiness
    GET    /_crossrank/metrics               Prometheus
    GET    /_crossrank/openapi.json          this API in OpenAPI 3.1 (crossrank.proxy.openapi)

Only writes need the admin token; health, metrics and the description are open.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crossrank.config import AdminSettings, Policy, policy_model_problems
from crossrank.models.batcher import QueueFull
from crossrank.proxy.errors import (
    BadRequest,
    CrossrankError,
    Forbidden,
    InvalidJSON,
    InvalidPolicy,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    Unauthorized,
)
from crossrank.proxy.http import JSON_HEADERS, Incoming, Send, respond
from crossrank.proxy.index_mapping import handle_index_mapping
from crossrank.proxy.metrics import Metrics
from crossrank.proxy.policy_store import PolicyStore
from crossrank.proxy.upstream import Upstream
from crossrank.search.pipeline import Scorer

ADMIN_TOKEN_HEADER = "x-crossrank-admin-token"


class RerankDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Echoed back as given; the JSON encoder writes integers of at most 64 bits.
    id: Annotated[int, Field(ge=-(2**63), le=2**64 - 1)] | str | None = None
    text: str


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1)
    documents: list[RerankDocument | str] = Field(max_length=10_000)
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = False
    model: str = "default"
    max_length: int | None = Field(None, ge=8, le=8192)


@dataclass
class AdminContext:
    policies: PolicyStore
    scorer: Scorer
    metrics: Metrics
    upstream: Upstream
    admin: AdminSettings
    models: Mapping[str, str]
    """Each loaded model's name and kind (cross-encoder or embedder)."""


def validation_reason(exc: ValidationError) -> tuple[str, str]:
    """The first error as (field path, message), e.g. ('window', 'Input should be ...')."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "body"
    return field, f"[{field}] {first['msg']}"


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


def _load(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"request body is not valid JSON: {exc}") from exc


def _check_token(request: Incoming, admin: AdminSettings) -> None:
    if not admin.enabled:
        raise Forbidden("admin endpoints are disabled on this proxy (admin.enabled: false)")
    if admin.token is None:
        if admin.insecure_no_token:
            return
        raise Unauthorized("admin endpoints are disabled: no admin token is configured")
    given = request.header(ADMIN_TOKEN_HEADER) or ""
    if not hmac.compare_digest(given.encode(), admin.token.encode()):
        raise Unauthorized(f"missing or wrong {ADMIN_TOKEN_HEADER} header")


async def handle_admin(request: Incoming, path: str, ctx: AdminContext, send: Send) -> None:
    parts = [p for p in path.split("/") if p]
    method = request.method
    if parts == ["policies"]:
        if method != "GET":
            raise MethodNotAllowed(f"{method} is not allowed on /_crossrank/policies")
        body = {"policies": [p.model_dump(mode="json") for p in ctx.policies.all()]}
        await respond(send, 200, _json(body))
    elif len(parts) == 2 and parts[0] == "policies":
        await _policy(request, parts[1], ctx, send)
    elif len(parts) == 2 and parts[0] == "mappings":
        if request.method == "PUT":
            _check_token(request, ctx.admin)
        await handle_index_mapping(request, parts[1], ctx.upstream, ctx.policies, ctx.scorer,
                                   send)
    elif parts == ["rerank"]:
        if method != "POST":
            raise MethodNotAllowed("use POST /_crossrank/rerank")
        await _rerank(request, ctx, send)
    elif parts == ["health"]:
        await _health(ctx, send)
    elif parts == ["metrics"]:
        await respond(send, 200, ctx.metrics.render(),
                      [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")])
    elif parts == ["openapi.json"]:
        from crossrank.proxy.openapi import document_bytes  # it imports this module

        await respond(send, 200, document_bytes(), JSON_HEADERS)
    else:
        raise NotFound(f"no crossrank endpoint at /_crossrank{path}")


async def _policy(request: Incoming, name: str, ctx: AdminContext, send: Send) -> None:
    if request.method == "GET":
        policy = ctx.policies.get(name)
        if policy is None:
            raise NotFound(f"no policy named [{name}]")
        await respond(send, 200, _json(policy.model_dump(mode="json")))
        return
    if request.method not in ("PUT", "DELETE"):
        raise MethodNotAllowed(f"{request.method} is not allowed on a policy")
    _check_token(request, ctx.admin)
    if request.method == "DELETE":
        if not await ctx.policies.delete(name):
            raise NotFound(f"no policy named [{name}]")
        await respond(send, 200, _json({"acknowledged": True, "result": "deleted"}))
        return
    data = _load(await request.body())
    if not isinstance(data, dict):
        raise InvalidPolicy("a policy must be a JSON object", field="body")
    if data.setdefault("name", name) != name:
        raise InvalidPolicy(f"[name] '{data['name']}' does not match the path's '{name}'",
                            field="name")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        field, reason = validation_reason(exc)
        raise InvalidPolicy(reason, field=field) from exc
    problems = policy_model_problems(policy, ctx.models)
    if problems:
        field, reason = problems[0]
        raise InvalidPolicy(f"[{field}] {reason}", field=field)
    created = await ctx.policies.put(policy)
    await respond(send, 201 if created else 200,
                  _json({"acknowledged": True, "result": "created" if created else "updated",
                         "policy": policy.model_dump(mode="json")}))


async def _rerank(request: Incoming, ctx: AdminContext, send: Send) -> None:
    try:
        req = RerankRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        field, reason = validation_reason(exc)
        raise BadRequest(reason, field=field) from exc
    if ctx.models.get(req.model) != "cross-encoder":
        loaded = [name for name, kind in ctx.models.items() if kind == "cross-encoder"]
        raise BadRequest(f"[model] no cross-encoder named '{req.model}' is loaded "
                         f"(loaded: {', '.join(loaded) or 'none'})", field="model")
    texts = [d if isinstance(d, str) else d.text for d in req.documents]
    began = time.perf_counter()
    try:
        scores = await ctx.scorer.score(req.model, [(req.query, t) for t in texts],
                                        max_length=req.max_length)
    except QueueFull as exc:  # no first stage to fall back to here: tell the client to retry
        raise Overloaded(f"the reranker is overloaded: {exc}") from exc
    order = sorted(range(len(texts)), key=lambda i: (-float(scores[i]), i))
    if req.top_n is not None:
        order = order[: req.top_n]
    results = []
    for i in order:
        item: dict[str, Any] = {"index": i, "relevance_score": float(scores[i])}
        doc = req.documents[i]
        if isinstance(doc, RerankDocument) and doc.id is not None:
            item["id"] = doc.id
        if req.return_documents:
            item["document"] = {"text": texts[i]}
        results.append(item)
    await respond(send, 200, _json({
        "model": req.model, "results": results,
        "meta": {"took_ms": round((time.perf_counter() - began) * 1000, 2),
                 "documents": len(texts)}}))


async def _health(ctx: AdminContext, send: Send) -> None:
    try:
        response = await ctx.upstream.request("GET", "/_cluster/health")
        upstream_ok = response.status_code == 200
        cluster = orjson.loads(response.content).get("status") if upstream_ok else None
    except CrossrankError:
        upstream_ok, cluster = False, None
    ready = upstream_ok and "cross-encoder" in ctx.models.values()
    body = {"status": "ready" if ready else "not_ready", "upstream": {
        "reachable": upstream_ok, "cluster_status": cluster},
        "models": dict(ctx.models), "policies": len(ctx.policies.all()),
        "policies_refreshed_at": ctx.policies.last_refresh}
    await respond(send, 200 if ready else 503, _json(body), JSON_HEADERS)
