"""Request planning: arms, bypass reasons, the widened upstream request (pure)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank.policy import ABSplit, Policy
from crossrank.search.plan import CROSSRANK_PARAMS, PlanError, bucket, plan_search

POLICY = Policy(name="docs", text_fields=["title", "text"], window=50, max_window=100)
QUERY = {"match": {"text": "heart attack"}}


def policy(**changes: Any) -> Policy:
    return Policy.model_validate({**POLICY.model_dump(), **changes})


def test_no_policy_is_pure_pass_through() -> None:
    body = {"query": QUERY, "size": 5}
    plan = plan_search(body, [("pretty", "true")], None, {})
    assert (plan.rerank, plan.arm, plan.reason) == (False, None, "no_policy")
    assert plan.upstream_body is body and not plan.body_changed and not plan.params_changed
    assert plan.upstream_params == [("pretty", "true")]


def test_crossrank_inputs_are_stripped_even_without_a_policy() -> None:
    body = {"query": QUERY, "ext": {"crossrank": {"explain": True}}}
    params = [("rerank", "true"), ("rerank_window", "20"), ("rerank_query", "x"), ("q", "y")]
    plan = plan_search(body, params, None, {})
    assert plan.upstream_body == {"query": QUERY}
    assert plan.upstream_params == [("q", "y")]
    assert plan.body_changed and plan.params_changed
    assert body == {"query": QUERY, "ext": {"crossrank": {"explain": True}}}  # not mutated


def test_other_ext_sections_stay() -> None:
    body = {"query": QUERY, "ext": {"crossrank": {}, "generative_qa_parameters": {"a": 1}}}
    plan = plan_search(body, [], POLICY, {})
    assert plan.upstream_body is not None
    assert plan.upstream_body["ext"] == {"generative_qa_parameters": {"a": 1}}


def test_rerank_widens_to_the_window_from_zero() -> None:
    body = {"query": QUERY, "from": 10, "size": 10, "aggs": {"t": {"terms": {"field": "t"}}},
            "highlight": {"fields": {"text": {}}}, "track_total_hits": True}
    plan = plan_search(body, [], POLICY, {})
    assert (plan.rerank, plan.arm, plan.reason) == (True, "rerank", None)
    assert (plan.from_, plan.size, plan.window, plan.query_text) == (10, 10, 50, "heart attack")
    assert plan.upstream_body == {**body, "from": 0, "size": 50}
    assert plan.body_changed and not plan.restore_source


def test_pages_past_the_window_ask_for_enough_hits() -> None:
    plan = plan_search({"query": QUERY, "from": 45, "size": 10}, [], POLICY, {})
    assert plan.rerank and plan.upstream_body is not None
    assert plan.upstream_body["size"] == 55 and plan.upstream_body["from"] == 0


def test_from_and_size_params_win_over_the_body_and_move_into_it() -> None:
    params = [("from", "5"), ("size", "3"), ("preference", "_local")]
    plan = plan_search({"query": QUERY, "from": 1, "size": 1}, params, POLICY, {})
    assert (plan.from_, plan.size) == (5, 3)
    assert plan.upstream_params == [("preference", "_local")]
    assert plan.upstream_body is not None
    assert (plan.upstream_body["from"], plan.upstream_body["size"]) == (0, 50)


def test_defaults_are_from_0_size_10_and_a_missing_body_is_fine() -> None:
    plan = plan_search(None, [("q", "title:heart AND attack")], POLICY, {})
    assert plan.rerank and (plan.from_, plan.size) == (0, 10)
    assert plan.query_text == "heart attack"
    assert plan.upstream_body == {"from": 0, "size": 50}
    assert plan.upstream_params == [("q", "title:heart AND attack")]


def test_q_param_replaces_the_body_query_text() -> None:
    plan = plan_search({"query": QUERY}, [("q", "gout")], POLICY, {})
    assert plan.query_text == "gout"


def test_query_text_override_order() -> None:
    body = {"query": QUERY, "ext": {"crossrank": {"query_text": " from  ext "}}}
    assert plan_search(body, [], POLICY, {}).query_text == "from ext"
    assert plan_search(body, [("rerank_query", "from param")], POLICY,
                       {}).query_text == "from param"
    assert plan_search({"query": {"term": {"a": "b"}}}, [("rerank_query", "x")], POLICY,
                       {}).rerank


def test_window_override() -> None:
    body = {"query": QUERY, "ext": {"crossrank": {"window": 20}}}
    assert plan_search(body, [], POLICY, {}).window == 20
    plan = plan_search(body, [("rerank_window", "30")], POLICY, {})
    assert plan.window == 30 and plan.upstream_body is not None
    assert plan.upstream_body["size"] == 30


@pytest.mark.parametrize("body, params, field", [
    ({"ext": {"crossrank": {"window": 101}}}, [], "ext.crossrank.window"),
    ({"ext": {"crossrank": {"window": 0}}}, [], "ext.crossrank.window"),
    ({"ext": {"crossrank": {"window": True}}}, [], "ext.crossrank.window"),
    ({"ext": {"crossrank": {"window": 2.5}}}, [], "ext.crossrank.window"),
    ({}, [("rerank_window", "abc")], "rerank_window"),
    ({}, [("rerank_window", "500")], "rerank_window"),
    ({}, [("rerank", "yes")], "rerank"),
    ({}, [("rerank_query", "  ")], "rerank_query"),
    ({"ext": {"crossrank": {"query_text": 3}}}, [], "ext.crossrank.query_text"),
    ({"ext": {"crossrank": {"explain": "yes"}}}, [], "ext.crossrank.explain"),
    ({"ext": {"crossrank": {"windw": 3}}}, [], "ext.crossrank.windw"),
    ({"ext": {"crossrank": [1]}}, [], "ext.crossrank"),
])
def test_bad_crossrank_parameters_name_the_field(body: dict[str, Any],
                                                 params: list[tuple[str, str]],
                                                 field: str) -> None:
    with pytest.raises(PlanError) as caught:
        plan_search({"query": QUERY, **body}, params, POLICY, {})
    assert caught.value.field == field
    assert field in str(caught.value)


def test_non_object_body_is_a_plan_error() -> None:
    with pytest.raises(PlanError):
        plan_search([1, 2], [], POLICY, {})  # type: ignore[arg-type]


@pytest.mark.parametrize("body, params, reason", [
    ({"query": QUERY}, [("scroll", "1m")], "scroll"),
    ({"query": QUERY, "search_after": [1.2, "x"]}, [], "search_after"),
    ({"query": QUERY, "sort": [{"date": "desc"}]}, [], "sort"),
    ({"query": QUERY, "sort": ["_score", "date"]}, [], "sort"),
    ({"query": QUERY, "sort": {"_score": "asc"}}, [], "sort"),
    ({"query": QUERY, "sort": [{"_score": {"order": "asc"}}]}, [], "sort"),
    ({"query": QUERY}, [("sort", "date:desc")], "sort"),
    ({"query": QUERY}, [("sort", "_score:asc")], "sort"),
    ({"query": QUERY, "size": 0, "aggs": {}}, [], "size_zero"),
    ({"query": QUERY}, [("size", "0")], "size_zero"),
    ({"query": QUERY, "from": 50}, [], "beyond_window"),
    ({"query": QUERY, "stored_fields": "_none_"}, [], "stored_fields_none"),
    ({"query": QUERY, "size": -1}, [], "invalid_request"),
    ({"query": QUERY}, [("from", "x")], "invalid_request"),
    ({"query": QUERY, "_source": 7}, [], "invalid_request"),
    ({"query": {"term": {"id": "7"}}}, [], "no_query_text"),
    ({"query": {"bool": {"filter": [QUERY]}}}, [], "no_query_text"),
    (None, [], "no_query_text"),
])
def test_bypass_reasons(body: dict[str, Any] | None, params: list[tuple[str, str]],
                        reason: str) -> None:
    plan = plan_search(body, params, POLICY, {})
    assert (plan.rerank, plan.arm, plan.reason) == (False, "rerank", reason)
    assert plan.upstream_body is body and plan.upstream_params == params


@pytest.mark.parametrize("sort", ["_score", ["_score"], [{"_score": "desc"}],
                                  [{"_score": {"order": "desc"}}], {"_score": "desc"}, []])
def test_sorting_by_score_descending_is_reranked(sort: object) -> None:
    assert plan_search({"query": QUERY, "sort": sort}, [], POLICY, {}).rerank
    assert plan_search({"query": QUERY}, [("sort", "_score:desc")], POLICY, {}).rerank


def test_collapse_and_rescore_are_reranked() -> None:
    body = {"query": QUERY, "collapse": {"field": "group"},
            "rescore": {"window_size": 20, "query": {"rescore_query": QUERY}}}
    plan = plan_search(body, [], POLICY, {})
    assert plan.rerank and plan.upstream_body is not None
    assert plan.upstream_body["collapse"] == body["collapse"]
    assert plan.upstream_body["rescore"] == body["rescore"]


def test_disabled_policy_and_forced_arms() -> None:
    off = policy(enabled=False)
    plan = plan_search({"query": QUERY}, [("rerank", "true")], off, {})
    assert (plan.rerank, plan.arm, plan.reason) == (False, "baseline", "policy_disabled")
    plan = plan_search({"query": QUERY, "size": 3}, [("rerank", "false")], POLICY, {})
    assert (plan.rerank, plan.arm, plan.reason) == (False, "baseline", "rerank_false")
    assert plan.upstream_body == {"query": QUERY, "size": 3} and plan.upstream_params == []
    never = policy(ab=ABSplit(mode="split", rerank_share=0.0))
    assert plan_search({"query": QUERY}, [("rerank", "true")], never, {}).rerank
    assert plan_search({"query": QUERY}, [("rerank", "")], never, {}).rerank


def test_forced_baseline_wins_over_bypass_reasons() -> None:
    plan = plan_search({"query": QUERY, "sort": ["date"]}, [("rerank", "false")], POLICY, {})
    assert plan.reason == "rerank_false"


def test_split_is_stable_and_follows_the_share() -> None:
    half = policy(ab=ABSplit(mode="split", rerank_share=0.5))
    arms = {}
    for user in range(400):
        headers = {"x-crossrank-user": f"user-{user}"}
        first = plan_search({"query": QUERY}, [], half, headers)
        again = plan_search({"query": {"match": {"t": "other"}}}, [], half, headers)
        assert first.arm == again.arm  # the key header, not the query, decides
        arms[user] = first.arm
        assert first.rerank == (first.arm == "rerank")
        assert first.reason == (None if first.rerank else "ab_baseline")
    share = sum(arm == "rerank" for arm in arms.values()) / len(arms)
    assert 0.4 < share < 0.6
    always = policy(ab=ABSplit(mode="split", rerank_share=1.0))
    assert plan_search({"query": QUERY}, [], always, {"x-crossrank-user": "u"}).rerank


def test_split_without_header_uses_the_normalised_query_text() -> None:
    half = policy(ab=ABSplit(mode="split", rerank_share=0.5))
    arms = {plan_search({"query": {"match": {"t": q}}}, [], half, {}).arm
            for q in ("Heart Attack", "heart   attack", " HEART attack")}
    assert len(arms) == 1
    assert (bucket("heart attack") < 0.5) == (arms == {"rerank"})


def test_bucket_is_a_fixed_function_of_the_key() -> None:
    # pinned: a change would silently move users between arms across a deploy
    assert bucket("user-1") == pytest.approx(0.6171874, abs=1e-6)
    assert all(0 <= bucket(str(i)) < 1 for i in range(100))


def test_source_is_widened_and_restore_is_planned() -> None:
    body = {"query": QUERY, "_source": {"includes": ["id"], "excludes": ["text", "emb"]}}
    plan = plan_search(body, [], POLICY, {})
    assert plan.upstream_body is not None and plan.restore_source
    assert plan.upstream_body["_source"] == {"includes": ["id", "title", "text"],
                                             "excludes": ["emb"]}
    assert plan.client_source.includes == ("id",)


def test_source_params_move_into_the_body_when_widened() -> None:
    params = [("_source", "false"), ("routing", "r1")]
    plan = plan_search({"query": QUERY}, params, POLICY, {})
    assert plan.upstream_params == [("routing", "r1")] and plan.restore_source
    assert plan.upstream_body is not None
    assert plan.upstream_body["_source"] == {"includes": ["title", "text"]}
    assert not plan.client_source.fetch


def test_source_params_stay_when_they_already_fetch_the_text() -> None:
    params = [("_source_includes", "title,text,id")]
    plan = plan_search({"query": QUERY}, params, POLICY, {})
    assert plan.upstream_params == params and not plan.restore_source
    assert plan.upstream_body is not None and "_source" not in plan.upstream_body


def test_stored_fields_without_source_fetch_text_but_return_none() -> None:
    plan = plan_search({"query": QUERY, "stored_fields": ["date"]}, [], POLICY, {})
    assert plan.rerank and plan.restore_source and not plan.client_source.fetch
    assert plan.upstream_body is not None
    assert plan.upstream_body["_source"] == {"includes": ["title", "text"]}


def test_explain_flag() -> None:
    body = {"query": QUERY, "ext": {"crossrank": {"explain": True}}}
    assert plan_search(body, [], POLICY, {}).explain
    assert not plan_search({"query": QUERY}, [], POLICY, {}).explain


# Properties: whatever the request, crossrank's inputs never leak upstream and the client's
# other keys and parameters arrive untouched.
json_leaf = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5)
json_value = st.recursive(json_leaf, lambda c: st.lists(c, max_size=3)
                          | st.dictionaries(st.text(max_size=4), c, max_size=3), max_leaves=8)
client_keys = st.sampled_from(["aggs", "highlight", "track_total_hits", "suggest", "post_filter",
                               "min_score", "timeout", "collapse", "explain", "version",
                               "docvalue_fields", "fields", "pit", "indices_boost", "sort",
                               "stored_fields", "search_after", "_source", "from", "size"])
ext_section = st.fixed_dictionaries({}, optional={
    "query_text": st.text(alphabet="ab ", min_size=1, max_size=6).filter(str.strip),
    "window": st.integers(1, 100), "explain": st.booleans()})
queries = st.sampled_from([QUERY, {"match_all": {}}, {"term": {"a": 1}}, None])
param_names = st.sampled_from(["rerank", "rerank_window", "rerank_query", "from", "size",
                               "_source", "_source_includes", "scroll", "routing", "q",
                               "preference", "sort"])
param_values = {"rerank": st.sampled_from(["true", "false", ""]),
                "rerank_window": st.integers(1, 100).map(str),
                "rerank_query": st.sampled_from(["a", "b c"])}


@st.composite
def requests(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    body = draw(st.dictionaries(client_keys, json_value, max_size=5))
    query = draw(queries)
    if query is not None:
        body["query"] = query
    ext = draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(["other", "x"]), json_value,
                                                    max_size=2)))
    section = draw(st.one_of(st.none(), ext_section))
    if ext is not None or section is not None:
        body["ext"] = dict(ext or {})
        if section is not None:
            body["ext"]["crossrank"] = section
    names = draw(st.lists(param_names, max_size=5))
    params = [(name, draw(param_values.get(name, st.text("abc0:,", max_size=4))))
              for name in names]
    return body, params


@settings(max_examples=300)
@given(requests(), st.sampled_from([None, POLICY, policy(enabled=False),
                                    policy(ab=ABSplit(mode="split"))]))
def test_planning_never_leaks_crossrank_inputs_nor_loses_client_keys(
        request: tuple[dict[str, Any], list[tuple[str, str]]], chosen: Policy | None) -> None:
    body, params = request
    original = copy.deepcopy(body)
    plan = plan_search(body, params, chosen, {})
    assert body == original
    upstream = plan.upstream_body or {}
    assert not isinstance(upstream.get("ext"), dict) or "crossrank" not in upstream["ext"]
    assert not any(name in CROSSRANK_PARAMS for name, _ in plan.upstream_params)

    moved = {"from", "size", "_source"} if plan.rerank else set()
    for key, value in body.items():
        if key == "ext":
            others = {k: v for k, v in value.items() if k != "crossrank"}
            assert upstream.get("ext", {}) == others
            assert ("ext" in upstream) == ("crossrank" not in value or bool(others))
        elif key not in moved:
            assert upstream[key] == value
    assert set(upstream) - set(body) <= moved
    moved_params = {"from", "size", "_source", "_source_includes", "_source_excludes"}
    kept = [(k, v) for k, v in params if k not in CROSSRANK_PARAMS]
    if plan.rerank:
        assert [p for p in kept if p[0] not in moved_params] == [
            p for p in plan.upstream_params if p[0] not in moved_params]
        assert upstream["from"] == 0
        assert upstream["size"] == max(plan.window, plan.from_ + plan.size)
        assert plan.query_text and plan.arm == "rerank" and plan.reason is None
    else:
        assert plan.upstream_params == kept
        assert plan.reason is not None
    assert plan.body_changed == (plan.upstream_body is not body)
