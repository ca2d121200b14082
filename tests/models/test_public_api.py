"""The public surface of crossrank.models, and what serving imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import crossrank.models


def test_exported_members() -> None:
    assert sorted(crossrank.models.__all__) == [
        "CrossEncoder", "Embedder", "ExportError", "Manifest", "ManifestError", "ModelError",
        "ModelKindError", "ModelLookupError", "ModelRegistry", "discover_models",
        "export_model"]


def test_serving_never_imports_torch_transformers_or_optimum(tiny_cross_encoder_dir: Path,
                                                            minilm_embedder_dir: Path) -> None:
    code = (
        "import sys, asyncio\n"
        "from pathlib import Path\n"
        "from crossrank.models import ModelRegistry\n"
        f"r = ModelRegistry({{'c': Path({str(tiny_cross_encoder_dir)!r}),"
        f" 'e': Path({str(minilm_embedder_dir)!r})}})\n"
        "r.warmup()\n"
        "asyncio.run(r.score('c', [('q', 'd')]))\n"
        "asyncio.run(r.embed('e', ['t']))\n"
        "r.close()\n"
        "heavy = {'torch', 'transformers', 'optimum', 'onnx', 'sentence_transformers'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=120)
    assert result.stdout.strip() == "[]"
