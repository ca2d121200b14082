"""What one `crossrank tune` run is asked to do, and its judged queries.

Judgments come as a BEIR directory (``queries.jsonl`` and ``qrels.tsv``, or ``--qrels``) or as
one TSV of ``query text, document id, grade`` (``--judgments``). Only judged queries with at
least one relevant document count.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from crossrank.eval.datasets import DatasetError, Judged, load_qrels, load_queries

PLACEHOLDER = "{{query}}"


@dataclass(frozen=True)
class TuneOptions:
    policy: str
    dataset: Path | None = None
    qrels: Path | None = None
    judgments: Path | None = None
    index: str | None = None
    query: str | None = None
    windows: tuple[int, ...] = (10, 20, 30, 50)
    folds: int = 5
    seed: int = 0
    proxy: str = "http://127.0.0.1:8080"
    admin_token: str | None = None
    apply: bool = False
    write_card: Path | None = None
    out: Path | None = None
    limit: int | None = None
    progress: bool = True

    def command_line(self) -> str:
        parts = ["crossrank", "tune", "--policy", self.policy]
        for flag, value in (("--dataset", self.dataset), ("--qrels", self.qrels),
                            ("--judgments", self.judgments), ("--index", self.index),
                            ("--query", self.query), ("--limit", self.limit)):
            if value is not None:
                parts += [flag, str(value)]
        parts += ["--windows", ",".join(map(str, self.windows)), "--folds", str(self.folds),
                  "--seed", str(self.seed)]
        return shlex.join(parts)


def load_judgments(options: TuneOptions) -> Judged:
    if (options.dataset is None) == (options.judgments is None):
        raise DatasetError(Path("."), None, "give either --dataset DIR or --judgments TSV")
    if options.dataset is not None:
        qrels = options.qrels or options.dataset / "qrels.tsv"
        queries = load_queries(options.dataset / "queries.jsonl")
        rows = load_qrels(qrels)
        path = qrels
    else:
        assert options.judgments is not None
        path = options.judgments
        queries, rows = _tsv(path)
    graded: dict[str, dict[str, int]] = {}
    for line, qid, doc_id, grade in rows:
        if qid not in queries:
            raise DatasetError(path, line, f"query {qid!r} is not in queries.jsonl")
        graded.setdefault(qid, {})[doc_id] = grade
    kept = {q: g for q, g in graded.items() if any(v > 0 for v in g.values())}
    ids = sorted(kept)[: options.limit] if options.limit else sorted(kept)
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


def search_query(template: str | None, text_fields: Sequence[str]) -> Any:
    if template is None:
        return {"multi_match": {"query": PLACEHOLDER, "fields": list(text_fields)}}
    try:
        parsed = orjson.loads(template)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"--query is not valid JSON: {exc}") from exc
    if PLACEHOLDER not in template or not isinstance(parsed, dict):
        raise ValueError(f"--query must be a JSON object containing {PLACEHOLDER!r}")
    return parsed
