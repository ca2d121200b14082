"""The normalisations and the fused final score, on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from crossrank.fusion import NORMALIZATIONS, fuse_scores, min_max, rrf_ranks, z_score


def test_min_max() -> None:
    assert min_max([2.0, 4.0, 3.0]) == [0.0, 1.0, 0.5]
    assert min_max([5.0, None, 7.0]) == [0.0, 0.0, 1.0]  # absent counts as the minimum
    assert min_max([3.0, 3.0]) == [1.0, 1.0] and min_max([None]) == [1.0]


def test_z_score() -> None:
    assert z_score([1.0, 2.0, 3.0]) == pytest.approx([-math.sqrt(1.5), 0.0, math.sqrt(1.5)])
    assert z_score([1.0, None, 3.0]) == pytest.approx([-1.0, -1.0, 1.0])  # absent: the lowest
    assert z_score([4.0, 4.0]) == [0.0, 0.0]
    big = z_score([1e308, -1e308])
    assert all(math.isfinite(v) for v in big) and big[0] > big[1]


def test_rrf_ranks() -> None:
    assert rrf_ranks([0.2, 0.9, None, 0.5]) == [1 / 63, 1 / 61, 0.0, 1 / 62]
    assert rrf_ranks([1.0, 1.0, 0.0], rank_constant=1) == [0.5, 0.5, 1 / 4]  # ties share


def test_fuse_is_alpha_times_the_reranker_plus_the_weighted_signals() -> None:
    rerank = [0.0, 10.0, 5.0]
    bm25 = [3.0, 1.0, None]
    knn = [0.1, 0.2, 0.3]
    # min-max: rerank 0, 1, .5; bm25 1, 0, 0; knn 0, .5, 1; weights 3:1 -> .75 / .25
    expected = [0.4 * 0 + 0.6 * (0.75 * 1 + 0.25 * 0),
                0.4 * 1 + 0.6 * (0.75 * 0 + 0.25 * 0.5),
                0.4 * 0.5 + 0.6 * (0.75 * 0 + 0.25 * 1)]
    got = fuse_scores(rerank, [bm25, knn], alpha=0.4, weights=[3.0, 1.0])
    assert got == pytest.approx(expected)
    assert fuse_scores(rerank, [bm25], alpha=1.0) == [0.0, 1.0, 0.5]  # the reranker alone
    assert fuse_scores(rerank, [bm25], alpha=0.0) == [1.0, 0.0, 0.0]  # the first stage alone


def test_fuse_by_rank() -> None:
    got = fuse_scores([1.0, 2.0], [[2.0, 1.0]], alpha=0.5, normalization="rrf")
    assert got == pytest.approx([0.5 / 62 + 0.5 / 61, 0.5 / 61 + 0.5 / 62])


def test_fuse_refuses_what_it_cannot_mean() -> None:
    with pytest.raises(ValueError, match="unknown normalization 'l2'"):
        fuse_scores([1.0], [[1.0]], alpha=0.5, normalization="l2")
    with pytest.raises(ValueError, match="alpha"):
        fuse_scores([1.0], [[1.0]], alpha=1.5)
    with pytest.raises(ValueError, match="2 values for 1 hits"):
        fuse_scores([1.0], [[1.0, 2.0]], alpha=0.5)
    with pytest.raises(ValueError, match="2 weights for 1 signals"):
        fuse_scores([1.0], [[1.0]], alpha=0.5, weights=[1.0, 1.0])


def test_the_registry_names_each_normalization_once() -> None:
    assert set(NORMALIZATIONS) == {"min_max", "z_score", "rrf"}
