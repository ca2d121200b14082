"""Ship a trained student: save the PyTorch checkpoint, export it to int8 ONNX with
``crossrank.models.export``, record the training in the manifest, write the model card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crossrank.train.card import write_card


def save_checkpoint(model: Any, tokenizer: Any, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    model.config.sbert_ce_default_activation_function = "torch.nn.modules.linear.Identity"
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def export(checkpoint: Path, out: Path, max_length: int, training: dict[str, Any],
           quantize: bool = True) -> Path:
    """int8 (or fp32) ONNX into ``out``, the training record in ``crossrank.json``."""
    from crossrank.models.export import export_model

    manifest = export_model(checkpoint, out, kind="cross-encoder",
                            quantize="int8" if quantize else None, max_length=max_length,
                            activation="none", force=True)
    manifest.model_copy(update={"training": training}).write(out)
    return out


def record(out: Path, training: dict[str, Any]) -> None:
    """Replace the manifest's training record and re-render the card from it."""
    from crossrank.models import Manifest

    Manifest.read(out).model_copy(update={"training": training}).write(out)
    write_card(out, training)


def ship(model: Any, tokenizer: Any, checkpoint: Path, out: Path, max_length: int,
         training: dict[str, Any]) -> Path:
    save_checkpoint(model, tokenizer, checkpoint)
    export(checkpoint, out, max_length, training)
    write_card(out, training)
    return out
