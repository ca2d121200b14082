"""The /_crossrank API against its own OpenAPI description, fuzzed with schemathesis.

A real proxy (tiny cross-encoder, MiniLM embedder) in front of the real node serves
``/_crossrank/openapi.json``; schemathesis reads it from there and sends every operation
valid and invalid inputs (examples, coverage and fuzzing phases), with the admin token from
the ``adminToken`` security scheme. Each answer must be no 5xx the operation does not
document, a documented status and content type, and a body matching the documented schema.

``CROSSRANK_FUZZ_EXAMPLES`` sets the examples per operation (default 50; docs/fuzzing_admin_api.md
records a run with 500). Policies go to their own policy index; index names in the mapping
operations get the prefix ``t-oafz-`` (which a seeded embed policy covers), so whatever
``PUT /_crossrank/mappings/{index}`` creates is found and deleted afterwards.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from opensearchpy import OpenSearch
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from crossrank.policy import Policy
from crossrank.proxy.openapi import OPENAPI_PATH, document_bytes
from crossrank.server import build_app

from proxy_fixtures import ADMIN_TOKEN, ServedProxy, proxy_settings

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("CROSSRANK_FUZZ_EXAMPLES", "50"))
POLICY_INDEX = ".crossrank-policies-openapi-test"
INDEX_PREFIX = "t-oafz-"
SEED = Policy(name="t-oafz-embed", indices=[INDEX_PREFIX + "*"], text_fields=["title", "text"],
              embed={"model": "minilm", "vector_field": "emb"})
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
TRIED: Counter[tuple[str, int]] = Counter()


@pytest.fixture(scope="module")
def served(opensearch_url: str, os_client: OpenSearch, tiny_cross_encoder_dir: Path,
           minilm_embedder_dir: Path) -> Iterator[ServedProxy]:
    os_client.indices.delete(index=POLICY_INDEX, ignore_unavailable=True)
    settings = proxy_settings(
        opensearch_url, tiny_cross_encoder_dir,
        models={"default": tiny_cross_encoder_dir, "minilm": minilm_embedder_dir},
        policy_index=POLICY_INDEX, policies=[SEED])
    proxy = ServedProxy(build_app(settings), settings.port).start()
    # Each policy write waits for a refresh (refresh=wait_for): 1 s by default, 0.1 s here
    os_client.indices.put_settings(index=POLICY_INDEX,
                                   body={"index": {"refresh_interval": "100ms"}})
    yield proxy
    proxy.stop()
    os_client.indices.delete(index=POLICY_INDEX, ignore_unavailable=True)
    os_client.indices.delete(index=INDEX_PREFIX + "*", ignore_unavailable=True,
                             allow_no_indices=True, expand_wildcards="all")


@pytest.fixture(scope="module", autouse=True)
def report_tried(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    _say(request, "\nschemathesis requests per operation and status: " + ", ".join(
        f"{op} {status}: {n}" for (op, status), n in sorted(TRIED.items()))
        + f"; {sum(TRIED.values())} in all")


def _say(request: pytest.FixtureRequest, line: str) -> None:
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


def test_the_description_is_served_without_a_token(served: ServedProxy) -> None:
    response = httpx.get(served.url + OPENAPI_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.content == document_bytes()


@pytest.mark.parametrize(("method", "path", "body"), [
    # a 500: the id was accepted, then orjson could not write it back
    ("POST", "/_crossrank/rerank",
     b'{"query": "q", "documents": [{"id": 18446744073709551616, "text": "a"}]}'),
    # was a 201 that stored the policy "t-oafz-x\n" ('$' let the newline through)
    ("PUT", "/_crossrank/policies/t-oafz-x%0A", b"{}"),
    # was a 201, then every search on the index failed on the unnamed field
    ("PUT", "/_crossrank/policies/t-oafz-x", b'{"template": "{} {text}"}'),
])
def test_inputs_once_accepted_are_400s(served: ServedProxy, method: str, path: str,
                                       body: bytes) -> None:
    response = httpx.request(method, served.url + path, content=body, timeout=60,
                             headers={"x-crossrank-admin-token": ADMIN_TOKEN,
                                      "content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["root_cause"][0]["type"] == "illegal_argument_exception"


# The document is built here, as the proxy builds it (the test above checks that the proxy
# serves these bytes): the cases are generated at collection, before the proxy runs.
schema = schemathesis.openapi.from_dict(orjson.loads(document_bytes()),
                                        config=schemathesis.Config.from_dict({
    "generation": {"max-examples": EXAMPLES, "mode": "all"},
    "auth": {"openapi": {"adminToken": {"api_key": ADMIN_TOKEN}}},
}))


@schema.parametrize()
def test_every_operation_conforms(case: Any, served: ServedProxy) -> None:
    if "index" in (case.path_parameters or {}):
        case.path_parameters["index"] = INDEX_PREFIX + str(case.path_parameters["index"])
    response = case.call(base_url=served.url, timeout=60)
    TRIED[(case.operation.label, response.status_code)] += 1
    case.validate_response(response, checks=CHECKS)
