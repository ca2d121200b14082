"""Plan one search: which arm, whether to rerank, and the request to send upstream.

crossrank's own inputs (``?rerank=``, ``?rerank_window=``, ``?rerank_query=``, body
``ext.crossrank``) are validated and stripped from every request, reranked or not. Like
OpenSearch's own ``from``/``size``/``_source``, a URL parameter wins over the body.

Arms: ``?rerank=true|false`` forces one; otherwise the policy's ``ab`` decides (``always``, or
``split`` by a stable hash of the key header, else of the normalised query text: a key lands
in the same bucket under every policy, and a larger ``rerank_share`` only adds keys). The arm is
the assignment; a request of the rerank arm that cannot be reranked keeps the arm and gets a
reason (``SearchPlan.reason``):

======================  =========  ==============================================================
reason                  arm        meaning
======================  =========  ==============================================================
``no_policy``           None       no policy for the target indices: pure pass-through
``policy_disabled``     baseline   the policy exists but ``enabled: false``
``rerank_false``        baseline   ``?rerank=false``
``ab_baseline``         baseline   the A/B split put the key in the baseline arm
``scroll``              rerank     ``?scroll=``: pages of a scroll cannot share one window
``search_after``        rerank     ``search_after`` pages by sort values, not by rank
``sort``                rerank     sorted on anything but ``_score`` descending
``size_zero``           rerank     no hits asked for
``beyond_window``       rerank     ``from >= window``: the page lies wholly past the reranked
                                   window, which is first-stage order, i.e. OpenSearch's own page
``stored_fields_none``  rerank     ``stored_fields: _none_`` forbids fetching ``_source``
``invalid_request``     rerank     ``from``/``size``/``_source`` that OpenSearch will refuse:
                                   forwarded so that OpenSearch answers with its own error
``no_query_text``       rerank     no override and no full-text clause in the query
``not_recommended``     rerank     the model card advises against reranking this kind of first
                                   stage and the policy chose no ``score_mode``
                                   (``crossrank.search.scoring``); ``?rerank=true`` still reranks
======================  =========  ==============================================================

The scoring settings (window, score mode, blend weight, normalisation) are resolved once here
(``crossrank.search.scoring``) and carried in the plan.

``collapse`` and ``rescore`` are reranked: the first stage (collapsed groups, rescored scores)
is what the window holds, and the reranker re-orders it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from crossrank.models.manifest import FirstStageKind, Scoring
from crossrank.models.tokenization import Chunking
from crossrank.policy import Policy
from crossrank.search.errors import PlanError
from crossrank.search.query_text import extract_query_text, strip_query_string
from crossrank.search.scoring import Card, first_stage_kind, resolve_scoring
from crossrank.search.source_filter import (
    SOURCE_PARAMS,
    InvalidSourceFilter,
    SourceFilter,
    parse_source_filter,
    widen,
)
from crossrank.types import JSON, JSONObject

__all__ = ["CROSSRANK_PARAMS", "Arm", "PlanError", "SearchPlan", "plan_inline", "plan_search"]

Arm = Literal["rerank", "baseline"]

CROSSRANK_PARAMS = frozenset({"rerank", "rerank_window", "rerank_query"})
_EXT_KEYS = frozenset({"query_text", "window", "explain", "max_chunks"})
DEFAULT_SIZE = 10
_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class SearchPlan:
    rerank: bool
    arm: Arm | None
    reason: str | None
    policy: Policy | None
    query_text: str | None
    window: int
    from_: int
    size: int
    upstream_body: JSONObject | None
    upstream_params: list[tuple[str, str]]
    body_changed: bool
    params_changed: bool
    client_source: SourceFilter = field(default_factory=SourceFilter)
    restore_source: bool = False
    """True when ``_source`` was widened and hits must be filtered back to ``client_source``."""
    explain: bool = False
    first_stage: FirstStageKind = "bm25"
    scoring: Scoring = field(default_factory=Scoring)
    scoring_source: str = "default"
    """Where ``scoring`` came from: ``policy``, ``model_card`` or ``default``."""
    card: Card = field(default_factory=dict)
    """The model's card, kept to re-resolve ``scoring`` if the first stage turns out to be of
    another kind (a hybrid search answered by BM25 alone)."""
    chunking: Chunking | None = None
    """How long documents are read (None: cut to the pair's length): the policy's
    ``chunking``, or the search's ``ext.crossrank.max_chunks``."""

    @property
    def proxy_hybrid(self) -> bool:
        """Whether the policy asks for proxy-side hybrid retrieval of this search."""
        hybrid = self.policy.hybrid if self.policy is not None else None
        return hybrid is not None and hybrid.enabled and self.query_text is not None

    def for_first_stage(self, kind: FirstStageKind) -> SearchPlan:
        """This plan with the scoring of another kind of first stage (the window stays)."""
        if kind == self.first_stage or self.policy is None:
            return self
        scoring, source = resolve_scoring(self.policy, kind, self.card)
        return replace(self, first_stage=kind, scoring=scoring.model_copy(
            update={"window": self.window}), scoring_source=source)


@dataclass(frozen=True)
class _Options:
    forced: bool | None
    window: int | None
    query_text: str | None
    explain: bool
    max_chunks: int | None = None


def plan_search(body: JSONObject | None, params: Sequence[tuple[str, str]],
                policy: Policy | None, headers: Mapping[str, str],
                card: Card | None = None) -> SearchPlan:
    """Plan a search; raises PlanError for invalid crossrank parameters. ``card``: the
    recommended scoring of the policy's model (``Manifest.recommended``)."""
    if body is not None and not isinstance(body, dict):
        raise PlanError("body", "must be a JSON object")
    params = list(params)
    own = {key: value for key, value in params if key in CROSSRANK_PARAMS}
    upstream_params = [(key, value) for key, value in params if key not in CROSSRANK_PARAMS]
    upstream_body, ext = _strip_ext(body)
    options = _read_options(ext, own, policy)
    paging = _paging(upstream_body or {}, upstream_params)
    from_, size = paging or (0, DEFAULT_SIZE)

    scoring, source = Scoring(), "default"
    kind: FirstStageKind = "bm25"

    def bypass(reason: str, arm: Arm | None, query_text: str | None = None) -> SearchPlan:
        return SearchPlan(
            rerank=False, arm=arm, reason=reason, policy=policy, query_text=query_text,
            window=window, from_=from_, size=size, upstream_body=upstream_body,
            upstream_params=upstream_params, body_changed=upstream_body is not body,
            params_changed=len(upstream_params) != len(params), explain=options.explain,
            first_stage=kind, scoring=scoring, scoring_source=source, card=card or {})

    window = 0
    if policy is None:
        return bypass("no_policy", None)
    query_text = _query_text(options, upstream_body, upstream_params)
    kind = first_stage_kind(policy, (upstream_body or {}).get("query"),
                            has_text=query_text is not None)
    scoring, source = resolve_scoring(policy, kind, card)
    window = options.window or scoring.window
    scoring = scoring.model_copy(update={"window": window})
    if not policy.enabled:
        return bypass("policy_disabled", "baseline", query_text)
    if options.forced is False:
        return bypass("rerank_false", "baseline", query_text)
    if options.forced is None and policy.ab.mode == "split":
        key = headers.get(policy.ab.key_header) or " ".join((query_text or "").casefold().split())
        if bucket(key) >= policy.ab.rerank_share:
            return bypass("ab_baseline", "baseline", query_text)
    if options.forced is None and not scoring.rerank:
        return bypass("not_recommended", "rerank", query_text)

    client_source = _client_source(upstream_body or {}, upstream_params)
    reason = _structural_bypass(upstream_body or {}, upstream_params, paging, client_source,
                                window)
    if reason is None and query_text is None:
        reason = "no_query_text"
    if reason is not None or paging is None or client_source is None:
        return bypass(reason or "invalid_request", "rerank", query_text)

    widened = widen(client_source, policy.text_fields)
    moved = ("from", "size", *(SOURCE_PARAMS if widened is not None else ()))
    new_body = dict(upstream_body or {})
    new_body["from"] = 0
    new_body["size"] = max(window, from_ + size)
    if widened is not None:
        new_body["_source"] = widened.to_json()
    upstream_params = [(key, value) for key, value in upstream_params if key not in moved]
    return SearchPlan(
        rerank=True, arm="rerank", reason=None, policy=policy, query_text=query_text,
        window=window, from_=from_, size=size, upstream_body=new_body,
        upstream_params=upstream_params, body_changed=True,
        params_changed=len(upstream_params) != len(params), client_source=client_source,
        restore_source=widened is not None, explain=options.explain, first_stage=kind,
        scoring=scoring, scoring_source=source, card=card or {},
        chunking=chunking_of(policy, options.max_chunks))


def bucket(key: str) -> float:
    """A stable position in [0, 1) for an A/B key (the same in every process and release)."""
    digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _strip_ext(body: JSONObject | None) -> tuple[JSONObject | None, JSON]:
    """The body without ``ext.crossrank`` (the same object when there is none), and that
    section."""
    if body is None or not isinstance(body.get("ext"), dict) or "crossrank" not in body["ext"]:
        return body, None
    ext = dict(body["ext"])
    section = ext.pop("crossrank")
    stripped = dict(body)
    if ext:
        stripped["ext"] = ext
    else:
        del stripped["ext"]
    return stripped, section


def _read_options(ext: JSON, own: Mapping[str, str], policy: Policy | None) -> _Options:
    if ext is None:
        ext = {}
    if not isinstance(ext, dict):
        raise PlanError("ext.crossrank", "must be an object")
    for key in ext:
        if key not in _EXT_KEYS:
            raise PlanError(f"ext.crossrank.{key}",
                            f"unknown parameter; expected one of {sorted(_EXT_KEYS)}")
    forced = None
    if "rerank" in own:
        value = own["rerank"]
        if value not in ("", "true", "false"):
            raise PlanError("rerank", f"must be true or false, got [{value}]")
        forced = value != "false"
    max_window = policy.max_window if policy is not None else None
    window = None
    if "rerank_window" in own:
        window = _window("rerank_window", own["rerank_window"], max_window)
    elif ext.get("window") is not None:
        window = _window("ext.crossrank.window", ext["window"], max_window)
    query_text = None
    if "rerank_query" in own:
        query_text = _text("rerank_query", own["rerank_query"])
    elif ext.get("query_text") is not None:
        query_text = _text("ext.crossrank.query_text", ext["query_text"])
    explain = ext.get("explain", False)
    if not isinstance(explain, bool):
        raise PlanError("ext.crossrank.explain", "must be true or false")
    max_chunks = None
    if ext.get("max_chunks") is not None:
        max_chunks = _integer(ext["max_chunks"])
        if max_chunks is None or not 1 <= max_chunks <= 64:
            raise PlanError("ext.crossrank.max_chunks",
                            f"must be an integer between 1 and 64, got [{ext['max_chunks']}]")
    return _Options(forced, window, query_text, explain, max_chunks)


def chunking_of(policy: Policy, max_chunks: int | None = None) -> Chunking | None:
    """The chunking a search gets: the policy's section, with the search's own ``max_chunks``
    (1: off) in place of the policy's; None reads each document in one window."""
    section = policy.chunking
    chunks = max_chunks if max_chunks is not None else (
        section.max_chunks if section is not None else 1)
    if chunks == 1:
        return None
    return Chunking(max_chunks=chunks,
                    overlap=section.overlap if section is not None else Chunking().overlap)


def _window(name: str, value: JSON, max_window: int | None) -> int:
    number = _integer(value)
    limit = max_window if max_window is not None else 10_000
    if number is None or not 1 <= number <= limit:
        raise PlanError(name, f"must be an integer between 1 and {limit}, got [{value}]")
    return number


def _text(name: str, value: JSON) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PlanError(name, "must be a non-empty string")
    return " ".join(value.split())


def _integer(value: JSON) -> int | None:
    """An int, or a string of one, as OpenSearch's parsers accept; None otherwise. Python's
    ``int()`` alone would also take ``1_000`` and non-ASCII digits, which OpenSearch refuses."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        try:
            return int(value.strip())
        except ValueError:  # more digits than int() converts
            return None
    return None


def _query_text(options: _Options, body: JSONObject | None,
                params: Sequence[tuple[str, str]]) -> str | None:
    if options.query_text is not None:
        return options.query_text
    q = _last(params, "q")
    if q is not None:  # OpenSearch replaces the body's query with ?q=
        return strip_query_string(q) or None
    return extract_query_text((body or {}).get("query"))


def _last(params: Sequence[tuple[str, str]], key: str) -> str | None:
    found = None
    for name, value in params:
        if name == key:
            found = value
    return found


def _paging(body: JSONObject, params: Sequence[tuple[str, str]]) -> tuple[int, int] | None:
    """The client's (from, size), or None when OpenSearch would refuse them."""
    values = []
    for key, default in (("from", 0), ("size", DEFAULT_SIZE)):
        raw: JSON = _last(params, key)
        if raw is None:
            raw = body.get(key)
        number = default if raw is None else _integer(raw)
        if number is None or number < 0:
            return None
        values.append(number)
    return values[0], values[1]


def _client_source(body: JSONObject, params: Sequence[tuple[str, str]]) -> SourceFilter | None:
    stored = body.get("stored_fields") is not None or _last(params, "stored_fields") is not None
    try:
        return parse_source_filter(body.get("_source"), params, stored_fields=stored)
    except InvalidSourceFilter:
        return None


def _structural_bypass(body: JSONObject, params: Sequence[tuple[str, str]],
                       paging: tuple[int, int] | None, source: SourceFilter | None,
                       window: int) -> str | None:
    if _last(params, "scroll") is not None:
        return "scroll"
    if body.get("search_after") is not None:
        return "search_after"
    sort_param = _last(params, "sort")
    if not _sorts_by_score(body.get("sort")) or (
            sort_param is not None and not _sorts_by_score(sort_param.split(","), url=True)):
        return "sort"
    if paging is None or source is None:
        return "invalid_request"
    from_, size = paging
    if size == 0:
        return "size_zero"
    if from_ >= window:
        return "beyond_window"
    stored = body.get("stored_fields", _last(params, "stored_fields"))
    if stored == "_none_" or (isinstance(stored, list) and "_none_" in stored):
        return "stored_fields_none"
    return None


def _sorts_by_score(sort: JSON, *, url: bool = False) -> bool:
    """True for no sort or a sort on ``_score`` descending only: ``"_score"``, ``["_score"]``,
    ``{"_score": "desc"}``, ``{"_score": {"order": "desc"}}``; ``?sort=_score[:desc]``."""
    if sort is None:
        return True
    clauses = sort if isinstance(sort, list) else [sort]
    for clause in clauses:
        if isinstance(clause, str):
            name, _, order = clause.strip().partition(":") if url else (clause, "", "")
            if name != "_score" or order not in ("", "desc"):
                return False
        elif isinstance(clause, dict) and len(clause) == 1 and "_score" in clause:
            spec = clause["_score"]
            order = spec.get("order", "desc") if isinstance(spec, dict) else spec
            if order != "desc" or (isinstance(spec, dict) and set(spec) - {"order"}):
                return False
        else:
            return False
    return True


def plan_inline(query: str, count: int, *, model: str, max_length: int | None,
                top_n: int | None, chunking: Chunking | None = None) -> SearchPlan:
    """The plan of a rerank request whose ``count`` documents come with it (``POST
    /_crossrank/rerank``): every document is in the window, scored by ``model``, and
    ``_score`` is the reranker's own score. The documents are hits whose ``_source`` is
    ``{"text": ...}`` (``crossrank.search.retrieval.InlineRetriever``)."""
    window = max(count, 1)
    policy = Policy(name="rerank-api", model=model, text_fields=["text"],
                    max_length=max_length, window=window, max_window=window,
                    score_mode="replace")
    return SearchPlan(
        rerank=True, arm="rerank", reason=None, policy=policy, query_text=query, window=count,
        from_=0, size=count if top_n is None else min(top_n, count), upstream_body=None,
        upstream_params=[], body_changed=False, params_changed=False,
        scoring=Scoring(score_mode="replace", window=window), scoring_source="policy",
        chunking=chunking)
