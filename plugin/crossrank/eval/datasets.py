"""Judged collections in the BEIR layout: ``corpus.jsonl``, ``queries.jsonl`` and a qrels TSV.

    corpus.jsonl   {"_id": "...", "title": "...", "text": "..."}   one document a line
    queries.jsonl  {"_id": "...", "text": "..."}                   one query a line
    qrels.tsv      query-id <TAB> corpus-id <TAB> score            a header line, then judgments

The corpus is streamed (it can be large); queries and judgments are held in memory. Every
problem is a ``DatasetError`` naming the file and the line, so a user can open the file and
fix it: a line that is not JSON, a missing or non-string field, a duplicate id, a judgment that
is not an integer, or one that names a query or a document the collection does not have.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

QRELS_HEADER = ("query-id", "corpus-id", "score")


class DatasetError(ValueError):
    """A collection file is missing or malformed; ``path`` and ``line`` say where."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str


@dataclass(frozen=True)
class CorpusSummary:
    """What a pass over the corpus learns: the ids, the count and a content fingerprint."""

    path: Path
    ids: frozenset[str]
    fingerprint: str

    @property
    def count(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Judged:
    """Queries with their judgments. ``qrels[qid][doc_id]`` is the graded relevance (0 = judged
    not relevant). ``queries`` holds only the judged queries that have at least one relevant
    document: a query with no relevant document has no defined nDCG or MRR and is left out
    (counted in ``skipped_no_relevant``)."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    qrels_path: Path
    skipped_no_relevant: int = 0


@dataclass(frozen=True)
class Dataset:
    name: str
    root: Path
    corpus: CorpusSummary
    judged: Judged

    @property
    def corpus_path(self) -> Path:
        return self.corpus.path


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    if not path.is_file():
        raise DatasetError(path, None, "file not found")
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise DatasetError(path, number, f"not valid JSON ({exc})") from exc
            if not isinstance(value, dict):
                raise DatasetError(path, number, "expected a JSON object")
            yield number, value


def _string(path: Path, line: int, record: dict[str, object], key: str,
            required: bool = True) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and key == "_id":
        return str(value)
    if not isinstance(value, str):
        missing = "missing" if value is None else f"not a string ({type(value).__name__})"
        raise DatasetError(path, line, f"field {key!r} is {missing}")
    if key == "_id" and not value:
        raise DatasetError(path, line, "field '_id' is empty")
    return value


def read_corpus(path: Path) -> Iterator[Document]:
    """Stream the documents of a ``corpus.jsonl``; ``title`` may be absent, ``text`` may not."""
    for doc, _ in _with_lines(path):
        yield doc


def document_digest(doc: Document) -> bytes:
    return hashlib.sha256(orjson.dumps([doc.id, doc.title, doc.text])).digest()


def scan_corpus(path: Path) -> CorpusSummary:
    """One streaming pass: check every line, collect the ids, fingerprint the content.

    The fingerprint is the sum, modulo 2**256, of each document's SHA-256 over (id, title,
    text): independent of line order, so a shuffled copy of the same collection is recognised,
    while any changed, added or removed document changes it.
    """
    ids: set[str] = set()
    total = 0
    for doc, line in _with_lines(path):
        if doc.id in ids:
            raise DatasetError(path, line, f"duplicate document id {doc.id!r}")
        ids.add(doc.id)
        total = (total + int.from_bytes(document_digest(doc), "big")) % (1 << 256)
    if not ids:
        raise DatasetError(path, None, "the corpus has no documents")
    return CorpusSummary(path, frozenset(ids), f"{total:064x}")


def _with_lines(path: Path) -> Iterator[tuple[Document, int]]:
    for line, record in _json_lines(path):
        yield Document(_string(path, line, record, "_id"),
                       _string(path, line, record, "title", required=False),
                       _string(path, line, record, "text")), line


def load_documents(path: Path, ids: set[str] | frozenset[str]) -> dict[str, Document]:
    """Only the named documents (for the rerank-only shortcut), in one streaming pass."""
    return {doc.id: doc for doc in read_corpus(path) if doc.id in ids}


def load_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for line, record in _json_lines(path):
        qid = _string(path, line, record, "_id")
        if qid in queries:
            raise DatasetError(path, line, f"duplicate query id {qid!r}")
        queries[qid] = _string(path, line, record, "text")
    return queries


def load_qrels(path: Path) -> list[tuple[int, str, str, int]]:
    """(line, query id, document id, score) for every judgment, in file order.

    A header line (``query-id corpus-id score``) is expected and skipped; a file without one
    is accepted when its first line is a judgment. A pair judged twice is an error.
    """
    if not path.is_file():
        raise DatasetError(path, None, "file not found")
    rows: list[tuple[int, str, str, int]] = []
    seen: dict[tuple[str, str], int] = {}
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.rstrip("\r\n")
            if not text.strip():
                continue
            parts = text.split("\t")
            if number == 1 and tuple(p.strip().lower() for p in parts) == QRELS_HEADER:
                continue
            if len(parts) == 4:  # TREC style: qid, iteration (ignored), doc id, score
                parts = [parts[0], parts[2], parts[3]]
            if len(parts) != 3:
                raise DatasetError(path, number, f"expected 3 tab-separated columns "
                                   f"(query-id, corpus-id, score), found {len(parts)}")
            qid, doc_id, score_text = (p.strip() for p in parts)
            if not qid or not doc_id:
                raise DatasetError(path, number, "empty query-id or corpus-id")
            try:
                score = int(score_text)
            except ValueError as exc:
                raise DatasetError(path, number,
                                   f"score {score_text!r} is not an integer") from exc
            if (qid, doc_id) in seen:
                raise DatasetError(path, number, f"query {qid!r} and document {doc_id!r} "
                                   f"were already judged on line {seen[qid, doc_id]}")
            seen[qid, doc_id] = number
            rows.append((number, qid, doc_id, score))
    if not rows:
        raise DatasetError(path, None, "no judgments")
    return rows


def judge(queries: dict[str, str], rows: list[tuple[int, str, str, int]], qrels_path: Path,
          corpus_ids: frozenset[str]) -> Judged:
    qrels: dict[str, dict[str, int]] = {}
    for line, qid, doc_id, score in rows:
        if qid not in queries:
            raise DatasetError(qrels_path, line, f"query {qid!r} is not in queries.jsonl")
        if doc_id not in corpus_ids:
            raise DatasetError(qrels_path, line,
                               f"document {doc_id!r} (query {qid!r}) is not in the corpus")
        qrels.setdefault(qid, {})[doc_id] = score
    kept = {qid: judgments for qid, judgments in qrels.items()
            if any(score > 0 for score in judgments.values())}
    return Judged(queries={qid: queries[qid] for qid in kept}, qrels=kept,
                  qrels_path=qrels_path, skipped_no_relevant=len(qrels) - len(kept))


def load_dataset(root: Path, qrels: Path | None = None) -> Dataset:
    """Check and load a BEIR directory; ``qrels`` defaults to ``root/qrels.tsv`` (or
    ``root/qrels/test.tsv``, BEIR's own download layout)."""
    if not root.is_dir():
        raise DatasetError(root, None, "not a directory")
    if qrels is None:
        qrels = root / "qrels.tsv"
        if not qrels.exists() and (root / "qrels" / "test.tsv").exists():
            qrels = root / "qrels" / "test.tsv"
    rows = load_qrels(qrels)
    queries = load_queries(root / "queries.jsonl")
    corpus = scan_corpus(root / "corpus.jsonl")
    judged = judge(queries, rows, qrels, corpus.ids)
    if not judged.queries:
        raise DatasetError(qrels, None, "no query has a relevant (score > 0) judgment")
    return Dataset(root.resolve().name, root, corpus, judged)
