"""How closely an exported model, run by the crossrank runtime, follows its PyTorch original.

The rank metrics are plain numpy (used by tests and benchmarks too); the references import
torch inside the functions, so this module stays importable without the export extra.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from crossrank.models.cross_encoder import CrossEncoder, reduce_logits
from crossrank.models.embedder import Embedder
from crossrank.models.manifest import Parity
from crossrank.models.sample_texts import PairSample, text_sample

FloatArray = npt.NDArray[np.floating[Any]]
ScoreFn = Callable[[list[tuple[str, str]]], FloatArray]
REFERENCE_BATCH = 16


def spearman(a: FloatArray, b: FloatArray) -> float:
    """Spearman rank correlation (ties broken by position; scores are continuous)."""
    rank_a = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(np.float64)
    rank_b = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(np.float64)
    if len(a) < 2 or rank_a.std() == 0 or rank_b.std() == 0:
        return 1.0
    return float(np.corrcoef(rank_a, rank_b)[0, 1])


def top_k_overlap(reference: FloatArray, other: FloatArray, k: int = 10) -> float:
    """Share of the reference's top ``k`` that is also in the other's top ``k``."""
    k = min(k, len(reference))
    if k == 0:
        return 1.0
    top_ref = set(np.argsort(-reference, kind="stable")[:k].tolist())
    top_other = set(np.argsort(-other, kind="stable")[:k].tolist())
    return len(top_ref & top_other) / k


@dataclass(frozen=True)
class Agreement:
    """How one scorer follows another over a sample's queries, each ranking its candidates."""

    pairs: int
    max_abs_diff: float
    spearman: float
    """Mean over the queries; ``min_spearman`` is the worst query's."""
    min_spearman: float
    top10_overlap: float


def agreement(sample: PairSample, reference: ScoreFn, other: ScoreFn) -> Agreement:
    """``other``'s scores against ``reference``'s, query by query."""
    diffs, correlations, overlaps = [], [], []
    for query, documents in zip(sample.queries, sample.candidates, strict=True):
        pairs = [(query, document) for document in documents]
        expected, got = reference(pairs), other(pairs)
        diffs.append(float(np.abs(got - expected).max()))
        correlations.append(spearman(expected, got))
        overlaps.append(top_k_overlap(expected, got, 10))
    return Agreement(pairs=sum(len(c) for c in sample.candidates), max_abs_diff=max(diffs),
                     spearman=float(np.mean(correlations)), min_spearman=min(correlations),
                     top10_overlap=float(np.mean(overlaps)))


def cross_encoder_parity(model: Any, tokenizer: Any, exported: CrossEncoder, sample: PairSample,
                         max_length: int) -> Parity:
    """Raw scores (before the activation) of ``exported`` against the PyTorch ``model``."""
    found = agreement(
        sample, lambda pairs: torch_raw_scores(model, tokenizer, exported, pairs, max_length),
        lambda pairs: exported.raw_scores(pairs, max_length=max_length))
    return Parity(reference=_reference_name(), data=sample.data, max_length=max_length,
                  texts=found.pairs, max_abs_diff=found.max_abs_diff,
                  queries=len(sample.queries), candidates=len(sample.candidates[0]),
                  spearman=found.spearman, top10_overlap=found.top10_overlap)


def torch_raw_scores(model: Any, tokenizer: Any, exported: CrossEncoder,
                     pairs: list[tuple[str, str]], max_length: int) -> npt.NDArray[np.float32]:
    import torch

    assert exported.manifest.score is not None
    scores = []
    with torch.inference_mode():
        for start in range(0, len(pairs), REFERENCE_BATCH):
            chunk = pairs[start:start + REFERENCE_BATCH]
            inputs = tokenizer([q for q, _ in chunk], [d for _, d in chunk], padding=True,
                               truncation="only_second", max_length=max_length,
                               return_tensors="pt")
            logits = model(**inputs).logits.float().numpy()
            scores.append(reduce_logits(logits, exported.manifest.score))
    return np.concatenate(scores).astype(np.float32)


def embedder_parity(model: Any, tokenizer: Any, exported: Embedder, count: int = 64) -> Parity:
    data, texts = text_sample(count)
    reference = torch_embeddings(model, tokenizer, exported, texts)
    got = exported.embed(texts)
    cosine = (got * reference).sum(axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1))
    return Parity(reference=_reference_name(), data=data, max_length=exported.manifest.max_length,
                  texts=len(texts), max_abs_diff=float(np.abs(got - reference).max()),
                  min_cosine=float(cosine.min()))


def torch_embeddings(model: Any, tokenizer: Any, exported: Embedder,
                     texts: list[str]) -> npt.NDArray[np.float32]:
    """The sentence-transformers computation (Transformer, Pooling, Normalize) in torch."""
    import torch

    pooling = exported.manifest.pooling
    assert pooling is not None
    vectors = []
    with torch.inference_mode():
        for start in range(0, len(texts), REFERENCE_BATCH):
            inputs = tokenizer(texts[start:start + REFERENCE_BATCH], padding=True,
                               truncation=True, max_length=exported.manifest.max_length,
                               return_tensors="pt")
            hidden = model(**inputs).last_hidden_state.float()
            mask = inputs["attention_mask"].unsqueeze(-1).float()
            if pooling.mode == "cls":
                pooled = hidden[:, 0]
            elif pooling.mode == "max":
                pooled = hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
            else:
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            if pooling.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            vectors.append(pooled.numpy())
    return np.concatenate(vectors).astype(np.float32)


def _reference_name() -> str:
    import torch
    import transformers

    return f"pytorch fp32 (torch {torch.__version__}, transformers {transformers.__version__})"
