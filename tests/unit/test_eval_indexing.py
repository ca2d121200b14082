"""What the eval index is made with, and when an existing one is reused."""

from __future__ import annotations

from crossrank.eval.indexing import META_KEY, VectorSpec, _stale, index_body
from crossrank.ingest.mapping import index_body as vector_index_body

META = {"format": 1, "fingerprint": "abc", "count": 10, "analyzer": "english"}
TEXT = {"text_fields": ["title", "text"], "template": "{title}. {text}", "separator": " "}
VECTORS = VectorSpec("embedding", "minilm-l6-embedder", 384, TEXT,
                     vector_index_body("embedding", 384))


def test_index_body_adds_the_proxy_vector_mapping() -> None:
    plain = index_body(META, "english")
    body = index_body(META, "english", VECTORS)
    assert body["settings"]["index"] == {"number_of_shards": 1, "number_of_replicas": 0,
                                         "knn": True}
    properties = body["mappings"]["properties"]
    assert properties["title"] == properties["text"] == {"type": "text", "analyzer": "english"}
    assert properties["embedding"] == vector_index_body("embedding", 384)["mappings"][
        "properties"]["embedding"]
    assert body["mappings"]["_meta"] == plain["mappings"]["_meta"] == {
        META_KEY: {**META, "state": "indexing"}}
    assert "knn" not in plain["settings"]["index"]


def test_vectors_decide_reuse_only_when_asked_for() -> None:
    done = {**META, "state": "complete"}
    with_vectors = {**done, "vectors": VECTORS.meta()}
    assert _stale(done, META, 10, None) == ""
    assert _stale(with_vectors, META, 10, None) == ""  # bm25 runs reuse an index with vectors
    assert _stale(with_vectors, META, 10, VECTORS) == ""
    assert _stale(done, META, 10, VECTORS) == "it has no vectors"
    other = {**with_vectors, "vectors": {**VECTORS.meta(), "embedder": "other"}}
    assert _stale(other, META, 10, VECTORS).startswith(
        "its vectors are not those of embedder [minilm-l6-embedder]")
    assert _stale({**done, "state": "indexing"}, META, 10, VECTORS) == (
        "its indexing did not finish")
    assert _stale(done, {**META, "fingerprint": "new"}, 10, None) == (
        "it holds another corpus or analyzer")
