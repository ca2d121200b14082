"""`crossrank tune`, the command: flags in, ``run_tune`` out, errors as one line.

The index must already hold the documents behind the policy; nothing is indexed. The tune's
own imports (ranx, matplotlib, tqdm: the ``eval`` extra) load only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from crossrank.eval.command import parse_windows
from crossrank.eval.datasets import DatasetError
from crossrank.tune.options import TuneOptions


def tune_command(
    policy: Annotated[str, typer.Option(help="The policy to tune (as the proxy names it).")],
    dataset: Annotated[Path | None, typer.Option(
        help="BEIR directory: queries.jsonl and qrels.tsv.")] = None,
    qrels: Annotated[Path | None, typer.Option(
        help="Judgments TSV of the BEIR directory (default: DATASET/qrels.tsv).")] = None,
    judgments: Annotated[Path | None, typer.Option(
        help="Instead of --dataset: a TSV of query text, document id, grade.")] = None,
    index: Annotated[str | None, typer.Option(
        help="Index to search (default: the policy's only index).")] = None,
    query: Annotated[str | None, typer.Option(
        help='Search query as JSON with "{{query}}" for the text (default: multi_match '
             "over the policy's text fields).")] = None,
    windows: Annotated[str, typer.Option(help="Windows K to try, comma-separated.")]
        = "10,20,30,50",
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the folds and intervals.")] = 0,
    proxy: Annotated[str, typer.Option(envvar="CROSSRANK_PROXY_URL")] = "http://127.0.0.1:8080",
    admin_token: Annotated[str | None, typer.Option(envvar="CROSSRANK_ADMIN_TOKEN")] = None,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Write the recommended settings into the policy.")] = False,
    write_card: Annotated[Path | None, typer.Option(
        help="Write the recommendation into this model directory's card (crossrank.json), "
             "for the policy's kind of first stage.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Report directory (default: reports/tune/POLICY).")] = None,
    limit: Annotated[int | None, typer.Option(min=2, help="Only N judged queries.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Choose a policy's scoring settings (window, blend, normalisation, or reranking off) by
    cross-validation on judged queries, through the proxy; write tune.md, tune.json, tune.png."""
    options = TuneOptions(policy, dataset, qrels, judgments, index, query, parse_windows(windows),
                          folds, seed, proxy, admin_token, apply, write_card, out, limit,
                          progress)
    try:
        from crossrank.eval.proxy_client import EvalError
        from crossrank.tune.run import run_tune
    except ImportError as exc:
        typer.echo(f"error: crossrank tune needs the eval extra ({exc.name} is missing): "
                   "pip install 'crossrank[eval]'", err=True)
        raise typer.Exit(1) from exc
    try:
        report, paths = run_tune(options)
    except (DatasetError, EvalError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    cv = report.cross_validation
    typer.echo(f"first stage {report.first_stage}, {report.queries} queries: held-out nDCG@10 "
               f"{cv['held_out_ndcg']:.4f} vs off {cv['off_ndcg']:.4f} "
               f"({cv['gain']:+.4f}, p {cv['p_value_randomisation']:.3g})")
    typer.echo(f"recommended: {report.recommended.name} "
               f"{orjson.dumps(report.recommended.policy_fields).decode()}")
    typer.echo(f"report: {paths['markdown']}")
