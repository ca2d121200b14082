"""Dynamic int8 quantisation, with settings chosen for the CPU it runs on (export side)."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crossrank.models.errors import ExportError
from crossrank.models.manifest import Quantization

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


def int8_settings(isa: str | None = None) -> Quantization:
    """The dynamic int8 settings export uses for ``isa`` (default: this CPU's), as optimum's
    ``AutoQuantizationConfig`` chooses them: int8 weights for AVX-512 (with or without VNNI) and
    ARM, uint8 weights for AVX2; activations uint8 everywhere. Tests ask this function, not a
    constant, because the answer depends on the machine."""
    config = _optimum_config(isa or cpu_isa())
    from onnxruntime.quantization import QuantType

    return Quantization(
        weights="int8" if config.weights_dtype == QuantType.QInt8 else "uint8",
        activations="int8" if config.activations_dtype == QuantType.QInt8 else "uint8",
        per_channel=config.per_channel, reduce_range=config.reduce_range,
        isa=isa or cpu_isa())


def _optimum_config(isa: str) -> Any:
    from optimum.onnxruntime import AutoQuantizationConfig

    factory = getattr(AutoQuantizationConfig, isa, None)
    if factory is None or isa not in ISAS:
        raise ExportError(f"unknown instruction set {isa!r}; expected one of {', '.join(ISAS)}")
    return factory(is_static=False, per_channel=True)


def quantize_int8(source: Path, target: Path, isa: str | None = None,
                  keep_fp32: Sequence[str] = ()) -> Quantization:
    """Write a dynamically quantised copy of ``source`` (weights int8 per channel, activations
    uint8 per batch) to ``target``, with the settings of ``int8_settings(isa)``. MatMul nodes
    whose names contain one of ``keep_fp32`` stay fp32 (each pattern must match at least one).

    The quantiser is onnxruntime's ``quantize_dynamic``, because optimum's ORTQuantizer cannot
    type the fused contrib ops (Attention, SkipLayerNormalization) of an O2 graph.
    """
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    isa = isa or cpu_isa()
    config = _optimum_config(isa)
    kept = _matmuls_named(source, keep_fp32)
    quantize_dynamic(
        source, target,
        nodes_to_exclude=list(kept),
        op_types_to_quantize=[str(getattr(op, "value", op)) for op in config.operators_to_quantize],
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        weight_type=config.weights_dtype,
        extra_options={"WeightSymmetric": config.weights_symmetric,
                       "ActivationSymmetric": config.activations_symmetric,
                       "DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return int8_settings(isa).model_copy(update={"fp32_nodes": kept})


def _matmuls_named(graph: Path, patterns: Sequence[str]) -> tuple[str, ...]:
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
