"""Properties of rank fusion (rrf, rsf) over arbitrary lists: every id once, best first, scores
within their bounds, and ``ValueError`` as the only refusal."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossrank.fusion import rrf, rsf
from properties_profile import props

ids = st.sampled_from(["a", "b", "c", "d", "e", ""]) | st.text(max_size=3)
weights = st.none() | st.lists(st.floats(0, 1e300) | st.sampled_from([0.0, 1.0, math.inf,
                                                                       math.nan, -1.0]),
                               min_size=0, max_size=4)


def seen_order(lists: list[list[str]]) -> list[str]:
    order: list[str] = []
    for ranked in lists:
        order += [doc for doc in ranked if doc not in order]
    return order


def check(fused: list[tuple[str, float]], lists: list[list[str]]) -> None:
    docs = [doc for doc, _ in fused]
    assert sorted(docs) == sorted(set(docs)) == sorted({d for ranked in lists for d in ranked})
    scores = [score for _, score in fused]
    assert scores == sorted(scores, reverse=True)
    order = seen_order(lists)
    for (a, score_a), (b, score_b) in itertools.pairwise(fused):
        if score_a == score_b:  # ties keep first-seen order
            assert order.index(a) < order.index(b)


@props()
@given(st.lists(st.lists(ids, max_size=8), max_size=4), st.integers(-2, 200), weights)
def test_rrf(lists: list[list[str]], rank_constant: int, given_weights: list[float] | None) -> None:
    try:
        fused = rrf(lists, rank_constant=rank_constant, weights=given_weights)
    except ValueError:
        assert rank_constant < 1 or (given_weights is not None and (
            len(given_weights) != len(lists)
            or not all(math.isfinite(w) and w >= 0 for w in given_weights)))
        return
    check(fused, lists)
    total = sum(given_weights) if given_weights is not None else float(len(lists))
    assert all(0 <= score <= total / (rank_constant + 1) * (1 + 1e-9) for _, score in fused)


scored = st.lists(st.tuples(ids, st.floats(allow_nan=False, allow_infinity=False)
                            | st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324])), max_size=8)


@props()
@given(st.lists(scored, max_size=4), weights)
def test_rsf(lists: list[list[tuple[str, float]]], given_weights: list[float] | None) -> None:
    try:
        fused = rsf(lists, weights=given_weights)
    except ValueError:
        assert given_weights is not None and (
            len(given_weights) != len(lists)
            or not all(math.isfinite(w) and w >= 0 for w in given_weights))
        return
    check(fused, [[doc for doc, _ in ranked] for ranked in lists])
    total = sum(given_weights) if given_weights is not None else float(len(lists))
    assert all(0 <= score <= total * (1 + 1e-9) for _, score in fused)
    assert all(math.isfinite(score) or total == math.inf for _, score in fused)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_rsf_refuses_non_finite_scores(bad: float) -> None:
    with pytest.raises(ValueError):
        rsf([[("a", 1.0), ("b", bad)]])
