"""The ASGI application: lifespan (models, upstream pool, policies) and routing.

Layers, outermost first: the last-resort handler (anything unexpected becomes an
OpenSearch-shaped 500, never a traceback), the known-error table (crossrank.proxy.errors -> its
status), then the route: pass-through, search, search template, msearch, the ingest writes,
the rerank APIs (Cohere, Jina and TEI shapes) or the admin API.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from crossrank.config import Settings
from crossrank.models.protocols import Scorer
from crossrank.proxy.access_log import REQUEST_ID_HEADER, log_request, request_id
from crossrank.proxy.admin import AdminContext, handle_admin
from crossrank.proxy.errors import ERRORS, ClientDisconnected, UpstreamError, describe
from crossrank.proxy.http import JSON_HEADERS, Incoming, Receive, Scope, Send
from crossrank.proxy.ingest_handler import IngestContext, handle_ingest
from crossrank.proxy.metrics import Metrics
from crossrank.proxy.passthrough import forward
from crossrank.proxy.policy_store import PolicyStore
from crossrank.proxy.rerank_api import handle_rerank
from crossrank.proxy.routes import RouteKind, classify
from crossrank.proxy.search_handler import (
    handle_msearch,
    handle_msearch_template,
    handle_search,
    handle_search_template,
)
from crossrank.proxy.search_service import SearchService
from crossrank.proxy.upstream import Upstream
from crossrank.search.score_cache import ScoreCache

log = logging.getLogger("crossrank.proxy")


class _ResponseTracker:
    """Remembers whether a response has started, so errors are never sent mid-stream."""

    def __init__(self, send: Send, request_id: str) -> None:
        self._send = send
        self._request_id = request_id.encode("ascii")
        self.started = False
        self.status = 0
        self.outcome: str | None = None
        self.arm = ""

    async def __call__(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            headers = list(message.get("headers", []))
            for key, value in headers:
                if key == b"x-crossrank-status":
                    self.outcome = value.decode("latin-1")
                elif key == b"x-crossrank-arm":
                    self.arm = value.decode("latin-1")
            # OpenSearch 3.x echoes the X-Request-Id it was sent (the same id): one is enough
            if not any(key.lower() == REQUEST_ID_HEADER for key, _ in headers):
                headers.append((REQUEST_ID_HEADER, self._request_id))
            message = {**message, "headers": headers}
        await self._send(message)


class CrossrankApp:
    def __init__(self, settings: Settings, scorer: Scorer,
                 model_kinds: Mapping[str, str]) -> None:
        self.settings = settings
        self.scorer = scorer
        self.model_kinds = dict(model_kinds)
        self.metrics = Metrics(lambda: self.scorer)
        self.upstream = Upstream(settings.upstream)
        self.policies = PolicyStore(self.upstream, settings.policy_index, settings.policies,
                                    settings.policy_refresh_s)
        self.score_cache = ScoreCache(settings.score_cache_entries)
        self._search = SearchService(self.upstream, self.policies, scorer, self.metrics,
                                     settings.limits.max_json_depth, self.score_cache,
                                     getattr(scorer, "cards", {}))
        self._admin = AdminContext(self._search, settings.admin, self.model_kinds)
        self._ingest = IngestContext(self.upstream, self.policies, scorer)

    def replace_scorer(self, scorer: Scorer) -> None:
        """Swap the scorer (fault-injection tests, or a scorer built after the app)."""
        self.scorer = scorer
        self._search.scorer = scorer
        self._ingest.embedder = scorer

    async def startup(self) -> None:
        # Models load and warm up before the first request, off the event loop.
        warmup = getattr(self.scorer, "warmup", None)
        if callable(warmup):
            await asyncio.to_thread(warmup)
        await self.policies.start()

    async def shutdown(self) -> None:
        stop_batchers = getattr(self.scorer, "stop_batchers", None)
        if callable(stop_batchers):
            await stop_batchers()
        await self.policies.stop()
        await self.upstream.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Incoming.from_scope(scope, receive, self.settings.limits.max_body_bytes)
        rid, given = request_id(request.headers)
        if not given:  # the same id reaches OpenSearch, to join both sides' logs
            request.headers.append((REQUEST_ID_HEADER, rid.encode("ascii")))
        tracker = _ResponseTracker(send, rid)
        route = classify(request.method, request.raw_path)
        began = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self._dispatch(request, route.kind, route, tracker)
        except ClientDisconnected:
            return
        except Exception as exc:
            # known errors (crossrank.proxy.errors.ERRORS) answer with their own status;
            # anything else is logged and answered as an internal error, never a traceback
            known = any(cls in ERRORS for cls in type(exc).__mro__)
            if not known:
                log.exception("unexpected error on %s %s", request.method, request.raw_path)
            answer = describe(exc)
            if isinstance(exc, UpstreamError):
                self.metrics.upstream_errors.labels(answer.error_type).inc()
            if not tracker.started:
                await tracker(_start(answer.status))
                await tracker({"type": "http.response.body", "body": answer.body()})
        finally:
            log_request(rid, request.method, request.raw_path, tracker.status,
                        route.kind.value, began, tracker.outcome)
            self.metrics.in_flight.dec()
            self.metrics.request_done(route.kind.value, tracker.status,
                                      time.perf_counter() - began, tracker.arm)

    async def _dispatch(self, request: Incoming, kind: RouteKind, route: Any,
                        send: Send) -> None:
        if kind is RouteKind.SEARCH:
            await handle_search(request, route, self._search, send)
        elif kind is RouteKind.SEARCH_TEMPLATE:
            await handle_search_template(request, route, self._search, send)
        elif kind is RouteKind.MSEARCH:
            await handle_msearch(request, route, self._search, send)
        elif kind is RouteKind.MSEARCH_TEMPLATE:
            await handle_msearch_template(request, route, self._search, send)
        elif kind is RouteKind.ADMIN:
            await handle_admin(request, route.admin_path, self._admin, send)
        elif kind is RouteKind.BULK or kind is RouteKind.DOC:
            await handle_ingest(request, route, self._ingest, send)
        elif kind is RouteKind.RERANK:
            await handle_rerank(request, send, self._search, self.model_kinds,
                                route.rerank_api)
        else:
            await forward(request, self.upstream, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _start(status: int) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": list(JSON_HEADERS)}
