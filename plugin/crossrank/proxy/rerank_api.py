"""POST /_crossrank/rerank: query + documents -> scores (Cohere/Jina response shape).

The documents come with the request, so the plan needs no retrieval (``plan_inline`` and
``InlineRetriever``); scoring, the latency budget, the fallback and the metrics are the search
pipeline's, as for ``_search``. A fallback (scorer error, budget missed, queue full) answers
200 with the documents in the order given, ``relevance_score: null`` and
``X-Crossrank-Status: fallback``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crossrank.proxy.errors import BadRequest
from crossrank.proxy.http import JSON_HEADERS, Incoming, Send, respond
from crossrank.proxy.policies_api import validation_reason
from crossrank.proxy.search_service import SearchService, headers_of
from crossrank.search.plan import plan_inline
from crossrank.search.retrieval import InlineRetriever, Retrieval
from crossrank.types import Hit


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


async def handle_rerank(request: Incoming, send: Send, service: SearchService,
                        models: Mapping[str, str]) -> None:
    began = time.perf_counter()
    try:
        req = RerankRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        field, reason = validation_reason(exc)
        raise BadRequest(reason, field=field) from exc
    if models.get(req.model) != "cross-encoder":
        loaded = [name for name, kind in models.items() if kind == "cross-encoder"]
        raise BadRequest(f"[model] no cross-encoder named '{req.model}' is loaded "
                         f"(loaded: {', '.join(loaded) or 'none'})", field="model")
    texts = [d if isinstance(d, str) else d.text for d in req.documents]
    plan = plan_inline(req.query, len(texts), model=req.model, max_length=req.max_length,
                       top_n=req.top_n)
    hits: list[Hit] = [{"_index": "", "_id": str(i), "_score": None, "_source": {"text": t}}
                       for i, t in enumerate(texts)]
    [outcome] = await service.run([Retrieval(plan)], InlineRetriever([hits]))
    assert outcome.body is not None
    results = []
    for hit in outcome.body["hits"]["hits"]:
        i = int(hit["_id"])
        item: dict[str, Any] = {"index": i, "relevance_score": hit["_score"]}
        doc = req.documents[i]
        if isinstance(doc, RerankDocument) and doc.id is not None:
            item["id"] = doc.id
        if req.return_documents:
            item["document"] = {"text": texts[i]}
        results.append(item)
    await respond(send, 200, orjson.dumps({
        "model": req.model, "results": results,
        "meta": {"took_ms": round((time.perf_counter() - began) * 1000, 2),
                 "documents": len(texts)}}), JSON_HEADERS + headers_of(outcome))
