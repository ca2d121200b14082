"""`crossrank tune`'s pure parts: folds, candidates, the re-ranking of a collected window,
and the cross-validated choice (reranking off when nothing is confidently better)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossrank.eval.datasets import DatasetError
from crossrank.fusion import fuse_scores
from crossrank.tune.candidates import Candidate, grid, rank
from crossrank.tune.collect import Window, window_of
from crossrank.tune.crossval import cross_validate, folds
from crossrank.tune.options import TuneOptions, load_judgments


def test_folds_cover_every_query_once_and_repeat_with_the_seed() -> None:
    qids = [f"q{i}" for i in range(23)]
    parts = folds(qids, 5, seed=3)
    flat = [q for part in parts for q in part]
    assert sorted(flat) == sorted(qids) and len(flat) == len(set(flat))
    assert {len(p) for p in parts} <= {4, 5}
    assert folds(list(reversed(qids)), 5, seed=3) == parts  # order of input does not matter
    assert folds(qids, 5, seed=4) != parts
    with pytest.raises(ValueError, match="cannot fill"):
        folds(["a", "b"], 3)


def test_the_grid_starts_with_off_and_lists_replace_once_per_window() -> None:
    candidates = grid([20, 10], alphas=[0.5, 1.0], normalizations=["min_max"])
    assert [c.name for c in candidates] == [
        "off", "replace@10", "blend min_max a=0.5@10", "replace@20", "blend min_max a=0.5@20"]
    assert candidates[0].policy_fields() == {"enabled": False}
    assert candidates[2].policy_fields() == {"enabled": True, "window": 10,
                                             "score_mode": "blend", "blend_alpha": 0.5,
                                             "normalization": "min_max"}


WINDOW = Window(doc_ids=["a", "b", "c", "d"], first_stage=[4.0, 3.0, 2.0, 1.0],
                rerank=[0.0, 2.0, 1.0, None], signals={})


def test_a_candidate_reranks_the_top_k_and_keeps_the_tail() -> None:
    assert rank(WINDOW, Candidate(None)) == ["a", "b", "c", "d"]
    assert rank(WINDOW, Candidate(3)) == ["b", "c", "a", "d"]
    assert rank(WINDOW, Candidate(2)) == ["b", "a", "c", "d"]
    blended = rank(WINDOW, Candidate(3, alpha=0.3))
    final = fuse_scores([0.0, 2.0, 1.0], [[4.0, 3.0, 2.0]], alpha=0.3)
    assert blended == [["a", "b", "c"][i] for i in sorted(range(3), key=lambda i: -final[i])] \
        + ["d"]
    with pytest.raises(ValueError, match="narrower"):
        rank(WINDOW, Candidate(4))


def test_a_hybrid_window_blends_its_signals_with_the_policy_weights() -> None:
    window = Window(["a", "b"], [0.5, 0.5], [0.0, 0.0],
                    {"bm25": [1.0, 0.0], "knn": [0.0, 1.0]})
    assert rank(window, Candidate(2, alpha=0.0), weights=[3.0, 1.0]) == ["a", "b"]
    assert rank(window, Candidate(2, alpha=0.0), weights=[1.0, 3.0]) == ["b", "a"]


def test_window_of_puts_explained_hits_back_in_first_stage_order() -> None:
    hits = [{"_id": "b", "_crossrank": {"first_stage_rank": 2, "first_stage_score": 3.0,
                                        "rerank_score": 9.0, "signals": {"bm25": 3.0}}},
            {"_id": "a", "_crossrank": {"first_stage_rank": 1, "first_stage_score": 4.0,
                                        "rerank_score": 1.0, "signals": {"knn": 0.5}}}]
    window = window_of(hits)
    assert window.doc_ids == ["a", "b"] and window.rerank == [1.0, 9.0]
    assert window.signals == {"bm25": [None, 3.0], "knn": [0.5, None]}


def test_cross_validation_recommends_off_unless_the_gain_is_confident() -> None:
    qids = [f"q{i}" for i in range(40)]
    off = {q: 0.5 for q in qids}
    better = {q: 0.6 if i % 4 else 0.55 for i, q in enumerate(qids)}
    noisy = {q: 0.9 if i % 2 else 0.1 for i, q in enumerate(qids)}  # same mean as off
    confident = cross_validate({"off": off, "x": better}, "off", k=5, seed=1)
    assert confident.recommended == "x" and confident.chosen_per_fold == ["x"] * 5
    assert confident.interval[1] > 0
    unsure = cross_validate({"off": off, "noisy": noisy}, "off", k=5, seed=1)
    assert unsure.recommended == "off"


def test_judgments_from_a_tsv_of_query_text(tmp_path: Path) -> None:
    tsv = tmp_path / "j.tsv"
    tsv.write_text("query\tdoc\tgrade\nred shoes\td1\t2\nred shoes\td2\t0\nblue hat\td3\t0\n")
    judged = load_judgments(TuneOptions("p", judgments=tsv))
    assert list(judged.queries.values()) == ["red shoes"]  # blue hat has no relevant doc
    assert judged.qrels["q1"] == {"d1": 2, "d2": 0} and judged.skipped_no_relevant == 1
    with pytest.raises(DatasetError, match="either --dataset"):
        load_judgments(TuneOptions("p"))
