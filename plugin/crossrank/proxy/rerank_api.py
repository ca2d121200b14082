"""The rerank APIs: a query and documents in, the documents ranked out, in the shapes RAG code
already calls (``crossrank.proxy.rerank_shapes``).

    POST /_crossrank/rerank   crossrank's own: Cohere v1's fields, OpenSearch-shaped errors
    POST /v1/rerank           Cohere v1 and Jina (one route and one answer for both)
    POST /v2/rerank           Cohere v2
    POST /rerank              Hugging Face Text Embeddings Inference (TEI)

Every shape parses its request into a ``RerankCall`` and renders the ranking; ``rank`` is the
one core: the documents become the window of an inline plan (``plan_inline``,
``InlineRetriever``) and run through the search pipeline, so scoring, chunking, the latency
budget, the fallback and the metrics are those of ``_search``. ``relevance`` is in [0, 1] (the
logistic of the model's logit, as Cohere documents ``relevance_score``; a model whose
activation is already the sigmoid is read as it is) and ``raw`` is the logit, for callers that
ask for raw scores (TEI's ``raw_scores``). A fallback (scorer error, budget missed, queue full)
answers 200 with the documents in the order given, both scores ``None`` and
``X-Crossrank-Status: fallback``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping

from crossrank.proxy.http import JSON_HEADERS, Incoming, Send, respond
from crossrank.proxy.rerank_shapes import SHAPES, Ranked, RerankCall, RerankInputError
from crossrank.proxy.search_service import SearchService, headers_of
from crossrank.search.pipeline import Outcome
from crossrank.search.plan import plan_inline
from crossrank.search.retrieval import InlineRetriever, Retrieval
from crossrank.types import Hit

__all__ = ["handle_rerank", "rank"]


async def rank(call: RerankCall, service: SearchService,
               activation: str) -> tuple[list[Ranked], Outcome]:
    """The documents best first (the first ``top_n``), and the pipeline's outcome."""
    plan = plan_inline(call.query, len(call.texts), model=call.model,
                       max_length=call.max_length, top_n=call.top_n, chunking=call.chunking)
    hits: list[Hit] = [{"_index": "", "_id": str(i), "_score": None, "_source": {"text": t}}
                       for i, t in enumerate(call.texts)]
    [outcome] = await service.run([Retrieval(plan)], InlineRetriever([hits]))
    assert outcome.body is not None
    ranked = []
    for hit in outcome.body["hits"]["hits"]:
        score = hit["_score"]
        relevance, raw = (None, None) if score is None else _both_scales(float(score),
                                                                         activation)
        ranked.append(Ranked(int(hit["_id"]), relevance, raw))
    return ranked, outcome


def _both_scales(score: float, activation: str) -> tuple[float, float]:
    """(relevance in [0, 1], logit) of one model score."""
    if activation == "sigmoid":
        clipped = min(max(score, 1e-7), 1 - 1e-7)
        return score, math.log(clipped / (1 - clipped))
    return 0.5 * (1.0 + math.tanh(0.5 * score)), score  # the logistic, without overflow


async def handle_rerank(request: Incoming, send: Send, service: SearchService,
                        models: Mapping[str, str], api: str) -> None:
    """Answer one rerank request in the shape of ``api`` (a key of ``SHAPES``)."""
    shape = SHAPES[api]
    began = time.perf_counter()
    try:
        call = shape.parse(request.decode(await request.body())[0])
        _check_model(call.model, models)
        if not call.truncate:
            await _refuse_overlong(call, service)
    except RerankInputError as exc:
        status, body = shape.error(exc)
        await respond(send, status, body, JSON_HEADERS)
        return
    activations: Mapping[str, str] = getattr(service.scorer, "activations", {})
    ranked, outcome = await rank(call, service, activations.get(call.model, "none"))
    took_ms = round((time.perf_counter() - began) * 1000, 2)
    body = shape.render(call, ranked, took_ms, request.header("x-request-id") or "")
    await respond(send, 200, body, JSON_HEADERS + headers_of(outcome))


def _check_model(name: str, models: Mapping[str, str]) -> None:
    if models.get(name) != "cross-encoder":
        loaded = ", ".join(n for n, kind in sorted(models.items()) if kind == "cross-encoder")
        raise RerankInputError(f"no cross-encoder named '{name}' is loaded "
                               f"(loaded: {loaded or 'none'})", field="model",
                               kind="not_found")


async def _refuse_overlong(call: RerankCall, service: SearchService) -> None:
    cross_encoder = getattr(service.scorer, "cross_encoder", None)
    if cross_encoder is None:  # a scorer without tokenizers (tests' stand-ins): cut as usual
        return
    model = cross_encoder(call.model)
    pairs = [(call.query, text) for text in call.texts]
    overlong = await asyncio.to_thread(model.overlong, pairs, max_length=call.max_length)
    if overlong:
        raise RerankInputError(
            f"text {overlong[0]} does not fit the model's {model.limit(call.max_length)} "
            f"tokens with the query ({len(overlong)} such); send truncate: true to cut it",
            field="texts", kind="too_long")

