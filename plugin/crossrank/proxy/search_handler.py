"""`_search` and `_msearch`: plan, retrieve, score, merge, answer.

A search that is not reranked goes to OpenSearch as the client sent it (only crossrank's own
parameters removed) and its answer comes back byte for byte, with X-Crossrank-* headers saying
why it was not reranked.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import orjson

from crossrank.config import Policy
from crossrank.proxy.errors import InvalidJSON
from crossrank.proxy.http import JSON_HEADERS, Incoming, Send, respond
from crossrank.proxy.hybrid_retrieval import hybrid_enabled, hybrid_page, retrieve_first_stage
from crossrank.proxy.metrics import Metrics
from crossrank.proxy.passthrough import forward
from crossrank.proxy.policy_store import PolicyStore
from crossrank.proxy.routes import Route, split_indices, strip_query_params
from crossrank.proxy.upstream import Reply, Upstream
from crossrank.search.ndjson import NDJSONError, json_depth, parse_msearch, render_msearch
from crossrank.search.pipeline import Reranked, Scorer, rerank
from crossrank.search.plan import CROSSRANK_PARAMS, PlanError, SearchPlan, plan_search
from crossrank.search.score_cache import ScoreCache
from crossrank.types import JSONObject

_ENCODINGS = frozenset({b"accept-encoding"})


@dataclass
class SearchContext:
    upstream: Upstream
    policies: PolicyStore
    scorer: Scorer
    metrics: Metrics
    max_json_depth: int = 100
    cache: ScoreCache | None = None

    async def rerank(self, items: list[tuple[SearchPlan, JSONObject]],
                     started: float) -> list[Reranked]:
        hits, misses = (self.cache.hits, self.cache.misses) if self.cache else (0, 0)
        results = await rerank(items, self.scorer, started=started, cache=self.cache)
        if self.cache is not None:
            self.metrics.cache_lookups.labels("hit").inc(self.cache.hits - hits)
            self.metrics.cache_lookups.labels("miss").inc(self.cache.misses - misses)
        return results


def _outcome_headers(plan: SearchPlan | None, status: str, reason: str | None,
                     timings: dict[str, float] | None = None) -> list[tuple[bytes, bytes]]:
    headers = [(b"x-crossrank-status", status.encode())]
    if plan is not None and plan.arm is not None:
        headers.append((b"x-crossrank-arm", plan.arm.encode()))
    if reason:
        headers.append((b"x-crossrank-reason", reason.encode("latin-1", "replace")))
    if timings:
        value = ", ".join(f"{name};dur={ms:.1f}" for name, ms in timings.items())
        headers.append((b"server-timing", value.encode()))
    return headers


def _parse_body(body: bytes, max_depth: int) -> JSONObject | None:
    if not body.strip():
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvalidJSON("request body must be a JSON object")
    if json_depth(parsed) > max_depth:
        raise InvalidJSON(f"request body nests deeper than {max_depth} levels")
    return parsed


async def handle_search(request: Incoming, route: Route, ctx: SearchContext,
                        send: Send) -> None:
    started = time.monotonic()
    body = await request.body()
    policy = ctx.policies.for_indices(route.indices)
    if policy is None and b"crossrank" not in body and not _has_own_params(request):
        # Not ours in any way: byte-faithful pass-through.
        ctx.metrics.outcomes.labels("", "", "bypassed", "no_policy").inc()
        await forward(request, ctx.upstream, send, body=body,
                      extra_headers=_outcome_headers(None, "bypassed", "no_policy"))
        return
    parsed = _parse_body(body, ctx.max_json_depth)
    try:
        plan = plan_search(parsed, request.params(), policy, request.header_map())
    except PlanError as exc:
        raise InvalidJSON(f"[{exc.field}] {exc.reason}", field=exc.field) from exc
    if not plan.rerank:
        _count(ctx, plan, "bypassed", plan.reason)
        page = await hybrid_page(ctx.upstream, ctx.scorer, plan, request.raw_path,
                                 _upstream_headers(request))
        if page is not None:  # the baseline arm of a hybrid policy is the hybrid first stage
            await respond(send, page.status_code, page.content,
                          JSON_HEADERS + _hybrid_header(page)
                          + _outcome_headers(plan, "bypassed", plan.reason))
            return
        forwarded = orjson.dumps(plan.upstream_body) if plan.body_changed else body
        if plan.upstream_body is None and plan.body_changed:
            forwarded = b""
        await forward(request, ctx.upstream, send,
                      query=strip_query_params(request.query, CROSSRANK_PARAMS),
                      body=forwarded,
                      extra_headers=_outcome_headers(plan, "bypassed", plan.reason))
        return

    retrieve_began = time.perf_counter()
    response = await retrieve_first_stage(ctx.upstream, ctx.scorer, plan, request.raw_path,
                                          _upstream_headers(request))
    retrieve_ms = (time.perf_counter() - retrieve_began) * 1000
    if response.status_code != 200:
        _count(ctx, plan, "bypassed", "upstream_status")
        await respond(send, response.status_code, response.content,
                      JSON_HEADERS + _outcome_headers(plan, "bypassed", "upstream_status"))
        return
    first_stage = orjson.loads(response.content)
    [result] = await ctx.rerank([(plan, first_stage)], started)
    _record(ctx, plan, result)
    timings = {"retrieve": retrieve_ms, "score": result.score_ms}
    await respond(send, 200, orjson.dumps(result.body),
                  JSON_HEADERS + _hybrid_header(response)
                  + _outcome_headers(plan, result.status, result.reason, timings))


def _hybrid_header(response: Reply) -> list[tuple[bytes, bytes]]:
    """Says how a hybrid policy's first stage was built (or why BM25 answered alone)."""
    value = response.headers.get("x-crossrank-hybrid")
    return [(b"x-crossrank-hybrid", value.encode("latin-1"))] if value else []


async def handle_msearch(request: Incoming, route: Route, ctx: SearchContext,
                         send: Send) -> None:
    started = time.monotonic()
    body = await request.body()
    if not ctx.policies.all() and b"crossrank" not in body and not _has_own_params(request):
        await forward(request, ctx.upstream, send, body=body,
                      extra_headers=_outcome_headers(None, "bypassed", "no_policy"))
        return
    try:
        searches = parse_msearch(body)
    except NDJSONError as exc:
        raise InvalidJSON(f"_msearch body, line {exc.line}: {exc.reason}") from exc
    # URL parameters of _msearch (search_type, max_concurrent_searches, ...) belong to the
    # whole request; only crossrank's own apply to each sub-search.
    params = [(k, v) for k, v in request.params() if k in CROSSRANK_PARAMS]
    plans: list[SearchPlan] = []
    paths: list[str] = []  # each sub-search's _search path, for those run on their own
    for number, (header, search) in enumerate(searches, start=1):
        if json_depth(search) > ctx.max_json_depth:
            raise InvalidJSON(f"_msearch body, search {number}: nests deeper than "
                              f"{ctx.max_json_depth} levels")
        indices = _sub_indices(header, route)
        paths.append("/" + ",".join(indices) + "/_search" if indices else "/_search")
        policy: Policy | None = ctx.policies.for_indices(indices)
        try:
            plans.append(plan_search(search, params, policy, request.header_map()))
        except PlanError as exc:
            raise InvalidJSON(f"[{exc.field}] {exc.reason}", field=exc.field) from exc

    if not any(p.rerank for p in plans) and not any(p.body_changed for p in plans) \
            and not _has_own_params(request):
        await forward(request, ctx.upstream, send, body=body,
                      extra_headers=_outcome_headers(None, "bypassed", "no_rerank"))
        return

    # Sub-searches on a hybrid policy get their first stage (or, when not reranked, their
    # page) from proxy-side hybrid, as a _search would; the others go in one _msearch.
    hybrid = [i for i, plan in enumerate(plans) if hybrid_enabled(plan)]
    plain = [i for i, plan in enumerate(plans) if not hybrid_enabled(plan)]
    retrieve_began = time.perf_counter()
    answer: JSONObject = {"took": 0, "responses": []}
    if plain:
        upstream_body = render_msearch([(searches[i][0], plans[i].upstream_body or {})
                                        for i in plain])
        response = await ctx.upstream.request(
            "POST", request.raw_path, strip_query_params(request.query, CROSSRANK_PARAMS),
            _upstream_headers(request, b"application/x-ndjson"), upstream_body)
        if response.status_code != 200:
            await respond(send, response.status_code, response.content, JSON_HEADERS)
            return
        answer = orjson.loads(response.content)
    replies = await asyncio.gather(*(_hybrid_answer(ctx, plans[i], paths[i], request)
                                     for i in hybrid))
    retrieve_ms = (time.perf_counter() - retrieve_began) * 1000
    plain_responses: list[JSONObject] = answer.get("responses", [])
    responses: list[JSONObject] = [{} for _ in plans]
    for n, i in enumerate(plain):
        responses[i] = plain_responses[n] if n < len(plain_responses) else {}
    for i, sub in zip(hybrid, replies, strict=True):
        responses[i] = {**orjson.loads(sub.content), "status": sub.status_code}
    answer["responses"] = responses
    if not plain:
        answer["took"] = max((int(r.get("took", 0)) for r in responses
                              if isinstance(r.get("took"), int)), default=0)
    todo = [(i, plan) for i, plan in enumerate(plans)
            if plan.rerank and i < len(responses) and "error" not in responses[i]
            and responses[i].get("status", 200) == 200]
    results = await ctx.rerank([(plan, responses[i]) for i, plan in todo], started)
    for (i, plan), result in zip(todo, results, strict=True):
        responses[i] = result.body
        _record(ctx, plan, result)
    statuses: set[str] = {r.status for r in results} or {"bypassed"}
    overall = "fallback" if "fallback" in statuses else sorted(statuses)[-1]
    timings = {"retrieve": retrieve_ms, "score": results[0].score_ms if results else 0.0}
    await respond(send, 200, orjson.dumps(answer),
                  JSON_HEADERS + [(b"x-crossrank-status", overall.encode()),
                                  (b"server-timing", ", ".join(
                                      f"{k};dur={v:.1f}" for k, v in timings.items()).encode())])


def _sub_indices(header: JSONObject, route: Route) -> tuple[str, ...]:
    if isinstance(header.get("index"), list):
        return tuple(str(i) for i in header["index"])
    return split_indices(str(header["index"])) if "index" in header else route.indices


async def _hybrid_answer(ctx: SearchContext, plan: SearchPlan, path: str,
                         request: Incoming) -> Reply:
    """A sub-search for which ``hybrid_enabled`` holds: the window to rerank, or (bypassed)
    the client's page, from the hybrid first stage."""
    headers = _upstream_headers(request)
    if plan.rerank:
        return await retrieve_first_stage(ctx.upstream, ctx.scorer, plan, path, headers)
    page = await hybrid_page(ctx.upstream, ctx.scorer, plan, path, headers)
    assert page is not None  # hybrid_enabled admits only the bypasses hybrid_page answers
    return page


def _has_own_params(request: Incoming) -> bool:
    return strip_query_params(request.query, CROSSRANK_PARAMS) != request.query


def _upstream_headers(request: Incoming,
                      content_type: bytes = b"application/json") -> list[tuple[bytes, bytes]]:
    # crossrank reads this answer itself, so it asks for it uncompressed.
    kept = [(k, v) for k, v in request.headers
            if k.lower() not in _ENCODINGS and k.lower() != b"content-type"]
    return kept + [(b"content-type", content_type)]


def _count(ctx: SearchContext, plan: SearchPlan, outcome: str, reason: str | None) -> None:
    name = plan.policy.name if plan.policy else ""
    ctx.metrics.outcomes.labels(name, plan.arm or "", outcome, reason or "").inc()


def _record(ctx: SearchContext, plan: SearchPlan, result: Reranked) -> None:
    _count(ctx, plan, result.status, result.reason)
    if plan.policy is not None:
        if result.missing_fields:
            ctx.metrics.missing_fields.labels(plan.policy.name).inc(result.missing_fields)
        ctx.metrics.pairs.labels(plan.policy.model).observe(result.pairs)
        ctx.metrics.score_seconds.labels(plan.policy.model).observe(result.score_ms / 1000)
