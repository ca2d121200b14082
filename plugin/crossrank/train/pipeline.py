"""One training run end to end, without the command line: groups, student, loop, best state."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.train.config import TrainConfig
from crossrank.train.data import render
from crossrank.train.groups import Group, claim_groups, synthetic_groups, wikiqa_groups
from crossrank.train.prepare import Prepared
from crossrank.train.student import load_student, score_pairs
from crossrank.train.trainer import TrainResult, Validator, train
from crossrank.train.validate import evaluate_window


@dataclass
class Trained:
    model: Any
    tokenizer: Any
    result: TrainResult
    group_counts: dict[str, int]


def build_groups(prepared: Prepared, config: TrainConfig) -> list[Group]:
    rng = random.Random(config.seed)
    data = prepared.scifact
    claims = {q: data.claims[q] for q in prepared.split.train}
    ranked = {key: [d for d, _ in hits] for key, hits in prepared.candidates.items()}
    distill = config.distill_weight > 0
    groups = claim_groups(
        claims, data.qrels, ranked, data.corpus, prepared.teacher if distill else None,
        template=config.doc_template, negatives=config.negatives,
        top=config.negatives_from_top, epochs=config.scifact_epochs,
        max_length=config.max_length, rng=rng)
    groups += synthetic_groups(
        prepared.synthetic, ranked, data.corpus, prepared.teacher if distill else None,
        template=config.doc_template, negatives=config.negatives,
        top=config.negatives_from_top, max_length=config.max_length, rng=rng)
    groups += wikiqa_groups(
        prepared.wikiqa, prepared.wiki_teacher if distill else None, negatives=config.negatives,
        count=config.wikiqa_groups, max_length=config.wikiqa_max_length, rng=rng)
    return groups


def make_validator(prepared: Prepared, tokenizer: Any, config: TrainConfig) -> Validator:
    """nDCG@10 of the validation claims' BM25 top ``val_window``, reranked by the model."""
    data = prepared.scifact
    qids = prepared.split.validation
    candidates = {q: prepared.candidates[f"claim:{q}"] for q in qids}
    qrels = {q: dict.fromkeys(data.qrels[q], 1) for q in qids}
    pairs = [(data.claims[q], render(data.corpus[d], config.doc_template))
             for q in qids for d, _ in candidates[q][:config.val_window]]

    def validate(model: Any) -> Any:
        flat = score_pairs(model, tokenizer, pairs, config.max_length, bf16=config.bf16)
        scores: dict[str, np.ndarray] = {}
        start = 0
        for q in qids:
            n = len(candidates[q][:config.val_window])
            scores[q] = flat[start:start + n].astype(np.float64)
            start += n
        return evaluate_window(candidates, scores, qrels, config.val_window,
                               config.blend_alphas)
    return validate


def teacher_report(prepared: Prepared, config: TrainConfig) -> dict[str, object]:
    """The bi-encoder teacher on the same validation windows: what distillation aims at."""
    qids = prepared.split.validation
    candidates = {q: prepared.candidates[f"claim:{q}"] for q in qids}
    qrels = {q: dict.fromkeys(prepared.scifact.qrels[q], 1) for q in qids}
    scores = {q: np.array(prepared.teacher(f"claim:{q}", [d for d, _ in candidates[q]]))
              for q in qids}
    return evaluate_window(candidates, scores, qrels, config.val_window,
                           config.blend_alphas).as_dict()


def run_training(prepared: Prepared, config: TrainConfig, student_dir: Path) -> Trained:
    groups = build_groups(prepared, config)
    counts: dict[str, int] = {}
    for group in groups:
        counts[group.source] = counts.get(group.source, 0) + 1
    model, tokenizer = load_student(student_dir, config.seed)
    validator = make_validator(prepared, tokenizer, config)
    began = time.monotonic()
    result = train(model, tokenizer, groups, config, validator)
    if result.best_state is not None:
        model.load_state_dict(result.best_state)
    result.seconds = time.monotonic() - began
    return Trained(model, tokenizer, result, counts)
