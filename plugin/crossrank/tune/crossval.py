"""k-fold cross-validation of the choice of a setting, over judged queries (pure, seeded).

For each fold, the setting with the best mean nDCG@10 on the other folds is chosen and scored
on the held-out fold; every query is held out exactly once, so the held-out scores form one
per-query list: the estimate of "tune, then use what it chose" on queries it did not see. It
is compared with reranking off (paired t-test and sign-flip randomisation, as ``crossrank
eval`` reports them); the setting chosen on all queries is recommended only when that held-out
gain is positive with confidence (p < 0.05 and the 95% interval above 0), otherwise
reranking off is.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from crossrank.eval.metrics import Comparison, compare

PerQuery = Mapping[str, float]


def folds(qids: Sequence[str], k: int, seed: int = 0) -> list[list[str]]:
    """``k`` disjoint folds covering every query once; the same seed gives the same folds."""
    if k < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    unique = sorted(set(qids))
    if len(unique) < k:
        raise ValueError(f"{len(unique)} judged queries cannot fill {k} folds")
    random.Random(seed).shuffle(unique)
    return [sorted(unique[i::k]) for i in range(k)]


def mean_ci(values: Sequence[float], *, seed: int = 0, resamples: int = 2000,
            level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): a percentile bootstrap interval of the mean."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return 0.0, 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(data.mean()), float(low), float(high)


def best_of(scores: Mapping[str, PerQuery], qids: Sequence[str]) -> str:
    """The candidate with the highest mean over ``qids``; ties go to the first listed (the
    grid lists ``off`` first, then cheaper windows first)."""
    best, best_mean = "", -1.0
    for name, per_query in scores.items():
        value = float(np.mean([per_query[q] for q in qids])) if qids else 0.0
        if value > best_mean + 1e-12:
            best, best_mean = name, value
    return best


@dataclass(frozen=True)
class CrossValidation:
    chosen_per_fold: list[str]
    held_out: dict[str, float]
    versus_off: Comparison
    best: str
    """The candidate chosen on all queries."""
    recommended: str
    """``best`` when its held-out gain over ``off`` is confident, else ``off``."""
    interval: tuple[float, float, float]
    """Mean held-out gain over off, with its 95% bootstrap interval."""


def cross_validate(scores: Mapping[str, PerQuery], off: str, k: int = 5,
                   seed: int = 0) -> CrossValidation:
    qids = sorted(scores[off])
    parts = folds(qids, k, seed)
    chosen, held_out = [], {}
    for i, part in enumerate(parts):
        training = [q for j, other in enumerate(parts) if j != i for q in other]
        name = best_of(scores, training)
        chosen.append(name)
        held_out.update({q: scores[name][q] for q in part})
    versus = compare(off, scores[off], "tuned (held out)", held_out, "ndcg@10", seed=seed)
    gains = [held_out[q] - scores[off][q] for q in qids]
    interval = mean_ci(gains, seed=seed)
    best = best_of(scores, qids)
    confident = versus.mean_delta > 0 and versus.significant() and interval[1] > 0
    return CrossValidation(chosen, held_out, versus, best, best if confident else off,
                           interval)
