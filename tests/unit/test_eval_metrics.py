"""Metrics worked out by hand on the eval_tiny rankings; the tool must give the same numbers."""

from __future__ import annotations

from math import log2

import numpy as np
import pytest
from scipy import stats

from crossrank.eval.metrics import (
    compare,
    latency_summary,
    means,
    paired_t_test,
    randomisation_test,
    ranked_to_run,
    score_rankings,
)

QRELS = {"q1": {"d1": 0, "d2": 1, "d3": 2}, "q2": {"d5": 1, "d6": 1}, "q3": {"d7": 1}}
# what BM25 answers on eval_tiny (see tests/fixtures/eval_tiny/README.md)
BM25 = {"q1": ["d1", "d2", "d3"], "q2": ["d4", "d5"], "q3": ["d7", "d8"]}

# By hand. nDCG uses linear gain: DCG = sum(rel / log2(rank + 1)).
Q1_NDCG = (1 / log2(3) + 2 / log2(4)) / (2 / log2(2) + 1 / log2(3))  # d2 at 2, d3 at 3
Q2_NDCG = (1 / log2(3)) / (1 / log2(2) + 1 / log2(3))  # d5 at 2; d6 never retrieved
HAND_BM25 = {
    "ndcg@10": {"q1": Q1_NDCG, "q2": Q2_NDCG, "q3": 1.0},
    "mrr@10": {"q1": 1 / 2, "q2": 1 / 2, "q3": 1.0},
    # AP: precision at each relevant document's rank, over the number of relevant documents
    "map@100": {"q1": (1 / 2 + 2 / 3) / 2, "q2": (1 / 2) / 2, "q3": 1.0},
    "recall@100": {"q1": 1.0, "q2": 1 / 2, "q3": 1.0},
}


def test_hand_computed_values() -> None:
    # the formulas above, as numbers a reader can check with a calculator
    assert round(Q1_NDCG, 6) == 0.619906
    assert round(Q2_NDCG, 6) == 0.386853


def test_per_query_metrics_match_the_hand_computation() -> None:
    per_query = score_rankings(QRELS, BM25)
    assert per_query.keys() == HAND_BM25.keys()
    for metric, expected in HAND_BM25.items():
        assert per_query[metric].keys() == expected.keys()
        for qid, value in expected.items():
            assert per_query[metric][qid] == pytest.approx(value, abs=1e-12), (metric, qid)


def test_means_match_the_hand_computation() -> None:
    mean = means(score_rankings(QRELS, BM25))
    assert mean["ndcg@10"] == pytest.approx((Q1_NDCG + Q2_NDCG + 1) / 3, abs=1e-12)
    assert mean["mrr@10"] == pytest.approx(2 / 3, abs=1e-12)
    assert mean["map@100"] == pytest.approx((7 / 12 + 1 / 4 + 1) / 3, abs=1e-12)
    assert mean["recall@100"] == pytest.approx(5 / 6, abs=1e-12)


def test_rank_decides_not_score_and_cutoffs_apply() -> None:
    # the relevant document at rank 11: outside nDCG@10 and MRR@10, inside MAP/Recall@100
    ranked = {"q3": [f"x{i}" for i in range(10)] + ["d7"]}
    per_query = score_rankings({"q3": {"d7": 1}}, ranked)
    assert per_query["ndcg@10"]["q3"] == 0.0
    assert per_query["mrr@10"]["q3"] == 0.0
    assert per_query["map@100"]["q3"] == pytest.approx(1 / 11, abs=1e-12)
    assert per_query["recall@100"]["q3"] == 1.0
    assert ranked_to_run({"q": ["a", "b", "a"]}) == {"q": {"a": 3.0, "b": 2.0}}


def test_unanswered_and_empty_queries_score_zero() -> None:
    per_query = score_rankings(QRELS, {"q1": [], "q3": ["d7"]})
    assert per_query["ndcg@10"] == {"q1": 0.0, "q2": 0.0, "q3": 1.0}
    assert score_rankings(QRELS, {})["recall@100"] == {"q1": 0.0, "q2": 0.0, "q3": 0.0}


def test_comparison_counts_and_deltas() -> None:
    base = score_rankings(QRELS, BM25)["ndcg@10"]
    better = score_rankings(QRELS, {"q1": ["d3", "d2", "d1"], "q2": ["d4", "d5"],
                                    "q3": ["d8", "d7"]})["ndcg@10"]
    result = compare("bm25", base, "bm25+rerank@3", better, "ndcg@10")
    assert (result.wins, result.ties, result.losses, result.queries) == (1, 1, 1, 3)
    expected = ((1.0 - Q1_NDCG) + 0.0 + (1 / log2(3) - 1.0)) / 3
    assert result.mean_delta == pytest.approx(expected, abs=1e-12)
    # two non-zero differences (+0.380, -0.369): each of the 4 sign patterns has a mean at
    # least as far from zero as the observed +0.004, so the randomisation p-value is 1
    assert result.p_value_randomisation == 1.0


def test_identical_runs_are_not_different() -> None:
    base = score_rankings(QRELS, BM25)["ndcg@10"]
    result = compare("a", base, "b", dict(base), "ndcg@10")
    assert (result.wins, result.ties, result.losses) == (0, 3, 0)
    assert result.p_value_t == 1.0 and result.p_value_randomisation == 1.0


def test_t_test_is_scipys_paired_t_test() -> None:
    rng = np.random.default_rng(7)
    a = rng.random(50)
    b = np.clip(a + rng.normal(0.05, 0.1, 50), 0, 1)
    assert paired_t_test(b - a) == pytest.approx(float(stats.ttest_rel(b, a).pvalue),
                                                 rel=1e-9)
    assert paired_t_test(np.full(5, 0.1)) == 0.0


def test_randomisation_test_is_exact_enough_and_reproducible() -> None:
    # a clear shift over 40 queries is significant; noise around zero is not
    shift = np.full(40, 0.1) + np.linspace(-0.05, 0.05, 40)
    assert randomisation_test(shift) < 0.001
    noise = np.array([0.1, -0.1] * 20)
    assert randomisation_test(noise) == 1.0
    sample = np.random.default_rng(3).normal(0.02, 0.2, 60)
    assert randomisation_test(sample, seed=1) == randomisation_test(sample, seed=1)
    # agrees with the t-test's conclusion on a normal sample
    assert abs(randomisation_test(sample, resamples=20_000) - paired_t_test(sample)) < 0.05


def test_latency_percentiles() -> None:
    latency = latency_summary([float(ms) for ms in range(1, 101)])
    assert latency.queries == 100
    assert latency.p50_ms == pytest.approx(50.5)
    assert latency.p95_ms == pytest.approx(95.05)
    assert latency.max_ms == 100.0
    assert latency_summary([]).queries == 0
