"""Inputs the admin API once accepted and should not have (docs/fuzzing_admin_api.md)."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from crossrank.policy import Policy
from crossrank.proxy.policies_api import validation_reason
from crossrank.proxy.rerank_shapes import RerankRequest


@pytest.mark.parametrize("fields", [
    {"name": "scifact\n"},
    {"name": "scifact", "model": "default\n"},
    {"name": "scifact", "embed": {"model": "minilm\n", "vector_field": "emb"}},
    {"name": "scifact", "hybrid": {"model": "minilm\n", "vector_field": "emb"}},
])
def test_a_name_with_a_trailing_newline_is_refused(fields: dict[str, Any]) -> None:
    # "^...$" with re.match let "name\n" through; the schema's pattern (ECMAScript) did not
    with pytest.raises(ValidationError):
        Policy.model_validate(fields)


@pytest.mark.parametrize("fields", [
    {"template": "{} {text}"},
    {"text_fields": ["title"], "embed": {"model": "minilm", "vector_field": "emb",
                                         "text_fields": ["title"], "template": "{}"}},
])
def test_a_template_field_without_a_name_is_refused(fields: dict[str, Any]) -> None:
    # "{}" passed validation, then every search on the index failed with a KeyError
    with pytest.raises(ValidationError, match=re.escape("'{}' names none")):
        Policy.model_validate({"name": "scifact", **fields})


def test_named_template_fields_still_pass() -> None:
    policy = Policy(name="scifact", text_fields=["title", "0"], template="{title}: {0}")
    assert policy.template == "{title}: {0}"


def test_a_rerank_document_id_beyond_64_bits_is_a_validation_error() -> None:
    # it was accepted, then failed to encode in the answer: a 500
    body = orjson.dumps({"query": "q", "documents": [{"id": 2**64 - 1, "text": "a"}]})
    too_big = body.replace(b"18446744073709551615", b"18446744073709551616")
    request = RerankRequest.model_validate_json(body)
    assert b"18446744073709551615" in orjson.dumps(request.model_dump())
    with pytest.raises(ValidationError) as caught:
        RerankRequest.model_validate_json(too_big)
    field, reason = validation_reason(caught.value)
    assert field.startswith("documents.0.RerankDocument.id")
    assert "less than or equal to 18446744073709551615" in reason
