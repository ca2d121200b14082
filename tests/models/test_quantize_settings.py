"""The int8 settings follow the CPU's instruction set, read from /proc/cpuinfo flags."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import pytest

from crossrank.models.quantize import cpu_isa, int8_settings

ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n"


@pytest.mark.parametrize("flags, isa", [
    (ZEN4, "avx512_vnni"),
    ("flags : sse2 avx2 avx512f avx512bw avx512dq\n", "avx512"),
    ("flags : sse2 avx avx2 fma\n", "avx2"),
    ("", "avx2"),
])
def test_isa_from_cpuinfo_flags(flags: str, isa: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert cpu_isa(flags) == isa


def test_arm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert cpu_isa(ZEN4) == "arm64"


@pytest.mark.parametrize("isa, reduce_range, smoothed", [
    ("avx512_vnni", False, True), ("avx2", True, True), ("avx512", True, True),
    ("arm64", False, False)])
def test_int8_settings_per_isa(isa: str, reduce_range: bool, smoothed: bool) -> None:
    """int8 weights everywhere (the U8S8 kernels); 7-bit where VPMADDUBSW could saturate;
    activations smoothed first on the x86 ISAs, where it was measured to pay (not on ARM)."""
    settings = int8_settings(isa)
    assert settings.isa == isa and settings.weights == "int8"
    assert settings.reduce_range is reduce_range and settings.activations == "uint8"
    assert settings.per_channel and settings.method == "dynamic"
    assert (settings.smooth_alpha is not None) is smoothed
    assert int8_settings(isa, calibrated=False).smooth_alpha is None


def test_unknown_isa_is_an_export_error() -> None:
    from crossrank.models.errors import ExportError

    with pytest.raises(ExportError, match="unknown instruction set 'sse2'"):
        int8_settings("sse2")


def test_named_matmuls_stay_fp32(model_factory: Any, tmp_path: Path) -> None:
    import onnx

    from crossrank.models import CrossEncoder, Manifest

    directory = model_factory.exported("bert-64", quantize="int8",
                                       int8_keep_fp32=["layer.0/output/dense/"])
    quantization = Manifest.read(directory).quantization
    assert quantization is not None
    assert quantization.fp32_nodes == ("/bert/encoder/layer.0/output/dense/MatMul",)
    nodes = {node.name: node.op_type
             for node in onnx.load(str(directory / "model.onnx")).graph.node}
    assert nodes["/bert/encoder/layer.0/output/dense/MatMul"] == "MatMul"  # left in fp32
    assert "/bert/encoder/layer.1/output/dense/MatMul" not in nodes  # quantised
    assert CrossEncoder.load(directory).score([("a query", "a document")]).shape == (1,)
    # a plain int8 export does not write the empty list (older versions still read it)
    plain = model_factory.exported("bert-64", quantize="int8")
    assert "fp32_nodes" not in (plain / "crossrank.json").read_text()


def test_keep_fp32_errors(model_factory: Any, tmp_path: Path) -> None:
    from crossrank.models import export_model
    from crossrank.models.errors import ExportError

    with pytest.raises(ExportError, match="names no MatMul"):
        export_model(model_factory.source("bert-64"), tmp_path / "a", quantize="int8",
                     int8_keep_fp32=["no/such/node"])
    with pytest.raises(ExportError, match="need quantize int8"):
        export_model(model_factory.source("bert-64"), tmp_path / "b",
                     int8_keep_fp32=["layer.0/output/dense/"])
