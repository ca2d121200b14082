"""The OpenAPI 3.1 description of crossrank's own API under ``/_crossrank``.

Served at ``GET /_crossrank/openapi.json`` without the admin token: like ``health`` it holds
no secret, and a client needs it before it has a token. ``docs/openapi.json`` is the same
document, committed; ``tests/unit/test_openapi.py`` fails when the two differ (rewrite it with
``python -m crossrank.proxy.openapi > docs/openapi.json``).

Request bodies are generated from the pydantic models that validate them (``Policy``,
``RerankRequest``), so the description cannot drift from validation. Response bodies are
written here; ``tests/integration/test_admin_openapi.py`` (schemathesis) checks real answers
against them.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import orjson
from pydantic.json_schema import models_json_schema

import crossrank
from crossrank.policy import Policy
from crossrank.proxy.admin_auth import ADMIN_TOKEN_HEADER
from crossrank.proxy.rerank_shapes import RerankRequest

__all__ = ["OPENAPI_PATH", "document", "document_bytes"]

OPENAPI_PATH = "/_crossrank/openapi.json"

JSON = dict[str, Any]
_REF = "#/components/schemas/{model}"


def _ref(name: str) -> JSON:
    return {"$ref": _REF.format(model=name)}


def _nullable(schema: JSON) -> JSON:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: JSON, *, optional: tuple[str, ...] = (), **extra: Any) -> JSON:
    required = [name for name in properties if name not in optional]
    return {"type": "object", "properties": properties, "required": required, **extra}


# OpenSearch's error shape (crossrank.proxy.errors): clients read error.root_cause[0].reason.
_CAUSE = _object({"type": {"type": "string"}, "reason": {"type": "string"}})
_RESPONSE_SCHEMAS: dict[str, JSON] = {
    "Error": _object({
        "error": _object({"root_cause": {"type": "array", "items": _CAUSE, "minItems": 1},
                          "type": {"type": "string"}, "reason": {"type": "string"}}),
        "status": {"type": "integer", "minimum": 400, "maximum": 599}}),
    "PolicyList": _object({"policies": {"type": "array", "items": _ref("Policy")}}),
    "PolicyWritten": _object({"acknowledged": {"const": True},
                              "result": {"enum": ["created", "updated"]},
                              "policy": _ref("Policy")}),
    "PolicyDeleted": _object({"acknowledged": {"const": True}, "result": {"const": "deleted"}}),
    "RerankResponse": _object({
        "model": {"type": "string"},
        "results": {"type": "array", "items": _object({
            "index": {"type": "integer", "minimum": 0},
            "relevance_score": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
            "raw_score": _nullable({"type": "number"}),
            "id": {"type": ["string", "integer"]},
            "document": _object({"text": {"type": "string"}}),
        }, optional=("raw_score", "id", "document"))},
        "meta": _object({"took_ms": {"type": "number", "minimum": 0},
                         "documents": {"type": "integer", "minimum": 0}})}),
    "IndexMapping": _object({
        "index": {"type": "string"}, "policy": {"type": "string"},
        "vector_field": {"type": "string"}, "embedder": {"type": "string"},
        "dimension": _nullable({"type": "integer"}),
        "mapping": {"type": "object", "description": "the index body crossrank would create"},
        "exists": {"type": "boolean"},
        "problems": {"type": "array", "items": {"type": "string"}},
    }, optional=("mapping",)),
    "Health": _object({
        "status": {"enum": ["ready", "not_ready"]},
        "upstream": _object({"reachable": {"type": "boolean"},
                             "cluster_status": _nullable({"type": "string"})}),
        "models": {"type": "object", "additionalProperties": {
            "enum": ["cross-encoder", "embedder"]}},
        "policies": {"type": "integer", "minimum": 0},
        "policies_refreshed_at": _nullable({"type": "number"}),
    }),
}

_ERRORS = {
    400: "Bad input: not JSON, or not valid for the endpoint (error.reason names the field)",
    401: f"Missing or wrong {ADMIN_TOKEN_HEADER} header, or no admin token configured",
    403: "Admin endpoints are disabled on this proxy (admin.enabled: false)",
    404: "Not found",
    409: "The policy names an embedder this proxy has not loaded",
    413: "The request body exceeds limits.max_body_bytes",
    429: "The reranker's queue is full: retry later",
    502: "OpenSearch is unreachable or failed",
    504: "OpenSearch did not answer in time",
}
_UPSTREAM = (502, 504)
_ADMIN = (401, 403)


def _json_response(description: str, schema: JSON) -> JSON:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(ok: dict[int, tuple[str, str]], *errors: int) -> JSON:
    out: JSON = {str(status): _json_response(text, _ref(schema))
                 for status, (text, schema) in ok.items()}
    for status in sorted(errors):
        out[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    return out


def _body(schema: str) -> JSON:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


_ADMIN_ONLY: list[dict[str, list[str]]] = [{"adminToken": []}]
_INDEX = {"name": "index", "in": "path", "required": True,
          "schema": {"type": "string", "minLength": 1},
          "description": "An index name, as OpenSearch accepts it"}


def _paths(name_pattern: str) -> JSON:
    name = {"name": "name", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": name_pattern},
            "description": "A policy's name (GET and DELETE answer 404 for any other string)"}
    policy = {
        "parameters": [name],
        "get": {"operationId": "getPolicy", "summary": "One policy",
                "responses": _responses({200: ("The policy", "Policy")}, 404)},
        "put": {"operationId": "putPolicy", "summary": "Create or replace a policy",
                "description": "The body's `name` defaults to the path's and must equal it. "
                               "Every model the policy names must be loaded as the kind it "
                               "needs.",
                "security": _ADMIN_ONLY, "requestBody": _body("PolicyRequest"),
                "responses": _responses({200: ("Replaced", "PolicyWritten"),
                                         201: ("Created", "PolicyWritten")},
                                        400, 413, *_ADMIN, *_UPSTREAM)},
        "delete": {"operationId": "deletePolicy", "summary": "Remove a policy",
                   "security": _ADMIN_ONLY,
                   "responses": _responses({200: ("Removed", "PolicyDeleted")},
                                           404, *_ADMIN, *_UPSTREAM)},
    }
    mapping = {
        "parameters": [_INDEX],
        "get": {"operationId": "getIndexMapping",
                "summary": "What the index's policy needs in its mapping, and what is wrong",
                "responses": _responses({200: ("The check", "IndexMapping")},
                                        400, 403, 404, *_UPSTREAM)},
        "put": {"operationId": "putIndexMapping",
                "summary": "Create the index with the vector mapping its policy needs",
                "description": "201 when created; 200 when it exists with a right mapping; "
                               "400 naming each problem otherwise; 409 when the policy's "
                               "embedder is not loaded here.",
                "security": _ADMIN_ONLY,
                "responses": _responses({200: ("Exists and is right", "IndexMapping"),
                                         201: ("Created", "IndexMapping")},
                                        400, 404, 409, *_ADMIN, *_UPSTREAM)},
    }
    return {
        "/_crossrank/policies": {"get": {
            "operationId": "listPolicies", "summary": "All policies",
            "responses": _responses({200: ("Every policy, by name", "PolicyList")})}},
        "/_crossrank/policies/{name}": policy,
        "/_crossrank/mappings/{index}": mapping,
        "/_crossrank/rerank": {"post": {
            "operationId": "rerank", "summary": "Score documents against a query",
            "description": "Cohere/Jina request and response shape; results in descending "
                           "relevance_score (in [0, 1]; null when the reranker fell back "
                           "to the order given). The same ranking answers POST /v1/rerank "
                           "(Cohere v1, Jina), /v2/rerank (Cohere v2) and /rerank (TEI) in "
                           "those services' own shapes (docs/clients.md).",
            "requestBody": _body("RerankRequest"),
            "responses": _responses({200: ("Scores", "RerankResponse")}, 400, 413, 429)}},
        "/_crossrank/health": {"get": {
            "operationId": "health", "summary": "Liveness and readiness",
            "responses": _responses({200: ("Ready", "Health"), 503: ("Not ready", "Health")})}},
        "/_crossrank/metrics": {"get": {
            "operationId": "metrics", "summary": "Prometheus metrics",
            "responses": {"200": {"description": "Prometheus text exposition format",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        OPENAPI_PATH: {"get": {
            "operationId": "openapi", "summary": "This description",
            "responses": {"200": _json_response("OpenAPI 3.1", {"type": "object"})}}},
    }


def _request_schemas() -> dict[str, JSON]:
    """Policy and RerankRequest as pydantic validates them, and PolicyRequest: a Policy whose
    ``name`` may be left out (the path gives it)."""
    _, top = models_json_schema([(Policy, "validation"), (RerankRequest, "validation")],
                                ref_template=_REF)
    schemas: dict[str, JSON] = top["$defs"]
    request = copy.deepcopy(schemas["Policy"])
    request["required"] = [name for name in request.get("required", []) if name != "name"]
    request["title"] = "PolicyRequest"
    schemas["PolicyRequest"] = request
    return schemas


@functools.cache
def document() -> JSON:
    """The whole OpenAPI document (built once)."""
    schemas = _request_schemas()
    errors = {f"E{status}": _json_response(text, _ref("Error"))
              for status, text in _ERRORS.items()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "crossrank admin API", "version": crossrank.__version__,
                 "description": "crossrank's own endpoints under /_crossrank. Every other "
                                "path is OpenSearch's, passed through or reranked. Errors "
                                "are in OpenSearch's shape."},
        "paths": _paths(schemas["Policy"]["properties"]["name"]["pattern"]),
        "components": {
            "schemas": dict(sorted({**schemas, **_RESPONSE_SCHEMAS}.items())),
            "responses": errors,
            "securitySchemes": {"adminToken": {"type": "apiKey", "in": "header",
                                               "name": "X-Crossrank-Admin-Token"}},
        },
    }


@functools.cache
def document_bytes() -> bytes:
    """The document as served and committed: indented, keys in a stable order."""
    return orjson.dumps(document(), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


if __name__ == "__main__":
    import sys

    sys.stdout.buffer.write(document_bytes())
