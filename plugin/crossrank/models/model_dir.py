"""What every exported model directory loads the same way: manifest, session, tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crossrank.models.manifest import Manifest, Quantization
from crossrank.models.onnx_session import OnnxSession
from crossrank.models.tokenization import Tokenizer


@dataclass(frozen=True)
class ModelFiles:
    manifest: Manifest
    session: OnnxSession
    tokenizer: Tokenizer
    quantization: Quantization | None
    """What runs: the shipped graph's int8 settings, or the local ones of ``int8_on_load``."""


def open_model_dir(directory: Path, *, intra_op_threads: int = 1, parallel_runs: int = 0,
                   graph_optimization: str = "all", execution_provider: str = "cpu",
                   verify_checksums: bool = True) -> ModelFiles:
    """Read ``crossrank.json``, check the files against its checksums (unless told not to),
    and open the ONNX session and the tokenizer it names. A model with ``int8_on_load`` runs
    its graph quantised for this CPU (made at the first load, then cached), except on a
    GPU execution provider, which runs the float graph."""
    manifest = Manifest.read(directory)
    if verify_checksums:
        manifest.verify(directory)
    graph, quantization = directory / manifest.model_file, manifest.quantization
    if manifest.int8_on_load is not None and execution_provider in ("cpu", "openvino"):
        from crossrank.models.local_int8 import local_int8_graph

        graph, quantization = local_int8_graph(directory, manifest)
    session = OnnxSession(graph, intra_op_threads=intra_op_threads,
                          parallel_runs=parallel_runs, graph_optimization=graph_optimization,
                          execution_provider=execution_provider)
    return ModelFiles(manifest, session, Tokenizer(directory / manifest.tokenizer_file),
                      quantization)
