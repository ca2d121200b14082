"""WikiQA questions held out from training: how a model reranks a domain it was not tuned on.

Each held-out question's candidate sentences (its own, right and wrong, as WikiQA gives them)
are ranked by the model; MRR and nDCG@10 (binary) over questions with at least one right and
one wrong answer, the usual WikiQA protocol. The split is ``finetune._wikiqa``'s (seeded by
question), so any model can be measured on exactly the questions the default model never saw:

    python -m crossrank.train.heldout --model onnx_models/NAME [--model OTHER ...]
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from crossrank.train.data import WikiQAQuestion, load_wikiqa

if TYPE_CHECKING:
    from crossrank.models import CrossEncoder

DEFAULT_PAIRS = Path("..") / "shared" / "datasets" / "wikiqa-train" / "train_pairs.jsonl"


def held_out(questions: Sequence[WikiQAQuestion], fraction: float,
             seed: int) -> tuple[list[WikiQAQuestion], list[WikiQAQuestion]]:
    """(train, held out), split by question with a fixed seed."""
    order = list(range(len(questions)))
    random.Random(seed).shuffle(order)
    cut = round(len(order) * fraction)
    return [questions[i] for i in order[cut:]], [questions[i] for i in sorted(order[:cut])]


def ranking_metrics(scores: Sequence[np.ndarray], labels: Sequence[Sequence[int]]
                    ) -> dict[str, float]:
    mrr, ndcg = [], []
    for score, label in zip(scores, labels, strict=True):
        order = np.argsort(-np.asarray(score), kind="stable")
        ranked = [label[i] for i in order]
        first = next(i for i, v in enumerate(ranked) if v > 0)
        mrr.append(1.0 / (first + 1))
        dcg = sum(v / math.log2(i + 2) for i, v in enumerate(ranked[:10]) if v > 0)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(10, sum(label))))
        ndcg.append(dcg / ideal)
    return {"mrr": round(float(np.mean(mrr)), 4), "ndcg@10": round(float(np.mean(ndcg)), 4)}


def wikiqa_scores(model: CrossEncoder, questions: Sequence[WikiQAQuestion]) -> dict[str, Any]:
    """A loaded model's ranking of each question's candidate sentences."""
    flat = model.score([(q.question, s) for q in questions for s in (*q.positives,
                                                                      *q.negatives)])
    scores, labels, start = [], [], 0
    for q in questions:
        n = len(q.positives) + len(q.negatives)
        scores.append(flat[start:start + n])
        labels.append([1] * len(q.positives) + [0] * len(q.negatives))
        start += n
    return {"questions": len(questions), **ranking_metrics(scores, labels)}


def main(
    model: Annotated[list[Path], typer.Option(help="Model directories to measure.")],
    pairs: Annotated[Path, typer.Option(help="WikiQA train pairs (jsonl).")] = DEFAULT_PAIRS,
    fraction: Annotated[float, typer.Option(help="Held-out share.")] = 0.2,
    seed: Annotated[int, typer.Option(help="The training run's seed.")] = 13,
    threads: int = 2,
) -> None:
    """MRR and nDCG@10 of each model on the held-out WikiQA questions."""
    from crossrank.models import CrossEncoder

    _, held = held_out(load_wikiqa(pairs), fraction, seed)
    for directory in model:
        loaded = CrossEncoder.load(directory, intra_op_threads=threads)
        try:
            typer.echo(json.dumps({"model": str(directory), **wikiqa_scores(loaded, held)}))
        finally:
            loaded.close()


if __name__ == "__main__":
    typer.run(main)
