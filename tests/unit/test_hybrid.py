"""Fusion of ranked lists for proxy-side hybrid retrieval."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossrank.fusion import rrf, rsf


def test_rrf_hand_worked_example() -> None:
    # k = 60, ranks are 1-based:
    #   a: 1/61 + 1/63 = 0.0322664    b: 1/62 + 1/61 = 0.0325225
    #   c: 1/63        = 0.0158730    d: 1/62        = 0.0161290
    fused = rrf([["a", "b", "c"], ["b", "d", "a"]])
    assert [doc for doc, _ in fused] == ["b", "a", "d", "c"]
    assert dict(fused) == pytest.approx({"b": 1 / 62 + 1 / 61, "a": 1 / 61 + 1 / 63,
                                         "d": 1 / 62, "c": 1 / 63})


def test_rrf_weights_and_rank_constant() -> None:
    fused = rrf([["a", "b"], ["b", "a"]], rank_constant=1, weights=[3.0, 1.0])
    assert [d for d, _ in fused] == ["a", "b"]
    assert [s for _, s in fused] == pytest.approx([3 / 2 + 1 / 3, 3 / 3 + 1 / 2])
    assert rrf([["a"], ["b"]], weights=[0.0, 1.0])[0][0] == "b"


def test_rrf_ties_keep_first_seen_order_and_duplicates_count_once() -> None:
    assert [d for d, _ in rrf([["x", "y"], ["y", "x"]])] == ["x", "y"]
    assert rrf([["a", "a", "b"]]) == [("a", 1 / 61), ("b", 1 / 63)]


def test_empty_inputs() -> None:
    assert rrf([]) == [] and rsf([]) == []
    assert rrf([[], ["a"]]) == [("a", 1 / 61)]
    assert rsf([[], [("a", 2.0), ("b", 1.0)]]) == [("a", 1.0), ("b", 0.0)]


def test_rsf_normalises_each_list_then_sums() -> None:
    bm25 = [("a", 12.0), ("b", 8.0), ("c", 4.0)]
    knn = [("c", 0.9), ("d", 0.7), ("a", 0.5)]
    fused = rsf([bm25, knn], weights=[0.3, 0.7])
    assert dict(fused) == pytest.approx({"a": 0.3, "b": 0.15, "c": 0.7, "d": 0.35})
    assert [d for d, _ in fused] == ["c", "d", "a", "b"]


def test_rsf_all_equal_scores_give_one() -> None:
    assert rsf([[("a", 5.0), ("b", 5.0)], [("b", 1.0)]]) == [("b", 2.0), ("a", 1.0)]


def test_rsf_keeps_the_best_score_of_a_repeated_id() -> None:
    assert rsf([[("a", 1.0), ("b", 3.0), ("a", 5.0)]]) == [("a", 1.0), ("b", 0.0)]
    assert rsf([[("a", 1.0), ("b", 3.0), ("c", 4.0), ("a", 5.0)]]) == [
        ("a", 1.0), ("c", 0.5), ("b", 0.0)]


@pytest.mark.parametrize("call", [
    lambda: rrf([["a"]], rank_constant=0),
    lambda: rrf([["a"]], weights=[1.0, 2.0]),
    lambda: rrf([["a"]], weights=[-1.0]),
    lambda: rsf([[("a", float("nan"))]]),
    lambda: rsf([[("a", 1.0)]], weights=[float("inf")]),
])
def test_invalid_arguments(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


ids = st.sampled_from(list("abcdefgh"))
ranked = st.lists(st.lists(ids, max_size=8), max_size=4)
scored = st.lists(st.lists(st.tuples(ids, st.floats(-1e9, 1e9)), max_size=8), max_size=4)


@given(ranked, st.integers(1, 100))
def test_rrf_invariants(lists: list[list[str]], k: int) -> None:
    fused = rrf(lists, rank_constant=k)
    assert {d for d, _ in fused} == {d for ids_ in lists for d in ids_}
    values = [s for _, s in fused]
    assert values == sorted(values, reverse=True)
    assert all(0 < s <= len(lists) / (k + 1) * (1 + 1e-12) for s in values)
    assert rrf(lists, rank_constant=k) == fused
    # an id ranked first in every list wins
    if lists and all(ids_ and ids_[0] == lists[0][0] for ids_ in lists):
        assert fused[0][0] == lists[0][0]


@given(scored)
def test_rsf_invariants(lists: list[list[tuple[str, float]]]) -> None:
    fused = rsf(lists)
    assert {d for d, _ in fused} == {d for pairs in lists for d, _ in pairs}
    values = [s for _, s in fused]
    assert values == sorted(values, reverse=True)
    assert all(0.0 <= s <= len(lists) for s in values)
    for pairs in lists:
        if pairs:  # each non-empty list's best id receives its full weight of 1
            best = max(s for _, s in pairs)
            top = next(d for d, s in pairs if s == best)
            assert dict(fused)[top] >= 1.0
