"""From finished runs to results: metrics per run, comparisons between runs.

The reference is the first run (the first arm, at its first window). Every other run is
compared with it, and a run whose arm names a ``baseline`` arm is also compared with that arm
(e.g. ``hybrid+rerank`` against ``hybrid`` as well as against ``bm25``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from crossrank.eval.metrics import (
    METRICS,
    Comparison,
    Latency,
    PerQuery,
    compare,
    latency_summary,
    means,
    score_rankings,
)
from crossrank.eval.runner import ArmRun


@dataclass(frozen=True)
class RunResult:
    key: str
    arm: str
    window: int | None
    rerank: bool
    metrics: dict[str, float]
    latency: Latency
    statuses: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    server_timing_ms: dict[str, float] = field(default_factory=dict)
    per_query: PerQuery = field(default_factory=dict)
    hybrid: dict[str, int] = field(default_factory=dict)  # X-Crossrank-Hybrid outcomes


def score_run(run: ArmRun, qrels: Mapping[str, Mapping[str, int]]) -> RunResult:
    per_query = score_rankings(qrels, run.ranked)
    return RunResult(
        key=run.key, arm=run.arm.name, window=run.window, rerank=run.arm.rerank,
        metrics=means(per_query), latency=latency_summary(run.latencies_ms),
        statuses=dict(run.statuses), reasons=dict(run.reasons),
        server_timing_ms={name: float(np.mean(values))
                          for name, values in run.timings_ms.items() if values},
        per_query=per_query, hybrid=dict(run.hybrid))


def comparison_pairs(runs: Sequence[ArmRun]) -> list[tuple[str, str]]:
    """(baseline key, candidate key) pairs, reference first, no duplicates."""
    if not runs:
        return []
    reference = runs[0].key
    first_of_arm: dict[str, str] = {}
    for run in runs:
        first_of_arm.setdefault(run.arm.name, run.key)
    pairs: list[tuple[str, str]] = []
    for run in runs[1:]:
        if run.key != reference:
            pairs.append((reference, run.key))
    for run in runs:
        base = run.arm.baseline
        if base and base in first_of_arm and first_of_arm[base] not in (reference, run.key):
            pairs.append((first_of_arm[base], run.key))
    return pairs


def compare_runs(results: Sequence[RunResult], pairs: Sequence[tuple[str, str]],
                 metrics: Sequence[str] = METRICS) -> list[Comparison]:
    by_key = {r.key: r for r in results}
    return [compare(base, by_key[base].per_query[metric], cand,
                    by_key[cand].per_query[metric], metric)
            for base, cand in pairs for metric in metrics]
