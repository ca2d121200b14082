"""Index a BEIR corpus through the proxy, once.

The index records what it holds in its mapping's ``_meta.crossrank_eval``: the corpus
fingerprint (see ``datasets.scan_corpus``), the document count and the analyzer. A later run
on the same collection finds the same fingerprint and the same live count and skips indexing.
The record is written as ``state: indexing`` when the index is created and becomes
``complete`` only after every document is in and refreshed, so an interrupted run is never
mistaken for a finished one. An index that crossrank eval did not create is never deleted
unless the user asks (``reindex=True``).

Arms that need vectors (hybrid) pass a ``VectorSpec``: the index is then created with the
``knn_vector`` mapping the proxy's own helper gives for the index's policy
(``GET /_crossrank/mappings/{index}``), its documents are embedded by the proxy's ingest hook
on the way in (the policy's ``embed`` section), and the record says so under ``vectors``
(field, embedder, dimension, the text embedded). An index whose record has no such entry, or
another one, is indexed again rather than searched for vectors it does not hold; a run
without vector arms reuses an index with vectors as it is.
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
from crossrank.eval.proxy_client import EvalError, ProxyClient
from crossrank.types import JSON, JSONObject

META_KEY = "crossrank_eval"
META_FORMAT = 1
ANALYZERS = ("standard", "english")


@dataclass(frozen=True)
class IndexOutcome:
    action: Literal["reused", "created", "replaced"]
    documents: int
    seconds: float = 0.0
    why: str = ""  # why an existing index was replaced


@dataclass(frozen=True)
class VectorSpec:
    """The vectors the index must hold, as the proxy will write them."""

    field: str
    embedder: str
    dimension: int
    text: JSONObject  # the embed section's text_fields, template and separator
    mapping: JSONObject  # body of PUT /{index} from the proxy: index.knn and the vector field

    def meta(self) -> JSONObject:
        return {"field": self.field, "embedder": self.embedder, "dimension": self.dimension,
                "text": self.text}


def vector_spec(client: ProxyClient, index: str) -> VectorSpec:
    """What the policy now covering ``index`` embeds, and the mapping that holds it."""
    wanted = client.vector_mapping(index)
    dimension, mapping = wanted.get("dimension"), wanted.get("mapping")
    if not isinstance(dimension, int) or not isinstance(mapping, dict):
        raise EvalError(f"the proxy cannot tell the dimension of embedder "
                        f"[{wanted.get('embedder')}] for index [{index}]: is it loaded?")
    policy = client.get_policy(str(wanted.get("policy")))
    embed = policy.get("embed")
    if not isinstance(embed, dict) or embed.get("vector_field") != wanted.get("vector_field"):
        raise EvalError(f"policy [{wanted.get('policy')}] covering index [{index}] has no "
                        "embed section, so the proxy would not embed the documents while "
                        "indexing; add one (or drop --no-policy)")
    return VectorSpec(str(embed["vector_field"]), str(embed["model"]), dimension,
                      {key: embed.get(key) for key in ("text_fields", "template", "separator")},
                      mapping)


def expected_meta(corpus: CorpusSummary, analyzer: str) -> JSONObject:
    return {"format": META_FORMAT, "fingerprint": corpus.fingerprint,
            "count": corpus.count, "analyzer": analyzer}


def index_body(meta: JSONObject, analyzer: str,
               vectors: VectorSpec | None = None) -> JSONObject:
    # One shard: BM25 statistics are then exact for the whole collection, and the ranking does
    # not depend on how documents were routed (and proxy-side RRF ranks as native RRF does).
    field = {"type": "text", "analyzer": analyzer}
    body: JSONObject = {
        "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
        "mappings": {"_meta": {META_KEY: {**meta, "state": "indexing"}},
                     "properties": {"title": field, "text": field}}}
    return body if vectors is None else _merged(body, vectors.mapping)


def _merged(base: JSONObject, extra: JSONObject) -> JSONObject:
    """``base`` with ``extra`` laid over it, objects merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        current: JSON = out.get(key)
        out[key] = (_merged(current, value) if isinstance(current, dict)
                    and isinstance(value, dict) else value)
    return out


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


def _stale(current: JSONObject, wanted: JSONObject, live: int,
           vectors: VectorSpec | None) -> str:
    """Why an index crossrank eval made cannot be reused ("" when it can)."""
    if {k: current.get(k) for k in wanted} != wanted:
        return "it holds another corpus or analyzer"
    if current.get("state") != "complete" or live != wanted["count"]:
        return "its indexing did not finish"
    if vectors is not None and current.get("vectors") != vectors.meta():
        held = current.get("vectors")
        return ("it has no vectors" if not held else f"its vectors are not those of embedder "
                f"[{vectors.embedder}] on the same text ({held})")
    return ""


def ensure_index(client: OpenSearch, index: str, corpus: CorpusSummary, *,
                 analyzer: str = "english", reindex: bool = False,
                 chunk_size: int | None = None, vectors: VectorSpec | None = None,
                 progress: bool = True) -> IndexOutcome:
    """Make ``index`` hold exactly the corpus (with ``vectors``, embedded by the proxy);
    returns what was done. Bulk requests are smaller when the proxy embeds them
    (``chunk_size`` defaults to 64 then, else 500), so that none runs for minutes."""
    if analyzer not in ANALYZERS:
        raise EvalError(f"unknown analyzer {analyzer!r}; use one of {', '.join(ANALYZERS)}")
    wanted = expected_meta(corpus, analyzer)
    why = "asked for by --reindex"
    try:
        current = _current_meta(client, index)
        if current is not None and not reindex:
            if not current:
                raise EvalError(
                    f"index [{index}] exists and was not created by crossrank eval; pass "
                    "--reindex to replace it, or --index to use another name")
            live = int(client.count(index=index)["count"])
            why = _stale(current, wanted, live, vectors)
            if not why:
                return IndexOutcome("reused", live)
        began = time.monotonic()
        if current is not None:
            client.indices.delete(index=index)
        client.indices.create(index=index, body=index_body(wanted, analyzer, vectors))
        _bulk(client, index, corpus, chunk_size or (500 if vectors is None else 64), progress,
              f"indexing {index}" + (f" (embedding with {vectors.embedder})" if vectors else ""))
        client.indices.refresh(index=index)
        live = int(client.count(index=index)["count"])
        if live != corpus.count:
            raise EvalError(f"index [{index}] holds {live} documents after indexing, "
                            f"expected {corpus.count}")
        complete: JSONObject = {**wanted, "state": "complete"}
        if vectors is not None:
            _check_vectors(client, index, vectors, live)
            complete["vectors"] = vectors.meta()
        client.indices.put_mapping(index=index, body={"_meta": {META_KEY: complete}})
    except TransportError as exc:
        raise EvalError(f"indexing [{index}] through the proxy failed: "
                        f"{exc.status_code} {exc.error}: {exc.info}") from exc
    except OpenSearchException as exc:
        raise EvalError(f"indexing [{index}] through the proxy failed: {exc}") from exc
    if current is None:
        return IndexOutcome("created", live, time.monotonic() - began)
    return IndexOutcome("replaced", live, time.monotonic() - began, why)


def _check_vectors(client: OpenSearch, index: str, vectors: VectorSpec, live: int) -> None:
    """Every document got its vector: else hybrid would quietly be BM25 for the others."""
    embedded = int(client.count(index=index, body={
        "query": {"exists": {"field": vectors.field}}})["count"])
    if embedded != live:
        raise EvalError(f"only {embedded} of {live} documents of [{index}] have a vector in "
                        f"[{vectors.field}] after indexing through the proxy; its ingest "
                        f"hook embeds with [{vectors.embedder}] only for indices under a "
                        "policy with an embed section")


def _bulk(client: OpenSearch, index: str, corpus: CorpusSummary, chunk_size: int,
          progress: bool, label: str) -> None:
    bar: Any = tqdm(total=corpus.count, unit="doc", desc=label,
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
