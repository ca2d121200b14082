"""The student: a one-logit BERT cross-encoder initialised from the bi-encoder's encoder.

The encoder layers (and the pooler the checkpoint carries) come from all-MiniLM-L6-v2; the
classification head is new. Pairs are encoded ``[CLS] query [SEP] document [SEP]`` with
``longest_first`` truncation, the way the ONNX runtime encodes them at serving time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from crossrank.train.groups import Group


def load_student(model_dir: Path, seed: int) -> tuple[Any, Any]:
    """(model, tokenizer); the seed fixes the new head's initial weights."""
    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(
        str(model_dir), num_labels=1, problem_type="regression")
    tokenizer = cast(Any, AutoTokenizer).from_pretrained(str(model_dir))
    return model, tokenizer


def tiny_student(seed: int, vocab_size: int = 30522) -> Any:
    """A two-layer model built from a config, for tests: no weights are read."""
    torch.manual_seed(seed)
    config = cast(Any, BertConfig)(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=1,
                        problem_type="regression")
    return cast(Any, BertForSequenceClassification)(config)


def encode(tokenizer: Any, queries: Sequence[str], docs: Sequence[str],
           max_length: int) -> dict[str, torch.Tensor]:
    batch = tokenizer(list(queries), list(docs), padding=True, truncation="longest_first",
                      max_length=max_length, return_tensors="pt")
    return dict(batch)


def group_batch(tokenizer: Any, groups: Sequence[Group]) -> tuple[dict[str, torch.Tensor],
                                                                  list[int]]:
    """All pairs of the groups in one padded batch, and each group's size."""
    queries = [g.query for g in groups for _ in g.docs]
    docs = [d for g in groups for d in g.docs]
    max_length = max(g.max_length for g in groups)
    return encode(tokenizer, queries, docs, max_length), [len(g.docs) for g in groups]


@torch.inference_mode()
def score_pairs(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int,
                batch_size: int = 32, bf16: bool = True) -> npt.NDArray[np.float32]:
    """The model's logit for each pair, in order; pairs are batched by length."""
    was_training = model.training
    model.eval()
    out = np.zeros(len(pairs), dtype=np.float32)
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = encode(tokenizer, [pairs[i][0] for i in idx], [pairs[i][1] for i in idx],
                       max_length)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(**batch).logits
        out[idx] = logits.float().reshape(-1).numpy()
    model.train(was_training)
    return out
