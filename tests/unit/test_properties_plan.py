"""Properties of request planning over arbitrary bodies, URL parameters and policies: a plan or a
``PlanError``, never another exception, and a reranked plan that is always well formed."""

from __future__ import annotations

import copy
import re
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crossrank.policy import ABSplit, Policy
from crossrank.search.errors import PlanError
from crossrank.search.plan import CROSSRANK_PARAMS, SearchPlan, plan_search
from properties_profile import NUMBERS, TEXTS, deep, json_objects, json_values, props

BASE = Policy(name="docs", text_fields=["title", "text"], window=5, max_window=20)
POLICIES = [
    None,
    BASE,
    Policy(name="docs", text_fields=["meta.title"], window=1, max_window=1),
    Policy(name="docs", enabled=False),
    Policy(name="docs", ab=ABSplit(mode="split", rerank_share=0.5), score_mode="blend"),
    Policy(name="docs", text_fields=["title", "body.text"], template="{title}: {body.text}",
           window=200, max_window=10_000),
]
PARAM_NAMES = ["rerank", "rerank_window", "rerank_query", "from", "size", "_source",
               "_source_includes", "_source_excludes", "scroll", "q", "sort", "stored_fields",
               "routing", "pretty"]
OWN_FIELDS = {"body", "rerank", "rerank_window", "rerank_query", "ext.crossrank"}

param_values = TEXTS | NUMBERS.map(str) | st.sampled_from(["_score", "_score:desc", "1_0", " 7"])
params = st.lists(st.tuples(st.sampled_from(PARAM_NAMES) | st.text(max_size=5), param_values),
                  max_size=6)
headers = st.dictionaries(st.sampled_from(["x-crossrank-user", "x-other"]), st.text(max_size=8),
                          max_size=2)
crossrank_ext = st.fixed_dictionaries({}, optional={
    "query_text": TEXTS | NUMBERS, "window": NUMBERS | TEXTS, "explain": st.booleans() | TEXTS,
    "other": json_values(4)})
dsl = json_values()


@st.composite
def search_bodies(draw: st.DrawFn) -> Any:
    """Bodies shaped like searches (most examples) or anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.none() | json_values())
    body: dict[str, Any] = draw(json_objects(8))
    for key, values in (("query", dsl), ("from", NUMBERS | TEXTS), ("size", NUMBERS | TEXTS),
                        ("_source", json_values(6)), ("sort", json_values(6)),
                        ("stored_fields", json_values(4)), ("search_after", json_values(3))):
        if draw(st.booleans()):
            body[key] = draw(values)
    if draw(st.booleans()):
        ext = draw(json_objects(4))
        ext["crossrank"] = draw(crossrank_ext | json_values(4))
        body["ext"] = ext
    return body


def check(plan: SearchPlan, body: Any, *, serialisable: bool = True) -> None:
    """What every plan promises, reranked or not."""
    assert not any(name in CROSSRANK_PARAMS for name, _ in plan.upstream_params)
    upstream = plan.upstream_body
    if isinstance(upstream, dict):
        ext = upstream.get("ext")
        assert not isinstance(ext, dict) or "crossrank" not in ext
        if serialisable:
            orjson.dumps(upstream)  # still JSON
    assert plan.body_changed == (upstream is not body)
    if plan.policy is None:
        assert (plan.rerank, plan.arm, plan.reason) == (False, None, "no_policy")
    if plan.query_text is not None:
        assert plan.query_text and plan.query_text == " ".join(plan.query_text.split())
    if not plan.rerank:
        assert plan.reason is not None
        return
    assert plan.arm == "rerank" and plan.reason is None and plan.policy is not None
    assert plan.query_text is not None
    assert 1 <= plan.window <= plan.policy.max_window
    assert 0 <= plan.from_ < plan.window and plan.size >= 1
    assert upstream is not None
    assert upstream["from"] == 0 and upstream["size"] == max(plan.window,
                                                               plan.from_ + plan.size)
    assert not any(name in ("from", "size") for name, _ in plan.upstream_params)


@props()
@given(search_bodies(), params, st.sampled_from(POLICIES), headers)
@example({"size": 3}, [("size", "1_0")], BASE, {})
@example({"query": {"match": {"t": "x"}}, "ext": {"crossrank": {"window": "1_0"}}}, [], BASE, {})
def test_planning_gives_a_plan_or_a_plan_error(body: Any, params: list[tuple[str, str]],
                                               policy: Policy | None,
                                               headers: dict[str, str]) -> None:
    original = copy.deepcopy(body)
    try:
        plan = plan_search(body, params, policy, headers)
    except PlanError as exc:
        assert exc.field in OWN_FIELDS or exc.field.startswith("ext.crossrank.")
        assert exc.reason and str(exc) == f"[{exc.field}] {exc.reason}"
        return
    finally:
        assert body == original  # never modified
    check(plan, body)
    assert plan_search(body, params, policy, headers) == plan  # deterministic


@props()
@given(dsl, st.sampled_from([p for p in POLICIES if p is not None and p.enabled]),
       st.integers(0, 30), st.integers(0, 30))
def test_a_plain_search_with_query_text_is_reranked_within_the_window(
        query: Any, policy: Policy, from_: int, size: int) -> None:
    body = {"query": {"bool": {"must": [query, {"match": {"title": "gout"}}]}},
            "from": from_, "size": size}
    plan = plan_search(body, [("rerank", "true")], policy, {})
    check(plan, body)
    assert plan.rerank == (size > 0 and from_ < plan.window)
    assert plan.window == (policy.window or 50)  # the built-in default without a card
    assert plan.query_text is not None and "gout" in plan.query_text.split()


def _ascii_integer(text: str) -> bool:
    return re.fullmatch(r"[+-]?[0-9]+", text.strip()) is not None


@props()
@given(st.text(alphabet="0123456789+-_ .e\u0663\u00b2", max_size=6), st.booleans())
@example("1_0", True)
@example("\u0663", False)
def test_paging_reranks_only_what_opensearch_parses_as_an_integer(value: str,
                                                                   in_url: bool) -> None:
    """``from``/``size`` that OpenSearch would refuse are forwarded for it to answer
    (``invalid_request``); Python's ``int()`` also takes ``1_0`` and non-ASCII digits."""
    body: dict[str, Any] = {"query": {"match": {"title": "gout"}}}
    params = [("size", value)] if in_url else []
    if not in_url:
        body["size"] = value
    plan = plan_search(body, params, BASE, {})
    if plan.rerank:
        assert _ascii_integer(value), value


@pytest.mark.parametrize("depth", [50, 99, 100, 101, 500, 5000])
def test_deep_queries_plan_without_recursion_errors(depth: int) -> None:
    query = deep({"match": {"title": "gout"}}, depth, "dict")
    nested = {"bool": {"must": [query]}}
    for _ in range(depth):
        nested = {"bool": {"must": [nested]}}
    for body in ({"query": nested}, {"query": {"x": query}}, {"sort": deep("_score", depth)},
                 {"_source": deep("a", depth)}, {"query": nested, "ext": {"crossrank": {
                     "query_text": deep("x", depth)}}}):
        try:
            plan = plan_search(body, [], BASE, {})
        except PlanError:
            continue
        check(plan, body, serialisable=False)  # orjson writes at most 254 levels


# Regression: Python's int() also reads "1_0" and non-ASCII digits, which OpenSearch refuses; the
# request was reranked with a page OpenSearch would not serve. It is now forwarded as sent, for
# OpenSearch to answer.
@pytest.mark.parametrize("value", ["1_0", "\u0663", "1\u0663", "0x5"])
def test_paging_that_opensearch_refuses_is_forwarded_for_it_to_answer(value: str) -> None:
    body = {"query": {"match": {"title": "gout"}}}
    for plan in (plan_search({**body, "size": value}, [], BASE, {}),
                 plan_search(body, [("from", value)], BASE, {})):
        assert (plan.rerank, plan.reason) == (False, "invalid_request")
    with pytest.raises(PlanError):
        plan_search(body, [("rerank_window", value)], BASE, {})
    assert plan_search({**body, "size": " 7 "}, [("from", "+1")], BASE, {}).size == 7
