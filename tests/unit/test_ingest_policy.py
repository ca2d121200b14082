"""The embed and hybrid sections of a policy: defaults, strict validation, model kinds."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from crossrank.policy import Policy, policy_model_problems


def policy(**fields: Any) -> Policy:
    return Policy(name="docs", text_fields=["title", "text"], template="{title}. {text}",
                  **fields)


def test_embed_defaults_to_the_policy_text_and_hybrid_to_the_embed_section() -> None:
    p = policy(embed={"model": "minilm", "vector_field": "emb"}, hybrid={})
    assert p.embed is not None and p.hybrid is not None
    assert (p.embed.fields, p.embed.template, p.embed.separator) == (
        ["title", "text"], "{title}. {text}", " ")
    assert (p.hybrid.vector_field, p.hybrid.model, p.hybrid.fusion, p.hybrid.rank_constant,
            p.hybrid.depth, p.hybrid.weights) == ("emb", "minilm", "rrf", 60, 100, [1.0, 1.0])
    assert Policy.model_validate(p.model_dump(mode="json")) == p


def test_embed_with_its_own_fields() -> None:
    p = policy(embed={"model": "m", "vector_field": "vec", "text_fields": ["abstract"]})
    assert p.embed is not None
    assert (p.embed.fields, p.embed.template, p.embed.separator) == (["abstract"], None, " ")


@pytest.mark.parametrize(("fields", "loc", "message"), [
    ({"hybrid": {}}, ("hybrid",), "hybrid.vector_field is required"),
    ({"hybrid": {"vector_field": "v"}}, ("hybrid",), "hybrid.model is required"),
    ({"embed": {"model": "m", "vector_field": "title"}}, ("embed",), "overlaps"),
    ({"embed": {"model": "m", "vector_field": "v", "text_fields": ["a"], "template": "{b}"}},
     ("embed",), "embed.template names fields"),
    ({"embed": {"model": "../m", "vector_field": "v"}}, ("embed", "model"), "not a path"),
    ({"embed": {"model": "m", "vector_field": "a..b"}}, ("embed", "vector_field"), "invalid"),
    ({"embed": {"model": "m"}}, ("embed", "vector_field"), "required"),
    ({"embed": {"model": "m", "vector_field": "v", "extra": 1}}, ("embed", "extra"), "Extra"),
    ({"hybrid": {"model": "m", "vector_field": "v", "fusion": "sum"}}, ("hybrid", "fusion"),
     "unknown fusion 'sum'; expected one of rrf, rsf"),
    ({"hybrid": {"model": "m", "vector_field": "v", "weights": [1]}}, ("hybrid", "weights"),
     "at least 2"),
    ({"hybrid": {"model": "m", "vector_field": "v", "weights": [0, 0]}}, ("hybrid", "weights"),
     "not both zero"),
    ({"hybrid": {"model": "m", "vector_field": "v", "rank_constant": 0}},
     ("hybrid", "rank_constant"), "greater than or equal to 1"),
    ({"hybrid": {"model": "m", "vector_field": "v", "depth": 10_001}}, ("hybrid", "depth"),
     "less than or equal to 10000"),
])
def test_invalid_sections_name_the_field(fields: dict[str, Any], loc: tuple[str, ...],
                                         message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        policy(**fields)
    error = caught.value.errors()[0]
    assert error["loc"] == loc and message in error["msg"]


def test_a_disabled_hybrid_section_needs_no_vector_field() -> None:
    p = policy(hybrid={"enabled": False})
    assert p.hybrid is not None and p.hybrid.vector_field is None


def test_policy_model_problems() -> None:
    kinds = {"default": "cross-encoder", "minilm": "embedder"}
    good = policy(embed={"model": "minilm", "vector_field": "emb"}, hybrid={})
    assert policy_model_problems(good, kinds) == []
    bad = policy(model="minilm", embed={"model": "default", "vector_field": "emb"},
                 hybrid={"model": "nope"})
    assert policy_model_problems(bad, kinds) == [
        ("model", "[model] model 'minilm' is an embedder, not a cross-encoder"),
        ("embed.model", "[embed.model] model 'default' is a cross-encoder, not an embedder"),
        ("hybrid.model", "[hybrid.model] no embedder named 'nope' is loaded "
                         "(loaded: minilm)")]
