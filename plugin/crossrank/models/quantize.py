"""Dynamic int8 quantisation, with settings chosen for the CPU it runs on.

Used by export (``--quantize int8``) and at load time (``int8_on_load``: models/local_int8.py).
Needs onnx and onnxruntime's quantiser, not torch or optimum.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from crossrank.models.errors import ExportError
from crossrank.models.manifest import Quantization

if TYPE_CHECKING:
    from crossrank.models.smoothing import Calibration

_CPUINFO = Path("/proc/cpuinfo")
ISAS = ("avx512_vnni", "avx512", "avx2", "arm64")
"""The instruction sets export can quantise for (optimum's names)."""


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


def exact_here(settings: Quantization, isa: str | None = None) -> bool:
    """Whether an int8 graph made with ``settings`` keeps its accuracy on this CPU (or on
    ``isa``): 7-bit weights (``reduce_range``) everywhere; full 8-bit weights only with VNNI
    or on ARM, since AVX2's u8s8 multiply (VPMADDUBSW) saturates its int16 sums. Measured on an
    AMD EPYC with AVX2: the VNNI settings' graph ranks a random test model at Spearman 0.86
    to fp32, the AVX2 settings' at 0.99."""
    here = isa or cpu_isa()
    return bool(settings.reduce_range) or here in ("avx512_vnni", "arm64")


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name as the kernel reports it (``AMD EPYC 9R14``, ...), else the
    machine type."""
    if cpuinfo is None:
        cpuinfo = _CPUINFO.read_text() if _CPUINFO.is_file() else ""
    for line in cpuinfo.splitlines():
        if line.startswith(("model name", "Model")):
            return line.partition(":")[2].strip() or platform.machine()
    return platform.processor() or platform.machine()


def machine_summary() -> str:
    """One line for a benchmark's report: CPU model, cores, and the int8 ISA."""
    import os

    return (f"CPU: {cpu_model()}, {os.cpu_count()} CPUs, int8 ISA {cpu_isa()} "
            f"({platform.machine()})")


# Weights per instruction set. ONNX Runtime's x86 kernels for uint8 activations x int8 weights
# (U8S8) use VPMADDUBSW on AVX2 and AVX-512 without VNNI, which adds pairs of products in
# saturating int16: full-range int8 weights can overflow it, so there the weights keep 7 bits
# (reduce_range). With VNNI (VPDPBUSD accumulates in int32) and on ARM they keep all 8.
# optimum's AVX2 preset chose uint8 weights (U8U8) instead, whose kernel widens to int16 and
# multiplies no faster than fp32 FMA: that graph ran at fp32's speed on an AVX2 EPYC.
_WEIGHTS_BY_ISA: dict[str, tuple[Literal["int8", "uint8"], bool]] = {
    "avx512_vnni": ("int8", False),
    "avx512": ("int8", True),
    "avx2": ("int8", True),
    "arm64": ("int8", False),
}
# The operators quantised (optimum's list for these presets; only those present matter).
_OPERATORS = ("Conv", "MatMul", "Attention", "LSTM", "Gather", "Transpose",
              "EmbedLayerNormalization")


# Activation smoothing (models/smoothing.py) where it was measured to help, with the strength
# chosen on reranking windows of SciFact *training* claims (benchmarks/bench_int8_options.py,
# docs/benchmarks.md). 7-bit weights, on an AVX2 EPYC: alpha 0.7 raised int8's Spearman to
# fp32 from 0.982 to 0.993 on the scorer benchmark's pairs and from 0.963 to 0.983 within
# windows, at the same speed; 0.5 lowered it. Full 8-bit weights with VNNI, on a Zen 4 EPYC:
# alpha 0.75 had the best mean over 24 training windows (0.974 -> 0.988; 0.7 and 0.8 within
# 0.0015 of it) and raised the benchmark pairs' Spearman from 0.981 to 0.992, at 2-3% of the
# speed. AVX-512 without VNNI shares AVX2's 7-bit weights and kernels' numerics. ARM is not
# measured: it quantises the graph as it is.
_SMOOTH_ALPHA_BY_ISA: dict[str, float | None] = {
    "avx512_vnni": 0.75, "avx512": 0.7, "avx2": 0.7, "arm64": None}


def int8_settings(isa: str | None = None, *, calibrated: bool = True) -> Quantization:
    """The dynamic int8 settings for ``isa`` (default: this CPU's): weights int8 per channel,
    7-bit where the ISA's kernel could saturate; activations uint8 everywhere; smoothed first
    where that pays and the model has calibration maxima (``calibrated``). Tests ask this
    function, not a constant, because the answer depends on the machine."""
    isa = isa or cpu_isa()
    if isa not in _WEIGHTS_BY_ISA:
        raise ExportError(f"unknown instruction set {isa!r}; expected one of {', '.join(ISAS)}")
    weights, reduce_range = _WEIGHTS_BY_ISA[isa]
    return Quantization(weights=weights, activations="uint8", per_channel=True,
                        reduce_range=reduce_range, isa=isa,
                        smooth_alpha=_SMOOTH_ALPHA_BY_ISA[isa] if calibrated else None)


def quantize_int8(source: Path, target: Path, isa: str | None = None,
                  keep_fp32: Sequence[str] = (),
                  calibration: Calibration | None = None) -> Quantization:
    """Write a dynamically quantised copy of ``source`` (weights int8 per channel, activations
    uint8 per batch) to ``target``, with the settings of ``int8_settings(isa)``, smoothed first
    where those say so and ``calibration`` is given. MatMul nodes whose names contain one of
    ``keep_fp32`` stay fp32 (each pattern must match at least one).

    The quantiser is onnxruntime's ``quantize_dynamic``, because optimum's ORTQuantizer cannot
    type the fused contrib ops (Attention, SkipLayerNormalization) of an O2 graph.
    """
    kept = matmuls_named(source, keep_fp32)
    settings = int8_settings(isa, calibrated=calibration is not None).model_copy(
        update={"fp32_nodes": kept})
    quantize_graph(source, target, settings, calibration)
    return settings


def quantize_graph(source: Path | Any, target: Path, settings: Quantization,
                   calibration: Calibration | None = None,
                   extra_options: Mapping[str, Any] | None = None) -> None:
    """``source`` (a path or an ``onnx.ModelProto`` with fp32 weights) quantised by
    onnxruntime's ``quantize_dynamic`` with ``settings``, written to ``target``; smoothed
    first with ``calibration`` when ``settings.smooth_alpha`` is set. ``extra_options`` are
    more of ``quantize_dynamic``'s (benchmarks compare them; serving passes none)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if settings.smooth_alpha is not None:
        if calibration is None:
            raise ExportError("the int8 settings smooth activations, but no calibration was "
                              "given")
        from crossrank.models.smoothing import smooth

        model = source if not isinstance(source, Path) else onnx.load(str(source))
        source = smooth(model, calibration, settings.smooth_alpha)
    quantize_dynamic(
        source, target,
        nodes_to_exclude=list(settings.fp32_nodes),
        op_types_to_quantize=list(_OPERATORS),
        per_channel=settings.per_channel,
        reduce_range=settings.reduce_range,
        weight_type=QuantType.QInt8 if settings.weights == "int8" else QuantType.QUInt8,
        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False,
                       "DefaultTensorType": onnx.TensorProto.FLOAT, **(extra_options or {})},
    )


def matmuls_named(graph: Path, patterns: Sequence[str]) -> tuple[str, ...]:
    """The MatMul nodes of ``graph`` whose names contain one of ``patterns``."""
    if not patterns:
        return ()
    import onnx

    names = [node.name for node in onnx.load(str(graph), load_external_data=False).graph.node
             if node.op_type == "MatMul"]
    chosen: list[str] = []
    for pattern in patterns:
        matched = [name for name in names if pattern in name]
        if not matched:
            raise ExportError(f"--int8-keep-fp32 {pattern!r} names no MatMul node; the graph's "
                              f"MatMuls look like {names[:3]}")
        chosen += [name for name in matched if name not in chosen]
    return tuple(chosen)
