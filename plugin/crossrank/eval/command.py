"""`crossrank eval`, the command: flags in, ``run_evaluation`` out, errors as one line.

``cli.py`` registers ``eval_command`` as ``crossrank eval``. The evaluation's own imports
(ranx, matplotlib, tqdm: the ``eval`` extra) load only when the command runs, so a serving-only
install keeps a working CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crossrank.eval.arms import DEFAULT_ARMS, ArmError
from crossrank.eval.datasets import DatasetError
from crossrank.eval.options import DEFAULT_EMBEDDER, DEFAULT_WINDOWS, EvalOptions
from crossrank.eval.proxy_client import EvalError


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_windows(value: str) -> tuple[int, ...]:
    """``20,50,100`` -> (20, 50, 100); the window flags of ``eval`` and ``tune``."""
    try:
        windows = tuple(int(part) for part in _csv(value))
    except ValueError as exc:
        raise typer.BadParameter(f"expected comma-separated integers, got {value!r}") from exc
    if not windows or any(w < 1 for w in windows):
        raise typer.BadParameter("windows must be positive integers")
    return windows


def eval_command(
    dataset: Annotated[Path, typer.Option(
        "--dataset", help="BEIR directory: corpus.jsonl, queries.jsonl, qrels.tsv.")],
    qrels: Annotated[Path | None, typer.Option(
        help="Judgments TSV (default: DATASET/qrels.tsv).")] = None,
    arms: Annotated[str, typer.Option(
        help="Comma-separated arms: bm25, bm25+rerank, hybrid, hybrid+rerank, or names "
             "from --arms-file. Hybrid arms index the documents with vectors (--embedder).")]
        = ",".join(DEFAULT_ARMS),
    window: Annotated[str, typer.Option(
        help="Rerank windows K to measure, comma-separated.")]
        = ",".join(map(str, DEFAULT_WINDOWS)),
    index: Annotated[str | None, typer.Option(
        help="Index to (re)use (default: crossrank-eval-<dataset>).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Report directory (default: reports/eval/<dataset>).")] = None,
    proxy: Annotated[str, typer.Option(
        envvar="CROSSRANK_PROXY_URL", help="URL of the crossrank proxy.")]
        = "http://127.0.0.1:8080",
    admin_token: Annotated[str | None, typer.Option(
        envvar="CROSSRANK_ADMIN_TOKEN", help="Admin token, to put the eval policy.")] = None,
    model: Annotated[str, typer.Option(
        help="Model name (rerank-only: comma-separated, one run each).")] = "default",
    embedder: Annotated[str, typer.Option(
        help="Embedder, as the proxy names it, for the arms that need vectors (hybrid): the "
             "proxy embeds each document with it while indexing.")] = DEFAULT_EMBEDDER,
    size: Annotated[int, typer.Option(min=1, max=10_000, help="Hits per query.")] = 100,
    analyzer: Annotated[str, typer.Option(
        help="Analyzer of title and text when indexing: english or standard.")] = "english",
    rerank_only: Annotated[bool, typer.Option(
        "--rerank-only", help="Rerank each query's judged candidates via "
                              "POST /_crossrank/rerank; no index, no retrieval.")] = False,
    arms_file: Annotated[Path | None, typer.Option(
        help="JSON file with more arms: {\"arms\": [{name, query, rerank, policy}]}.")] = None,
    policy: Annotated[bool, typer.Option(
        "--policy/--no-policy", help="Put the eval policy on the index (needs the admin "
                                     "token), or use the policy already there.")] = True,
    reindex: Annotated[bool, typer.Option(
        "--reindex", help="Delete and rebuild the index even if it holds the corpus.")] = False,
    limit: Annotated[int | None, typer.Option(
        min=1, help="Only the first N judged queries (a quick check).")] = None,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed queries per run first.")] = 3,
    template: Annotated[str, typer.Option(
        help="Document text the model scores.")] = "{title}. {text}",
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    blend_alpha: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Rerank arms blend scores: alpha x model + (1 - alpha) x "
                               "first stage, both min-max normalised (policy score_mode "
                               "blend). Default: the model's score replaces the first "
                               "stage's.")] = None,
) -> None:
    """Measure relevance (nDCG@10, MRR@10, MAP@100, Recall@100) and latency of each arm on
    judged data, through the proxy; write report.md, report.json and plots."""
    options = EvalOptions(
        dataset=dataset, qrels=qrels, arms=_csv(arms), arms_file=arms_file,
        windows=parse_windows(window), index=index, out=out, proxy=proxy, admin_token=admin_token,
        models=_csv(model) or ("default",), embedder=embedder, size=size, analyzer=analyzer,
        rerank_only=rerank_only, manage_policy=policy, reindex=reindex, limit=limit,
        warmup=warmup, template=template, progress=progress, blend_alpha=blend_alpha)
    try:
        from crossrank.eval.evaluation import run_evaluation
    except ImportError as exc:
        typer.echo(f"error: crossrank eval needs the eval extra ({exc.name} is missing): "
                   "pip install 'crossrank[eval]'", err=True)
        raise typer.Exit(1) from exc
    try:
        report, paths = run_evaluation(options)
    except (DatasetError, EvalError, ArmError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for result in report.results:
        typer.echo(f"{result.key:<24} " + "  ".join(
            f"{name} {value:.4f}" for name, value in result.metrics.items())
            + f"  p50 {result.latency.p50_ms:.1f} ms  p95 {result.latency.p95_ms:.1f} ms")
    typer.echo(f"report: {paths['markdown']}")
