"""One ONNX Runtime session: how it is configured (threads, graph level, execution provider),
and feeding it a padded batch."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from crossrank.models.errors import ManifestError, ModelError
from crossrank.models.token_batches import Batch

GraphOptimization = Literal["disable", "basic", "extended", "all"]

_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
# crossrank's names for ONNX Runtime's execution providers; CPU is always the fallback, for
# operators the device's provider does not take
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider", "openvino": "OpenVINOExecutionProvider"}
_KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask: a container's cpuset, taskset),
    not every CPU of the host."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def parallel_runs_for(intra_op_threads: int, parallel_runs: int) -> int:
    """How many ONNX runs go at once: ``parallel_runs``, or for 0 as many as fit the cores at
    ``intra_op_threads`` threads each (0 threads: all cores, so one run)."""
    if parallel_runs > 0:
        return parallel_runs
    cores = usable_cores()
    return max(1, cores // intra_op_threads) if intra_op_threads > 0 else 1


def execution_providers(name: str) -> list[str]:
    """ONNX Runtime's providers for crossrank's ``execution_provider`` setting, CPU last; a
    provider this onnxruntime build lacks (``cuda`` needs the onnxruntime-gpu package and a
    GPU) is a clear error, never a silent fall back to the CPU."""
    if name not in PROVIDERS:
        raise ValueError(f"execution_provider must be one of {', '.join(PROVIDERS)}, "
                         f"got {name!r}")
    available = ort.get_available_providers()
    if PROVIDERS[name] not in available:
        offered = ", ".join(k for k, v in PROVIDERS.items() if v in available)
        raise ModelError(f"execution provider {name!r} ({PROVIDERS[name]}) is not available "
                         f"in this onnxruntime build (it offers: {offered}); for cuda and "
                         "tensorrt install onnxruntime-gpu on a machine with an NVIDIA GPU")
    return [PROVIDERS[name]] + (["CPUExecutionProvider"] if name != "cpu" else [])


class OnnxSession:
    """A CPU ``InferenceSession``. ``run`` is safe to call from several threads at once.

    Two ways to use the cores. Inside one run: ``intra_op_threads`` threads split each
    operator. Across runs: :meth:`run_all` hands the batches of one call to ``parallel_runs``
    threads, each running whole batches. The default is the second with one thread per run:
    on small, cache-sized batches it does not pay a thread handoff per operator (MiniLM-L6 on
    2 cores: 1.1-1.4x the first; docs/benchmarks.md, "Scorer").
    """

    def __init__(self, path: Path, *, intra_op_threads: int = 1, parallel_runs: int = 0,
                 graph_optimization: str = "all", execution_provider: str = "cpu") -> None:
        if graph_optimization not in _LEVELS:
            raise ValueError(f"graph_optimization must be one of {sorted(_LEVELS)}, "
                             f"got {graph_optimization!r}")
        if intra_op_threads < 0:
            raise ValueError("intra_op_threads must be >= 0 (0: one per core)")
        if parallel_runs < 0:
            raise ValueError("parallel_runs must be >= 0 (0: as many as fit the cores)")
        providers = execution_providers(execution_provider)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = _LEVELS[graph_optimization]
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), options,
                                                 providers=providers)
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
        self.parallel_runs = parallel_runs_for(intra_op_threads, parallel_runs)
        self._runners = (ThreadPoolExecutor(self.parallel_runs,
                                            thread_name_prefix="crossrank-onnx-run")
                         if self.parallel_runs > 1 else None)

    def run(self, batch: Batch, output: str) -> npt.NDArray[np.float32]:
        arrays = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
                  "token_type_ids": batch.token_type_ids}
        feeds = {name: arrays[name].astype(dtype, copy=False)
                 for name, dtype in self.inputs.items()}
        (result,) = self._session.run([output], feeds)
        return np.asarray(result, dtype=np.float32)

    def run_all(self, batches: Iterable[Batch],
                output: str) -> Iterator[tuple[Batch, npt.NDArray[np.float32]]]:
        """Each batch with its output, in order; up to ``parallel_runs`` batches at once.

        Must not be called from one of this session's own runner threads (it would wait on
        itself); callers are request or batcher threads.
        """
        if self._runners is None:
            for batch in batches:
                yield batch, self.run(batch, output)
            return
        yield from self._runners.map(lambda batch: (batch, self.run(batch, output)), batches)

    @property
    def providers(self) -> list[str]:
        """The execution providers the session runs on, in order of preference."""
        return list(self._session.get_providers())

    def close(self) -> None:
        """Stop the runner threads (idle ones exit with the process anyway)."""
        if self._runners is not None:
            self._runners.shutdown(wait=True, cancel_futures=True)
