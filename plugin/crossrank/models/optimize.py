"""Offline graph optimisation of an exported model (export side: needs optimum)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from crossrank.models.errors import ExportError

Level = Literal["O1", "O2", "O3"]


def optimize_graph(export_dir: Path, level: Level, save_dir: Path) -> Path:
    """Run ONNX Runtime's transformer optimiser over ``export_dir/model.onnx`` (an optimum
    export, config.json beside it). O1: generic fusions; O2: plus attention, LayerNorm and GELU
    fusions; O3: plus the tanh GELU approximation. Returns the optimised graph's path."""
    from optimum.onnxruntime import AutoOptimizationConfig, ORTOptimizer

    config = AutoOptimizationConfig.with_optimization_level(level, for_gpu=False)
    try:
        optimizer = ORTOptimizer.from_pretrained(export_dir, file_names=["model.onnx"])
        optimizer.optimize(save_dir=save_dir, optimization_config=config, file_suffix="optimized")
    except (KeyError, NotImplementedError, ValueError) as exc:
        raise ExportError(f"graph optimisation {level} failed for this architecture: {exc}; "
                          "export without optimize") from exc
    return save_dir / "model_optimized.onnx"
