"""Arms are data: built-ins, user files, and the query text inserted safely."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from crossrank.eval.arms import (
    BM25_QUERY,
    BUILTIN_ARMS,
    DEFAULT_ARMS,
    Arm,
    ArmError,
    load_arms_file,
    select_arms,
)
from crossrank.eval.proxy_client import EvalError
from crossrank.eval.runner import ArmRun, PolicySpec, check_outcomes, plan_runs, search_body
from crossrank.policy import Policy


def test_builtin_arms_and_query_text_is_a_json_value() -> None:
    bm25, rerank = select_arms(["bm25", "bm25+rerank"])
    tricky = 'a "quoted" {brace} \\ claim'
    body = search_body(bm25, tricky, 100)
    assert body == {"size": 100, "_source": False, "query": {
        "multi_match": {"query": tricky, "fields": ["title", "text"], "tie_breaker": 0.3}}}
    assert (bm25.rerank, rerank.rerank, rerank.baseline) == (False, True, "bm25")
    # the arm's template itself is untouched
    assert BUILTIN_ARMS["bm25"].query["multi_match"]["query"] == "{{query}}"


def test_rerank_arms_run_once_per_window_baselines_once() -> None:
    runs = plan_runs(select_arms(["bm25", "bm25+rerank"]), [20, 50])
    assert [run.key for run in runs] == ["bm25", "bm25+rerank@20", "bm25+rerank@50"]
    assert runs[0].params() == {"rerank": "false"}
    assert runs[2].params() == {"rerank": "true", "rerank_window": "50"}


def test_policy_spec_allows_every_window() -> None:
    spec = PolicySpec("ev", "idx", "default", (20, 100))
    body = spec.body({"hybrid": {"enabled": True}})
    assert body["indices"] == ["idx"] and body["max_window"] == 100
    assert body["template"] == "{title}. {text}" and body["hybrid"] == {"enabled": True}


def test_arms_file_adds_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "arms.json"
    path.write_bytes(orjson.dumps({"arms": [
        {"name": "title", "query": {"match": {"title": "{{query}}"}}},
        {"name": "title+rerank", "rerank": True, "baseline": "title",
         "query": {"match": {"title": "{{query}}"}}, "policy": {"window": 10}},
    ]}))
    title, reranked, bm25 = select_arms(["title", "title+rerank", "bm25"], path)
    assert search_body(title, "x", 5)["query"] == {"match": {"title": "x"}}
    assert reranked.policy == {"window": 10} and reranked.baseline == "title"
    assert bm25 is BUILTIN_ARMS["bm25"]


@pytest.mark.parametrize(("content", "message"), [
    (b"{", "cannot read the arms file"),
    (b'{"arms": {}}', "expected"),
    (b'{"arms": [{"name": "x", "query": {"match_all": {}}}]}', "containing '{{query}}'"),
    (b'{"arms": [{"name": "x", "query": {"q": "{{query}}"}, "sort": 1}]}', "unknown fields"),
])
def test_bad_arms_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "arms.json"
    path.write_bytes(content)
    with pytest.raises(ArmError, match=message):
        load_arms_file(path)


def test_unknown_arm() -> None:
    with pytest.raises(ArmError, match=r"unknown arm.*hybrd.*available: bm25, bm25\+rerank, "
                                       r"hybrid, hybrid\+rerank$"):
        select_arms(["bm25", "hybrd"])


def test_hybrid_arms_turn_proxy_side_hybrid_on() -> None:
    bm25, hybrid, reranked = select_arms(["bm25", "hybrid", "hybrid+rerank"])
    assert DEFAULT_ARMS == ("bm25", "bm25+rerank")  # hybrid needs an embedder: opt in
    assert (hybrid.rerank, hybrid.baseline) == (False, "bm25")
    assert (reranked.rerank, reranked.baseline) == (True, "hybrid")
    # the BM25 side is the bm25 arm's own query: the arms differ by the k-NN side only
    assert hybrid.query == reranked.query == bm25.query == BM25_QUERY
    assert hybrid.policy == reranked.policy == {"hybrid": {
        "fusion": "rrf", "rank_constant": 60, "weights": [1.0, 1.0], "depth": 100}}
    assert (bm25.hybrid, hybrid.hybrid, reranked.hybrid) == (False, True, True)
    off = Arm("off", BM25_QUERY, rerank=False, policy={"hybrid": {"enabled": False}})
    assert not off.hybrid
    runs = plan_runs([bm25, hybrid, reranked], [20])
    assert [(run.key, run.needs_policy) for run in runs] == [
        ("bm25", False), ("hybrid", True), ("hybrid+rerank@20", True)]


def test_hybrid_policy_is_valid_and_takes_the_embed_section() -> None:
    spec = PolicySpec("ev", "idx", "default", (20, 50), embedder="minilm-l6-embedder")
    hybrid = BUILTIN_ARMS["hybrid"]
    policy = Policy.model_validate({"name": spec.name, **spec.body(hybrid.policy)})
    assert policy.embed is not None and policy.hybrid is not None
    assert (policy.embed.model, policy.embed.vector_field) == ("minilm-l6-embedder", "embedding")
    # the documents are embedded from the text the reranker reads
    assert (policy.embed.text_fields, policy.embed.template) == (["title", "text"],
                                                                 "{title}. {text}")
    assert (policy.hybrid.model, policy.hybrid.vector_field) == ("minilm-l6-embedder",
                                                                 "embedding")
    assert (policy.hybrid.fusion, policy.hybrid.rank_constant, policy.hybrid.depth) == (
        "rrf", 60, 100)
    # the bm25 arms run under the same embed section, without hybrid
    assert Policy.model_validate({"name": "ev", **spec.body({})}).hybrid is None
    assert "embed" not in PolicySpec("ev", "idx", "default", (20,)).body({})


def _run(arm: str, statuses: dict[str, int], hybrid: dict[str, int]) -> ArmRun:
    run = ArmRun(BUILTIN_ARMS[arm], 20 if BUILTIN_ARMS[arm].rerank else None)
    run.ranked = {f"q{i}": ["d1"] for i in range(sum(statuses.values()))}
    run.statuses.update(statuses)
    run.hybrid.update(hybrid)
    return run


def test_outcomes_must_match_the_arm() -> None:
    check_outcomes(_run("hybrid", {"bypassed": 2}, {"rrf": 1, "fallback:knn_error": 1}))
    check_outcomes(_run("hybrid+rerank", {"reranked": 2}, {"rrf": 2}))
    check_outcomes(_run("bm25", {"bypassed": 2}, {}))
    with pytest.raises(EvalError, match=r"arm hybrid: none of 2 searches was answered by "
                                        r"hybrid retrieval \(X-Crossrank-Hybrid: absent\)"):
        check_outcomes(_run("hybrid", {"bypassed": 2}, {}))
    with pytest.raises(EvalError, match="skipped:unsupported_body:sort x2"):
        check_outcomes(_run("hybrid", {"bypassed": 2}, {"skipped:unsupported_body:sort": 2}))
    # a policy left with hybrid on would make the bm25 arm a second hybrid arm
    with pytest.raises(EvalError, match=r"arm bm25\+rerank@20: 2 of 2 searches were answered "
                                        "by hybrid retrieval"):
        check_outcomes(_run("bm25+rerank", {"reranked": 2}, {"rrf": 2}))


def test_blend_alpha_puts_the_blend_score_mode_into_a_valid_policy() -> None:
    body = PolicySpec("ev", "idx", "default", (20,), blend_alpha=0.65).body({})
    policy = Policy.model_validate({"name": "ev", **body})
    assert (policy.score_mode, policy.blend_alpha) == ("blend", 0.65)
    assert "score_mode" not in PolicySpec("ev", "idx", "default", (20,)).body({})
