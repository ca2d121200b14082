"""The OpenAPI description: docs/openapi.json is the generated one, and its request schemas
are the pydantic models' own."""

from __future__ import annotations

from pathlib import Path

from crossrank.proxy.openapi import document, document_bytes

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_docs_openapi_json_is_the_generated_document() -> None:
    assert COMMITTED.read_bytes() == document_bytes(), (
        "docs/openapi.json is stale: python -m crossrank.proxy.openapi > docs/openapi.json")


def test_policy_request_differs_from_policy_only_in_name_being_optional() -> None:
    schemas = document()["components"]["schemas"]
    policy, request = dict(schemas["Policy"]), dict(schemas["PolicyRequest"])
    assert "name" in policy["required"] and "name" not in request["required"]
    for schema in (policy, request):
        del schema["required"], schema["title"]
    assert policy == request


def test_every_operation_documents_its_errors_in_opensearch_shape() -> None:
    doc = document()
    errors = doc["components"]["responses"]
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if int(status) >= 400 and "$ref" in response:
                    name = response["$ref"].rsplit("/", 1)[1]
                    schema = errors[name]["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, method)
