"""The student: the one-logit cross-encoder a run starts from, and batch encoding.

It starts from a local Hugging Face directory: a cross-encoder (``*ForSequenceClassification``
with one logit: it is fine-tuned as it is), a crossrank model directory that kept its PyTorch
weights (``pytorch/`` beside ``model.onnx``), or an encoder without a head (the
all-MiniLM-L6-v2 bi-encoder for the default model: the head is new, seeded). Pairs are encoded
``[CLS] query [SEP] document [SEP]`` with ``longest_first`` truncation, the way the ONNX runtime
encodes them at serving time. Training runs on CUDA when torch sees a GPU, else on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
)

from crossrank.train.groups import Group

WEIGHTS_DIR = "pytorch"
"""Where a crossrank model directory keeps its PyTorch weights (fp16 safetensors)."""


class StartError(ValueError):
    """A ``--from`` directory training cannot start from."""


@dataclass(frozen=True)
class Start:
    directory: Path
    """The Hugging Face directory the weights were read from."""
    cross_encoder: bool
    """Whether it already was a cross-encoder (else its head is new)."""


def weights_dir(path: Path) -> Path:
    """The Hugging Face directory of ``path``: itself, or a crossrank model's ``pytorch/``."""
    if (path / WEIGHTS_DIR / "config.json").is_file():
        return path / WEIGHTS_DIR
    if (path / "config.json").is_file():
        return path
    if (path / "crossrank.json").is_file():
        raise StartError(f"{path} holds an ONNX model without its PyTorch weights "
                         f"({WEIGHTS_DIR}/ is missing): it cannot be trained further; retrain "
                         "it with crossrank train, or start from a Hugging Face directory")
    raise StartError(f"{path} is not a model directory: no config.json, no {WEIGHTS_DIR}/")


def training_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_student(path: Path, seed: int,
                 layers: int | None = None) -> tuple[Any, Any, Start]:
    """(model, tokenizer, where it came from); the seed fixes a new head's initial weights.
    ``layers``: keep only the first N transformer layers (a smaller, faster student)."""
    directory = weights_dir(path)
    config = AutoConfig.from_pretrained(str(directory))
    cross = any(a.endswith("ForSequenceClassification") for a in config.architectures or ())
    if cross and config.num_labels != 1:
        raise StartError(f"{directory} is a classifier with {config.num_labels} labels; "
                         "fine-tuning needs a one-logit cross-encoder")
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(directory), num_labels=1, problem_type="regression", dtype=torch.float32)
    tokenizer = cast(Any, AutoTokenizer).from_pretrained(str(directory))
    if layers is not None:
        keep_layers(model, layers)
    return model.to(training_device()), tokenizer, Start(directory, cross)


def keep_layers(model: Any, layers: int) -> None:
    """Cut an encoder to its first ``layers`` transformer layers, in place."""
    encoder: Any = getattr(model.base_model, "encoder", None)
    stack = getattr(encoder, "layer", None)
    if encoder is None or stack is None:
        raise StartError(f"{type(model).__name__} has no encoder.layer stack to cut")
    if layers > len(stack):
        raise StartError(f"the start has {len(stack)} layers; cannot keep {layers}")
    encoder.layer = torch.nn.ModuleList(list(stack)[:layers])
    model.config.num_hidden_layers = layers


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


def autocast(model: Any, enabled: bool) -> Any:
    """bf16 autocast on the model's device (CPU or CUDA)."""
    device = next(model.parameters()).device.type
    return torch.autocast(device, dtype=torch.bfloat16, enabled=enabled)


def to_device(batch: dict[str, torch.Tensor], model: Any) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {key: value.to(device) for key, value in batch.items()}


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
        with autocast(model, bf16):
            logits = model(**to_device(batch, model)).logits
        out[idx] = logits.float().reshape(-1).cpu().numpy()
    model.train(was_training)
    return out
