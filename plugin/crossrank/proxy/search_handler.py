"""`_search`, `_msearch` and their templates: parse, plan, run the pipeline, render.

A search that is not reranked (and has no hybrid first stage) goes to OpenSearch as the client
sent it (only crossrank's own parameters removed) and its answer comes back byte for byte, with
X-Crossrank-* headers saying why it was not reranked. Everything else runs through
``crossrank.search.pipeline`` via ``SearchService``. A search template on an index with a
policy is rendered by OpenSearch first (``_render/template``), and the search it renders to
takes the same path as a ``_search`` with that body (``_msearch/template``: as an
``_msearch`` of the rendered searches).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import orjson

from crossrank.ndjson import json_depth, parse_msearch
from crossrank.proxy.errors import InvalidJSON
from crossrank.proxy.http import JSON_HEADERS, Incoming, Send, respond
from crossrank.proxy.passthrough import forward
from crossrank.proxy.routes import Route, split_indices, strip_query_params
from crossrank.proxy.search_service import SearchService, headers_of, outcome_headers
from crossrank.search.pipeline import Outcome
from crossrank.search.plan import CROSSRANK_PARAMS, SearchPlan, plan_search
from crossrank.search.retrieval import Retrieval, RetrievalFailed
from crossrank.types import JSONObject

_ENCODINGS = frozenset({b"accept-encoding"})


def parse_body(body: bytes, max_depth: int) -> JSONObject | None:
    if not body.strip():
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvalidJSON("request body must be a JSON object")
    _check_depth(parsed, max_depth, "request body")
    return parsed


def _check_depth(value: JSONObject, max_depth: int, what: str) -> None:
    if json_depth(value) > max_depth:
        raise InvalidJSON(f"{what} nests deeper than {max_depth} levels")


async def handle_search(request: Incoming, route: Route, service: SearchService,
                        send: Send) -> None:
    started = time.monotonic()
    raw = await request.body()
    sent = request
    body, request = request.decode(raw)  # a gzip or deflate body, decoded
    policy = service.policies.for_indices(route.indices)
    if policy is None and b"crossrank" not in body and not _has_own_params(request):
        # Not ours in any way: byte-faithful pass-through (compressed as it came).
        service.count(None, "bypassed", "no_policy")
        await forward(sent, service.upstream, send, body=raw,
                      extra_headers=outcome_headers(None, "bypassed", "no_policy"))
        return
    parsed = parse_body(body, service.max_json_depth)
    plan = plan_search(parsed, request.params(), policy, request.header_map(),
                       service.card(policy))
    search = Retrieval(plan, request.raw_path)
    if search.mode == "as_sent":
        service.count(plan, "bypassed", plan.reason)
        await forward(request, service.upstream, send,
                      query=strip_query_params(request.query, CROSSRANK_PARAMS),
                      body=_as_sent(plan, body),
                      extra_headers=outcome_headers(plan, "bypassed", plan.reason))
        return
    [outcome] = await service.run([search], service.retriever(_upstream_headers(request)),
                                  started)
    await respond(send, outcome.status_code, _content(outcome),
                  JSON_HEADERS + headers_of(outcome))


async def handle_search_template(request: Incoming, route: Route, service: SearchService,
                                 send: Send) -> None:
    """``_search/template``: OpenSearch renders the template (with the client's own headers,
    so its permissions apply), then the rendered search is planned and run as ``_search``
    would run it, and the answer keeps the template API's shape (its ``status``). The template
    request itself goes to OpenSearch unchanged when no policy covers the indices, when the
    plan leaves the search as sent (``rerank=false``, a sort, ...) and when the template does
    not render (OpenSearch answers with its own error)."""
    started = time.monotonic()
    raw = await request.body()
    sent = request
    body, request = request.decode(raw)
    policy = service.policies.for_indices(route.indices)
    if policy is None and not _has_own_params(request):
        service.count(None, "bypassed", "no_policy")
        await forward(sent, service.upstream, send, body=raw,
                      extra_headers=outcome_headers(None, "bypassed", "no_policy"))
        return
    unchanged = strip_query_params(request.query, CROSSRANK_PARAMS)
    template = parse_body(body, service.max_json_depth)
    rendered = (None if template is None
                else await _render(_render_headers(request), body, service))
    if template is None or rendered is None:
        reason = "no_policy" if policy is None else "template_not_rendered"
        service.count(None, "bypassed", reason)
        await forward(request, service.upstream, send, query=unchanged, body=body,
                      extra_headers=outcome_headers(None, "bypassed", reason))
        return
    _check_depth(rendered, service.max_json_depth, "the rendered search template")
    rendered = _with_switches(rendered, template)
    search_path = _without_template(request.raw_path)
    plan = plan_search(rendered, request.params(), policy, request.header_map(),
                       service.card(policy))
    search = Retrieval(plan, search_path)
    if search.mode == "as_sent":
        service.count(plan, "bypassed", plan.reason)
        headers = outcome_headers(plan, "bypassed", plan.reason)
        if plan.body_changed:  # the rendered search named ext.crossrank: sent without it
            await forward(replace(request, raw_path=search_path), service.upstream, send,
                          query=unchanged, body=_as_sent(plan, b""), extra_headers=headers)
        else:
            await forward(request, service.upstream, send, query=unchanged, body=body,
                          extra_headers=headers)
        return
    [outcome] = await service.run([search], service.retriever(_upstream_headers(request)),
                                  started)
    await respond(send, outcome.status_code, _template_content(outcome),
                  JSON_HEADERS + headers_of(outcome))


def _render_headers(request: Incoming) -> list[tuple[bytes, bytes]]:
    """The client's headers for ``_render/template``, whose body is one JSON object whatever
    the client's request was (``_msearch/template`` is NDJSON)."""
    headers = [(k, v) for k, v in _upstream_headers(request) if k.lower() != b"content-type"]
    return [*headers, (b"content-type", b"application/json")]


async def _render(headers: list[tuple[bytes, bytes]], body: bytes,
                  service: SearchService) -> JSONObject | None:
    """The search a template renders to, rendered by OpenSearch; None when it does not render
    (an unknown id, a template error, a request OpenSearch refuses)."""
    answer = await service.upstream.request("POST", "/_render/template", b"", headers, body)
    if answer.status_code != 200:
        return None
    try:
        output = orjson.loads(answer.content).get("template_output")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return output if isinstance(output, dict) else None


def _with_switches(search: JSONObject, template: JSONObject) -> JSONObject:
    """The rendered search with the template API's own switches for it (explain, profile)."""
    flags = {flag: True for flag in ("explain", "profile") if template.get(flag) is True}
    return {**search, **flags} if flags else search


def _without_template(raw_path: str) -> str:
    """``/idx/_search/template`` -> ``/idx/_search`` (and ``_msearch`` alike)."""
    return raw_path.rstrip("/").removesuffix("/template")


def _template_content(outcome: Outcome) -> bytes:
    """The answer in the template API's shape: a search's, plus ``status`` on success."""
    content = _content(outcome)
    if outcome.status_code != 200:
        return content
    body = outcome.body if outcome.status != "bypassed" and outcome.body is not None else (
        orjson.loads(content))
    if not isinstance(body, dict) or "status" in body:
        return content
    return orjson.dumps({**body, "status": outcome.status_code})


def _as_sent(plan: SearchPlan, body: bytes) -> bytes:
    """The client's body, less ``ext.crossrank`` (re-serialised only when that changed it)."""
    if not plan.body_changed:
        return body
    return b"" if plan.upstream_body is None else orjson.dumps(plan.upstream_body)


def _content(outcome: Outcome) -> bytes:
    """The answer's bytes: what crossrank merged, else the first stage's own."""
    if outcome.status != "bypassed" and outcome.body is not None:
        return orjson.dumps(outcome.body)
    return outcome.content


async def handle_msearch(request: Incoming, route: Route, service: SearchService,
                         send: Send) -> None:
    started = time.monotonic()
    raw = await request.body()
    sent = request
    body, request = request.decode(raw)
    if not service.policies.all() and b"crossrank" not in body \
            and not _has_own_params(request):
        await forward(sent, service.upstream, send, body=raw,
                      extra_headers=outcome_headers(None, "bypassed", "no_policy"))
        return
    subs = parse_msearch(body)
    for number, (_, sub) in enumerate(subs, start=1):
        _check_depth(sub, service.max_json_depth, f"_msearch body, search {number}:")
    await _run_msearch(request, body, route, subs, service, send, started, request.raw_path)


async def handle_msearch_template(request: Incoming, route: Route, service: SearchService,
                                  send: Send) -> None:
    """``_msearch/template``: each template rendered by OpenSearch (as in
    ``handle_search_template``), then the rendered searches run as one ``_msearch``. The request
    goes to OpenSearch unchanged when no policy covers any of its indices, when nothing in it
    is reranked, and when a template does not render (OpenSearch answers for each)."""
    started = time.monotonic()
    raw = await request.body()
    sent = request
    body, request = request.decode(raw)
    subs = parse_msearch(body)
    covered = any(service.policies.for_indices(_sub_indices(header, route))
                  for header, _ in subs)
    if not covered and not _has_own_params(request):
        await forward(sent, service.upstream, send, body=raw,
                      extra_headers=outcome_headers(None, "bypassed", "no_policy"))
        return
    headers = _render_headers(request)
    answers = await asyncio.gather(*(_render(headers, orjson.dumps(template), service)
                                     for _, template in subs))
    rendered = [search for search in answers if search is not None]
    if not subs or len(rendered) < len(subs):
        await forward(request, service.upstream, send,
                      query=strip_query_params(request.query, CROSSRANK_PARAMS), body=body,
                      extra_headers=outcome_headers(None, "bypassed", "template_not_rendered"))
        return
    searches: list[tuple[JSONObject, JSONObject]] = []
    for number, ((header, template), search) in enumerate(zip(subs, rendered, strict=True),
                                                          start=1):
        _check_depth(search, service.max_json_depth,
                     f"_msearch/template, search {number}: the rendered template")
        searches.append((header, _with_switches(search, template)))
    await _run_msearch(request, body, route, searches, service, send, started,
                       _without_template(request.raw_path))


async def _run_msearch(request: Incoming, body: bytes, route: Route,
                       subs: list[tuple[JSONObject, JSONObject]], service: SearchService,
                       send: Send, started: float, msearch_path: str) -> None:
    """Plan each sub-search by its own indices' policy and run them together; ``body`` (the
    request as the client sent it) goes to OpenSearch unchanged when nothing is reranked."""
    # URL parameters of _msearch (search_type, max_concurrent_searches, ...) belong to the
    # whole request; only crossrank's own apply to each sub-search.
    params = [(k, v) for k, v in request.params() if k in CROSSRANK_PARAMS]
    searches: list[Retrieval] = []
    for header, sub in subs:
        indices = _sub_indices(header, route)
        path = "/" + ",".join(indices) + "/_search" if indices else "/_search"
        policy = service.policies.for_indices(indices)
        plan = plan_search(sub, params, policy, request.header_map(), service.card(policy))
        searches.append(Retrieval(plan, path, header))

    if all(s.mode == "as_sent" and not s.plan.body_changed for s in searches) \
            and not _has_own_params(request):
        await forward(request, service.upstream, send, body=body,
                      extra_headers=outcome_headers(None, "bypassed", "no_rerank"))
        return
    retriever = service.retriever(
        _upstream_headers(request),
        msearch=(msearch_path, strip_query_params(request.query, CROSSRANK_PARAMS)))
    try:
        outcomes = await service.run(searches, retriever, started)
    except RetrievalFailed as exc:
        await respond(send, exc.status, exc.content, JSON_HEADERS)
        return
    responses = [_sub_response(outcome) for outcome in outcomes]
    took = max((r["took"] for r in responses if isinstance(r.get("took"), int)), default=0)
    statuses = {o.status for o in outcomes if o.plan.rerank} or {"bypassed"}
    overall = "fallback" if "fallback" in statuses else sorted(statuses)[-1]
    scored = [o for o in outcomes if o.status != "bypassed"]
    timings = {"retrieve": outcomes[0].retrieve_ms if outcomes else 0.0,
               "score": scored[0].score_ms if scored else 0.0}
    await respond(send, 200, orjson.dumps({"took": took, "responses": responses}),
                  JSON_HEADERS + outcome_headers(None, overall, None, timings))


def _sub_response(outcome: Outcome) -> JSONObject:
    """One entry of ``responses``, with its ``status`` as OpenSearch gives it."""
    body = outcome.body if outcome.body is not None else (
        orjson.loads(outcome.content) if outcome.content else {})
    if "status" not in body:
        body = {**body, "status": outcome.status_code}
    return body


def _sub_indices(header: JSONObject, route: Route) -> tuple[str, ...]:
    if isinstance(header.get("index"), list):
        return tuple(str(i) for i in header["index"])
    return split_indices(str(header["index"])) if "index" in header else route.indices


def _has_own_params(request: Incoming) -> bool:
    return strip_query_params(request.query, CROSSRANK_PARAMS) != request.query


def _upstream_headers(request: Incoming) -> list[tuple[bytes, bytes]]:
    # crossrank reads this answer itself, so it asks for it uncompressed (the retriever sets
    # each request's own content type)
    return [(k, v) for k, v in request.headers if k.lower() not in _ENCODINGS]
