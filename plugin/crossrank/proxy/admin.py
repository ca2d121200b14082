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
    GET    /_crossrank/ui/                   the compare and evaluation page (crossrank.proxy.ui)

Only writes need the admin token; health, metrics, the description and the page are open.
This module routes; each concern has its own: ``policies_api``, ``rerank_api``, ``index_mapping``,
``health``, ``openapi`` (and ``admin_auth`` for the token).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crossrank.config import AdminSettings
from crossrank.proxy.admin_auth import check_token
from crossrank.proxy.errors import MethodNotAllowed, NotFound
from crossrank.proxy.health import handle_health, handle_metrics
from crossrank.proxy.http import JSON_HEADERS, Incoming, Send, respond
from crossrank.proxy.index_mapping import handle_index_mapping
from crossrank.proxy.openapi import document_bytes
from crossrank.proxy.policies_api import handle_policies, handle_policy
from crossrank.proxy.rerank_api import handle_rerank
from crossrank.proxy.search_service import SearchService
from crossrank.proxy.ui import UI_PREFIX, handle_ui


@dataclass
class AdminContext:
    service: SearchService
    admin: AdminSettings
    models: Mapping[str, str]
    """Each loaded model's name and kind (cross-encoder or embedder)."""


async def handle_admin(request: Incoming, path: str, ctx: AdminContext, send: Send) -> None:
    if path == UI_PREFIX or path.startswith(UI_PREFIX + "/"):
        await handle_ui(request, path[len(UI_PREFIX):], send)
        return
    parts = [p for p in path.split("/") if p]
    method = request.method
    service = ctx.service
    if parts == ["policies"]:
        await handle_policies(request, send, service.policies)
    elif len(parts) == 2 and parts[0] == "policies":
        await handle_policy(request, parts[1], send, service.policies, ctx.admin, ctx.models)
    elif len(parts) == 2 and parts[0] == "mappings":
        if method == "PUT":
            check_token(request, ctx.admin)
        await handle_index_mapping(request, parts[1], service.upstream, service.policies,
                                   service.scorer, send)
    elif parts == ["rerank"]:
        if method != "POST":
            raise MethodNotAllowed("use POST /_crossrank/rerank")
        await handle_rerank(request, send, service, ctx.models, "crossrank")
    elif parts == ["health"]:
        await handle_health(send, service.upstream, service.policies, ctx.models)
    elif parts == ["metrics"]:
        await handle_metrics(send, service.metrics)
    elif parts == ["openapi.json"]:
        await respond(send, 200, document_bytes(), JSON_HEADERS)
    else:
        raise NotFound(f"no crossrank endpoint at /_crossrank{path}")
