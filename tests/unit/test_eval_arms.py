"""Arms are data: built-ins, user files, and the query text inserted safely."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from crossrank.eval.arms import BUILTIN_ARMS, ArmError, load_arms_file, select_arms
from crossrank.eval.runner import PolicySpec, plan_runs, search_body


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
    with pytest.raises(ArmError, match=r"unknown arm.*hybrid.*available: bm25, bm25\+rerank"):
        select_arms(["bm25", "hybrid"])
