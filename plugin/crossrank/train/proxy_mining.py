"""Hard-negative candidates from the user's own index, through the proxy.

Every query is searched as the policy's clients search it, with reranking off
(``?rerank=false``): the policy's first stage (BM25, or BM25 and k-NN fused when its ``hybrid``
is on) is what the model reranks at serving time, so its top hits are the negatives worth
learning from and the windows worth validating on. When the policy embeds its documents (an
``embed`` section) but fuses nothing, a k-NN pass adds the nearest neighbours: the query is
embedded with the policy's own embedder (given by the caller, from the local model directory)
and sent as a ``knn`` query through the proxy.

Documents are read from the hits' ``_source`` and laid out with the policy's text fields and
template by the merge step's own ``document_texts``, exactly as the reranker reads a hit;
judged documents that no search returned are fetched with ``_mget``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tqdm import tqdm

from crossrank.eval.arms import Arm
from crossrank.eval.proxy_client import ProxyClient
from crossrank.models.embedder import Embedder
from crossrank.policy import Policy
from crossrank.search.merge import document_texts
from crossrank.types import JSON, JSONObject

Ranked = list[tuple[str, float]]
"""(document id, first-stage score), best first."""


@dataclass
class Mined:
    first_stage: dict[str, Ranked] = field(default_factory=dict)
    """Per query key: the policy's first stage, as the proxy answers it unreranked."""
    knn: dict[str, Ranked] = field(default_factory=dict)
    """Per query key: the k-NN neighbours (empty when the policy has no vectors of its own)."""
    texts: dict[str, str] = field(default_factory=dict)
    """Document id -> its text as the reranker reads it."""

    def pool(self, key: str) -> list[str]:
        """The query's candidates, both lists interleaved (first stage first), each id once."""
        merged: list[str] = []
        seen: set[str] = set()
        first = [d for d, _ in self.first_stage.get(key, [])]
        knn = [d for d, _ in self.knn.get(key, [])]
        for pair in zip(first, knn, strict=False):
            for doc_id in pair:
                if doc_id not in seen:
                    seen.add(doc_id)
                    merged.append(doc_id)
        longer = first if len(first) > len(knn) else knn
        merged += [d for d in longer[min(len(first), len(knn)):] if d not in seen]
        return merged


def source_fields(policy: Policy) -> list[str]:
    return list(policy.text_fields)


def mine(client: ProxyClient, policy: Policy, index: str, queries: Mapping[str, str],
         query: JSON, depth: int, embedder: Embedder | None = None, *,
         progress: bool = True) -> Mined:
    """The top ``depth`` of each query (``query``: DSL with ``{{query}}``), first stage and,
    with ``embedder``, k-NN on the policy's vector field."""
    mined = Mined()
    arm = Arm("mine", query, rerank=False)
    vector_field = _vector_field(policy) if embedder is not None else None
    params = {"rerank": "false"}
    for key, text in tqdm(queries.items(), desc="mining", unit="query", file=sys.stderr,
                          disable=not progress, dynamic_ncols=True):
        body: JSONObject = {"size": depth, "query": arm.search_query(text),
                            "_source": source_fields(policy)}
        mined.first_stage[key] = _read_hits(client.search(index, body, params).body, policy,
                                            mined.texts)
        if embedder is not None and vector_field is not None:
            vector = [float(v) for v in embedder.embed([text])[0]]
            knn: JSONObject = {"size": depth, "_source": source_fields(policy),
                               "query": {"knn": {vector_field: {"vector": vector, "k": depth}}}}
            mined.knn[key] = _read_hits(client.search(index, knn, params).body, policy,
                                        mined.texts)
    return mined


def fetch_missing(client: ProxyClient, policy: Policy, index: str, mined: Mined,
                  doc_ids: Iterable[str], chunk: int = 200) -> list[str]:
    """Read the texts of ``doc_ids`` no search returned; returns the ids the index lacks."""
    wanted = sorted({d for d in doc_ids if d not in mined.texts})
    absent: list[str] = []
    for start in range(0, len(wanted), chunk):
        part = wanted[start:start + chunk]
        found = client.mget(index, part, source_fields(policy))
        texts, _ = document_texts([{"_source": found[d]} for d in part if d in found], policy)
        mined.texts.update(zip([d for d in part if d in found], texts, strict=True))
        absent += [d for d in part if d not in found]
    return absent


def _vector_field(policy: Policy) -> str | None:
    if policy.hybrid is not None and policy.hybrid.enabled:
        return None  # the first stage already holds the k-NN side
    return policy.embed.vector_field if policy.embed is not None else None


def _read_hits(answer: JSONObject, policy: Policy, texts: dict[str, str]) -> Ranked:
    section = answer.get("hits", {})
    hits = [hit for hit in (section.get("hits", []) if isinstance(section, dict) else [])
            if isinstance(hit, dict) and "_id" in hit]
    ranked: Ranked = []
    for hit, text in zip(hits, document_texts(hits, policy)[0], strict=True):
        doc_id = str(hit["_id"])
        score = hit.get("_score")
        ranked.append((doc_id, float(score) if isinstance(score, int | float) else 0.0))
        texts.setdefault(doc_id, text)
    return ranked
