"""Dynamic int8 quantisation, with settings chosen for the CPU it runs on (export side)."""

from __future__ import annotations

import platform
from pathlib import Path

from crossrank.models.manifest import Quantization

_CPUINFO = Path("/proc/cpuinfo")


def cpu_isa(cpuinfo: str | None = None) -> str:
    """The widest int8 instruction set of this CPU, as optimum's AutoQuantizationConfig names
    them: ``avx512_vnni``, ``avx512``, ``avx2`` or ``arm64``."""
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    if cpuinfo is None:
        cpuinfo = _CPUINFO.read_text() if _CPUINFO.is_file() else ""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    if {"avx512_vnni", "avx512f"} <= flags:
        return "avx512_vnni"
    if {"avx512f", "avx512bw"} <= flags:
        return "avx512"
    return "avx2"


def quantize_int8(source: Path, target: Path, isa: str | None = None) -> Quantization:
    """Write a dynamically quantised copy of ``source`` (weights int8 per channel, activations
    uint8 per batch) to ``target``.

    The settings come from optimum's ``AutoQuantizationConfig`` for the CPU; the quantiser is
    onnxruntime's ``quantize_dynamic``, because optimum's ORTQuantizer cannot type the fused
    contrib ops (Attention, SkipLayerNormalization) of an O2 graph.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from optimum.onnxruntime import AutoQuantizationConfig

    isa = isa or cpu_isa()
    config = getattr(AutoQuantizationConfig, isa)(is_static=False, per_channel=True)
    quantize_dynamic(
        source, target,
        op_types_to_quantize=[str(getattr(op, "value", op)) for op in config.operators_to_quantize],
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        weight_type=config.weights_dtype,
        extra_options={"WeightSymmetric": config.weights_symmetric,
                       "ActivationSymmetric": config.activations_symmetric,
                       "DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return Quantization(
        weights="int8" if config.weights_dtype == QuantType.QInt8 else "uint8",
        activations="int8" if config.activations_dtype == QuantType.QInt8 else "uint8",
        per_channel=config.per_channel, reduce_range=config.reduce_range, isa=isa)
