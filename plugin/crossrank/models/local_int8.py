"""int8 made for the CPU a model runs on, once, at its first load.

A model exported with ``int8_on_load`` ships its float graph (weights stored as fp16, each
behind a Cast to fp32, so the file is half the size and still runs as fp32). When it is
loaded, the graph is quantised with the settings of this CPU's instruction set
(``quantize.int8_settings``) and the result is kept in a cache keyed by the graph's checksum,
the instruction set, the settings (with the calibration maxima, where the instruction set's
settings smooth activations first: models/smoothing.py) and the onnxruntime version; later
loads open the cached graph. A machine with AVX-512 VNNI and one with AVX2 each get the
kernels that pay on them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort

from crossrank.models.errors import ManifestError
from crossrank.models.manifest import Manifest, Quantization
from crossrank.models.quantize import int8_settings
from crossrank.models.smoothing import Calibration

log = logging.getLogger(__name__)
CACHE_ENV = "CROSSRANK_CACHE_DIR"
_FP16_SUFFIX = "__fp16"


def cache_root() -> Path:
    """``$CROSSRANK_CACHE_DIR``, else ``$XDG_CACHE_HOME/crossrank`` or ``~/.cache/crossrank``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "crossrank"


def local_settings(manifest: Manifest, isa: str | None = None) -> Quantization:
    """The quantisation a model with ``int8_on_load`` gets on this CPU (or on ``isa``):
    smoothed first only where the ISA's settings do and the model ships calibration maxima."""
    if manifest.int8_on_load is None:
        raise ValueError("the model has no int8_on_load")
    calibrated = manifest.int8_on_load.calibration is not None
    return int8_settings(isa, calibrated=calibrated).model_copy(
        update={"fp32_nodes": manifest.int8_on_load.fp32_nodes})


def local_int8_graph(directory: Path, manifest: Manifest, *, isa: str | None = None,
                     cache: Path | None = None) -> tuple[Path, Quantization]:
    """The path of this model's graph quantised for this CPU (made now if not cached) and
    the settings it was made with."""
    settings = local_settings(manifest, isa)
    source_sha = manifest.checksums[manifest.model_file]
    calibration_file = manifest.int8_on_load.calibration if manifest.int8_on_load else None
    # the maxima smoothing used are part of what the graph is: a recalibrated model gets a
    # graph of its own
    calibration_sha = (manifest.checksums[calibration_file]
                       if calibration_file and settings.smooth_alpha is not None else "")
    key = hashlib.sha256(f"{source_sha}|{calibration_sha}|{settings.model_dump_json()}|"
                         f"{ort.__version__}".encode()).hexdigest()[:20]
    target = (cache or cache_root()) / "int8" / f"{source_sha[:16]}-{settings.isa}-{key}.onnx"
    if target.is_file():
        return target, settings
    began = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    float_graph = fp32_weights(_load(directory / manifest.model_file))
    # Written beside the target and renamed into place: a reader (another replica starting
    # at the same moment) sees a whole graph or none.
    handle, staged = tempfile.mkstemp(prefix=".", suffix=".onnx", dir=target.parent)
    os.close(handle)
    try:
        from crossrank.models.quantize import quantize_graph

        calibration = (Calibration.read(directory / calibration_file)
                       if calibration_file and settings.smooth_alpha is not None else None)
        quantize_graph(float_graph, Path(staged), settings, calibration)
        os.chmod(staged, 0o644)  # mkstemp's 0600 would hide it from other users of the cache
        os.replace(staged, target)
    finally:
        Path(staged).unlink(missing_ok=True)
    log.info("quantised %s for %s in %.1f s into %s", directory.name, settings.isa,
             time.monotonic() - began, target)
    return target, settings


def _load(path: Path) -> Any:
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise ManifestError(f"{path}: cannot read the float graph to quantise: {exc}") from exc


def fp16_storage(model: Any, min_elements: int = 1024) -> Any:
    """Store ``model``'s large fp32 initializers as fp16, each behind a Cast back to fp32
    (ONNX Runtime folds the Casts at load, so the graph still runs in fp32)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    casts = []
    for index, tensor in enumerate(list(graph.initializer)):
        if tensor.data_type != onnx.TensorProto.FLOAT or np.prod(tensor.dims) < min_elements:
            continue
        name = tensor.name  # ``tensor`` is the message CopyFrom overwrites
        half = numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16),
                                       name + _FP16_SUFFIX)
        graph.initializer[index].CopyFrom(half)
        casts.append(onnx.helper.make_node("Cast", [half.name], [name],
                                           to=onnx.TensorProto.FLOAT, name=name + "/cast_fp32"))
    for offset, cast in enumerate(casts):
        graph.node.insert(offset, cast)
    return model


def fp32_weights(model: Any) -> Any:
    """The inverse of ``fp16_storage``: fp32 initializers again (the quantiser reads weights
    from initializers, not from Cast outputs); a graph without fp16 storage is unchanged."""
    import numpy as np
    from onnx import numpy_helper

    graph = model.graph
    stored = {t.name: t for t in graph.initializer if t.name.endswith(_FP16_SUFFIX)}
    if not stored:
        return model
    keep = []
    for node in graph.node:
        if node.op_type == "Cast" and len(node.input) == 1 and node.input[0] in stored:
            tensor = stored.pop(node.input[0])
            graph.initializer.remove(tensor)
            graph.initializer.append(numpy_helper.from_array(
                numpy_helper.to_array(tensor).astype(np.float32), node.output[0]))
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    return model


def calibrate_model_dir(directory: Path) -> Calibration:
    """Measure and store the activation maxima of an ``int8_on_load`` cross-encoder exported
    before export did this itself (``crossrank calibrate``): ``calibration.json`` beside the
    graph, named in the manifest with its checksum. The graph is unchanged; CPUs whose int8
    settings smooth quantise it smoothed from the next load on."""
    from crossrank.models.manifest import sha256_file
    from crossrank.models.smoothing import calibrate
    from crossrank.models.tokenization import Tokenizer

    manifest = Manifest.read(directory)
    if manifest.int8_on_load is None or manifest.kind != "cross-encoder":
        raise ManifestError(f"{directory}: calibration is for a cross-encoder exported with "
                            "int8_on_load (its float graph is quantised where it is loaded)")
    manifest.verify(directory)
    calibration = calibrate(fp32_weights(_load(directory / manifest.model_file)),
                            Tokenizer(directory / manifest.tokenizer_file),
                            manifest.input_names, manifest.max_length)
    name = calibration.write(directory)
    manifest.model_copy(update={
        "int8_on_load": manifest.int8_on_load.model_copy(update={"calibration": name}),
        "checksums": {**manifest.checksums, name: sha256_file(directory / name)},
    }).write(directory)
    return calibration
