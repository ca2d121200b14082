"""Which part of the proxy handles a request: a pure function of method and path."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote


class RouteKind(Enum):
    PASS_THROUGH = "pass_through"
    SEARCH = "search"
    SEARCH_TEMPLATE = "search_template"  # _search/template: rendered by OpenSearch, then SEARCH
    MSEARCH_TEMPLATE = "msearch_template"  # _msearch/template: rendered, then MSEARCH
    MSEARCH = "msearch"
    ADMIN = "admin"
    BULK = "bulk"
    DOC = "doc"  # one document written: _doc, _create, _update
    RERANK = "rerank"  # the rerank APIs in other services' shapes (Cohere, Jina, TEI)


@dataclass(frozen=True)
class Route:
    kind: RouteKind
    indices: tuple[str, ...] = ()
    admin_path: str = ""
    doc_action: str = ""  # DOC routes: index | create | update
    doc_id: str | None = None  # DOC routes: the decoded id (None: OpenSearch assigns one)
    rerank_api: str = ""  # RERANK routes: the shape (crossrank.proxy.rerank_shapes.SHAPES)


# Index names cannot start with '_', so "/_search" and "/idx/_search" are told apart.
_SEARCH = re.compile(r"^/(?:(?P<index>[^/_][^/]*)/)?(?P<api>_search|_msearch)/?$")
_SEARCH_TEMPLATE = re.compile(
    r"^/(?:(?P<index>[^/_][^/]*)/)?(?P<api>_search|_msearch)/template/?$")
_BULK = re.compile(r"^/(?:(?P<index>[^/_][^/]*)/)?_bulk/?$")
_DOC = re.compile(r"^/(?P<index>[^/_][^/]*)/(?P<api>_doc|_create|_update)(?:/(?P<id>[^/]+))?/?$")
# (api, id given) -> (action, methods OpenSearch accepts)
_DOC_APIS = {
    ("_doc", True): ("index", ("PUT", "POST")),
    ("_doc", False): ("index", ("POST",)),
    ("_create", True): ("create", ("PUT", "POST")),
    ("_update", True): ("update", ("POST",)),
}
_SEARCH_METHODS = ("GET", "POST")
_BULK_METHODS = ("POST", "PUT")
# POST only: OpenSearch has no POST handler at these paths (an index named "rerank" or "v1"
# is still read and written through them with every other method).
_RERANK = re.compile(r"^/(?P<api>v1/rerank|v2/rerank|rerank)/?$")
_RERANK_APIS = {"v1/rerank": "v1", "v2/rerank": "v2", "rerank": "tei"}
_RERANK_METHODS = ("POST",)
ADMIN_PREFIX = "/_crossrank"
_ADMIN = re.compile(r"^" + ADMIN_PREFIX + r"(?:/.*)?$")


@dataclass(frozen=True)
class FrontRule:
    """Requests a proxy in front must send to crossrank: a method set and a path pattern.

    The rules over-approximate ``classify`` (a DOC rule accepts every method any document API
    takes): a request they send to crossrank needlessly is still passed through byte for byte,
    while one they missed would skip reranking or embedding.
    """

    kind: RouteKind
    methods: tuple[str, ...]  # empty: every method
    path: re.Pattern[str]  # matched against the raw (percent-encoded) path


def front_rules() -> tuple[FrontRule, ...]:
    """The route table, for generating a front proxy's configuration (proxy/front.py)."""
    doc_methods = tuple(sorted({m for _, methods in _DOC_APIS.values() for m in methods}))
    return (FrontRule(RouteKind.ADMIN, (), _ADMIN),
            FrontRule(RouteKind.SEARCH, _SEARCH_METHODS, _SEARCH),
            FrontRule(RouteKind.SEARCH_TEMPLATE, _SEARCH_METHODS, _SEARCH_TEMPLATE),
            FrontRule(RouteKind.BULK, _BULK_METHODS, _BULK),
            FrontRule(RouteKind.DOC, doc_methods, _DOC),
            FrontRule(RouteKind.RERANK, _RERANK_METHODS, _RERANK))


def split_indices(expression: str) -> tuple[str, ...]:
    return tuple(part for part in unquote(expression).split(",") if part)


def classify(method: str, raw_path: str) -> Route:
    if _ADMIN.match(raw_path):
        return Route(RouteKind.ADMIN, admin_path=unquote(raw_path[len(ADMIN_PREFIX):]) or "/")
    match = _SEARCH.match(raw_path)
    if match and method in _SEARCH_METHODS:
        indices = split_indices(match["index"]) if match["index"] else ()
        kind = RouteKind.SEARCH if match["api"] == "_search" else RouteKind.MSEARCH
        return Route(kind, indices)
    template = _SEARCH_TEMPLATE.match(raw_path)
    if template and method in _SEARCH_METHODS:
        indices = split_indices(template["index"]) if template["index"] else ()
        kind = (RouteKind.SEARCH_TEMPLATE if template["api"] == "_search"
                else RouteKind.MSEARCH_TEMPLATE)
        return Route(kind, indices)
    rerank = _RERANK.match(raw_path)
    if rerank and method in _RERANK_METHODS:
        return Route(RouteKind.RERANK, rerank_api=_RERANK_APIS[rerank["api"]])
    return _write_route(method, raw_path)


def _write_route(method: str, raw_path: str) -> Route:
    """The write APIs the ingest hook may embed for; anything else passes through."""
    bulk = _BULK.match(raw_path)
    if bulk and method in _BULK_METHODS:
        return Route(RouteKind.BULK, split_indices(bulk["index"]) if bulk["index"] else ())
    doc = _DOC.match(raw_path)
    if doc:
        api = _DOC_APIS.get((doc["api"], doc["id"] is not None))
        if api is not None and method in api[1]:
            return Route(RouteKind.DOC, (unquote(doc["index"]),), doc_action=api[0],
                         doc_id=unquote(doc["id"]) if doc["id"] else None)
    return Route(RouteKind.PASS_THROUGH)


def strip_query_params(query: bytes, names: frozenset[str]) -> bytes:
    """Drop the named parameters and keep every other byte of the query string as sent."""
    if not query:
        return query
    kept = [part for part in query.split(b"&")
            if unquote(part.split(b"=", 1)[0].decode("latin-1")) not in names]
    return b"&".join(kept)
