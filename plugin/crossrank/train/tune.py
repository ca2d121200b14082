"""Choose the shipped policy settings on the validation claims, with the exported model.

Training validates the PyTorch model on a narrow window (cheap). The policy, though, runs the
int8 ONNX model over a window K of up to 100 hits, and min-max normalisation in the blend
depends on K. So after export the validation claims' BM25 top 100 are scored once with the
shipped model, and for each K the best blend weight is read off, on TRAIN claims only. The
chosen ``score_mode``, ``blend_alpha`` and ``window`` go into the manifest.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from crossrank.train.data import render
from crossrank.train.prepare import Prepared
from crossrank.train.validate import evaluate_window

WINDOWS = (10, 20, 30, 50, 100)


def tune_exported(model_dir: Any, prepared: Prepared, template: str,
                  alphas: tuple[float, ...], threads: int = 2,
                  windows: tuple[int, ...] = WINDOWS) -> dict[str, Any]:
    from crossrank.models import CrossEncoder

    data = prepared.scifact
    qids = prepared.split.validation
    depth = max(windows)
    candidates = {q: prepared.candidates[f"claim:{q}"][:depth] for q in qids}
    qrels = {q: dict.fromkeys(data.qrels[q], 1) for q in qids}
    pairs = [(data.claims[q], render(data.corpus[d], template))
             for q in qids for d, _ in candidates[q]]
    model = CrossEncoder.load(model_dir, intra_op_threads=threads)
    began = time.monotonic()
    flat = model.score(pairs).astype(np.float64)
    seconds = time.monotonic() - began
    scores: dict[str, np.ndarray] = {}
    start = 0
    for q in qids:
        scores[q] = flat[start:start + len(candidates[q])]
        start += len(candidates[q])
    by_window = {k: evaluate_window(candidates, scores, qrels, k, alphas) for k in windows}
    # the smallest window whose best blend is within 0.002 of the best: quality first, then
    # the cheaper window among near-equals
    best = max(r.best_blend for r in by_window.values())
    chosen = min((k for k, r in by_window.items() if r.best_blend >= best - 0.002))
    report = by_window[chosen]
    mode: dict[str, Any] = (
        {"score_mode": "blend", "blend_alpha": report.best_alpha, "window": chosen}
        if report.best_blend > report.rerank else {"score_mode": "replace", "window": chosen})
    return {"pairs": len(pairs), "scoring_s": round(seconds, 1), "claims": len(qids),
            "by_window": {str(k): r.as_dict() for k, r in by_window.items()},
            "chosen": mode}
