"""One ONNX Runtime CPU session: how it is configured, and feeding it a padded batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from crossrank.models.errors import ManifestError
from crossrank.models.token_batches import Batch

GraphOptimization = Literal["disable", "basic", "extended", "all"]

_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
_KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class OnnxSession:
    """A CPU ``InferenceSession``. ``run`` is safe to call from several threads at once."""

    def __init__(self, path: Path, *, intra_op_threads: int = 0,
                 graph_optimization: str = "all") -> None:
        if graph_optimization not in _LEVELS:
            raise ValueError(f"graph_optimization must be one of {sorted(_LEVELS)}, "
                             f"got {graph_optimization!r}")
        if intra_op_threads < 0:
            raise ValueError("intra_op_threads must be >= 0 (0: one per core)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = _LEVELS[graph_optimization]
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types are not exported stably
            raise ManifestError(f"{path}: ONNX Runtime cannot load the model: {exc}") from exc
        self.inputs: dict[str, Any] = {}
        for node in self._session.get_inputs():
            if node.name not in _KNOWN_INPUTS:
                raise ManifestError(f"{path}: unsupported graph input {node.name!r}; "
                                    f"crossrank feeds {', '.join(_KNOWN_INPUTS)}")
            if node.type not in _DTYPES:
                raise ManifestError(f"{path}: input {node.name!r} has type {node.type}; "
                                    "expected int64 or int32 token ids")
            self.inputs[node.name] = _DTYPES[node.type]
        self.outputs = [node.name for node in self._session.get_outputs()]

    def run(self, batch: Batch, output: str) -> npt.NDArray[np.float32]:
        arrays = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
                  "token_type_ids": batch.token_type_ids}
        feeds = {name: arrays[name].astype(dtype, copy=False)
                 for name, dtype in self.inputs.items()}
        (result,) = self._session.run([output], feeds)
        return np.asarray(result, dtype=np.float32)
