"""Listwise training groups: one query, its positive first, then hard negatives.

Three sources, each a list of ``Group``s:

- ``judged_groups``: a user's judged query, one relevant document, and negatives drawn from the
  query's first-stage top ``negatives_from_top`` (every relevant document left out), the texts
  as the index holds them (``proxy_mining``);
- ``synthetic_groups``: corpus abstracts as their own queries (inverse cloze): a title for the
  abstract without it, or a sentence from the second half for the abstract without that
  sentence; negatives are the query's first-stage hits minus the source document. No
  judgment is used;
- ``wikiqa_groups``: a question, one correct sentence and wrong candidates of the same question.

``teacher`` carries a teacher's score for every (query, document) of the group, in order, for
the distillation term of the loss (``with_teacher``: the bi-encoder's cosine, or the starting
cross-encoder's own logit, which keeps a fine-tune close to what it started from).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from crossrank.eval.datasets import Document
from crossrank.train.data import WikiQAQuestion, render, sentences

BatchTeacher = Callable[[Sequence[tuple[str, str]]], Sequence[float]]
"""(query, document) text pairs -> the teacher's score of each, in order."""


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


def judged_groups(queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                  candidates: Mapping[str, Sequence[str]], texts: Mapping[str, str],
                  *, negatives: int, top: int, epochs: int, max_length: int,
                  rng: random.Random, source: str = "judged") -> list[Group]:
    """One group per (query, relevant document) and epoch: the document against negatives
    drawn from the query's top ``top`` candidates, every relevant document left out (a judged
    non-relevant one may be drawn: it is a negative the user vouches for). Documents the
    index lacks (no text) are skipped."""
    pool_ids = sorted(texts)
    groups: list[Group] = []
    for _ in range(epochs):
        for qid in sorted(queries):
            relevant = {d for d, grade in qrels[qid].items() if grade > 0}
            for positive in sorted(relevant):
                if positive not in texts:
                    continue
                ranked = [d for d in candidates.get(qid, ()) if d in texts]
                negs = _negatives(ranked, relevant, top, negatives, pool_ids, rng)
                groups.append(Group(source, queries[qid],
                                    tuple(texts[d] for d in (positive, *negs)), None,
                                    max_length))
    return groups


def with_teacher(groups: Sequence[Group], teacher: BatchTeacher | None) -> list[Group]:
    """The groups with the teacher's score of every (query, document) pair filled in."""
    if teacher is None:
        return list(groups)
    pairs = [(g.query, d) for g in groups for d in g.docs]
    scores = teacher(pairs)
    out: list[Group] = []
    start = 0
    for group in groups:
        size = len(group.docs)
        out.append(dataclasses.replace(group, teacher=tuple(scores[start:start + size])))
        start += size
    return out


def synthetic_groups(queries: Sequence[SyntheticQuery],
                     candidates: Mapping[str, Sequence[str]], corpus: Mapping[str, Document],
                     *, template: str, negatives: int, top: int, max_length: int,
                     rng: random.Random) -> list[Group]:
    corpus_ids = sorted(corpus)
    groups: list[Group] = []
    for query in queries:
        ranked = [d for d in candidates.get(query.key, ()) if d in corpus]
        negs = _negatives(ranked, {query.doc_id}, top, negatives, corpus_ids, rng)
        # a title query must not find its own title in any document of the group
        neg_template = "{text}" if query.kind == "title" else template
        docs = (query.positive, *(render(corpus[d], neg_template) for d in negs))
        groups.append(Group(query.kind, query.query, docs, None, max_length))
    return groups


def wikiqa_groups(questions: Sequence[WikiQAQuestion], *, negatives: int, count: int,
                  max_length: int, rng: random.Random) -> list[Group]:
    """A question, one correct sentence and up to ``negatives`` wrong ones of the same
    question; ``count`` questions, in the order given."""
    groups: list[Group] = []
    for question in questions[:count]:
        positive = rng.choice(question.positives)
        negs = rng.sample(question.negatives, min(negatives, len(question.negatives)))
        groups.append(Group("wikiqa", question.question, (positive, *negs), None, max_length))
    return groups
