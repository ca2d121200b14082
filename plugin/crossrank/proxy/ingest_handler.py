"""The ingest hook on the wire: ``_bulk``, ``_doc``, ``_create`` and ``_update`` for indices
whose policy has an ``embed`` section.

The decision is cheap and made before the body is read where it can be: a single-document
write to an index without an embed policy, and any ``_bulk`` while no policy embeds, stream
through byte for byte. Otherwise the body is read, planned (``crossrank.ingest.plan``), and:

1. updates that need it have their stored document read (one ``_mget``, with the client's
   credentials);
2. every text of the request is embedded, one call per model;
3. each target index is checked to map the vector field as a ``knn_vector`` of that
   dimension (an index that does not exist is created so; the answer is cached a minute);
4. the request goes to OpenSearch with the vectors in, and OpenSearch's answer comes back as
   it is, per-item results included.

A failure in 1-3 fails the request as a whole and nothing is written: an embedding failure is
a 500 ``crossrank_embedding_exception``, a wrong mapping a 400 naming the index and the field.
Neither is a status that clients retry on their own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import orjson

from crossrank.ingest.embed import embed_plan, embedding_dimension
from crossrank.ingest.errors import EmbeddingError
from crossrank.ingest.plan import (
    IngestPlan,
    WriteOp,
    bulk_ops,
    complete,
    plan_ingest,
    render,
    rewrite_bulk,
)
from crossrank.policy import EmbedSection, Policy
from crossrank.proxy.errors import EmbeddingFailed
from crossrank.proxy.http import Incoming, Send, decode_content
from crossrank.proxy.index_mapping import MappingCache, ensure_vector_mappings, upstream_failure
from crossrank.proxy.passthrough import forward
from crossrank.proxy.policy_store import PolicyStore
from crossrank.proxy.routes import Route, RouteKind
from crossrank.proxy.upstream import Upstream
from crossrank.types import JSONObject

log = logging.getLogger("crossrank.ingest")

_JSON = (b"content-type", b"application/json")
_DROPPED = frozenset({b"content-type", b"content-length", b"content-encoding",
                      b"accept-encoding", b"transfer-encoding"})



@dataclass
class IngestContext:
    upstream: Upstream
    policies: PolicyStore
    embedder: object
    mappings: MappingCache = field(default_factory=MappingCache)


def embed_section(policies: PolicyStore, index: str) -> EmbedSection | None:
    policy: Policy | None = policies.for_indices([index])
    return policy.embed if policy is not None else None


async def handle_ingest(request: Incoming, route: Route, ctx: IngestContext, send: Send) -> None:
    if route.kind is RouteKind.DOC:
        section = embed_section(ctx.policies, route.indices[0])
        if section is None:
            await forward(request, ctx.upstream, send)
            return
    elif not any(policy.embed is not None for policy in ctx.policies.all()):
        await forward(request, ctx.upstream, send)
        return

    raw = await request.body()
    body = decode_content(raw, request.header("content-encoding"), request.max_body_bytes)
    decoded = body is not raw
    params = dict(request.params())
    default_index = route.indices[0] if len(route.indices) == 1 else None
    if route.kind is RouteKind.BULK:
        ops = bulk_ops(body, default_index, params.get("routing"))
    else:
        ops = [WriteOp(route.doc_action, default_index, route.doc_id, params.get("routing"),
                       body)]
    plan = plan_ingest(ops, lambda index: embed_section(ctx.policies, index))
    if not plan.sections:
        await forward(request, ctx.upstream, send, body=raw)
        return

    headers = _internal_headers(request)
    if plan.lookups:
        complete(plan, await _lookup(ctx.upstream, plan, headers))
    try:
        vectors = await embed_plan(plan, ctx.embedder)
    except EmbeddingError as exc:
        log.warning("ingest refused: %s", exc)
        raise EmbeddingFailed(f"{exc}; nothing was written") from exc
    dimensions = {model: await embedding_dimension(ctx.embedder, model)
                  for model in plan.models}
    for slot, vector in vectors.items():
        if vector is not None:
            dimensions[plan.sections[slot.op].model] = len(vector)
    targets = {index: (section.vector_field, section.model)
               for index, section in plan.targets.items()}
    await ensure_vector_mappings(ctx.upstream, ctx.mappings, targets, dimensions, headers,
                                 create=params.get("require_alias") != "true")

    new_bodies = render(plan, vectors)
    if route.kind is RouteKind.BULK:
        out = rewrite_bulk(body, ops, new_bodies)
    else:
        out = new_bodies.get(0, body)
    if out is raw:
        await forward(request, ctx.upstream, send, body=raw)
        return
    sent = request.without_header(b"content-encoding") if decoded else request
    await forward(sent, ctx.upstream, send, body=out)


def _internal_headers(request: Incoming) -> list[tuple[bytes, bytes]]:
    """The client's headers (its credentials above all) for crossrank's own requests."""
    return [(k, v) for k, v in request.headers if k.lower() not in _DROPPED] + [_JSON]


async def _lookup(upstream: Upstream, plan: IngestPlan,
                  headers: list[tuple[bytes, bytes]]) -> dict[int, JSONObject | None]:
    """The stored sources of the looked-up updates (None: no such document)."""
    docs = []
    for lookup in plan.lookups:
        doc: JSONObject = {"_index": lookup.index, "_id": lookup.doc_id,
                           "_source": {"includes": list(lookup.paths)}}
        if lookup.routing is not None:
            doc["routing"] = lookup.routing
        docs.append(doc)
    response = await upstream.request("POST", "/_mget", b"", headers,
                                      orjson.dumps({"docs": docs}))
    if response.status_code != 200:
        raise upstream_failure("reading the documents to update", response)
    found = orjson.loads(response.content).get("docs", [])
    stored: dict[int, JSONObject | None] = {}
    for lookup, entry in zip(plan.lookups, found, strict=False):
        if isinstance(entry, dict) and entry.get("found"):
            source = entry.get("_source")
            stored[lookup.op] = source if isinstance(source, dict) else {}
        else:
            stored[lookup.op] = None  # missing, or an error such as a missing index
    return stored
