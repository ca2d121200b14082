"""The first stage on the wire: the pipeline's ``Retriever`` for searches that go to OpenSearch.

One ``UpstreamRetriever`` serves one incoming request (its headers, and for an ``_msearch`` its
path and query). Plain searches go up as planned: a ``_search``, or the sub-searches of an
``_msearch`` together in one ``_msearch``. A search of a policy with ``hybrid`` enabled runs as
proxy-side hybrid: the query text is embedded, BM25 and k-NN run in one ``_msearch`` and the
two lists are fused (``crossrank.search.hybrid_plan``); the answer carries each side's scores
as the ``bm25`` and ``knn`` signals, so that the reranker can be blended with each of them.

Hybrid never makes a search fail that plain retrieval would answer: a search that cannot be
made hybrid, a query that cannot be embedded, or a k-NN side that fails (say the field is not
mapped) is answered by BM25 alone. ``FirstStage.hybrid`` (the ``x-crossrank-hybrid`` header)
says what happened: ``rrf`` / ``rsf``, ``skipped:<reason>`` or ``fallback:<reason>``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from urllib.parse import urlencode

import orjson

from crossrank.models.protocols import TextEmbedder
from crossrank.ndjson import render_msearch
from crossrank.policy import HybridSection
from crossrank.proxy.upstream import Upstream
from crossrank.search.errors import HybridSkip
from crossrank.search.hybrid_plan import fuse, plan_hybrid
from crossrank.search.plan import SearchPlan
from crossrank.search.retrieval import FirstStage, Retrieval, RetrievalFailed
from crossrank.types import JSONObject, hit_key

__all__ = ["HYBRID_HEADER", "UpstreamRetriever"]

log = logging.getLogger("crossrank.hybrid")

HYBRID_HEADER = "x-crossrank-hybrid"
Headers = list[tuple[bytes, bytes]]
_NDJSON = (b"content-type", b"application/x-ndjson")


class UpstreamRetriever:
    """``msearch``: the incoming ``_msearch``'s (path, query without crossrank's parameters),
    for the plain sub-searches, which go up together as one ``_msearch``."""

    def __init__(self, upstream: Upstream, embedder: object, headers: Headers, *,
                 msearch: tuple[str, bytes] | None = None) -> None:
        self._upstream = upstream
        self._embedder = embedder
        self._headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
        self._msearch = msearch

    async def retrieve(self, searches: Sequence[Retrieval]) -> list[FirstStage]:
        hybrid = [i for i, s in enumerate(searches) if _hybrid_section(s) is not None]
        plain = [i for i in range(len(searches)) if i not in set(hybrid)]

        async def plain_answers() -> list[FirstStage]:
            if not plain:
                return []
            if self._msearch is not None:
                return await self._plain_msearch([searches[i] for i in plain])
            return [await self._plain_search(searches[i]) for i in plain]

        fused, rest = await asyncio.gather(
            asyncio.gather(*(self._hybrid(searches[i]) for i in hybrid)), plain_answers())
        answers: dict[int, FirstStage] = {**dict(zip(hybrid, fused, strict=True)),
                                          **dict(zip(plain, rest, strict=True))}
        return [answers[i] for i in range(len(searches))]

    async def _plain_search(self, search: Retrieval) -> FirstStage:
        plan = search.plan
        return await self._search(search.path, plan.upstream_params, plan.upstream_body or {})

    async def _search(self, path: str, params: Sequence[tuple[str, str]], body: JSONObject,
                      hybrid: str | None = None) -> FirstStage:
        """One ``_search`` upstream; ``hybrid`` says why BM25 answers a hybrid search alone."""
        response = await self._upstream.request(
            "POST", path, urlencode(params).encode(),
            self._headers + [(b"content-type", b"application/json")], orjson.dumps(body))
        return FirstStage.parsed(response.status_code, response.content, hybrid)

    async def _plain_msearch(self, searches: Sequence[Retrieval]) -> list[FirstStage]:
        assert self._msearch is not None
        path, query = self._msearch
        body = render_msearch([(s.header or {}, s.plan.upstream_body or {}) for s in searches])
        response = await self._upstream.request("POST", path, query,
                                                self._headers + [_NDJSON], body)
        if response.status_code != 200:
            raise RetrievalFailed(response.status_code, response.content)
        listed = orjson.loads(response.content).get("responses") or []
        answers = []
        for n in range(len(searches)):
            sub = listed[n] if n < len(listed) and isinstance(listed[n], dict) else {}
            status = sub.get("status", 200) if "error" not in sub else sub.get("status", 500)
            answers.append(FirstStage(int(status), sub, b""))
        return answers

    async def _hybrid(self, search: Retrieval) -> FirstStage:
        plan = search.plan
        hybrid = _hybrid_section(search)
        assert hybrid is not None and plan.query_text is not None and hybrid.model is not None
        if search.mode == "window":
            size = (plan.upstream_body or {}).get("size")
            from_, size = 0, size if isinstance(size, int) else plan.window
        else:
            from_, size = plan.from_, plan.size
        params = [(k, v) for k, v in plan.upstream_params if k not in ("from", "size")]
        try:
            request = plan_hybrid(plan.upstream_body, params, hybrid, from_=from_, size=size)
        except HybridSkip as exc:
            return await self._bm25_alone(search, params, from_, size, f"skipped:{exc.reason}")
        try:
            if not isinstance(self._embedder, TextEmbedder):
                raise TypeError("no embedder runtime")
            vector = (await self._embedder.embed(hybrid.model, [plan.query_text]))[0]
        except Exception as exc:  # the query cannot be embedded: BM25 alone
            log.warning("hybrid: embedding the query with [%s] failed: %s", hybrid.model, exc)
            return await self._bm25_alone(search, params, from_, size, "fallback:embed_error")

        path = search.path.rstrip("/").removesuffix("/_search") + "/_msearch"
        response = await self._upstream.request(
            "POST", path, urlencode(request.url_params).encode(), self._headers + [_NDJSON],
            request.msearch_body(vector))
        if response.status_code != 200:
            return FirstStage.parsed(response.status_code, response.content)
        answer = orjson.loads(response.content)
        responses = answer.get("responses") or []
        if len(responses) != 2 or not all(isinstance(r, dict) for r in responses):
            raise ValueError("_msearch answered with an unexpected body")
        bm25, knn = (_strip_status(r) for r in responses)
        if "error" in bm25:
            status = int(responses[0].get("status", 500))
            return _composed(status, {"error": bm25["error"], "status": status}, "bm25_error")
        if "error" in knn:
            log.warning("hybrid: the k-NN side failed, answering with BM25 alone: %s",
                        str(knn["error"])[:300])
            return _composed(200, _page(bm25, from_, size), "fallback:knn_error")
        took = answer.get("took")
        fused = fuse(bm25, knn, hybrid, from_=from_, size=size,
                     took=took if isinstance(took, int) else None)
        return _composed(200, fused, hybrid.fusion,
                         {"bm25": _scores(bm25), "knn": _scores(knn)})

    async def _bm25_alone(self, search: Retrieval, params: Sequence[tuple[str, str]],
                          from_: int, size: int, outcome: str) -> FirstStage:
        body = {**(search.plan.upstream_body or {}), "from": from_, "size": size}
        return await self._search(search.path, params, body, outcome)


def _hybrid_section(search: Retrieval) -> HybridSection | None:
    """The policy's hybrid section, when this search's first stage (or page) is hybrid."""
    plan: SearchPlan = search.plan
    if search.mode == "as_sent" or not plan.proxy_hybrid or plan.policy is None:
        return None
    return plan.policy.hybrid


def _strip_status(response: JSONObject) -> JSONObject:
    """A sub-response of ``_msearch`` as ``_search`` would give it (without ``status``)."""
    return {key: value for key, value in response.items() if key != "status"}


def _scores(response: JSONObject) -> dict[str, float]:
    section = response.get("hits")
    hits = section.get("hits") if isinstance(section, dict) else None
    return {hit_key(hit): float(hit["_score"]) for hit in hits or []
            if isinstance(hit, dict) and isinstance(hit.get("_score"), int | float)
            and not isinstance(hit.get("_score"), bool)}


def _page(response: JSONObject, from_: int, size: int) -> JSONObject:
    hits = response.get("hits")
    if not isinstance(hits, dict) or not isinstance(hits.get("hits"), list):
        return response
    return {**response, "hits": {**hits, "hits": hits["hits"][from_: from_ + size]}}


def _composed(status: int, body: JSONObject, outcome: str,
              signals: dict[str, dict[str, float]] | None = None) -> FirstStage:
    return FirstStage(status, body, orjson.dumps(body), outcome, signals or {})
