"""Listwise training groups: one query, its positive first, then hard negatives.

Three sources, each a list of ``Group``s:

- ``claim_groups``: a SciFact TRAIN claim, one judged abstract, and negatives drawn from its
  BM25 top ``negatives_from_top`` (every judged abstract of the claim left out);
- ``synthetic_groups``: corpus abstracts as their own queries (inverse cloze): a title for the
  abstract without it, or a sentence from the second half for the abstract without that
  sentence; negatives are the query's BM25 hits minus the source document. No judgment is used;
- ``wikiqa_groups``: a question, one correct sentence and wrong candidates of the same question.

``teacher`` carries the bi-encoder's cosine for every (query, document) of the group, in
order, for the distillation term of the loss.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from crossrank.eval.datasets import Document
from crossrank.train.data import WikiQAQuestion, render, sentences

Teacher = Callable[[str, Sequence[str]], list[float]]
"""(query key, document keys) -> cosine for each document."""


@dataclass(frozen=True)
class Group:
    source: str
    query: str
    docs: tuple[str, ...]
    teacher: tuple[float, ...] | None
    max_length: int


@dataclass(frozen=True)
class SyntheticQuery:
    """An inverse-cloze query made from one corpus document."""

    key: str
    kind: str  # "title" or "sentence"
    doc_id: str
    query: str
    positive: str


def make_synthetic(corpus: Mapping[str, Document], title_count: int, sentence_count: int,
                   seed: int) -> list[SyntheticQuery]:
    """Documents sampled with a fixed seed; titles and sentences from different documents."""
    rng = random.Random(seed)
    ids = sorted(corpus)
    rng.shuffle(ids)
    made: list[SyntheticQuery] = []
    titles = 0
    for doc_id in ids:
        doc = corpus[doc_id]
        if titles < title_count and len(doc.title.split()) >= 4:
            made.append(SyntheticQuery(f"title:{doc_id}", "title", doc_id, doc.title, doc.text))
            titles += 1
            continue
        parts = sentences(doc.text)
        if len(made) - titles < sentence_count and len(parts) >= 4:
            pick = rng.randrange(len(parts) // 2, len(parts))
            if len(parts[pick].split()) < 6:
                continue
            rest = " ".join(parts[:pick] + parts[pick + 1:])
            made.append(SyntheticQuery(f"sentence:{doc_id}", "sentence", doc_id, parts[pick],
                                       f"{doc.title}. {rest}" if doc.title else rest))
        if titles >= title_count and len(made) - titles >= sentence_count:
            break
    return made


def _negatives(ranked: Sequence[str], exclude: set[str], top: int, count: int,
               corpus_ids: Sequence[str], rng: random.Random) -> list[str]:
    pool = [doc_id for doc_id in ranked[:top] if doc_id not in exclude]
    picked = rng.sample(pool, min(count, len(pool)))
    while len(picked) < count:  # a query with few BM25 hits: fill with random abstracts
        doc_id = rng.choice(corpus_ids)
        if doc_id not in exclude and doc_id not in picked:
            picked.append(doc_id)
    return picked


def claim_groups(claims: Mapping[str, str], qrels: Mapping[str, set[str]],
                 candidates: Mapping[str, Sequence[str]], corpus: Mapping[str, Document],
                 teacher: Teacher | None, *, template: str, negatives: int, top: int,
                 epochs: int, max_length: int, rng: random.Random) -> list[Group]:
    corpus_ids = sorted(corpus)
    groups: list[Group] = []
    for _ in range(epochs):
        for qid in sorted(claims):
            for positive in sorted(qrels[qid]):
                negs = _negatives(candidates[f"claim:{qid}"], qrels[qid], top, negatives,
                                  corpus_ids, rng)
                doc_ids = [positive, *negs]
                groups.append(Group(
                    "scifact", claims[qid], tuple(render(corpus[d], template) for d in doc_ids),
                    None if teacher is None else tuple(teacher(f"claim:{qid}", doc_ids)),
                    max_length))
    return groups


def synthetic_groups(queries: Sequence[SyntheticQuery],
                     candidates: Mapping[str, Sequence[str]], corpus: Mapping[str, Document],
                     teacher: Teacher | None, *, template: str, negatives: int, top: int,
                     max_length: int, rng: random.Random) -> list[Group]:
    corpus_ids = sorted(corpus)
    groups: list[Group] = []
    for query in queries:
        negs = _negatives(candidates[query.key], {query.doc_id}, top, negatives, corpus_ids,
                          rng)
        # a title query must not find its own title in any document of the group
        neg_template = "{text}" if query.kind == "title" else template
        docs = (query.positive, *(render(corpus[d], neg_template) for d in negs))
        groups.append(Group(
            query.kind, query.query, docs,
            None if teacher is None else tuple(teacher(query.key, [query.doc_id, *negs])),
            max_length))
    return groups


def wikiqa_groups(questions: Sequence[WikiQAQuestion], wiki_teacher: Teacher | None, *,
                  negatives: int, count: int, max_length: int,
                  rng: random.Random) -> list[Group]:
    """``wiki_teacher`` takes the question and the sentences themselves as keys."""
    chosen = list(questions)
    rng.shuffle(chosen)
    groups: list[Group] = []
    for question in chosen[:count]:
        positive = rng.choice(question.positives)
        negs = rng.sample(question.negatives, min(negatives, len(question.negatives)))
        docs = (positive, *negs)
        groups.append(Group(
            "wikiqa", question.question, docs,
            None if wiki_teacher is None else tuple(wiki_teacher(question.question, docs)),
            max_length))
    return groups
