"""BM25 candidates from a real OpenSearch node: hard negatives and validation windows.

The corpus is indexed once (one shard, so BM25 statistics are exact) with the analyzer asked
for; the mapping's ``_meta`` records the corpus checksum, so a later run reuses the index.
Queries are the same ``multi_match`` over title and text that ``crossrank eval`` sends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opensearchpy import OpenSearch, helpers

from crossrank.eval.datasets import Document

META_KEY = "crossrank_train"
Ranked = list[tuple[str, float]]
"""(document id, BM25 score), best first."""


def bm25_query(text: str, size: int, tie_breaker: float | None = None) -> dict[str, Any]:
    match: dict[str, Any] = {"query": text, "fields": ["title", "text"]}
    if tie_breaker is not None:
        match["tie_breaker"] = tie_breaker
    return {"size": size, "_source": False, "query": {"multi_match": match}}


def ensure_index(client: OpenSearch, index: str, corpus: Mapping[str, Document],
                 fingerprint: str, analyzer: str = "english") -> bool:
    """Make ``index`` hold the corpus; returns True when it had to be (re)built."""
    meta = {"fingerprint": fingerprint, "analyzer": analyzer, "count": len(corpus)}
    if client.indices.exists(index=index):
        mapping = next(iter(client.indices.get_mapping(index=index).values()))
        found = (mapping.get("mappings", {}).get("_meta") or {}).get(META_KEY)
        if found == {**meta, "state": "complete"}:
            return False
        client.indices.delete(index=index)
    field = {"type": "text", "analyzer": analyzer}
    client.indices.create(index=index, body={
        "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
        "mappings": {"_meta": {META_KEY: {**meta, "state": "indexing"}},
                     "properties": {"title": field, "text": field}}})
    actions = ({"_index": index, "_id": doc.id,
                "_source": {"title": doc.title, "text": doc.text}} for doc in corpus.values())
    helpers.bulk(client, actions, chunk_size=500, request_timeout=120)
    client.indices.refresh(index=index)
    count = int(client.count(index=index)["count"])
    if count != len(corpus):
        raise RuntimeError(f"index [{index}] holds {count} documents, expected {len(corpus)}")
    client.indices.put_mapping(index=index, body={"_meta": {META_KEY: {**meta,
                                                                        "state": "complete"}}})
    return True


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def search_many(client: OpenSearch, index: str, queries: Sequence[str], k: int,
                chunk: int = 64, tie_breaker: float | None = None) -> list[Ranked]:
    """The top ``k`` BM25 hits of each query, in order, through ``_msearch``."""
    results: list[Ranked] = []
    for part in _chunks(queries, chunk):
        body: list[dict[str, Any]] = []
        for text in part:
            body += [{"index": index}, bm25_query(text, k, tie_breaker)]
        answer = client.msearch(body=body, request_timeout=120)
        for response in answer["responses"]:
            if "error" in response:
                raise RuntimeError(f"BM25 search failed: {response['error']}")
            results.append([(hit["_id"], float(hit["_score"]))
                            for hit in response["hits"]["hits"]])
    return results
