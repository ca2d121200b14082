"""The vector mapping of an index on the wire: check it, or create the index with it.

Used by the ingest hook before it writes vectors (``ensure_vector_mappings``), and by the admin
API (``handle_index_mapping``)::

    GET /_crossrank/mappings/{index}   what the index's policy needs and what is wrong, if anything
    PUT /_crossrank/mappings/{index}   create the index with that mapping (201), or check it
                                       (200 when right, 400 naming each problem)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

import orjson

from crossrank.ingest.embed import embedding_dimension
from crossrank.ingest.mapping import check_mappings, index_body
from crossrank.policy import Policy
from crossrank.proxy.errors import (
    CrossrankError,
    DimensionUnknown,
    EmbedderMissing,
    MappingMismatch,
    MethodNotAllowed,
    NotFound,
    UpstreamError,
    UpstreamRefused,
)
from crossrank.proxy.http import Incoming, Send, respond
from crossrank.proxy.policy_store import PolicyStore
from crossrank.proxy.upstream import Reply, Upstream
from crossrank.types import JSONObject

__all__ = ["MappingCache", "ensure_vector_mappings", "handle_index_mapping", "upstream_failure"]

log = logging.getLogger("crossrank.ingest")

Headers = list[tuple[bytes, bytes]]
_JSON = (b"content-type", b"application/json")





@dataclass
class MappingCache:
    """Indices whose mapping was found right, for ``ttl_s`` seconds."""

    ttl_s: float = 60.0
    _checked: dict[tuple[str, str, int | None], float] = field(default_factory=dict)

    def fresh(self, key: tuple[str, str, int | None]) -> bool:
        checked = self._checked.get(key)
        return checked is not None and time.monotonic() - checked < self.ttl_s

    def remember(self, key: tuple[str, str, int | None]) -> None:
        self._checked[key] = time.monotonic()


@dataclass(frozen=True)
class Target:
    index: str
    vector_field: str
    model: str
    dimension: int | None


async def ensure_vector_mappings(upstream: Upstream, cache: MappingCache,
                                 targets: Mapping[str, tuple[str, str]],
                                 dimensions: Mapping[str, int | None], headers: Headers, *,
                                 create: bool) -> None:
    """Check every ``index -> (vector field, model)``; create missing indices when ``create``.
    Raises ``MappingMismatch`` (400) naming each problem."""
    for index, (vector_field, model) in targets.items():
        target = Target(index, vector_field, model, dimensions.get(model))
        key = (index, vector_field, target.dimension)
        if cache.fresh(key):
            continue
        problems = await _problems(upstream, target, headers, create=create)
        if problems:
            raise MappingMismatch(
                f"the index cannot hold the documents' vectors (embedder [{model}]): "
                + "; ".join(problems) + "; nothing was written", field=vector_field)
        if problems is not None:
            cache.remember(key)


async def _problems(upstream: Upstream, target: Target, headers: Headers, *,
                    create: bool) -> list[str] | None:
    """What is wrong (empty: nothing); None when it cannot be told (no right to read the
    index, or no index and none to create): OpenSearch then answers the write itself."""
    path = "/" + quote(target.index, safe=",*")
    response = await upstream.request("GET", path, b"", headers)
    if response.status_code == 404 and create:
        await _create(upstream, path, target, headers)
        response = await upstream.request("GET", path, b"", headers)
    if response.status_code in (401, 403, 404):
        return None
    if response.status_code != 200:
        raise upstream_failure(f"reading the mapping of [{target.index}]", response)
    return check_mappings(orjson.loads(response.content), target.vector_field, target.dimension)


async def _create(upstream: Upstream, path: str, target: Target, headers: Headers) -> bool:
    """Create the index with the vector field mapped; False when it already existed."""
    if target.dimension is None:
        raise DimensionUnknown(f"index [{target.index}] does not exist and the dimension of "
                               f"embedder [{target.model}] is unknown; nothing was written")
    created = await upstream.request("PUT", path, b"", headers, orjson.dumps(
        index_body(target.vector_field, target.dimension)))
    if b"resource_already_exists_exception" in created.content:
        return False
    if created.status_code not in (200, 201):
        raise upstream_failure(f"creating index [{target.index}] for its vectors", created)
    log.info("created index [%s] with knn_vector field [%s] (dimension %d)", target.index,
             target.vector_field, target.dimension)
    return True


def _no_dimension(policy: str, model: str, vector_field: str, models: object) -> CrossrankError:
    """Why the index for ``model``'s vectors cannot be made: the model is not loaded here, or
    is not an embedder (409: the settings are wrong, not the request), or its dimension is
    unknown (500)."""
    kinds = getattr(models, "kinds", None)
    kinds = kinds if isinstance(kinds, dict) else {}
    embedders = ", ".join(sorted(name for name, kind in kinds.items() if kind == "embedder"))
    if kinds.get(model) is None:
        return EmbedderMissing(f"policy [{policy}] names embedder [{model}], which this proxy "
                               f"has not loaded (embedders: {embedders or 'none'}); nothing "
                               "was written", field=vector_field)
    if kinds[model] != "embedder":
        return EmbedderMissing(f"policy [{policy}] names [{model}] as its embedder, but it is a "
                               f"{kinds[model]} (embedders: {embedders or 'none'}); nothing was "
                               "written", field=vector_field)
    return DimensionUnknown(f"the dimension of embedder [{model}] is unknown; nothing was "
                            "written")


def upstream_failure(what: str, response: Reply) -> CrossrankError:
    reason = response.text[:500]
    try:
        error = orjson.loads(response.content).get("error")
        if isinstance(error, dict):
            reason = str(error.get("reason") or reason)
    except (orjson.JSONDecodeError, AttributeError):
        pass
    if 400 <= response.status_code < 500:
        return UpstreamRefused(f"{what} failed: {reason}; nothing was written",
                               upstream_status=response.status_code)
    return UpstreamError(f"{what} failed with status {response.status_code}: {reason}; "
                         "nothing was written")


def vector_target(policy: Policy | None) -> tuple[str, str] | None:
    """(vector field, embedder) a policy needs in its indices: the embed section's, else the
    hybrid section's."""
    if policy is not None and policy.embed is not None:
        return policy.embed.vector_field, policy.embed.model
    if policy is not None and policy.hybrid is not None and policy.hybrid.vector_field \
            and policy.hybrid.model:
        return policy.hybrid.vector_field, policy.hybrid.model
    return None


async def handle_index_mapping(request: Incoming, index: str, upstream: Upstream,
                               policies: PolicyStore, models: object, send: Send) -> None:
    """``GET|PUT /_crossrank/mappings/{index}`` (the caller checks the admin token of a PUT)."""
    if request.method not in ("GET", "PUT"):
        raise MethodNotAllowed(f"{request.method} is not allowed on a mapping")
    policy = policies.for_indices([index])
    wanted = vector_target(policy)
    if policy is None or wanted is None:
        raise NotFound(f"no policy with an embed or hybrid section covers index [{index}]")
    vector_field, model = wanted
    dimension = await embedding_dimension(models, model)
    target = Target(index, vector_field, model, dimension)
    headers = [(k, v) for k, v in request.headers
               if k.lower() not in (b"content-type", b"content-length", b"accept-encoding")]
    headers.append(_JSON)
    body: JSONObject = {"index": index, "policy": policy.name, "vector_field": vector_field,
                        "embedder": model, "dimension": dimension}
    if dimension is not None:
        body["mapping"] = index_body(vector_field, dimension)
    status = 200
    if request.method == "PUT":
        path = "/" + quote(index, safe=",*")
        if (await upstream.request("GET", path, b"", headers)).status_code == 404:
            if dimension is None:  # an existing index is still checked (and 200 if right)
                raise _no_dimension(policy.name, model, vector_field, models)
            if await _create(upstream, path, target, headers):
                status = 201
    problems = await _problems(upstream, target, headers, create=False)
    body["exists"] = problems is not None
    body["problems"] = problems or []
    if request.method == "PUT" and problems:
        raise MappingMismatch(f"index [{index}] exists with a mapping that cannot hold the "
                              f"vectors: " + "; ".join(problems), field=vector_field)
    await respond(send, status, orjson.dumps(body))
