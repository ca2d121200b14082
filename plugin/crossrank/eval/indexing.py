"""Index a BEIR corpus through the proxy, once.

The index records what it holds in its mapping's ``_meta.crossrank_eval``: the corpus
fingerprint (see ``datasets.scan_corpus``), the document count and the analyzer. A later run
on the same collection finds the same fingerprint and the same live count and skips indexing.
The record is written as ``state: indexing`` when the index is created and becomes
``complete`` only after every document is in and refreshed, so an interrupted run is never
mistaken for a finished one. An index that crossrank eval did not create is never deleted
unless the user asks (``reindex=True``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import OpenSearchException, TransportError
from tqdm import tqdm

from crossrank.eval.datasets import CorpusSummary, read_corpus
from crossrank.eval.proxy_client import EvalError
from crossrank.types import JSONObject

META_KEY = "crossrank_eval"
META_FORMAT = 1
ANALYZERS = ("standard", "english")


@dataclass(frozen=True)
class IndexOutcome:
    action: Literal["reused", "created", "replaced"]
    documents: int
    seconds: float = 0.0


def expected_meta(corpus: CorpusSummary, analyzer: str) -> JSONObject:
    return {"format": META_FORMAT, "fingerprint": corpus.fingerprint,
            "count": corpus.count, "analyzer": analyzer}


def index_body(meta: JSONObject, analyzer: str) -> JSONObject:
    # One shard: BM25 statistics are then exact for the whole collection, and the ranking does
    # not depend on how documents were routed.
    field = {"type": "text", "analyzer": analyzer}
    return {"settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
            "mappings": {"_meta": {META_KEY: {**meta, "state": "indexing"}},
                         "properties": {"title": field, "text": field}}}


def _current_meta(client: OpenSearch, index: str) -> JSONObject | None:
    """The index's ``_meta.crossrank_eval``, ``{}`` when it has none, None when no index."""
    if not client.indices.exists(index=index):
        return None
    mapping = client.indices.get_mapping(index=index)
    if len(mapping) != 1:
        raise EvalError(f"[{index}] names {len(mapping)} indices (an alias or a pattern); "
                        "give --index a concrete index name")
    [entry] = mapping.values()
    meta = (entry.get("mappings", {}).get("_meta") or {}).get(META_KEY)
    return meta if isinstance(meta, dict) else {}


def _actions(corpus: CorpusSummary, index: str) -> Iterator[JSONObject]:
    for doc in read_corpus(corpus.path):
        yield {"_op_type": "index", "_index": index, "_id": doc.id,
               "_source": {"title": doc.title, "text": doc.text}}


def ensure_index(client: OpenSearch, index: str, corpus: CorpusSummary, *,
                 analyzer: str = "english", reindex: bool = False, chunk_size: int = 500,
                 progress: bool = True) -> IndexOutcome:
    """Make ``index`` hold exactly the corpus; returns what was done."""
    if analyzer not in ANALYZERS:
        raise EvalError(f"unknown analyzer {analyzer!r}; use one of {', '.join(ANALYZERS)}")
    wanted = expected_meta(corpus, analyzer)
    try:
        current = _current_meta(client, index)
        if current is not None and not reindex:
            live = int(client.count(index=index)["count"])
            found = {k: current.get(k) for k in wanted}
            if found == wanted and current.get("state") == "complete" and live == corpus.count:
                return IndexOutcome("reused", live)
            if not current:
                raise EvalError(
                    f"index [{index}] exists and was not created by crossrank eval; pass "
                    "--reindex to replace it, or --index to use another name")
        began = time.monotonic()
        if current is not None:
            client.indices.delete(index=index)
        client.indices.create(index=index, body=index_body(wanted, analyzer))
        _bulk(client, index, corpus, chunk_size, progress)
        client.indices.refresh(index=index)
        live = int(client.count(index=index)["count"])
        if live != corpus.count:
            raise EvalError(f"index [{index}] holds {live} documents after indexing, "
                            f"expected {corpus.count}")
        client.indices.put_mapping(index=index, body={
            "_meta": {META_KEY: {**wanted, "state": "complete"}}})
    except TransportError as exc:
        raise EvalError(f"indexing [{index}] through the proxy failed: "
                        f"{exc.status_code} {exc.error}: {exc.info}") from exc
    except OpenSearchException as exc:
        raise EvalError(f"indexing [{index}] through the proxy failed: {exc}") from exc
    action: Literal["created", "replaced"] = "created" if current is None else "replaced"
    return IndexOutcome(action, live, time.monotonic() - began)


def _bulk(client: OpenSearch, index: str, corpus: CorpusSummary, chunk_size: int,
          progress: bool) -> None:
    bar: Any = tqdm(total=corpus.count, unit="doc", desc=f"indexing {index}",
                    disable=not progress, file=sys.stderr, dynamic_ncols=True)
    failures: list[JSONObject] = []
    with bar:
        for ok, item in helpers.streaming_bulk(client, _actions(corpus, index),
                                               chunk_size=chunk_size, raise_on_error=False,
                                               max_retries=3):
            if not ok:
                failures.append(item)
            bar.update(1)
    if failures:
        first = next(iter(failures[0].values()), failures[0])
        raise EvalError(f"{len(failures)} documents were rejected while indexing [{index}]; "
                        f"first: {first}")
