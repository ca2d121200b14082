"""Which scoring a search gets: policy, model card (per kind of first stage), or defaults."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from crossrank.models.manifest import Scoring
from crossrank.policy import Policy
from crossrank.search.plan import plan_search
from crossrank.search.scoring import first_stage_kind, resolve_scoring

CARD = {"bm25": Scoring(score_mode="blend", blend_alpha=0.6, window=20),
        "hybrid": Scoring(rerank=False, score_mode="blend", blend_alpha=0.3, window=30)}
MATCH = {"match": {"text": "gout"}}
HYBRID = {"vector_field": "v", "model": "m"}


def policy(**fields: Any) -> Policy:
    return Policy.model_validate({"name": "docs", **fields})


def test_a_policy_that_says_nothing_takes_the_card_for_its_first_stage() -> None:
    scoring, source = resolve_scoring(policy(), "bm25", CARD)
    assert (scoring.score_mode, scoring.blend_alpha, scoring.window, source) == (
        "blend", 0.6, 20, "model_card")
    scoring, source = resolve_scoring(policy(), "knn", CARD)  # the card has no knn entry
    assert (scoring.score_mode, scoring.window, source) == ("replace", 50, "default")


def test_fields_the_policy_sets_win_one_by_one() -> None:
    scoring, source = resolve_scoring(policy(blend_alpha=0.9, window=10), "bm25", CARD)
    assert (scoring.score_mode, scoring.blend_alpha, scoring.window, source) == (
        "blend", 0.9, 10, "policy")
    capped, _ = resolve_scoring(policy(max_window=15), "bm25", {
        "bm25": Scoring(window=40)})
    assert capped.window == 15


def test_the_cards_advice_against_reranking_binds_only_a_policy_without_a_score_mode() -> None:
    assert resolve_scoring(policy(), "hybrid", CARD)[0].rerank is False
    assert resolve_scoring(policy(score_mode="replace"), "hybrid", CARD)[0].rerank is True


def test_the_kind_of_first_stage() -> None:
    hybrid = policy(hybrid=HYBRID)
    knn = {"knn": {"v": {"vector": [1], "k": 3}}}
    assert first_stage_kind(hybrid, MATCH) == "hybrid"
    assert first_stage_kind(hybrid, MATCH, has_text=False) == "bm25"  # nothing to embed
    assert first_stage_kind(hybrid, knn) == "knn"  # the client's own vector query
    assert first_stage_kind(policy(hybrid={**HYBRID, "weights": [0, 1]}), MATCH) == "knn"
    assert first_stage_kind(policy(), MATCH) == "bm25"
    assert first_stage_kind(policy(), knn) == "knn"
    native = {"hybrid": {"queries": [MATCH, knn]}}
    assert first_stage_kind(policy(), native) == "hybrid"
    assert first_stage_kind(policy(), {"match": {"hybrid": "a field named hybrid"}}) == "bm25"


def test_plans_carry_the_resolved_scoring() -> None:
    plan = plan_search({"query": MATCH}, [], policy(), {}, CARD)
    assert plan.rerank and plan.window == 20 and plan.scoring.blend_alpha == 0.6
    assert plan.scoring_source == "model_card" and plan.upstream_body is not None
    assert plan.upstream_body["size"] == 20
    hybrid = plan_search({"query": MATCH}, [], policy(hybrid=HYBRID), {}, CARD)
    assert (hybrid.rerank, hybrid.reason, hybrid.arm) == (False, "not_recommended", "rerank")
    forced = plan_search({"query": MATCH}, [("rerank", "true")], policy(hybrid=HYBRID), {},
                         CARD)
    assert forced.rerank and forced.window == 30 and forced.scoring.blend_alpha == 0.3
    as_bm25 = forced.for_first_stage("bm25")  # hybrid answered by BM25 alone
    assert as_bm25.scoring.blend_alpha == 0.6 and as_bm25.window == 30


def test_an_unknown_normalization_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="unknown normalization 'l2'"):
        policy(normalization="l2")
    assert policy(normalization="z_score").normalization == "z_score"
