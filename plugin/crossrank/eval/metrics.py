"""Quality metrics (ranx), per-query deltas, paired significance tests and latency summaries.

Rankings are judged by position only: the document at rank r gets the score ``n - r``, so the
metrics see exactly the order the proxy answered, whatever ``_score`` values came with it (past
the window the proxy returns first-stage scores, which are not comparable with reranker scores).

The metrics are ranx's, which follow trec_eval: nDCG with linear gain (``rel / log2(rank + 1)``)
over graded judgments, MRR@k, MAP@k and Recall@k with "relevant" meaning a score above zero.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

METRICS = ("ndcg@10", "mrr@10", "map@100", "recall@100")
PRIMARY = "ndcg@10"

PerQuery = dict[str, dict[str, float]]
"""metric -> query id -> value."""


def ranked_to_run(ranked: Mapping[str, Sequence[str]]) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    for qid, doc_ids in ranked.items():
        n = len(doc_ids)
        scores: dict[str, float] = {}
        for rank, doc_id in enumerate(doc_ids):
            scores.setdefault(doc_id, float(n - rank))  # a repeated id keeps its first rank
        run[qid] = scores
    return run


def score_rankings(qrels: Mapping[str, Mapping[str, int]],
                   ranked: Mapping[str, Sequence[str]],
                   metrics: Sequence[str] = METRICS) -> PerQuery:
    """Each metric for each judged query; a query with no ranking scores 0."""
    from ranx import Qrels, Run, evaluate

    judged = {qid: dict(docs) for qid, docs in qrels.items()}
    answered = {qid: docs for qid, docs in ranked_to_run(ranked).items()
                if qid in judged and docs}
    per_query: PerQuery = {metric: dict.fromkeys(judged, 0.0) for metric in metrics}
    if not answered:
        return per_query
    run = Run(answered)
    with warnings.catch_warnings():
        # numba, compiling ranx's kernels, warns about an integer cast inside ranx itself
        warnings.filterwarnings("ignore", message="unsafe cast from uint64 to int64")
        evaluate(Qrels(judged), run, list(metrics), make_comparable=True,
                 save_results_in_run=True)
    for metric in metrics:
        for qid, value in run.scores[metric].items():
            per_query[metric][qid] = float(value)
    return per_query


def means(per_query: PerQuery) -> dict[str, float]:
    return {metric: float(np.mean(list(values.values()))) if values else 0.0
            for metric, values in per_query.items()}


@dataclass(frozen=True)
class Comparison:
    """``candidate`` against ``baseline`` on one metric, paired by query."""

    baseline: str
    candidate: str
    metric: str
    mean_delta: float
    wins: int
    ties: int
    losses: int
    p_value_t: float
    p_value_randomisation: float
    queries: int

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value_randomisation < alpha


def deltas(baseline: Mapping[str, float], candidate: Mapping[str, float]) -> dict[str, float]:
    """Per-query ``candidate - baseline`` over the queries both have."""
    return {qid: candidate[qid] - baseline[qid] for qid in baseline if qid in candidate}


def compare(baseline_name: str, baseline: Mapping[str, float], candidate_name: str,
            candidate: Mapping[str, float], metric: str, *, resamples: int = 10_000,
            seed: int = 0, tie_tolerance: float = 1e-9) -> Comparison:
    diff = np.array(list(deltas(baseline, candidate).values()), dtype=np.float64)
    diff[np.abs(diff) <= tie_tolerance] = 0.0
    return Comparison(
        baseline_name, candidate_name, metric,
        mean_delta=float(diff.mean()) if diff.size else 0.0,
        wins=int((diff > 0).sum()), ties=int((diff == 0).sum()), losses=int((diff < 0).sum()),
        p_value_t=paired_t_test(diff),
        p_value_randomisation=randomisation_test(diff, resamples=resamples, seed=seed),
        queries=int(diff.size))


def paired_t_test(diff: npt.NDArray[np.float64]) -> float:
    """Two-sided paired t-test on per-query differences (scipy's ``ttest_1samp`` on the
    differences is ``ttest_rel`` on the pairs). Identical runs give p = 1."""
    from scipy import stats

    if diff.size < 2 or not np.any(diff):
        return 1.0
    if np.ptp(diff) == 0.0:  # every query moved by the same amount: no variance at all
        return 0.0
    result = stats.ttest_1samp(diff, 0.0)
    return float(result.pvalue)


def randomisation_test(diff: npt.NDArray[np.float64], *, resamples: int = 10_000,
                       seed: int = 0) -> float:
    """Two-sided paired randomisation (sign-flip) test on the mean difference.

    Under the null hypothesis each query's two scores are exchangeable, so each difference
    is equally likely to carry either sign. p = (1 + #{|mean of flipped| >= |observed|}) /
    (1 + resamples), with a fixed seed so a report is reproducible.
    """
    if diff.size == 0 or not np.any(diff):
        return 1.0
    observed = abs(float(diff.mean()))
    rng = np.random.default_rng(seed)
    hits, done, chunk = 0, 0, max(1, 2_000_000 // diff.size)
    while done < resamples:
        n = min(chunk, resamples - done)
        signs = rng.integers(0, 2, size=(n, diff.size), dtype=np.int8) * 2 - 1
        flipped = np.abs(signs @ diff) / diff.size
        hits += int((flipped >= observed - 1e-12).sum())
        done += n
    return (hits + 1) / (resamples + 1)


@dataclass(frozen=True)
class Latency:
    queries: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    max_ms: float


def latency_summary(samples_ms: Sequence[float]) -> Latency:
    if not samples_ms:
        return Latency(0, 0.0, 0.0, 0.0, 0.0)
    values = np.asarray(samples_ms, dtype=np.float64)
    p50, p95 = np.percentile(values, [50, 95])
    return Latency(int(values.size), float(p50), float(p95), float(values.mean()),
                   float(values.max()))
