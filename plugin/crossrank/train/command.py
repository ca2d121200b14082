"""``crossrank finetune`` and ``crossrank train``: one training code path (``finetune.py``),
two sets of defaults.

- ``finetune``: a user's judgments, hard negatives from their own index through the proxy,
  starting from the policy's model (or ``--from`` any local Hugging Face cross-encoder).
- ``train``: the shipped default model, the same run with ``DEFAULT_MODEL_RECIPE`` (from the
  all-MiniLM-L6-v2 bi-encoder, SciFact's train judgments, inverse-cloze and WikiQA groups).

torch and transformers are imported inside, so ``crossrank --help`` works without the train
extra.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_NAME = "crossrank-minilm-l6-scifact"

Policy = Annotated[str, typer.Option(help="The policy whose index and first stage to mine "
                                          "(as the proxy names it).")]
Dataset = Annotated[Path | None, typer.Option(
    help="BEIR directory: queries.jsonl and qrels (corpus.jsonl only for inverse-cloze "
         "groups).")]
Qrels = Annotated[Path | None, typer.Option(
    help="Judgments TSV of the BEIR directory (default: DATASET/qrels.tsv).")]
Judgments = Annotated[Path | None, typer.Option(
    help="Instead of --dataset: a TSV of query text, document id, grade.")]
Index = Annotated[str | None, typer.Option(help="Index to mine (default: the policy's only "
                                                "index).")]
Query = Annotated[str | None, typer.Option(
    help='Search query as JSON with "{{query}}" for the text (default: multi_match over the '
         "policy's text fields).")]
Proxy = Annotated[str, typer.Option(envvar="CROSSRANK_PROXY_URL")]
Token = Annotated[str | None, typer.Option(envvar="CROSSRANK_ADMIN_TOKEN")]
ModelsDir = Annotated[Path, typer.Option(help="Where the proxy's models are (the policy's "
                                              "model and embedder).")]
WorkDir = Annotated[Path, typer.Option(help="Caches (teacher embeddings).")]
ConfigFile = Annotated[Path | None, typer.Option(
    "--config", help="JSON object overriding TrainConfig fields.")]
Seed = Annotated[int | None, typer.Option(help="Override the config's seed.")]
Budget = Annotated[float | None, typer.Option(
    help="Stop taking training steps after this many seconds (the schedule anneals in it).")]
Wikiqa = Annotated[Path | None, typer.Option(
    help="WikiQA train pairs (jsonl: qid, query, passage, label), for wikiqa_groups.")]
Limit = Annotated[int | None, typer.Option(min=4, help="Only the first N judged queries.")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress")]


def finetune_command(
    policy: Policy,
    out: Annotated[Path, typer.Option(help="Model directory to write (int8 model.onnx, "
                                           "pytorch/, crossrank.json, README.md).")],
    dataset: Dataset = None, qrels: Qrels = None, judgments: Judgments = None,
    index: Index = None, query: Query = None,
    start: Annotated[Path | None, typer.Option(
        "--from", help="Start from this local Hugging Face cross-encoder, or a crossrank "
                       "model directory with its PyTorch weights (default: the policy's "
                       "model).")] = None,
    proxy: Proxy = "http://127.0.0.1:8080", admin_token: Token = None,
    models_dir: ModelsDir = Path("onnx_models"),
    work_dir: WorkDir = Path(".crossrank") / "finetune",
    config_file: ConfigFile = None, seed: Seed = None, time_budget_s: Budget = None,
    wikiqa: Wikiqa = None, limit: Limit = None, progress: Progress = True,
) -> None:
    """Fine-tune a cross-encoder on your judgments, with hard negatives from your index;
    export int8 ONNX with its weights, card and recommended scoring."""
    _run(dict(policy=policy, out=out, dataset=dataset, qrels=qrels, judgments=judgments,
              index=index, query=query, start=start, models_dir=models_dir,
              work_dir=work_dir, proxy=proxy, admin_token=admin_token, wikiqa=wikiqa,
              limit=limit, progress=progress, recipe="finetune"),
         config_file, seed, time_budget_s)


def train_command(
    policy: Policy,
    out: Annotated[Path, typer.Option(help="Model directory to write.")]
        = Path("onnx_models") / DEFAULT_NAME,
    dataset: Dataset = None,
    qrels: Annotated[Path | None, typer.Option(
        help="Judgments (default: DATASET/qrels_train.tsv; never the test qrels).")] = None,
    index: Index = None,
    proxy: Proxy = "http://127.0.0.1:8080", admin_token: Token = None,
    models_dir: ModelsDir = Path("onnx_models"),
    work_dir: WorkDir = Path(".crossrank") / "train",
    config_file: ConfigFile = None, seed: Seed = None, time_budget_s: Budget = None,
    wikiqa: Wikiqa = None, progress: Progress = True,
) -> None:
    """Train the shipped default cross-encoder (the finetune path with the default recipe,
    from all-MiniLM-L6-v2) on SciFact's train judgments, WikiQA and inverse-cloze queries."""
    from crossrank.train.data import TRAIN_QRELS, find_scifact

    root = dataset or find_scifact(Path.cwd())
    if wikiqa is None:
        shared = Path.cwd().parent / "shared" / "datasets" / "wikiqa-train" / "train_pairs.jsonl"
        wikiqa = shared if shared.is_file() else None
    if wikiqa is None:
        typer.echo("note: no WikiQA pairs found; training without them", err=True)
    _run(dict(policy=policy, out=out, dataset=root, qrels=qrels or root / TRAIN_QRELS,
              index=index, start=None, models_dir=models_dir, work_dir=work_dir,
              proxy=proxy, admin_token=admin_token, wikiqa=wikiqa, progress=progress,
              recipe="default-model"),
         config_file, seed, time_budget_s)


def _run(fields: dict[str, Any], config_file: Path | None, seed: int | None,
         time_budget_s: float | None) -> None:
    """``fields["recipe"]`` names the preset: ``finetune`` (``TrainConfig()``) or
    ``default-model`` (``DEFAULT_MODEL_RECIPE``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from crossrank.eval.datasets import DatasetError
        from crossrank.eval.proxy_client import EvalError
        from crossrank.train import config as configs
        from crossrank.train.finetune import FinetuneOptions, run_finetune
        from crossrank.train.student import StartError
    except ImportError as exc:
        typer.echo(f"error: training needs the train extra (pip install 'crossrank[train]'): "
                   f"{exc}", err=True)
        raise typer.Exit(2) from exc
    base = (configs.DEFAULT_MODEL_RECIPE if fields["recipe"] == "default-model"
            else configs.TrainConfig())
    overrides: dict[str, Any] = {}
    if config_file is not None:
        overrides = json.loads(config_file.read_text(encoding="utf-8"))
    if seed is not None:
        overrides["seed"] = seed
    if time_budget_s is not None:
        overrides["time_budget_s"] = time_budget_s
    try:
        config = configs.TrainConfig.from_dict(base.to_dict() | overrides)
        if fields["recipe"] == "default-model" and fields["start"] is None:
            from crossrank.train.teacher import bi_encoder_dir

            fields["start"] = bi_encoder_dir()
        done = run_finetune(FinetuneOptions(**fields, config=config))
    except (DatasetError, EvalError, StartError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    record = done.training
    typer.echo(json.dumps({"out": str(done.out), "best": record["validation"]["best"] and {
        k: record["validation"]["best"][k] for k in ("step", "bm25", "rerank", "best_blend",
                                                      "best_alpha")},
        "start_kept": record["validation"]["start_kept"],
        "scoring": record.get("scoring"), "wikiqa_held_out": record.get("wikiqa_held_out"),
        "seconds": record["time"]["seconds"]}, indent=2))
