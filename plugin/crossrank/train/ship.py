"""Ship a trained student: its PyTorch weights (fp16 safetensors, in ``pytorch/`` beside the
ONNX graph), the ONNX export of exactly those weights (``crossrank.models.export``; int8 made
for each machine's CPU at its first load, ``int8_on_load``), the training record in the
manifest, and the model card.

The graph is exported from the saved fp16 weights, not from the live fp32 ones, so that
``crossrank export DIR/pytorch --quantize int8 --int8-on-load`` rebuilds the shipped graph and
a fine-tune ``--from DIR`` starts from the model that was measured.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from crossrank.train.card import write_card
from crossrank.train.student import WEIGHTS_DIR


def save_weights(model: Any, tokenizer: Any, directory: Path, *,
                 dtype: torch.dtype = torch.float16) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    model.config.sbert_ce_default_activation_function = "torch.nn.modules.linear.Identity"
    saved = copy.deepcopy(model).to("cpu", dtype=dtype)
    saved.save_pretrained(str(directory), safe_serialization=True)
    tokenizer.save_pretrained(str(directory))
    return directory


def export(weights: Path, out: Path, max_length: int, training: dict[str, Any],
           quantize: bool = True, keep_fp32: Sequence[str] = ()) -> Path:
    """ONNX into ``out`` (int8 on load, or fp32), the training record in ``crossrank.json``."""
    from crossrank.models.export import export_model

    manifest = export_model(weights, out, kind="cross-encoder",
                            quantize="int8" if quantize else None, max_length=max_length,
                            activation="none", force=True, int8_keep_fp32=keep_fp32,
                            int8_on_load=quantize)
    manifest.model_copy(update={"training": training}).write(out)
    return out


def record(out: Path, training: dict[str, Any]) -> None:
    """Replace the manifest's training record and re-render the card from it."""
    from crossrank.models import Manifest

    Manifest.read(out).model_copy(update={"training": training}).write(out)
    write_card(out, training)


def ship(model: Any, tokenizer: Any, out: Path, max_length: int,
         training: dict[str, Any], keep_fp32: Sequence[str] = ()) -> Path:
    weights = save_weights(model, tokenizer, out / WEIGHTS_DIR)
    export(weights, out, max_length, training, keep_fp32=keep_fp32)
    write_card(out, training)
    return out
