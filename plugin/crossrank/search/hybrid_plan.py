"""Proxy-side hybrid retrieval, the pure parts: one ``_msearch`` with a BM25 and a k-NN search
built from the client's search, and the fusion of the two answers into one ``_search`` answer.

The two sub-searches:

- BM25: the client's search as planned (same query, filters, ``_source``, aggregations, ...),
  ``from: 0`` and ``size: depth``.
- k-NN: ``{"knn": {vector_field: {"vector", "k": depth, "filter"}}}``, ``size: depth``, where the
  filter holds the client's restrictions: ``post_filter``, and from the query the
  ``bool.filter`` and ``bool.must_not`` clauses, ``bool.must`` clauses without full text (a
  ``range``, a ``term``) and, inside ``bool.must``, the same again; a query with no full text at
  all is a filter as a whole. Text clauses and ``should`` (scoring) stay on the BM25 side.
  ``highlight`` gets the client's query as ``highlight_query``, so k-NN hits are highlighted
  too. Aggregations, suggest, rescore, ``min_score`` and ``profile`` run on the BM25 side only.

``depth`` is the policy's, or the page the request needs if that is more. A search that this
cannot express faithfully is not made hybrid (``HybridSkip`` says why): one that already asks
for vectors (``knn``, ``neural``, ``neural_sparse``, ``hybrid``: the native hybrid path), body
sections such as ``collapse``, ``pit`` or ``search_after``, and URL parameters that ``_msearch``
does not take (``search_pipeline``, ``filter_path``).

The fused answer (``fuse``): hits keyed by (``_index``, ``_id``), fused with ``rrf`` or
``rsf`` (``crossrank.fusion.LIST_FUSIONS``; RSF weights are normalised to sum 1, as
OpenSearch's ``arithmetic_mean`` does), the BM25 hit object when both sides have it,
``_score`` the fused score; ``hits.total`` from BM25 (exact only when BM25 returned every
match, else ``gte``); ``took`` of the ``_msearch``; everything else (aggregations, suggest,
...) from BM25.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from crossrank.fusion import fuse_lists
from crossrank.policy import HybridSection
from crossrank.search.errors import HybridSkip
from crossrank.search.query_text import extract_query_text
from crossrank.search.source_filter import InvalidSourceFilter, parse_source_filter
from crossrank.types import JSON, Hit, JSONObject, hit_key

__all__ = ["HybridRequest", "HybridSkip", "fuse", "has_vector_clause", "is_hybrid_clause",
           "knn_filter", "plan_hybrid", "query_clauses"]

_BOTH = frozenset({"query", "post_filter", "_source", "stored_fields", "docvalue_fields",
                   "fields", "script_fields", "version", "seq_no_primary_term", "explain",
                   "timeout", "terminate_after", "indices_boost", "ext", "stats",
                   "track_scores", "from", "size", "highlight", "sort",
                   "include_named_queries_score"})
_BM25_ONLY = frozenset({"aggs", "aggregations", "suggest", "rescore", "min_score", "profile",
                        "track_total_hits"})
_VECTOR_KINDS = frozenset({"knn", "neural", "neural_sparse"})

# URL parameters of _search, by where they go in an _msearch
_MSEARCH_URL = frozenset({"typed_keys", "rest_total_hits_as_int", "max_concurrent_shard_requests",
                          "pre_filter_shard_size"})
_HEADER = frozenset({"routing", "preference", "request_cache", "search_type",
                     "allow_partial_search_results", "cancel_after_time_interval",
                     "phase_took", "ignore_unavailable", "allow_no_indices",
                     "expand_wildcards", "ccs_minimize_roundtrips"})
_BODY_FLAGS = frozenset({"explain", "version", "seq_no_primary_term", "track_scores"})
_BODY_LISTS = frozenset({"stored_fields", "docvalue_fields"})
_QUERY_STRING = {"df": "default_field", "analyzer": "analyzer",
                 "default_operator": "default_operator", "lenient": "lenient",
                 "analyze_wildcard": "analyze_wildcard"}
_FORMAT_ONLY = frozenset({"pretty", "human", "error_trace", "format"})


@dataclass(frozen=True)
class HybridRequest:
    bm25: JSONObject
    knn: JSONObject
    """The k-NN search body, with ``None`` where the query vector goes."""
    header: JSONObject
    url_params: list[tuple[str, str]]
    vector_field: str
    depth: int
    from_: int
    size: int

    def msearch_body(self, vector: Sequence[float] | Any) -> bytes:
        knn = dict(self.knn)
        spec = dict(knn["query"]["knn"][self.vector_field])
        spec["vector"] = vector
        knn["query"] = {"knn": {self.vector_field: spec}}
        header = orjson.dumps(self.header)
        option = orjson.OPT_SERIALIZE_NUMPY
        return b"".join(line + b"\n" for line in (
            header, orjson.dumps(self.bm25, option=option), header,
            orjson.dumps(knn, option=option)))


def plan_hybrid(body: JSONObject | None, params: Sequence[tuple[str, str]],
                hybrid: HybridSection, *, from_: int, size: int) -> HybridRequest:
    """The two sub-searches for the page [from_, from_ + size) of a search with this body and
    these URL parameters; raises ``HybridSkip`` when the search cannot be made hybrid."""
    if hybrid.vector_field is None:
        raise HybridSkip("no_vector_field")
    body = dict(body or {})
    for key in body:
        if key not in _BOTH and key not in _BM25_ONLY:
            raise HybridSkip(f"unsupported_body:{key}")
    if has_vector_clause(body.get("query")):
        raise HybridSkip("client_vector_query")
    header, url_params = _apply_params(body, params)
    depth = max(hybrid.depth, from_ + size)
    bm25 = {**body, "from": 0, "size": depth}
    knn_body = {key: value for key, value in body.items()
                if key in _BOTH and key not in ("query", "post_filter", "from", "size")}
    spec: JSONObject = {"vector": None, "k": depth}
    restrictions = knn_filter(body.get("query"), body.get("post_filter"))
    if restrictions is not None:
        spec["filter"] = restrictions
    knn_body["query"] = {"knn": {hybrid.vector_field: spec}}
    knn_body["size"] = depth
    highlight = body.get("highlight")
    if isinstance(highlight, dict) and "highlight_query" not in highlight \
            and body.get("query") is not None:
        knn_body["highlight"] = {**highlight, "highlight_query": body["query"]}
    return HybridRequest(bm25, knn_body, header, url_params, hybrid.vector_field, depth,
                         from_, size)


def _apply_params(body: JSONObject, params: Sequence[tuple[str, str]]) -> tuple[
        JSONObject, list[tuple[str, str]]]:
    """Move each URL parameter to where ``_msearch`` takes it: its URL, the header line, or
    the body (modified in place)."""
    header: JSONObject = {}
    url: list[tuple[str, str]] = []
    query_string: JSONObject = {}
    source_params = []
    for key, value in params:
        if key in _MSEARCH_URL:
            url.append((key, value))
        elif key in _HEADER:
            header[key] = value
        elif key in _BODY_FLAGS:
            body[key] = value != "false"
        elif key in _BODY_LISTS:
            body[key] = [part for part in value.split(",") if part]
        elif key in ("timeout", "terminate_after", "track_total_hits"):
            body[key] = _scalar(value)
        elif key == "q":
            query_string["query"] = value
        elif key in _QUERY_STRING:
            query_string[_QUERY_STRING[key]] = value
        elif key in ("_source", "_source_includes", "_source_excludes"):
            source_params.append((key, value))
        elif key not in _FORMAT_ONLY:
            raise HybridSkip(f"unsupported_param:{key}")
    if "query" in query_string:
        body["query"] = {"query_string": query_string}
    if source_params:
        try:
            body["_source"] = parse_source_filter(None, source_params).to_json()
        except InvalidSourceFilter as exc:
            raise HybridSkip("invalid_source_param") from exc
    return header, url


def _scalar(value: str) -> JSON:
    if value in ("true", "false"):
        return value == "true"
    return int(value) if value.isdigit() else value


def query_clauses(node: JSON) -> Iterator[tuple[str, JSON]]:
    """Every (key, value) of every object inside a query, without recursion (queries may nest
    deeper than Python's stack)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, list):
            stack.extend(current)
        elif isinstance(current, dict):
            for key, value in current.items():
                yield key, value
                stack.append(value)


def has_vector_clause(node: JSON) -> bool:
    """Whether a query asks for vectors itself (``knn``, ``neural``, ``neural_sparse`` or a
    native ``hybrid``)."""
    return any(is_hybrid_clause(kind, spec) or (
        kind in _VECTOR_KINDS and isinstance(spec, dict)
        and any(isinstance(value, dict) for value in spec.values()))
        for kind, spec in query_clauses(node))


def is_hybrid_clause(kind: str, spec: JSON) -> bool:
    return kind == "hybrid" and isinstance(spec, dict) and "queries" in spec


def knn_filter(query: JSON, post_filter: JSON = None) -> JSON | None:
    """The client's restrictions as one filter for the k-NN side (None: none)."""
    filters, exclusions = _restrictions(query) if query is not None else ([], [])
    if post_filter is not None:
        filters.append(post_filter)
    filters = [clause for clause in filters if not _is_match_all(clause)]
    if not exclusions and len(filters) == 1:
        return filters[0]
    if not filters and not exclusions:
        return None
    combined: JSONObject = {}
    if filters:
        combined["filter"] = filters
    if exclusions:
        combined["must_not"] = exclusions
    return {"bool": combined}


def _restrictions(query: JSON) -> tuple[list[JSON], list[JSON]]:
    """(clauses every hit must match, clauses no hit may match) of a query, leaving out its
    full-text scoring."""
    if extract_query_text(query) is None:
        return [query], []
    inner = query.get("bool") if isinstance(query, dict) and len(query) == 1 else None
    if not isinstance(inner, dict):
        return [], []
    filters = _as_list(inner.get("filter"))
    exclusions = _as_list(inner.get("must_not"))
    for clause in _as_list(inner.get("must")):
        more, fewer = _restrictions(clause)
        filters += more
        exclusions += fewer
    return filters, exclusions


def _as_list(value: JSON) -> list[JSON]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _is_match_all(clause: JSON) -> bool:
    return isinstance(clause, dict) and set(clause) == {"match_all"} \
        and not (isinstance(clause["match_all"], dict) and clause["match_all"].get("boost"))


def fuse(bm25: JSONObject, knn: JSONObject, hybrid: HybridSection, *, from_: int, size: int,
         took: int | None = None) -> JSONObject:
    """One ``_search`` answer holding hits [from_, from_ + size) of the fused list."""
    bm25_hits = _hits(bm25)
    knn_hits = _hits(knn)
    by_key: dict[str, Hit] = {}
    for hit in (*bm25_hits, *knn_hits):
        by_key.setdefault(hit_key(hit), hit)
    fused = fuse_lists(hybrid.fusion, [_scored(bm25_hits), _scored(knn_hits)],
                       weights=hybrid.weights, rank_constant=hybrid.rank_constant)
    page = [{**by_key[key], "_score": score} for key, score in fused[from_: from_ + size]]

    out = dict(bm25)
    if took is not None:
        out["took"] = took
    out["timed_out"] = bool(bm25.get("timed_out")) or bool(knn.get("timed_out"))
    out["_shards"] = _shards(bm25.get("_shards"), knn.get("_shards"))
    section = dict(bm25.get("hits") or {})
    section["total"] = _total(section.get("total"), len(bm25_hits), len(fused))
    section["max_score"] = fused[0][1] if fused else None
    section["hits"] = page
    out["hits"] = section
    return out


def _hits(response: JSONObject) -> list[Hit]:
    section = response.get("hits")
    hits = section.get("hits") if isinstance(section, dict) else None
    return [hit for hit in hits if isinstance(hit, dict)] if isinstance(hits, list) else []


def _scored(hits: list[Hit]) -> list[tuple[str, float | None]]:
    """(key, score) per hit in rank order; None where a hit has no numeric score."""
    return [(hit_key(hit), float(hit["_score"])
             if isinstance(hit.get("_score"), int | float)
             and not isinstance(hit.get("_score"), bool) else None) for hit in hits]


def _total(total: JSON, returned: int, fused: int) -> JSON:
    """BM25's total, widened to the fused count; ``gte`` unless BM25 returned every match (a
    k-NN hit outside BM25's page may or may not match BM25)."""
    if isinstance(total, int) and not isinstance(total, bool):  # rest_total_hits_as_int
        return max(total, fused) if total == returned else total
    if not isinstance(total, dict):
        return total
    value = total.get("value")
    if not isinstance(value, int):
        return total
    if total.get("relation") == "eq" and value == returned:
        return {"value": max(value, fused), "relation": "eq"}
    return {"value": max(value, fused), "relation": "gte"}


def _shards(bm25: JSON, knn: JSON) -> JSON:
    if not isinstance(bm25, dict) or not isinstance(knn, dict):
        return bm25
    out = dict(bm25)
    failed = knn.get("failed")
    if isinstance(failed, int) and failed > int(out.get("failed") or 0):
        out["failed"] = failed
        out["successful"] = knn.get("successful", out.get("successful"))
    failures = list(out.get("failures") or []) + list(knn.get("failures") or [])
    if failures:
        out["failures"] = failures
    return out
