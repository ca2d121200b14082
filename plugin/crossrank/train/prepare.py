"""The preparation step: BM25 candidates and teacher embeddings, cached on disk.

Both are deterministic functions of their inputs, so each cache file is named by a hash of
everything that went into it (corpus checksum, analyzer, depth and query texts; model, length
and texts). A second run with the same data reuses them and skips OpenSearch and the teacher.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from opensearchpy import OpenSearch

from crossrank.train.config import TrainConfig
from crossrank.train.data import (
    SciFact,
    Split,
    WikiQAQuestion,
    load_scifact,
    load_wikiqa,
    render,
    split_claims,
)
from crossrank.train.groups import SyntheticQuery, make_synthetic
from crossrank.train.mining import Ranked, ensure_index, search_many
from crossrank.train.teacher import BiEncoder, Matrix

CANDIDATE_DEPTH = 100
INDEX = "crossrank-train-scifact"


@dataclass
class Prepared:
    scifact: SciFact
    split: Split
    synthetic: list[SyntheticQuery]
    candidates: dict[str, Ranked]
    wikiqa: list[WikiQAQuestion]
    vectors: dict[str, np.ndarray]  # "doc:ID", "claim:QID", synthetic keys, "wiki:TEXT"
    seconds: dict[str, float]

    def teacher(self, query_key: str, doc_ids: Sequence[str]) -> list[float]:
        q = self.vectors[query_key]
        return [float(q @ self.vectors[f"doc:{d}"]) for d in doc_ids]

    def wiki_teacher(self, question: str, sentences: Sequence[str]) -> list[float]:
        q = self.vectors[f"wiki:{question}"]
        return [float(q @ self.vectors[f"wiki:{s}"]) for s in sentences]


def _digest(*parts: object) -> str:
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:20]


def _log(message: str) -> None:
    print(f"[prepare] {message}", file=sys.stderr, flush=True)


def cached_candidates(client_factory: Callable[[], OpenSearch], data: SciFact,
                      keys: list[str], texts: list[str], depth: int, analyzer: str,
                      cache: Path) -> dict[str, Ranked]:
    path = cache / f"bm25-{analyzer}-{_digest(data.fingerprint, depth, analyzer, texts)}.json"
    if path.is_file():
        stored = orjson.loads(path.read_bytes())
        return {k: [(d, float(s)) for d, s in v] for k, v in stored.items()}
    client = client_factory()
    index = f"{INDEX}-{analyzer}"
    if ensure_index(client, index, data.corpus, data.fingerprint, analyzer):
        _log(f"indexed {len(data.corpus)} abstracts into [{index}] ({analyzer} analyzer)")
    ranked = dict(zip(keys, search_many(client, index, texts, depth), strict=True))
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(ranked))
    return ranked


def cached_vectors(encoder: Callable[[], BiEncoder], texts: list[str], max_length: int,
                   cache: Path, tag: str) -> Matrix:
    path = cache / f"emb-{tag}-{_digest(max_length, texts)}.npy"
    if path.is_file():
        loaded: Matrix = np.load(path)
        return loaded
    began = time.monotonic()
    vectors = encoder().encode(texts)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    _log(f"embedded {len(texts)} {tag} texts in {time.monotonic() - began:.0f} s")
    return vectors


def prepare(config: TrainConfig, scifact_root: Path, wikiqa_path: Path | None,
            opensearch_url: str, teacher_dir: Path, cache: Path,
            analyzer: str = "english") -> Prepared:
    seconds: dict[str, float] = {}
    began = time.monotonic()
    data = load_scifact(scifact_root)
    split = split_claims(list(data.claims), config.val_fraction, config.seed)
    synthetic = make_synthetic(data.corpus, config.synthetic_title_groups,
                               config.synthetic_sentence_groups, config.seed)
    wikiqa = load_wikiqa(wikiqa_path) if wikiqa_path is not None and config.wikiqa_groups else []

    keys = [f"claim:{q}" for q in sorted(data.claims)] + [s.key for s in synthetic]
    texts = [data.claims[q] for q in sorted(data.claims)] + [s.query for s in synthetic]
    depth = max(CANDIDATE_DEPTH, config.negatives_from_top + 1, config.val_window)
    candidates = cached_candidates(
        lambda: OpenSearch(opensearch_url, timeout=120), data, keys, texts, depth, analyzer,
        cache)
    seconds["bm25"] = time.monotonic() - began

    began = time.monotonic()
    holder: list[BiEncoder] = []

    def encoder(max_length: int) -> Callable[[], BiEncoder]:
        def make() -> BiEncoder:
            if not holder:
                holder.append(BiEncoder(teacher_dir, max_length))
            holder[0].max_length = max_length
            return holder[0]
        return make

    vectors: dict[str, np.ndarray] = {}
    doc_ids = sorted(data.corpus)
    doc_texts = [render(data.corpus[d], config.doc_template) for d in doc_ids]
    doc_matrix = cached_vectors(encoder(config.teacher_max_length), doc_texts,
                                config.teacher_max_length, cache, "corpus")
    vectors.update({f"doc:{d}": doc_matrix[i] for i, d in enumerate(doc_ids)})
    query_matrix = cached_vectors(encoder(config.teacher_max_length), texts,
                                  config.teacher_max_length, cache, "queries")
    vectors.update({k: query_matrix[i] for i, k in enumerate(keys)})
    if wikiqa:
        wiki_texts = sorted({t for q in wikiqa for t in (q.question, *q.positives,
                                                         *q.negatives)})
        wiki_matrix = cached_vectors(encoder(config.wikiqa_max_length), wiki_texts,
                                     config.wikiqa_max_length, cache, "wikiqa")
        vectors.update({f"wiki:{t}": wiki_matrix[i] for i, t in enumerate(wiki_texts)})
    seconds["teacher"] = time.monotonic() - began
    return Prepared(data, split, synthetic, candidates, wikiqa, vectors, seconds)
