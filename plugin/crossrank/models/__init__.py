"""Scoring and embedding with exported ONNX models: onnxruntime, tokenizers and numpy only.

    registry.py        ModelRegistry: named models, loaded once, run off the event loop
    cross_encoder.py   CrossEncoder.score / rank          embedder.py   Embedder.embed
    tokenization.py    thread-safe pair and text encoding  token_batches.py  length-sorted batches
    onnx_session.py    the ONNX Runtime session            manifest.py   crossrank.json
    export.py          export_model (torch, transformers and optimum, imported inside functions;
                       with source.py, optimize.py, quantize.py, parity.py, sample_texts.py)
"""

from crossrank.models.cross_encoder import CrossEncoder
from crossrank.models.embedder import Embedder
from crossrank.models.errors import (
    ExportError,
    ManifestError,
    ModelError,
    ModelKindError,
    ModelLookupError,
)
from crossrank.models.export import export_model
from crossrank.models.manifest import Manifest
from crossrank.models.registry import ModelRegistry, discover_models

__all__ = [
    "CrossEncoder",
    "Embedder",
    "ExportError",
    "Manifest",
    "ManifestError",
    "ModelError",
    "ModelKindError",
    "ModelLookupError",
    "ModelRegistry",
    "discover_models",
    "export_model",
]
