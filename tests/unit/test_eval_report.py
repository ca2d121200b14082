"""The report: JSON that parses back, markdown tables, and PNG plots that decode."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from matplotlib.image import imread

from crossrank.eval.arms import BUILTIN_ARMS
from crossrank.eval.report import EvalReport, to_markdown, write_report
from crossrank.eval.results import compare_runs, comparison_pairs, score_run
from crossrank.eval.runner import ArmRun

QRELS = {"q1": {"d1": 0, "d2": 1, "d3": 2}, "q2": {"d5": 1, "d6": 1}, "q3": {"d7": 1}}
BM25 = {"q1": ["d1", "d2", "d3"], "q2": ["d4", "d5"], "q3": ["d7", "d8"]}
RERANKED = {"q1": ["d3", "d2", "d1"], "q2": ["d5", "d4"], "q3": ["d8", "d7"]}


def _run(arm: str, window: int | None, ranked: dict[str, list[str]], ms: float) -> ArmRun:
    run = ArmRun(BUILTIN_ARMS[arm], window, ranked=ranked,
                 latencies_ms=[ms, ms * 1.5, ms * 3],
                 statuses=Counter({"reranked" if window else "bypassed": 3}))
    if window:
        run.timings_ms = {"retrieve": [2.0, 3.0, 4.0], "score": [ms, ms, ms]}
    return run


@pytest.fixture
def report() -> EvalReport:
    runs = [_run("bm25", None, BM25, 4.0), _run("bm25+rerank", 1, BM25, 9.0),
            _run("bm25+rerank", 3, RERANKED, 20.0)]
    results = [score_run(run, QRELS) for run in runs]
    return EvalReport(dataset={"name": "eval_tiny", "queries": 3, "documents": 10,
                               "qrels": "qrels.tsv", "fingerprint": "ab" * 32},
                      settings={"mode": "search", "windows": [1, 3], "size": 100},
                      results=results, comparisons=compare_runs(results, comparison_pairs(runs)),
                      created_at="2026-01-01T00:00:00+00:00", command="crossrank eval ...",
                      queries={q: {"text": f"query {q}", "judgments": QRELS[q]} for q in QRELS})


def test_window_one_changes_nothing_and_reranking_is_compared(report: EvalReport) -> None:
    assert report.result("bm25+rerank@1").metrics == report.result("bm25").metrics
    pairs = {(c.baseline, c.candidate) for c in report.comparisons}
    assert pairs == {("bm25", "bm25+rerank@1"), ("bm25", "bm25+rerank@3")}
    ndcg = next(c for c in report.comparisons
                if c.candidate == "bm25+rerank@3" and c.metric == "ndcg@10")
    assert (ndcg.wins, ndcg.ties, ndcg.losses) == (2, 0, 1)


def test_report_files(report: EvalReport, tmp_path: Path) -> None:
    paths = write_report(report, tmp_path / "out")
    data = orjson.loads(paths["json"].read_bytes())
    assert data["format"] == 2
    assert data["queries"]["q1"] == {"text": "query q1", "judgments": QRELS["q1"]}
    assert [r["key"] for r in data["results"]] == ["bm25", "bm25+rerank@1", "bm25+rerank@3"]
    bm25 = data["results"][0]
    assert bm25["metrics"]["recall@100"] == pytest.approx(5 / 6, abs=1e-12)
    assert bm25["per_query"]["ndcg@10"]["q3"] == 1.0
    assert data["results"][2]["latency"]["p50_ms"] == pytest.approx(30.0)
    assert data["results"][2]["server_timing_ms"]["score"] == pytest.approx(20.0)
    assert {c["metric"] for c in data["comparisons"]} == {"ndcg@10", "mrr@10", "map@100",
                                                         "recall@100"}
    for name in ("quality", "latency", "wins"):
        image = imread(paths[name])
        height, width = image.shape[:2]
        assert width >= 800 and height >= 400, name
        assert image.std() > 0.01, name  # not a blank canvas
    markdown = paths["markdown"].read_text()
    assert "| bm25+rerank@3 | " in markdown
    assert "![quality](quality_vs_window.png)" in markdown
    assert "| bm25+rerank@3 | bm25 | nDCG@10 |" in markdown


def test_markdown_without_comparisons(report: EvalReport) -> None:
    single = EvalReport(report.dataset, report.settings, report.results[:1], [],
                        report.created_at)
    text = to_markdown(single)
    assert "Paired comparisons" not in text and "| bm25 | 0.6689 |" in text


def test_runs_without_windows_plot_as_bars(tmp_path: Path) -> None:
    # the rerank-only shortcut: a reference order and one run per model, no window K
    listed = ArmRun(BUILTIN_ARMS["bm25"], None, ranked=BM25, latencies_ms=[0.0] * 3)
    model = ArmRun(BUILTIN_ARMS["bm25+rerank"], None, ranked=RERANKED,
                   latencies_ms=[5.0, 6.0, 7.0])
    results = [score_run(listed, QRELS), score_run(model, QRELS)]
    report = EvalReport({"name": "tiny", "queries": 3}, {"mode": "rerank-only"}, results,
                        compare_runs(results, comparison_pairs([listed, model])), "now")
    paths = write_report(report, tmp_path)
    for name in ("quality", "latency", "wins"):
        assert imread(paths[name]).std() > 0.01, name
