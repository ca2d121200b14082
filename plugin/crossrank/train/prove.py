"""The final, once-only measurement on SciFact's TEST judgments (``qrels.tsv``).

Nothing in training, validation or model selection calls this module: it reads the shipped
model directory and the blend weight already recorded in its manifest, and reports

- BM25 (OpenSearch, each analyzer) against the shipped score mode over BM25's top 100;
- the window K against quality and scoring time per query;
- the int8 model against its fp32 export (if given);
- the bi-encoder alone (exact dense search over the corpus) and as a reranker.

Run it with ``python -m crossrank.train.prove --model onnx_models/NAME --opensearch URL``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from opensearchpy import OpenSearch

from crossrank.eval.datasets import load_qrels, load_queries
from crossrank.train.card import write_card
from crossrank.train.data import find_scifact, load_scifact, render
from crossrank.train.mining import Ranked, ensure_index, search_many
from crossrank.train.validate import evaluate_window, ndcg_at

WINDOWS = (10, 20, 30, 50, 100)
FP32_WINDOW = 30


def _cached_scores(path: Path, keys: np.ndarray, model_sha: str) -> np.ndarray | None:
    """Scores saved by an earlier run for exactly these pairs and this model file."""
    if not path.is_file():
        return None
    saved = np.load(path)
    if ("model_sha" not in saved or str(saved["model_sha"]) != model_sha
            or saved["pairs"].shape != keys.shape or not (saved["pairs"] == keys).all()):
        return None
    scores: np.ndarray = saved["scores"]
    return scores


def _log(message: str) -> None:
    print(f"[prove] {message}", file=sys.stderr, flush=True)


def _scores(model_dir: Path, pairs: list[tuple[str, str]], threads: int) -> tuple[
        np.ndarray, float]:
    from crossrank.models import CrossEncoder

    model = CrossEncoder.load(model_dir, intra_op_threads=threads)
    began = time.monotonic()
    scores = model.score(pairs)
    return scores.astype(np.float64), time.monotonic() - began


def _latency(model_dir: Path, claims: list[str], docs: list[list[str]], threads: int,
             windows: tuple[int, ...]) -> dict[int, float]:
    """Median milliseconds to score one query's window, as one call (the proxy's unit)."""
    from crossrank.models import CrossEncoder

    model = CrossEncoder.load(model_dir, intra_op_threads=threads)
    model.warmup()
    out: dict[int, float] = {}
    for k in windows:
        times = []
        for claim, window in zip(claims, docs, strict=True):
            began = time.perf_counter()
            model.score([(claim, d) for d in window[:k]])
            times.append((time.perf_counter() - began) * 1000)
        out[k] = round(statistics.median(times), 1)
    return out


# (label, analyzer, multi_match tie_breaker): the first is `crossrank eval`'s default BM25 arm
FIRST_STAGES = (("english, tie_breaker 0.3", "english", 0.3), ("english", "english", None),
                ("standard", "standard", None))


def prove(model_dir: Path, scifact_root: Path, opensearch_url: str, *,
          fp32_dir: Path | None = None,
          first_stages: tuple[tuple[str, str, float | None], ...] = FIRST_STAGES,
          cache: Path = Path(".crossrank/train/cache"), threads: int = 2,
          latency_queries: int = 10) -> dict[str, Any]:
    from crossrank.models import Manifest

    manifest = Manifest.read(model_dir)
    training = dict(manifest.training or {})
    mode = training.get("score_mode", {"score_mode": "replace"})
    alpha = float(mode.get("blend_alpha", 1.0)) if mode.get("score_mode") == "blend" else 1.0
    # each window K with the blend weight validation chose for that K (train claims only)
    tuned = (training.get("tuning") or {}).get("by_window", {})
    alpha_by_k = {k: float(tuned[str(k)]["best_alpha"]) if str(k) in tuned else alpha
                  for k in WINDOWS}
    template = training.get("config", {}).get("doc_template", "{title}. {text}")

    data = load_scifact(scifact_root)
    queries = load_queries(scifact_root / "queries.jsonl")
    qrels: dict[str, dict[str, int]] = {}
    for _, qid, doc_id, score in load_qrels(scifact_root / "qrels.tsv"):
        qrels.setdefault(qid, {})[doc_id] = score
    qrels = {q: j for q, j in qrels.items() if any(s > 0 for s in j.values())}
    qids = sorted(qrels)
    leaked = set(qids) & set(data.qrels)
    if leaked:
        raise RuntimeError(f"{len(leaked)} test claims also have train judgments")
    client = OpenSearch(opensearch_url, timeout=120)
    runs: dict[str, dict[str, Ranked]] = {}
    for label, analyzer, tie_breaker in first_stages:
        index = f"crossrank-train-scifact-{analyzer}"
        ensure_index(client, index, data.corpus, data.fingerprint, analyzer)
        hits = search_many(client, index, [queries[q] for q in qids], max(WINDOWS),
                           tie_breaker=tie_breaker)
        runs[label] = dict(zip(qids, hits, strict=True))
    analyzers = tuple(runs)

    pairs_index: dict[tuple[str, str], int] = {}
    for run in runs.values():
        for q, ranked in run.items():
            for d, _ in ranked:
                pairs_index.setdefault((q, d), len(pairs_index))
    pairs = [(queries[q], render(data.corpus[d], template)) for q, d in pairs_index]
    keys = np.array([f"{q}\t{d}" for q, d in pairs_index])
    model_sha = manifest.checksums[manifest.model_file]
    saved = cache / "test-int8-scores.npz"
    int8 = _cached_scores(saved, keys, model_sha)
    if int8 is None:
        _log(f"scoring {len(pairs)} distinct (claim, abstract) pairs with {model_dir}")
        int8, int8_s = _scores(model_dir, pairs, threads)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(saved, scores=int8, pairs=keys, model_sha=model_sha, seconds=int8_s)
    else:
        int8_s = float(np.load(saved)["seconds"])
        _log(f"reusing the int8 scores in {saved}")
    _log(f"int8: {len(pairs)} pairs in {int8_s:.0f} s")
    fp32 = None
    if fp32_dir is not None:  # the first stage's top FP32_WINDOW only: fp32 is slow on 2 cores
        first_pairs = sorted({pairs_index[q, d] for q, ranked in runs[analyzers[0]].items()
                              for d, _ in ranked[:FP32_WINDOW]})
        fp32 = np.full(len(pairs), np.nan)
        values, fp32_s = _scores(fp32_dir, [pairs[i] for i in first_pairs], threads)
        fp32[first_pairs] = values
        _log(f"fp32: {fp32_s:.0f} s")
        np.savez(cache / "test-fp32-scores.npz", scores=fp32)

    report: dict[str, Any] = {"claims": len(qids), "score_mode": mode,
                              "alpha_by_window": alpha_by_k,
                              "pairs": len(pairs), "int8_scoring_s": round(int8_s, 1),
                              "threads": threads, "analyzers": {}}
    for analyzer, run in runs.items():
        def window_scores(values: np.ndarray, run: dict[str, Ranked] = run) -> dict[
                str, np.ndarray]:
            return {q: np.array([values[pairs_index[q, d]] for d, _ in run[q]]) for q in qids}

        entry: dict[str, Any] = {"bm25": round(float(np.mean(
            [ndcg_at([d for d, _ in run[q]], qrels[q]) for q in qids])), 4)}
        entry["bm25_recall@100"] = round(float(np.mean(
            [len({d for d, _ in run[q]} & {d for d, s in qrels[q].items() if s > 0}) /
             sum(1 for s in qrels[q].values() if s > 0) for q in qids])), 4)
        scored = window_scores(int8)
        by_k = {}
        for k in WINDOWS:
            w = evaluate_window(run, scored, qrels, k, (alpha_by_k[k],))
            by_k[k] = {"alpha": alpha_by_k[k], "rerank": round(w.rerank, 4),
                       "blend": round(w.blend[alpha_by_k[k]], 4)}
        entry["int8_by_window"] = by_k
        sweep = evaluate_window(run, scored, qrels, 100, tuple(a / 10 for a in range(11)))
        entry["alpha_sweep_test_for_reference_only"] = {
            str(a): round(v, 4) for a, v in sweep.blend.items()}
        if fp32 is not None and analyzer == analyzers[0]:
            fp32_scored = window_scores(fp32)
            entry["fp32_by_window"] = {}
            for k in (k for k in WINDOWS if k <= FP32_WINDOW):
                f = evaluate_window(run, fp32_scored, qrels, k, (alpha_by_k[k],))
                entry["fp32_by_window"][k] = {"rerank": round(f.rerank, 4),
                                              "blend": round(f.blend[alpha_by_k[k]], 4)}
        report["analyzers"][analyzer] = entry

    report["bi_encoder"] = _bi_encoder(data, queries, qids, qrels, runs, cache, template)
    first = runs[analyzers[0]]
    sample = qids[:latency_queries]
    report["latency_ms_median_by_window"] = _latency(
        model_dir, [queries[q] for q in sample],
        [[render(data.corpus[d], template) for d, _ in first[q]] for q in sample], threads,
        WINDOWS)
    return report


def _bi_encoder(data: Any, queries: dict[str, str], qids: list[str],
                qrels: dict[str, dict[str, int]], runs: dict[str, dict[str, Ranked]],
                cache: Path, template: str) -> dict[str, Any]:
    """Exact dense search with the bi-encoder, and the bi-encoder reranking BM25's top 100."""
    from crossrank.train.prepare import cached_vectors
    from crossrank.train.teacher import BiEncoder, bi_encoder_dir

    holder: list[BiEncoder] = []

    def encoder() -> BiEncoder:
        if not holder:
            holder.append(BiEncoder(bi_encoder_dir(), 256))
        return holder[0]

    doc_ids = sorted(data.corpus)
    docs = cached_vectors(encoder, [render(data.corpus[d], template) for d in doc_ids], 256,
                          cache, "corpus")
    claims = encoder().encode([queries[q] for q in qids])
    out: dict[str, Any] = {}
    dense = claims @ docs.T
    out["dense_alone"] = round(float(np.mean([
        ndcg_at([doc_ids[i] for i in np.argsort(-dense[n])[:100]], qrels[q])
        for n, q in enumerate(qids)])), 4)
    position = {d: i for i, d in enumerate(doc_ids)}
    for analyzer, run in runs.items():
        scored = {q: np.array([dense[n, position[d]] for d, _ in run[q]])
                  for n, q in enumerate(qids)}
        w = evaluate_window(run, scored, qrels, 100, (0.5,))
        out[f"reranking BM25 ({analyzer}) top 100"] = round(w.rerank, 4)
        out[f"0.5 blend with BM25 ({analyzer}), top 100"] = round(w.blend[0.5], 4)
    return out


def summary_markdown(report: dict[str, Any]) -> str:
    alphas = report["alpha_by_window"]
    lines = [f"Recommended policy {json.dumps(report['score_mode'])}. BM25 candidates from "
             "OpenSearch (`multi_match` over title and text); both arms rank the same "
             "candidates. Blend weights were chosen on validation (train) claims per window.",
             "", "| First stage (BM25 top 100) | BM25 | + model, blend (alpha) | model alone "
             "(replace) | gain of the blend |", "|---|---|---|---|---|"]
    for analyzer, entry in report["analyzers"].items():
        top = entry["int8_by_window"][100]
        lines.append(f"| {analyzer} | {entry['bm25']} | {top['blend']} "
                     f"({top['alpha']}) | {top['rerank']} | {top['blend'] - entry['bm25']:+.4f} |")
    bi = report["bi_encoder"]
    lines += ["", f"Bi-encoder (all-MiniLM-L6-v2) alone, exact dense search over the corpus: "
              f"{bi['dense_alone']}; as a reranker of BM25's top 100: "
              + ", ".join(f"{k} {v}" for k, v in bi.items() if k != "dense_alone") + ".", "",
              f"Window K ({next(iter(report['analyzers']))}), int8 model, median time "
              f"to score one query's window on {report['threads']} threads:", "",
              "| K | blend (alpha) | model alone | ms per query |", "|---|---|---|---|"]
    first = next(iter(report["analyzers"].values()))
    for k, values in first["int8_by_window"].items():
        ms = report["latency_ms_median_by_window"].get(k, "")
        lines.append(f"| {k} | {values['blend']} ({alphas[k]}) | {values['rerank']} | {ms} |")
    if "fp32_by_window" in first:
        lines += ["", "int8 against fp32 (same first stage):", "",
                  "| K | blend int8 | blend fp32 | alone int8 | alone fp32 |",
                  "|---|---|---|---|---|"]
        for k, fp in first["fp32_by_window"].items():
            q = first["int8_by_window"][k]
            lines.append(f"| {k} | {q['blend']} | {fp['blend']} ({q['blend'] - fp['blend']:+.4f})"
                         f" | {q['rerank']} | {fp['rerank']} ({q['rerank'] - fp['rerank']:+.4f}) |")
    return "\n".join(lines)


def prove_command(
    model: Annotated[Path, typer.Option(help="The shipped model directory.")],
    opensearch: Annotated[str, typer.Option(help="OpenSearch URL.")] = "http://127.0.0.1:9200",
    fp32: Annotated[Path | None, typer.Option(help="An fp32 export of the same weights.")
                    ] = None,
    scifact: Annotated[Path | None, typer.Option(help="SciFact (BEIR layout).")] = None,
    out: Annotated[Path, typer.Option(help="Report JSON.")] = Path(
        ".crossrank/train/test_report.json"),
    record: Annotated[bool, typer.Option(
        "--record/--no-record", help="Write the results into the manifest and the card.")
    ] = True,
) -> None:
    """Measure the shipped model once on SciFact's test judgments."""
    from crossrank.models import Manifest

    root = scifact or find_scifact(Path.cwd())
    report = prove(model, root, opensearch, fp32_dir=fp32)
    report["summary_markdown"] = summary_markdown(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    typer.echo(report["summary_markdown"])
    if record:
        manifest = Manifest.read(model)
        training = {**(manifest.training or {}), "test": report}
        manifest.model_copy(update={"training": training}).write(model)
        write_card(model, training)


if __name__ == "__main__":
    typer.run(prove_command)
