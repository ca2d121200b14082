"""The first stage of a search on the wire: as planned, or proxy-side hybrid.

For a policy with ``hybrid`` enabled, the query text is embedded, BM25 and k-NN run in one
``_msearch`` and the two lists are fused (``crossrank.search.hybrid_plan``). The answer is an
OpenSearch ``_search`` answer either way, so the rest of the pipeline does not know which ran.

Hybrid never makes a search fail that plain retrieval would answer: a search that cannot be
made hybrid, a query that cannot be embedded, or a k-NN side that fails (say the field is not
mapped) is answered by BM25 alone. The ``x-crossrank-hybrid`` header of the returned response
says what happened: ``rrf`` / ``rsf``, ``skipped:<reason>`` or ``fallback:<reason>``.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import orjson

from crossrank.config import HybridSection
from crossrank.ingest.embed import TextEmbedder
from crossrank.proxy.upstream import Reply, Upstream, reply
from crossrank.search.hybrid_plan import HybridSkip, fuse, plan_hybrid
from crossrank.search.plan import SearchPlan
from crossrank.types import JSONObject

__all__ = ["HYBRID_HEADER", "hybrid_enabled", "hybrid_page", "retrieve_first_stage"]

log = logging.getLogger("crossrank.hybrid")

HYBRID_HEADER = "x-crossrank-hybrid"
_NDJSON = (b"content-type", b"application/x-ndjson")
# Bypassed searches that still get the policy's first stage (the baseline arm of an A/B test
# must differ from the rerank arm by the reranker only).
_HYBRID_BYPASS_REASONS = frozenset({"rerank_false", "ab_baseline", "policy_disabled",
                                    "beyond_window"})


def hybrid_enabled(plan: SearchPlan) -> bool:
    """Whether this search's first stage (or, bypassed, its page) comes from hybrid."""
    return _enabled(plan) is not None and (plan.rerank
                                           or plan.reason in _HYBRID_BYPASS_REASONS)


def _enabled(plan: SearchPlan) -> HybridSection | None:
    hybrid = plan.policy.hybrid if plan.policy is not None else None
    if hybrid is None or not hybrid.enabled or plan.query_text is None:
        return None
    return hybrid


async def retrieve_first_stage(upstream: Upstream, models: object, plan: SearchPlan,
                               raw_path: str, headers: list[tuple[bytes, bytes]]
                               ) -> Reply:
    """The window of a reranked search: ``plan.upstream_body`` as sent, or hybrid."""
    hybrid = _enabled(plan)
    body = plan.upstream_body or {}
    if hybrid is not None:
        size = body.get("size")
        return await _hybrid(upstream, models, plan, hybrid, raw_path, headers, from_=0,
                             size=size if isinstance(size, int) else plan.window)
    return await upstream.request("POST", raw_path, urlencode(plan.upstream_params).encode(),
                                  headers, orjson.dumps(body))


async def hybrid_page(upstream: Upstream, models: object, plan: SearchPlan, raw_path: str,
                      headers: list[tuple[bytes, bytes]]) -> Reply | None:
    """The client's page of a search that is not reranked, from the hybrid first stage; None
    when the search is to go to OpenSearch as sent (no hybrid policy, or a bypass such as
    ``sort`` or ``scroll`` whose answer hybrid cannot give)."""
    hybrid = _enabled(plan)
    if hybrid is None or plan.reason not in _HYBRID_BYPASS_REASONS:
        return None
    return await _hybrid(upstream, models, plan, hybrid, raw_path, headers,
                         from_=plan.from_, size=plan.size)


async def _hybrid(upstream: Upstream, models: object, plan: SearchPlan, hybrid: HybridSection,
                  raw_path: str, headers: list[tuple[bytes, bytes]], *, from_: int,
                  size: int) -> Reply:
    assert plan.query_text is not None and hybrid.model is not None
    params = [(k, v) for k, v in plan.upstream_params if k not in ("from", "size")]
    try:
        request = plan_hybrid(plan.upstream_body, params, hybrid, from_=from_, size=size)
    except HybridSkip as exc:
        return await _plain(upstream, plan, raw_path, headers, from_, size, f"skipped:{exc.reason}")
    try:
        if not isinstance(models, TextEmbedder):
            raise TypeError("no embedder runtime")
        vectors = await models.embed(hybrid.model, [plan.query_text])
        vector = vectors[0]
    except Exception as exc:  # the query cannot be embedded: BM25 alone
        log.warning("hybrid: embedding the query with [%s] failed: %s", hybrid.model, exc)
        return await _plain(upstream, plan, raw_path, headers, from_, size,
                            "fallback:embed_error")

    path = raw_path.rstrip("/").removesuffix("/_search") + "/_msearch"
    response = await upstream.request(
        "POST", path, urlencode(request.url_params).encode(),
        [(k, v) for k, v in headers if k.lower() != b"content-type"] + [_NDJSON],
        request.msearch_body(vector))
    if response.status_code != 200:
        return response
    answer = orjson.loads(response.content)
    responses = answer.get("responses") or []
    if len(responses) != 2 or not all(isinstance(r, dict) for r in responses):
        raise ValueError("_msearch answered with an unexpected body")
    bm25, knn = responses
    if "error" in bm25:
        return _answer(int(bm25.get("status", 500)),
                       {"error": bm25["error"], "status": bm25.get("status", 500)}, "bm25_error")
    if "error" in knn:
        log.warning("hybrid: the k-NN side failed, answering with BM25 alone: %s",
                    str(knn["error"])[:300])
        return _answer(200, _page(_strip_status(bm25), from_, size), "fallback:knn_error")
    took = answer.get("took")
    fused = fuse(_strip_status(bm25), _strip_status(knn), hybrid, from_=from_, size=size,
                 took=took if isinstance(took, int) else None)
    return _answer(200, fused, hybrid.fusion)


async def _plain(upstream: Upstream, plan: SearchPlan, raw_path: str,
                 headers: list[tuple[bytes, bytes]], from_: int, size: int,
                 outcome: str) -> Reply:
    body = dict(plan.upstream_body or {})
    body["from"], body["size"] = from_, size
    params = [(k, v) for k, v in plan.upstream_params if k not in ("from", "size")]
    response = await upstream.request("POST", raw_path, urlencode(params).encode(), headers,
                                      orjson.dumps(body))
    return reply(response.status_code, response.content, [(HYBRID_HEADER, outcome)])


def _strip_status(response: JSONObject) -> JSONObject:
    """A sub-response of ``_msearch`` as ``_search`` would give it (without ``status``)."""
    return {key: value for key, value in response.items() if key != "status"}


def _page(response: JSONObject, from_: int, size: int) -> JSONObject:
    hits = response.get("hits")
    if not isinstance(hits, dict) or not isinstance(hits.get("hits"), list):
        return response
    return {**response, "hits": {**hits, "hits": hits["hits"][from_: from_ + size]}}


def _answer(status: int, body: JSONObject, outcome: str) -> Reply:
    return reply(status, orjson.dumps(body),
                 [("content-type", "application/json; charset=UTF-8"), (HYBRID_HEADER, outcome)])
