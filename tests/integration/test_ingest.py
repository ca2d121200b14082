"""The ingest hook against the real node, the real proxy and the real MiniLM embedder.

Expected vectors come from the same ONNX embedder called directly on texts written out by
hand in the tests. The proxy embeds in length-sorted batches, so a vector may differ from a
one-by-one embedding in the last float32 bits (different padding, different summation
order): vectors are compared to 1e-5.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from opensearchpy import OpenSearch, helpers

from crossrank.config import UpstreamSettings
from crossrank.models import Embedder, ModelRegistry
from crossrank.policy import Policy
from crossrank.proxy.errors import NotFound
from crossrank.proxy.http import Incoming
from crossrank.proxy.index_mapping import EmbedderMissing, MappingMismatch, handle_index_mapping
from crossrank.proxy.policy_store import PolicyStore
from crossrank.proxy.upstream import Upstream
from crossrank.server import build_app

from proxy_fixtures import ADMIN_TOKEN, ServedProxy, proxy_settings
from scifact import scifact_docs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
N_DOCS = 200
ADMIN = {"x-crossrank-admin-token": ADMIN_TOKEN}
# Stored by this module's proxy as if another replica, with other models, had written it:
# its embedder names a model this proxy holds only as a cross-encoder.
BROKEN = Policy(name="t-ingest-broken", indices=["t-ingest-broken*"],
                embed={"model": "default", "vector_field": "emb"})




@pytest.fixture(scope="module")
def served(opensearch_url: str, tiny_cross_encoder_dir: Path,
           minilm_embedder_dir: Path) -> Iterator[ServedProxy]:
    settings = proxy_settings(
        opensearch_url, tiny_cross_encoder_dir,
        models={"default": tiny_cross_encoder_dir, "minilm": minilm_embedder_dir},
        policy_index=".crossrank-policies-ingest-test", policies=[BROKEN])
    proxy = ServedProxy(build_app(settings), settings.port).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def http(served: ServedProxy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def client(served: ServedProxy) -> OpenSearch:
    """opensearch-py pointed at the proxy, as a user's application would be."""
    return OpenSearch(served.url, timeout=120, http_compress=True)


@pytest.fixture(scope="module")
def embedder(minilm_embedder_dir: Path) -> Embedder:
    return Embedder.load(minilm_embedder_dir)


def put_policy(http: httpx.Client, name: str, body: dict[str, Any]) -> None:
    response = http.put(f"/_crossrank/policies/{name}", headers=ADMIN, json=body)
    assert response.status_code in (200, 201), response.text


@pytest.fixture
def policy(http: httpx.Client, index_name: str) -> Iterator[str]:
    put_policy(http, index_name, {
        "indices": [index_name], "text_fields": ["title", "text"], "template": "{title}. {text}",
        "embed": {"model": "minilm", "vector_field": "emb"}})
    yield index_name
    http.delete(f"/_crossrank/policies/{index_name}", headers=ADMIN)


def stored(os_client: OpenSearch, index: str, ids: list[str]) -> list[dict[str, Any]]:
    docs = os_client.mget(index=index, body={"ids": ids})["docs"]
    assert all(d["found"] for d in docs)
    return [d["_source"] for d in docs]


def assert_vectors(found: list[Any], expected: np.ndarray) -> None:
    got = np.array(found, dtype=np.float32)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_bulk_of_scifact_stores_the_embedder_vectors(client: OpenSearch, os_client: OpenSearch,
                                                     policy: str, embedder: Embedder) -> None:
    docs = scifact_docs(N_DOCS)
    ok, errors = helpers.bulk(client, ({"_index": policy, "_id": d["_id"], "title": d["title"],
                                        "text": d["text"]} for d in docs),
                              chunk_size=100, refresh=True)
    assert (ok, errors) == (len(docs), [])

    # The proxy created the index with the vector field mapped for k-NN.
    index = os_client.indices.get(index=policy)[policy]
    assert index["settings"]["index"]["knn"] == "true"
    assert index["mappings"]["properties"]["emb"] == {
        "type": "knn_vector", "dimension": 384,
        "method": {"engine": "lucene", "space_type": "cosinesimil", "name": "hnsw",
                   "parameters": {}}}
    sources = stored(os_client, policy, [d["_id"] for d in docs])
    expected = embedder.embed([f"{d['title']}. {d['text']}" for d in docs])
    assert_vectors([s["emb"] for s in sources], expected)
    assert [(s["title"], s["text"]) for s in sources] == [(d["title"], d["text"]) for d in docs]

    # The vectors are searchable: a document's own vector finds it first.
    hits = os_client.search(index=policy, body={"size": 1, "query": {"knn": {"emb": {
        "vector": expected[7].tolist(), "k": 1}}}})["hits"]["hits"]
    assert hits[0]["_id"] == docs[7]["_id"]


def test_missing_fields_arrays_and_nested_fields(http: httpx.Client, os_client: OpenSearch,
                                                 index_name: str, embedder: Embedder) -> None:
    put_policy(http, index_name, {
        "indices": [index_name], "text_fields": ["title"],
        "embed": {"model": "minilm", "vector_field": "vectors.content",
                  "text_fields": ["title", "body.sections.text"], "separator": " | "}})
    body = b"".join(orjson.dumps(line) + b"\n" for line in [
        {"index": {"_id": "plain"}}, {"title": "Gene therapy", "body": {"sections": {
            "text": "works in mice"}}},
        {"index": {"_id": "arrays"}}, {"title": ["Alpha", "Beta"], "year": 2020},
        {"index": {"_id": "nested"}}, {"body": {"sections": [{"text": "first"}, {"text": 2},
                                                             {"heading": "no text here"}]}},
        {"index": {"_id": "dotted"}}, {"body.sections.text": "dotted key"},
        {"index": {"_id": "none"}}, {"year": 1999, "tags": ["no", "text", "fields"]},
        {"index": {"_id": "empty"}}, {"title": "", "body": {"sections": []}},
        {"delete": {"_id": "absent"}},
    ])
    response = http.post(f"/{index_name}/_bulk?refresh=true", content=body,
                         headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [next(iter(i.values()))["status"] for i in items] == [201] * 6 + [404]

    sources = dict(zip(["plain", "arrays", "nested", "dotted", "none", "empty"],
                       stored(os_client, index_name, ["plain", "arrays", "nested", "dotted",
                                                      "none", "empty"]), strict=True))
    texts = ["Gene therapy | works in mice", "Alpha | Beta", "first | 2", "dotted key"]
    expected = embedder.embed(texts)
    for name, vector in zip(["plain", "arrays", "nested", "dotted"], expected, strict=True):
        assert_vectors(sources[name]["vectors"]["content"], vector)
    assert "vectors" not in sources["none"] and "vectors" not in sources["empty"]
    assert sources["none"] == {"year": 1999, "tags": ["no", "text", "fields"]}


def test_single_document_apis(http: httpx.Client, os_client: OpenSearch, policy: str,
                              embedder: Embedder) -> None:
    put = http.put(f"/{policy}/_doc/a?refresh=true", json={"title": "A", "text": "one"})
    created = http.put(f"/{policy}/_create/b?refresh=true", json={"title": "B", "text": "two"})
    auto = http.post(f"/{policy}/_doc?refresh=true", json={"title": "C", "text": "three"})
    assert (put.status_code, created.status_code, auto.status_code) == (201, 201, 201)
    assert put.json()["result"] == "created" and put.json()["_id"] == "a"
    ids = ["a", "b", auto.json()["_id"]]
    sources = stored(os_client, policy, ids)
    assert_vectors([s["emb"] for s in sources], embedder.embed(["A. one", "B. two", "C. three"]))

    again = http.put(f"/{policy}/_create/b", json={"title": "B", "text": "two"})
    assert again.status_code == 409  # OpenSearch's own answer, untouched
    assert again.json()["error"]["type"] == "version_conflict_engine_exception"


def test_updates_recompute_the_vector(http: httpx.Client, os_client: OpenSearch, policy: str,
                                      embedder: Embedder) -> None:
    def vector_of(doc_id: str) -> Any:
        return os_client.get(index=policy, id=doc_id)["_source"].get("emb")

    http.put(f"/{policy}/_doc/1?refresh=true", json={"title": "Old title", "text": "Body",
                                                     "views": 0})
    before = vector_of("1")

    # A partial doc that leaves the text alone keeps the vector.
    assert http.post(f"/{policy}/_update/1", json={"doc": {"views": 5}}).status_code == 200
    assert vector_of("1") == before

    # A partial doc with one text field: the text after the merge (stored body + new title).
    response = http.post(f"/{policy}/_update/1", json={"doc": {"title": "New title"}})
    assert response.status_code == 200 and response.json()["result"] == "updated"
    assert_vectors(vector_of("1"), embedder.embed(["New title. Body"])[0])

    # In a bulk: doc_as_upsert on a missing document, an upsert, and a scripted update.
    body = b"".join(orjson.dumps(line) + b"\n" for line in [
        {"update": {"_id": "2"}}, {"doc": {"title": "Fresh", "text": "doc"},
                                   "doc_as_upsert": True},
        {"update": {"_id": "3"}}, {"doc": {"text": "ignored"}, "upsert": {"title": "Up",
                                                                          "text": "sert"}},
        {"update": {"_id": "1"}}, {"script": {"source": "ctx._source.views += 1"}},
    ])
    response = http.post(f"/{policy}/_bulk?refresh=true", content=body,
                         headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 200 and not response.json()["errors"], response.text
    assert_vectors(vector_of("2"), embedder.embed(["Fresh. doc"])[0])
    assert_vectors(vector_of("3"), embedder.embed(["Up. sert"])[0])
    assert_vectors(vector_of("1"), embedder.embed(["New title. Body"])[0])

    # Removing every text field clears the vector, so k-NN no longer finds the document.
    http.post(f"/{policy}/_update/3?refresh=true", json={"doc": {"title": None, "text": None}})
    assert vector_of("3") is None

    # An update of a missing document fails as OpenSearch says, with nothing embedded.
    missing = http.post(f"/{policy}/_update/nope", json={"doc": {"title": "x"}})
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "document_missing_exception"


def test_an_embedding_failure_writes_nothing(http: httpx.Client, os_client: OpenSearch,
                                             policy: str) -> None:
    broken = "t-ingest-broken-" + policy[-6:]
    body = b"".join(orjson.dumps(line) + b"\n" for line in [
        {"index": {"_index": policy, "_id": "fine"}}, {"title": "A", "text": "good index"},
        {"index": {"_index": broken, "_id": "x"}}, {"title": "B", "text": "broken policy"},
    ])
    try:
        response = http.post("/_bulk?refresh=true", content=body,
                             headers={"content-type": "application/x-ndjson"})
        assert response.status_code == 500
        error = response.json()["error"]
        assert error["type"] == "crossrank_embedding_exception"
        assert "[default]" in error["reason"] and "nothing was written" in error["reason"]
        assert error["root_cause"][0]["reason"] == error["reason"]
        assert not os_client.indices.exists(index=broken)
        assert not os_client.indices.exists(index=policy)

        single = http.put(f"/{broken}/_doc/y", json={"title": "C", "text": "alone"})
        assert single.status_code == 500
        assert not os_client.indices.exists(index=broken)
    finally:
        os_client.indices.delete(index=broken, ignore_unavailable=True)


@pytest.mark.parametrize("field", [
    {"type": "knn_vector", "dimension": 768,
     "method": {"name": "hnsw", "engine": "lucene", "space_type": "l2"}},
    {"type": "float"},
])
def test_a_mapping_that_cannot_hold_the_vectors_writes_nothing(
        http: httpx.Client, os_client: OpenSearch, policy: str, field: dict[str, Any]) -> None:
    os_client.indices.create(index=policy, body={
        "settings": {"index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}},
        "mappings": {"properties": {"emb": field}}})
    response = http.post(f"/{policy}/_bulk?refresh=true", content=(
        b'{"index":{"_id":"1"}}\n{"title":"no vector needed"}\n'
        b'{"index":{"_id":"2"}}\n{"other":"no text"}\n'),
        headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 400, response.text
    reason = response.json()["error"]["reason"]
    assert f"index [{policy}]: field [emb]" in reason and "nothing was written" in reason
    assert ("dimension [768]" in reason) == (field["type"] == "knn_vector")
    assert os_client.count(index=policy)["count"] == 0


def test_indices_without_an_embed_policy_pass_through(http: httpx.Client, os_client: OpenSearch,
                                                      index_name: str,
                                                      opensearch_url: str) -> None:
    other = index_name + "-embedded"  # an embed policy exists, just not for index_name
    put_policy(http, other, {"indices": [other], "embed": {"model": "minilm",
                                                           "vector_field": "emb"}})
    try:
        body = b'{"index":{"_id":"1"}}\n{"title":"T","text":"no policy here"}\n'
        response = http.post(f"/{index_name}/_bulk?refresh=true", content=body,
                             headers={"content-type": "application/x-ndjson"})
        assert response.status_code == 200 and not response.json()["errors"]
        assert os_client.get(index=index_name, id="1")["_source"] == {
            "title": "T", "text": "no policy here"}
        single = http.put(f"/{index_name}/_doc/2", content=b'{"title" : "kept as sent"}',
                          headers={"content-type": "application/json"})
        direct = httpx.put(f"{opensearch_url}/{index_name}/_doc/3",
                           content=b'{"title" : "kept as sent"}',
                           headers={"content-type": "application/json"})
        assert single.status_code == direct.status_code == 201
        assert single.content.replace(b'"2"', b'"3"').replace(b'"_seq_no":1', b'"_seq_no":2') \
            == direct.content
        assert os_client.get(index=index_name, id="2")["_source"] == {"title": "kept as sent"}
    finally:
        http.delete(f"/_crossrank/policies/{other}", headers=ADMIN)


def test_an_ingest_pipeline_runs_after_the_proxy_embeds(http: httpx.Client, os_client: OpenSearch,
                                                        policy: str, embedder: Embedder) -> None:
    """The proxy embeds on the way in and passes ``pipeline`` on: OpenSearch's pipeline (a
    ``set`` processor) then runs on the document the proxy wrote, vector and all."""
    pipeline = f"{policy}-stamp"
    os_client.ingest.put_pipeline(id=pipeline, body={"processors": [
        {"set": {"field": "stamp", "value": "{{_ingest.pipeline}}"}}]})
    try:
        single = http.put(f"/{policy}/_doc/s?pipeline={pipeline}",
                          json={"title": "Single", "text": "doc"})
        body = b'{"index":{"_id":"b"}}\n{"title":"Bulk","text":"doc"}\n'
        bulk = http.post(f"/{policy}/_bulk?refresh=true&pipeline={pipeline}", content=body,
                         headers={"content-type": "application/x-ndjson"})
        assert single.status_code == 201 and bulk.status_code == 200, (single.text, bulk.text)
        assert not bulk.json()["errors"]
        sources = stored(os_client, policy, ["s", "b"])
        assert [s["stamp"] for s in sources] == [pipeline, pipeline]
        assert_vectors([s["emb"] for s in sources], embedder.embed(["Single. doc", "Bulk. doc"]))
    finally:
        os_client.ingest.delete_pipeline(id=pipeline)


def test_gzip_bodies_are_embedded(http: httpx.Client, os_client: OpenSearch, policy: str,
                                  embedder: Embedder) -> None:
    body = gzip.compress(b'{"index":{"_id":"z"}}\n{"title":"Zipped","text":"bulk"}\n')
    response = http.post(f"/{policy}/_bulk?refresh=true", content=body, headers={
        "content-type": "application/x-ndjson", "content-encoding": "gzip"})
    assert response.status_code == 200 and not response.json()["errors"], response.text
    assert_vectors(stored(os_client, policy, ["z"])[0]["emb"], embedder.embed(["Zipped. bulk"])[0])


async def test_mapping_helper_creates_and_checks(opensearch_url: str, os_client: OpenSearch,
                                                 index_name: str,
                                                 minilm_embedder_dir: Path,
                                                 tiny_cross_encoder_dir: Path) -> None:
    """``handle_index_mapping`` (the admin API's GET|PUT /_crossrank/mappings/{index}),
    driven with real parts: an upstream client, a policy store, the model registry."""
    upstream = Upstream(UpstreamSettings(url=opensearch_url))
    good = Policy(name=index_name, embed={"model": "minilm", "vector_field": "doc.vec"})
    bad = Policy(name="wrong", indices=[index_name + "-wrong"],
                 embed={"model": "minilm", "vector_field": "emb"})
    absent = Policy(name="absent", indices=[index_name + "-absent*"],
                    embed={"model": "not-loaded", "vector_field": "emb"})
    wrong_kind = Policy(name="wrong-kind", indices=[index_name + "-kind"],
                        embed={"model": "rerank", "vector_field": "emb"})
    store = PolicyStore(upstream, ".unused", [good, bad, absent, wrong_kind], 60)  # seed only
    registry = ModelRegistry({"minilm": minilm_embedder_dir, "rerank": tiny_cross_encoder_dir})

    async def call(method: str, index: str) -> tuple[int, dict[str, Any]]:
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        request = Incoming(method, f"/_crossrank/mappings/{index}", b"", [], receive, 1024)
        await handle_index_mapping(request, index, upstream, store, registry, send)
        return sent[0]["status"], orjson.loads(sent[1]["body"])

    try:
        status, body = await call("GET", index_name)
        assert (status, body["exists"], body["problems"], body["dimension"]) == (
            200, False, [], 384)
        assert body["mapping"]["mappings"]["properties"]["doc"]["properties"]["vec"][
            "method"]["engine"] == "lucene"
        assert (await call("PUT", index_name))[0] == 201
        assert (await call("PUT", index_name))[0] == 200
        status, body = await call("GET", index_name)
        assert (status, body["exists"], body["problems"]) == (200, True, [])
        mapped = os_client.indices.get_mapping(index=index_name)[index_name]["mappings"]
        assert mapped["properties"]["doc"]["properties"]["vec"]["dimension"] == 384

        os_client.indices.create(index=index_name + "-wrong", body={
            "mappings": {"properties": {"emb": {"type": "keyword"}}}})
        status, body = await call("GET", index_name + "-wrong")
        assert status == 200 and body["problems"] == [
            f"index [{index_name}-wrong]: field [emb] is mapped as [keyword], expected "
            "[knn_vector]"]
        with pytest.raises(MappingMismatch, match="mapped as \\[keyword\\]"):
            await call("PUT", index_name + "-wrong")
        with pytest.raises(NotFound):
            await call("GET", "no-policy-here")
        # a policy naming an embedder the proxy has not loaded: a 409 naming it, no index
        status, body = await call("GET", index_name + "-absent")
        assert (status, body["dimension"], body["exists"]) == (200, None, False)
        with pytest.raises(EmbedderMissing, match=r"\[not-loaded\].*embedders: minilm") as info:
            await call("PUT", index_name + "-absent")
        assert info.value.status == 409
        assert not os_client.indices.exists(index=index_name + "-absent")
        with pytest.raises(EmbedderMissing, match=r"\[rerank\].*is a cross-encoder"):
            await call("PUT", index_name + "-kind")
        # an index that exists with a right mapping is still a 200, embedder or not
        os_client.indices.create(index=index_name + "-absent-made", body={
            "settings": {"index.knn": True},
            "mappings": {"properties": {"emb": {"type": "knn_vector", "dimension": 384}}}})
        assert (await call("PUT", index_name + "-absent-made"))[0] == 200
    finally:
        await upstream.aclose()
        registry.close()
