"""What one `crossrank eval` run is asked to do: the options, defined once for the command,
the script and the tests."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from crossrank.eval.arms import DEFAULT_ARMS
from crossrank.eval.datasets import Dataset

DEFAULT_WINDOWS = (20, 50, 100)
# The name the proxy knows the embedder by: `crossrank serve --models-dir onnx_models` names
# each model after its directory, and scripts/prepare_models.py exports all-MiniLM-L6-v2 (the
# model benchmarks/bench_hybrid.py measured) into onnx_models/minilm-l6-embedder.
DEFAULT_EMBEDDER = "minilm-l6-embedder"


@dataclass(frozen=True)
class EvalOptions:
    dataset: Path
    qrels: Path | None = None
    arms: tuple[str, ...] = DEFAULT_ARMS
    arms_file: Path | None = None
    windows: tuple[int, ...] = DEFAULT_WINDOWS
    index: str | None = None
    out: Path | None = None
    proxy: str = "http://127.0.0.1:8080"
    admin_token: str | None = None
    models: tuple[str, ...] = ("default",)
    embedder: str = DEFAULT_EMBEDDER
    size: int = 100
    analyzer: str = "english"
    rerank_only: bool = False
    manage_policy: bool = True
    reindex: bool = False
    limit: int | None = None
    warmup: int = 3
    template: str = "{title}. {text}"
    progress: bool = True
    blend_alpha: float | None = None
    notes: list[str] = field(default_factory=list)

    def index_name(self, dataset: Dataset) -> str:
        if self.index:
            return self.index
        return "crossrank-eval-" + (re.sub(r"[^a-z0-9_-]+", "-", dataset.name.lower()).strip("-")
                                    or "dataset")

    def out_dir(self, dataset: Dataset) -> Path:
        return self.out or Path("reports") / "eval" / dataset.name

    def command_line(self) -> str:
        parts = ["crossrank", "eval", "--dataset", str(self.dataset)]
        if self.qrels:
            parts += ["--qrels", str(self.qrels)]
        if self.rerank_only:
            parts += ["--rerank-only", "--model", ",".join(self.models)]
        else:
            parts += ["--arms", ",".join(self.arms),
                      "--window", ",".join(map(str, self.windows)), "--size", str(self.size),
                      "--analyzer", self.analyzer, "--model", self.models[0]]
            if self.blend_alpha is not None:
                parts += ["--blend-alpha", str(self.blend_alpha)]
            if self.arms_file:
                parts += ["--arms-file", str(self.arms_file)]
            if self.embedder != DEFAULT_EMBEDDER:
                parts += ["--embedder", self.embedder]
        if self.limit:
            parts += ["--limit", str(self.limit)]
        return shlex.join(parts)
