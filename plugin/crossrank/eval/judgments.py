"""Judged queries from a user: a BEIR directory or one TSV of query text, document id, grade.

Read the same way by ``crossrank tune`` and ``crossrank finetune``. Only judged queries with at
least one relevant document count (``Judged.skipped_no_relevant`` says how many did not).
"""

from __future__ import annotations

from pathlib import Path

from crossrank.eval.datasets import DatasetError, Judged, load_qrels, load_queries


def read_judgments(dataset: Path | None, qrels: Path | None, judgments: Path | None,
                   limit: int | None = None) -> Judged:
    """The judged queries with at least one relevant document, sorted by id (``limit``: the
    first N of them). Exactly one of ``dataset`` (``qrels`` defaults to its ``qrels.tsv``)
    and ``judgments`` is given."""
    if (dataset is None) == (judgments is None):
        raise DatasetError(Path("."), None, "give either --dataset DIR or --judgments TSV")
    if dataset is not None:
        qrels = qrels or dataset / "qrels.tsv"
        queries = load_queries(dataset / "queries.jsonl")
        rows = load_qrels(qrels)
        path = qrels
    else:
        assert judgments is not None
        path = judgments
        queries, rows = _tsv(path)
    graded: dict[str, dict[str, int]] = {}
    for line, qid, doc_id, grade in rows:
        if qid not in queries:
            raise DatasetError(path, line, f"query {qid!r} is not in queries.jsonl")
        graded.setdefault(qid, {})[doc_id] = grade
    kept = {q: g for q, g in graded.items() if any(v > 0 for v in g.values())}
    ids = sorted(kept)[: limit] if limit else sorted(kept)
    return Judged({q: queries[q] for q in ids}, {q: kept[q] for q in ids}, path,
                  len(graded) - len(kept))


def _tsv(path: Path) -> tuple[dict[str, str], list[tuple[int, str, str, int]]]:
    """``query text <TAB> document id <TAB> grade``; each distinct text is one query."""
    if not path.is_file():
        raise DatasetError(path, None, "file not found")
    queries: dict[str, str] = {}
    ids: dict[str, str] = {}
    rows = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        parts = raw.split("\t")
        if len(parts) != 3:
            raise DatasetError(path, number, "expected query <TAB> document id <TAB> grade")
        text, doc_id, grade = (p.strip() for p in parts)
        if number == 1 and not grade.lstrip("-").isdigit():
            continue  # a header line
        try:
            value = int(grade)
        except ValueError as exc:
            raise DatasetError(path, number, f"grade {grade!r} is not an integer") from exc
        qid = ids.setdefault(text, f"q{len(ids) + 1}")
        queries[qid] = text
        rows.append((number, qid, doc_id, value))
    if not rows:
        raise DatasetError(path, None, "no judgments")
    return queries, rows
