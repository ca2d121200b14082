"""Length-sorted, token-budgeted, padded batches: the numpy inputs of one ONNX run each."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

# Padded tokens per ONNX run. Small batches are fastest on CPU: a batch's activations stay in
# the core's cache. MiniLM-L6, int8 and fp32, one thread per run, batches in parallel on
# 2 cores: 256 was 6-15% faster than 1024-4096 at max_length 128 and 256 (docs/benchmarks.md,
# "Scorer"). A sequence longer than the budget runs alone.
DEFAULT_MAX_BATCH_TOKENS = 256

# Attention memory and time grow with length squared: past this length a batch is cut further,
# so that rows x length^2 stays within max_batch_tokens x ATTENTION_LENGTH.
ATTENTION_LENGTH = 512


@dataclass(frozen=True)
class Batch:
    rows: npt.NDArray[np.intp]
    """Positions of this batch's sequences in the caller's input."""
    input_ids: IntArray
    attention_mask: IntArray
    token_type_ids: IntArray


def plan(lengths: Sequence[int] | npt.NDArray[np.integer[Any]],
         max_batch_tokens: int) -> list[npt.NDArray[np.intp]]:
    """Group sequence positions, longest first, so each batch's padded size stays in budget.

    A batch holds ``rows`` sequences padded to its longest, ``length``: it is closed before
    ``rows * length`` exceeds ``max_batch_tokens`` (or, for long sequences, before
    ``rows * length**2`` exceeds ``max_batch_tokens * ATTENTION_LENGTH``). A sequence longer
    than the budget runs alone.
    """
    sizes = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-sizes, kind="stable")
    batches: list[npt.NDArray[np.intp]] = []
    start = 0
    while start < len(order):
        longest = max(int(sizes[order[start]]), 1)
        rows = max_batch_tokens // longest
        if longest > ATTENTION_LENGTH:
            rows = min(rows, max_batch_tokens * ATTENTION_LENGTH // (longest * longest))
        stop = min(start + max(rows, 1), len(order))
        batches.append(order[start:stop])
        start = stop
    return batches


def pad(encodings: Sequence[Any], rows: npt.NDArray[np.intp], pad_id: int) -> Batch:
    """Stack the encodings at ``rows`` into right-padded arrays."""
    width = max(len(encodings[row].ids) for row in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)
    token_type_ids = np.zeros((len(rows), width), dtype=np.int64)
    for line, row in enumerate(rows):
        encoding = encodings[row]
        size = len(encoding.ids)
        input_ids[line, :size] = encoding.ids
        attention_mask[line, :size] = 1
        token_type_ids[line, :size] = encoding.type_ids
    return Batch(rows, input_ids, attention_mask, token_type_ids)


def batches(encodings: Sequence[Any], max_batch_tokens: int, pad_id: int) -> Iterator[Batch]:
    for rows in plan([len(encoding.ids) for encoding in encodings], max_batch_tokens):
        yield pad(encodings, rows, pad_id)
