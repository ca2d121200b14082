"""The training collections: SciFact with its TRAIN judgments only, and WikiQA's train pairs.

SciFact's test judgments (``qrels.tsv``) are never read here: training, validation, early
stopping and the blend weight all come from ``qrels_train.tsv``, split by claim.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from crossrank.eval.datasets import Document, load_qrels, load_queries, read_corpus

TRAIN_QRELS = "qrels_train.tsv"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


@dataclass(frozen=True)
class SciFact:
    """Corpus, claims with a relevant TRAIN judgment, and those judgments."""

    root: Path
    corpus: dict[str, Document]
    claims: dict[str, str]
    qrels: dict[str, set[str]]
    fingerprint: str


@dataclass(frozen=True)
class Split:
    train: list[str]
    validation: list[str]


@dataclass(frozen=True)
class WikiQAQuestion:
    question: str
    positives: list[str]
    negatives: list[str]


def find_scifact(repo: Path) -> Path:
    """The repository's own copy if present, else the shared one beside the checkout."""
    for candidate in (repo / "datasets" / "scifact", repo.parent / "shared" / "datasets" /
                      "scifact"):
        if (candidate / TRAIN_QRELS).is_file():
            return candidate
    raise FileNotFoundError(f"no SciFact copy with {TRAIN_QRELS} under {repo}/datasets or "
                            f"{repo.parent}/shared/datasets")


def load_scifact(root: Path) -> SciFact:
    corpus = {doc.id: doc for doc in read_corpus(root / "corpus.jsonl")}
    queries = load_queries(root / "queries.jsonl")
    qrels: dict[str, set[str]] = {}
    for _, qid, doc_id, score in load_qrels(root / TRAIN_QRELS):
        if score > 0 and doc_id in corpus and qid in queries:
            qrels.setdefault(qid, set()).add(doc_id)
    digest = hashlib.sha256((root / "corpus.jsonl").read_bytes()).hexdigest()
    return SciFact(root, corpus, {qid: queries[qid] for qid in qrels}, qrels, digest)


def split_queries(query_ids: Sequence[str], val_fraction: float, seed: int) -> Split:
    """A fixed, seeded split of judged queries into train and held out (validation)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    ordered = sorted(query_ids, key=lambda q: (len(q), q))
    random.Random(seed).shuffle(ordered)
    cut = max(1, round(len(ordered) * val_fraction))
    return Split(train=sorted(ordered[cut:]), validation=sorted(ordered[:cut]))


def render(doc: Document, template: str) -> str:
    """The text the cross-encoder scores, built like a policy's template."""
    return template.format(title=doc.title, text=doc.text, _id=doc.id).strip()


def sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


def load_wikiqa(path: Path) -> list[WikiQAQuestion]:
    """Questions with at least one correct and one wrong candidate sentence, in file order."""
    grouped: dict[str, WikiQAQuestion] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            row = orjson.loads(raw)
            try:
                qid, query, passage, label = (row["qid"], row["query"], row["passage"],
                                              int(row["label"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}, line {number}: expected qid, query, passage and "
                                 f"label") from exc
            entry = grouped.setdefault(str(qid), WikiQAQuestion(str(query), [], []))
            (entry.positives if label > 0 else entry.negatives).append(str(passage))
    return [q for q in grouped.values() if q.positives and q.negatives]
