"""``export_model``: a local Hugging Face model directory to a crossrank model directory.

The only module (with optimize.py, quantize.py and parity.py) that uses torch, transformers or
optimum, and only inside the functions. Steps: check the source and the target (cheap, before
any work), load the PyTorch model, export it with optimum, cut a cross-encoder's last layer to
the row its head reads (trim.py), optionally optimise the graph and quantise it to int8, then
measure parity against PyTorch with the crossrank runtime itself and install ``model.onnx``,
``tokenizer.json`` and ``crossrank.json`` into the target directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from crossrank.models.cross_encoder import CrossEncoder
from crossrank.models.embedder import Embedder
from crossrank.models.errors import ExportError, ManifestError
from crossrank.models.manifest import (
    MANIFEST_NAME,
    Int8OnLoad,
    Kind,
    Manifest,
    Parity,
    Quantization,
    Source,
    sha256_file,
)
from crossrank.models.onnx_session import OnnxSession
from crossrank.models.smoothing import Calibration
from crossrank.models.source import Activation, SourceModel, inspect_source

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
EXTERNAL_DATA_FILE = "model.onnx.data"
TOKENIZER_FILE = "tokenizer.json"
PARITY_MAX_LENGTH = 256
# protobuf cannot hold more than 2 GiB: larger graphs keep their weights in a second file
_EXTERNAL_DATA_BYTES = 1_800_000_000
_TASKS = {"cross-encoder": ("text-classification", "logits"),
          "embedder": ("feature-extraction", "last_hidden_state")}
_VERSIONED = ("crossrank", "torch", "transformers", "optimum", "optimum-onnx", "onnx",
              "onnxruntime", "tokenizers")


def export_model(source: str | Path, out: Path, *, kind: Kind | None = None,
                 quantize: Literal["int8"] | None = None,
                 optimize: Literal["O1", "O2", "O3"] | None = None,
                 max_length: int | None = None, label: int | None = None,
                 activation: Activation | None = None, force: bool = False,
                 trim_last_layer: bool = True, int8_keep_fp32: Sequence[str] = (),
                 int8_isa: str | None = None, int8_on_load: bool = False) -> Manifest:
    """Export ``source`` (a local directory) into ``out`` and return the written manifest.

    ``kind`` is inferred when not given (a *ForSequenceClassification model is a cross-encoder,
    a sentence-transformers directory an embedder). ``label`` picks the relevance logit of a
    multi-label classifier; two-label models score ``logit[1] - logit[0]`` by default.
    ``activation`` overrides the one the model declares. ``out`` may be re-used for the same
    model; it must not hold another model or other files unless ``force``.
    ``trim_last_layer``: a cross-encoder's last layer computes only the row its head reads
    (models/trim.py), kept only when it gives the untrimmed graph's scores; not combined with
    ``optimize``, whose fused attention has no rows to cut. ``int8_keep_fp32``: name
    fragments of MatMul nodes that int8 quantisation leaves in fp32 (for accuracy; on
    MiniLM-L6, ``layer.0/output/dense/`` raised Spearman to fp32 from 0.985 to 0.990 for 8%
    more time, docs/benchmarks.md). ``int8_isa``: the instruction set to quantise for
    (``models.quantize.ISAS``; default this CPU's). ``int8_on_load``: ship the float graph
    (weights stored fp16) and let each machine quantise it for its own instruction set at
    first load (models/local_int8.py), instead of an int8 graph made for this one.
    """
    if kind not in (None, "cross-encoder", "embedder"):
        raise ExportError(f"kind must be 'cross-encoder' or 'embedder', got {kind!r}")
    if quantize not in (None, "int8"):
        raise ExportError(f"quantize must be 'int8' or None, got {quantize!r}")
    if (int8_keep_fp32 or int8_isa or int8_on_load) and quantize is None:
        raise ExportError("int8_keep_fp32, int8_isa and int8_on_load shape the int8 graph: "
                          "they need quantize int8")
    if int8_isa and int8_on_load:
        raise ExportError("int8_on_load quantises for the CPU that loads the model: it takes "
                          "no int8_isa")
    if optimize not in (None, "O1", "O2", "O3"):
        raise ExportError(f"optimize must be 'O1', 'O2', 'O3' or None, got {optimize!r}")
    model_source = inspect_source(source, kind=kind, label=label, activation=activation,
                                  max_length=max_length)
    out = Path(out).expanduser().absolute()
    check_target(out, model_source.source, force=force)

    # crossrank never downloads: every load below is from the local directory
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = _load_tokenizer(model_source)
    model = _load_model(model_source)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}-", dir=out.parent) as work:
        staging = Path(work)
        graph = _export_graph(model, model_source.kind, staging / "export")
        last_layer_rows: Literal["all", "first"] = "all"
        if (trim_last_layer and model_source.kind == "cross-encoder" and optimize is None
                and _trim(graph, staging / "trimmed.onnx", tokenizer, model_source.max_length)):
            graph, last_layer_rows = staging / "trimmed.onnx", "first"
        if optimize is not None:
            from crossrank.models.optimize import optimize_graph

            graph = optimize_graph(staging / "export", optimize, staging / "optimized")
        quantization, on_load, calibration = None, None, None
        if quantize is not None and model_source.kind == "cross-encoder":
            calibration = _calibrate(graph, tokenizer, staging, model_source.max_length)
        if quantize is not None and int8_on_load:
            graph, on_load = _float_for_load(graph, staging / "fp16.onnx", int8_keep_fp32,
                                             calibration is not None)
        elif quantize is not None:
            from crossrank.models.quantize import quantize_int8

            quantization = quantize_int8(graph, staging / "quantized.onnx",
                                         isa=int8_isa, keep_fp32=int8_keep_fp32,
                                         calibration=calibration)
            graph = staging / "quantized.onnx"
        final = staging / "final"
        final.mkdir()
        files = [*_place_graph(graph, final), _write_tokenizer(tokenizer, final)]
        if on_load is not None and calibration is not None:
            files.append(calibration.write(final))
        manifest = _manifest(model_source, final, files, tokenizer, optimize, quantization)
        manifest = manifest.model_copy(update={"last_layer_rows": last_layer_rows,
                                               "int8_on_load": on_load})
        manifest.write(final)
        manifest = manifest.model_copy(update={"parity": _parity(model, tokenizer, final)})
        manifest.write(final)
        _install(final, out)
    return manifest


def check_target(out: Path, source: Source, *, force: bool) -> None:
    """Refuse an ``out`` that holds anything but an intact export of the same weights."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportError(f"{out} exists and is not a directory")
    if force or not any(out.iterdir()):
        return
    hint = "choose another directory or pass force=True to overwrite"
    try:
        existing = Manifest.read(out)
    except ManifestError:
        raise ExportError(f"{out} is not empty and holds no readable crossrank model; "
                          f"{hint}") from None
    same = (existing.source.weights_sha256 == source.weights_sha256
            if existing.source.weights_sha256 and source.weights_sha256
            else existing.source.path == source.path)
    if not same:
        raise ExportError(f"{out} already holds a different model (exported from "
                          f"{existing.source.path}); {hint}")
    try:
        existing.verify(out)
    except ManifestError as exc:
        raise ExportError(f"{out} holds this model, but modified after export ({exc}); "
                          f"{hint}") from exc


def _load_tokenizer(source: SourceModel) -> Any:
    try:
        from transformers import AutoTokenizer as auto_tokenizer
    except ImportError as exc:
        raise ExportError("export needs the export extra: pip install 'crossrank[export]'") from exc
    try:
        tokenizer = cast(Any, auto_tokenizer).from_pretrained(source.model_dir, use_fast=True,
                                                             local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, TypeError, ...
        raise ExportError(f"{source.model_dir}: no usable tokenizer ({exc}). crossrank needs a "
                          "fast tokenizer: tokenizer.json, or files transformers can convert"
                          ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ExportError(f"{source.model_dir}: only a slow (Python) tokenizer is available; "
                          "crossrank needs a fast tokenizer (tokenizer.json)")
    return tokenizer


def _load_model(source: SourceModel) -> Any:
    from transformers import AutoModel, AutoModelForSequenceClassification

    loader = AutoModelForSequenceClassification if source.kind == "cross-encoder" else AutoModel
    try:
        model = loader.from_pretrained(source.model_dir, local_files_only=True)
    except Exception as exc:
        raise ExportError(f"{source.model_dir}: transformers cannot load the model: {exc}") from exc
    return model.float().eval()


def _export_graph(model: Any, kind: Kind, directory: Path) -> Path:
    from optimum.exporters.onnx import onnx_export_from_model

    task, _ = _TASKS[kind]
    with warnings.catch_warnings():
        # the TorchScript tracer's notes on constants and the legacy-exporter notice
        warnings.simplefilter("ignore")
        onnx_export_from_model(model, output=directory, task=task, do_validation=False,
                               device="cpu")
    return directory / MODEL_FILE


def _trim(graph: Path, target: Path, tokenizer: Any, max_length: int) -> bool:
    """Write ``graph`` with its last layer cut to the head's row to ``target``; True when the
    cut graph scores sample pairs (padded and not, short and long) as the full one does."""
    import onnx

    from crossrank.models.sample_texts import pair_sample
    from crossrank.models.token_batches import pad
    from crossrank.models.trim import TRIM_TOLERANCE, largest_difference, trim_last_layer

    model = onnx.load(str(graph))
    if not trim_last_layer(model):
        log.warning("last layer left whole: the graph has no .../layer.N/attention/self/query/ "
                    "projection with a residual and one attention mask (not a layout crossrank "
                    "can cut)")
        return False
    _save_graph(model, target, target.name + ".data")
    sample = pair_sample(queries=1, candidates=9)
    query, documents = sample.queries[0], sample.candidates[0]
    batches = []
    for chunk in (documents[:1], documents[1:]):  # one pair alone, then padded ones
        encoded = tokenizer([query] * len(chunk), chunk, truncation="only_second",
                            max_length=min(max_length, PARITY_MAX_LENGTH))
        batches.append(pad(encoded.encodings, np.arange(len(chunk)),
                           tokenizer.pad_token_id or 0))
    try:
        difference = largest_difference(OnnxSession(graph), OnnxSession(target),
                                        _TASKS["cross-encoder"][1], batches)
    except ManifestError:  # ONNX Runtime refused the rewritten graph
        difference = float("inf")
    if difference > TRIM_TOLERANCE:
        log.warning("last layer left whole: the cut graph's logits differ from the full "
                    "graph's by %.3g (tolerance %g)", difference, TRIM_TOLERANCE)
        return False
    return True


def _float_for_load(graph: Path, target: Path, keep_fp32: Sequence[str],
                    calibrated: bool) -> tuple[Path, Int8OnLoad]:
    """The float graph with its weights stored fp16, to be quantised where it is loaded."""
    import onnx

    from crossrank.models.local_int8 import fp16_storage
    from crossrank.models.quantize import matmuls_named
    from crossrank.models.smoothing import CALIBRATION_FILE

    kept = matmuls_named(graph, keep_fp32)
    _save_graph(fp16_storage(onnx.load(str(graph))), target, target.name + ".data")
    return target, Int8OnLoad(fp32_nodes=kept,
                              calibration=CALIBRATION_FILE if calibrated else None)


def _calibrate(graph: Path, tokenizer: Any, staging: Path, max_length: int) -> Calibration:
    """Activation maxima of the float graph over sample pairs (models/smoothing.py), tokenised
    as the runtime will tokenise them."""
    import onnx

    from crossrank.models.smoothing import calibrate
    from crossrank.models.tokenization import Tokenizer

    where = staging / "calibration"
    where.mkdir()
    runtime_tokenizer = Tokenizer(where / _write_tokenizer(tokenizer, where))
    model = onnx.load(str(graph))
    inputs = [i.name for i in model.graph.input]
    return calibrate(model, runtime_tokenizer, inputs, max_length)


def _place_graph(graph: Path, final: Path) -> list[str]:
    """Save the graph as ``model.onnx`` (weights in ``model.onnx.data`` past 2 GB)."""
    import onnx

    large = _save_graph(onnx.load(str(graph)), final / MODEL_FILE, EXTERNAL_DATA_FILE)
    return [MODEL_FILE, EXTERNAL_DATA_FILE] if large else [MODEL_FILE]


def _save_graph(model: Any, path: Path, data_file: str) -> bool:
    """Save an ``onnx.ModelProto``, its weights in ``data_file`` beside it past 2 GB (protobuf's
    limit); True when they went there."""
    import onnx

    large = bool(sum(tensor.ByteSize() for tensor in model.graph.initializer)
                 > _EXTERNAL_DATA_BYTES)
    onnx.save_model(model, str(path), save_as_external_data=large,
                    all_tensors_to_one_file=True, location=data_file)
    return large


def _write_tokenizer(tokenizer: Any, final: Path) -> str:
    import tokenizers  # type: ignore[import-untyped]

    backend = tokenizers.Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    backend.save(str(final / TOKENIZER_FILE))
    return TOKENIZER_FILE


def _manifest(source: SourceModel, final: Path, files: list[str], tokenizer: Any,
              optimize: Literal["O1", "O2", "O3"] | None,
              quantization: Quantization | None) -> Manifest:
    _, output_name = _TASKS[source.kind]
    session = OnnxSession(final / MODEL_FILE)
    if output_name not in session.outputs:
        raise ExportError(f"the exported graph has outputs {session.outputs}, not {output_name}")
    pad_token_id = tokenizer.pad_token_id
    if pad_token_id is None:
        pad_token_id = source.config.get("pad_token_id") or 0
    return Manifest(
        kind=source.kind, model_file=MODEL_FILE, tokenizer_file=TOKENIZER_FILE,
        source=source.source, architecture=source.architecture, model_type=source.model_type,
        max_length=source.max_length, input_names=tuple(session.inputs),
        output_name=output_name, pad_token_id=int(pad_token_id), score=source.score,
        pooling=source.pooling, optimization=optimize, quantization=quantization,
        checksums={name: sha256_file(final / name) for name in files},
        exported_with=_versions())


def _parity(model: Any, tokenizer: Any, final: Path) -> Parity:
    from crossrank.models import parity
    from crossrank.models.sample_texts import pair_sample

    manifest = Manifest.read(final)
    if manifest.kind == "embedder":
        return parity.embedder_parity(model, tokenizer, Embedder.load(final))
    exported = CrossEncoder.load(final)
    return parity.cross_encoder_parity(model, tokenizer, exported, pair_sample(),
                                       min(manifest.max_length, PARITY_MAX_LENGTH))


def _install(final: Path, out: Path) -> None:
    """Move the files in; the manifest last, so a reader never sees it ahead of its files."""
    out.mkdir(parents=True, exist_ok=True)
    stale: set[str] = set()
    if (out / MANIFEST_NAME).is_file():
        with contextlib.suppress(ManifestError):
            stale = set(Manifest.read(out).checksums)
    manifest = Manifest.read(final)
    for name in manifest.checksums:
        os.replace(final / name, out / name)
    for name in stale - set(manifest.checksums):
        (out / name).unlink(missing_ok=True)
    os.replace(final / MANIFEST_NAME, out / MANIFEST_NAME)


def _versions() -> dict[str, str]:
    versions = {}
    for package in _VERSIONED:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
