"""One training run, end to end: the one code path of ``crossrank finetune`` and of
``crossrank train`` (the default model is a fine-tune with the default recipe).

    judged queries (tune's reader) -> split by query (train / held out)
    -> candidates and texts through the proxy (``proxy_mining``)
    -> groups: judged, plus the recipe's inverse-cloze and WikiQA groups, with teacher scores
    -> the loop (``trainer``), checkpoints chosen on the held-out queries' first-stage windows
    -> fp16 weights + int8 ONNX + manifest (``ship``)
    -> the card's scoring for the policy's first stage, chosen on the held-out queries with the
       exported model (``tune.select``), and the report.
"""

from __future__ import annotations

import os
import platform
import random
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crossrank.eval.datasets import Judged, read_corpus
from crossrank.eval.judgments import read_judgments
from crossrank.eval.proxy_client import ProxyClient
from crossrank.models.manifest import FirstStageKind, shown_path
from crossrank.policy import Policy
from crossrank.search.scoring import first_stage_kind
from crossrank.train.config import TrainConfig
from crossrank.train.data import WikiQAQuestion, load_wikiqa, split_queries
from crossrank.train.groups import (
    BatchTeacher,
    Group,
    judged_groups,
    make_synthetic,
    synthetic_groups,
    wikiqa_groups,
    with_teacher,
)
from crossrank.train.proxy_mining import Mined, fetch_missing, mine
from crossrank.train.student import Start, load_student, score_pairs, training_device
from crossrank.train.trainer import TrainResult, Validator, train
from crossrank.train.validate import WindowReport, evaluate_window
from crossrank.tune.options import only_index, search_query

SELECT_WINDOWS = (10, 20, 30, 50)
"""The windows K the card's scoring is chosen among."""
MINING_DEPTH = 100


@dataclass(frozen=True)
class FinetuneOptions:
    policy: str
    out: Path
    dataset: Path | None = None
    qrels: Path | None = None
    judgments: Path | None = None
    index: str | None = None
    query: str | None = None
    start: Path | None = None
    """A Hugging Face directory, or a crossrank model directory with ``pytorch/``; default:
    the policy's model in ``models_dir``."""
    models_dir: Path = Path("onnx_models")
    work_dir: Path = Path(".crossrank") / "finetune"
    proxy: str = "http://127.0.0.1:8080"
    admin_token: str | None = None
    wikiqa: Path | None = None
    limit: int | None = None
    config: TrainConfig = field(default_factory=TrainConfig)
    export: bool = True
    progress: bool = True
    recipe: str = "finetune"


@dataclass
class Finetuned:
    model: Any
    tokenizer: Any
    start: Start
    result: TrainResult
    training: dict[str, Any]
    """The record written into the manifest (and the card, and the report)."""
    out: Path | None


def run_finetune(options: FinetuneOptions) -> Finetuned:
    cfg = options.config
    torch.set_num_threads(cfg.threads)
    seconds: dict[str, float] = {}
    began = time.monotonic()
    judged = read_judgments(options.dataset, options.qrels, options.judgments, options.limit)
    split = split_queries(list(judged.queries), cfg.val_fraction, cfg.seed)
    if not split.train or len(split.validation) < 2:
        raise ValueError(f"{len(judged.queries)} judged queries are too few to train on and "
                         "hold some out; judge more queries or raise --val-fraction")
    with ProxyClient(options.proxy, admin_token=options.admin_token) as client:
        policy = Policy.model_validate(client.get_policy(options.policy))
        index = options.index or only_index(policy)
        query = search_query(options.query, policy.text_fields)
        corpus = _corpus(options.dataset, cfg)
        synthetic = make_synthetic(corpus, cfg.synthetic_title_groups,
                                   cfg.synthetic_sentence_groups, cfg.seed) if corpus else []
        queries = {qid: judged.queries[qid] for qid in sorted(judged.queries)}
        queries |= {s.key: s.query for s in synthetic}
        embedder = _embedder(policy, options.models_dir, cfg.threads)
        mined = mine(client, policy, index, queries, query,
                     max(MINING_DEPTH, cfg.negatives_from_top, cfg.val_window),
                     embedder, progress=options.progress)
        absent = fetch_missing(client, policy, index, mined,
                               (d for g in judged.qrels.values() for d, v in g.items() if v > 0))
        kind = first_stage_kind(policy, query)
    seconds["mine"] = time.monotonic() - began

    start_dir = options.start or _policy_model(policy, options.models_dir)
    model, tokenizer, start = load_student(start_dir, cfg.seed, cfg.student_layers)
    wiki_train, wiki_held = _wikiqa(options.wikiqa, cfg)
    groups = build_groups(judged, split.train, mined, synthetic, corpus, wiki_train, cfg)

    began = time.monotonic()
    teacher = _teacher(cfg, model, tokenizer, start, options.work_dir / "cache")
    groups = with_teacher(groups, teacher)
    seconds["teacher"] = time.monotonic() - began

    val_qrels = {q: judged.qrels[q] for q in split.validation}
    windows = {q: mined.first_stage[q] for q in split.validation}
    validator = make_validator(windows, judged.queries, mined.texts, val_qrels, tokenizer, cfg)
    teacher_on_val = (_teacher_report(teacher, windows, judged.queries, mined.texts, val_qrels,
                                      cfg) if teacher is not None and cfg.teacher != "start"
                      else None)
    if start.cross_encoder and 0.0 not in cfg.eval_at:
        cfg = cfg.replace(eval_at=(0.0, *cfg.eval_at))
    result = train(model, tokenizer, groups, cfg, validator, new_head=not start.cross_encoder)
    if result.best_state is not None:
        model.load_state_dict(result.best_state)
    seconds["train"] = result.seconds

    counts: dict[str, int] = {}
    for group in groups:
        counts[group.source] = counts.get(group.source, 0) + 1
    training: dict[str, Any] = {
        "recipe": options.recipe,
        "start_weights": shown_path(start.directory),
        "start_was_cross_encoder": start.cross_encoder,
        "config": cfg.to_dict(),
        "data": {"judgments": shown_path(judged.qrels_path), "policy": policy.name, "index": index,
                 "first_stage": kind, "queries": len(judged.queries),
                 "train_queries": len(split.train), "held_out_queries": len(split.validation),
                 "skipped_no_relevant": judged.skipped_no_relevant,
                 "judged_missing_from_index": len(absent),
                 "knn_mined": bool(mined.knn), "groups": counts,
                 "wikiqa": shown_path(options.wikiqa) if wiki_train and options.wikiqa else None,
                 "wikiqa_train_questions": len(wiki_train),
                 "wikiqa_held_out_questions": len(wiki_held)},
        "validation": {"teacher": teacher_on_val, "history": result.history,
                       "best": result.best,
                       "start_kept": bool(result.best and result.best["step"] == 0)},
        "time": {"seconds": {k: round(v, 1) for k, v in seconds.items()},
                 "steps": result.steps, "planned_steps": result.planned_steps,
                 "stopped_by_budget": result.stopped_by_budget, "threads": cfg.threads,
                 "cpus": os.cpu_count(), "device": str(training_device()),
                 "machine": platform.processor() or platform.machine()},
        "versions": {"torch": torch.__version__},
    }
    out: Path | None = None
    if options.export:
        out = _ship(model, tokenizer, options.out, cfg, training, kind, windows,
                    judged.queries, mined.texts, val_qrels, policy, wiki_held)
        timing: dict[str, float] = training["time"]["seconds"]
        timing["total"] = round(sum(timing.values()), 1)
        from crossrank.train.ship import record

        record(out, training)
    return Finetuned(model, tokenizer, start, result, training, out)


def build_groups(judged: Judged, train_qids: Sequence[str], mined: Mined,
                 synthetic: Sequence[Any], corpus: Mapping[str, Any],
                 wikiqa: Sequence[WikiQAQuestion], cfg: TrainConfig) -> list[Group]:
    rng = random.Random(cfg.seed)
    candidates = {key: mined.pool(key) for key in [*train_qids, *(s.key for s in synthetic)]}
    groups = judged_groups({q: judged.queries[q] for q in train_qids}, judged.qrels, candidates,
                           mined.texts, negatives=cfg.negatives, top=cfg.negatives_from_top,
                           epochs=cfg.epochs, max_length=cfg.max_length, rng=rng)
    if synthetic:
        groups += synthetic_groups(synthetic, candidates, corpus, template=cfg.doc_template,
                                   negatives=cfg.negatives, top=cfg.negatives_from_top,
                                   max_length=cfg.max_length, rng=rng)
    if wikiqa:
        groups += wikiqa_groups(wikiqa, negatives=cfg.negatives, count=cfg.wikiqa_groups,
                                max_length=cfg.wikiqa_max_length, rng=rng)
    return groups


def make_validator(windows: Mapping[str, Sequence[tuple[str, float]]],
                   queries: Mapping[str, str], texts: Mapping[str, str],
                   qrels: Mapping[str, Mapping[str, int]], tokenizer: Any,
                   cfg: TrainConfig) -> Validator:
    """nDCG@10 of the held-out queries' first-stage top ``val_window``, reranked."""
    candidates = {q: list(hits) for q, hits in windows.items()}
    pairs = _window_pairs(candidates, queries, texts, cfg.val_window)

    def validate(model: Any) -> WindowReport:
        flat = score_pairs(model, tokenizer, pairs, cfg.max_length, bf16=cfg.bf16)
        return evaluate_window(candidates, _split_flat(flat, candidates, cfg.val_window),
                               qrels, cfg.val_window, cfg.blend_alphas)
    return validate


def _window_pairs(candidates: Mapping[str, Sequence[tuple[str, float]]],
                  queries: Mapping[str, str], texts: Mapping[str, str],
                  window: int) -> list[tuple[str, str]]:
    """(query, document text) of each query's top ``window``, queries in order: what
    ``_split_flat`` cuts the scores of back into windows."""
    return [(queries[q], texts[d]) for q in candidates for d, _ in candidates[q][:window]]


def _split_flat(flat: np.ndarray, candidates: Mapping[str, Sequence[Any]],
                window: int) -> dict[str, np.ndarray]:
    scores: dict[str, np.ndarray] = {}
    start = 0
    for q, hits in candidates.items():
        n = min(len(hits), window)
        scores[q] = np.asarray(flat[start:start + n], dtype=np.float64)
        start += n
    return scores


def _teacher(cfg: TrainConfig, model: Any, tokenizer: Any, start: Start,
             cache: Path) -> BatchTeacher | None:
    if cfg.teacher == "none" or cfg.distill_weight <= 0:
        return None
    if cfg.teacher == "bi-encoder":
        from crossrank.train.teacher import bi_encoder_dir, bi_encoder_teacher

        return bi_encoder_teacher(bi_encoder_dir(), cfg.teacher_max_length, cache)
    if cfg.teacher == "model":
        from crossrank.train.teacher import cross_encoder_teacher

        assert cfg.teacher_model is not None
        return cross_encoder_teacher(Path(cfg.teacher_model), cfg.max_length)
    if not start.cross_encoder:
        raise ValueError(f"teacher 'start' needs a cross-encoder to start from; "
                         f"{start.directory} has no trained head (use teacher bi-encoder "
                         "or none)")

    def own_scores(pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [float(v) for v in score_pairs(model, tokenizer, pairs, cfg.max_length,
                                              bf16=cfg.bf16)]
    return own_scores


def _teacher_report(teacher: BatchTeacher, windows: Mapping[str, Sequence[tuple[str, float]]],
                    queries: Mapping[str, str], texts: Mapping[str, str],
                    qrels: Mapping[str, Mapping[str, int]], cfg: TrainConfig) -> dict[str, Any]:
    candidates = {q: list(hits) for q, hits in windows.items()}
    pairs = _window_pairs(candidates, queries, texts, cfg.val_window)
    flat = np.asarray(teacher(pairs), dtype=np.float64)
    return evaluate_window(candidates, _split_flat(flat, candidates, cfg.val_window), qrels,
                           cfg.val_window, cfg.blend_alphas).as_dict()


def _ship(model: Any, tokenizer: Any, out: Path, cfg: TrainConfig, training: dict[str, Any],
          kind: FirstStageKind, windows: Mapping[str, Sequence[tuple[str, float]]],
          queries: Mapping[str, str], texts: Mapping[str, str],
          qrels: Mapping[str, Mapping[str, int]], policy: Policy,
          wiki_held: Sequence[WikiQAQuestion]) -> Path:
    """Weights + int8 ONNX, then the card's scoring for ``kind`` from the held-out queries,
    scored by the exported graph (the model the proxy will run, int8 and all), and the
    held-out WikiQA questions by the same graph."""
    from crossrank.models import CrossEncoder
    from crossrank.train.heldout import wikiqa_scores
    from crossrank.train.ship import ship
    from crossrank.tune.collect import Window
    from crossrank.tune.run import record_scoring
    from crossrank.tune.select import scoring_of, select

    began = time.monotonic()
    ship(model, tokenizer, out, cfg.max_length, training)
    depth = max(SELECT_WINDOWS)
    scorer = CrossEncoder.load(out, intra_op_threads=cfg.threads)
    try:
        heads = {q: list(hits)[:depth] for q, hits in windows.items()}
        flat = scorer.score(_window_pairs(heads, queries, texts, depth))
        if wiki_held:
            training["wikiqa_held_out"] = wikiqa_scores(scorer, wiki_held)
    finally:
        scorer.close()
    scored = _split_flat(flat, heads, depth)
    tune_windows = {q: Window([d for d, _ in windows[q]], [s for _, s in windows[q]],
                              [float(v) for v in scored[q]] + [None] * (len(windows[q]) -
                                                                        len(scored[q])), {})
                    for q in heads}
    selection = select(tune_windows, qrels, SELECT_WINDOWS,
                       policy.hybrid.weights if policy.hybrid is not None else None,
                       folds=min(5, len(heads)), seed=cfg.seed)
    cv = selection.cv
    off = sum(selection.scores["off"].values()) / len(heads)
    held = sum(cv.held_out.values()) / len(cv.held_out)
    source = training["data"]["judgments"]
    measured = (f"crossrank finetune: {len(heads)} held-out queries of {source}, "
                f"{min(5, len(heads))}-fold: nDCG@10 {held:.4f} vs {off:.4f} for the {kind} "
                f"first stage alone (p {cv.versus_off.p_value_randomisation:.3g})")
    record_scoring(out, kind, scoring_of(selection, measured))
    training["scoring"] = {"kind": kind, "recommended": selection.recommended.name,
                           "best": selection.best.name, "held_out_ndcg": round(held, 4),
                           "first_stage_ndcg": round(off, 4),
                           "p_value": cv.versus_off.p_value_randomisation,
                           "measured": measured}
    training["time"]["seconds"]["export"] = round(time.monotonic() - began, 1)
    print(f"[finetune] {measured}; recommended {selection.recommended.name}", file=sys.stderr,
          flush=True)
    return out


def _policy_model(policy: Policy, models_dir: Path) -> Path:
    from crossrank.config import Settings
    from crossrank.server import resolve_models

    models = resolve_models(Settings(), models_dir)
    if policy.model not in models:
        raise ValueError(f"the policy's model {policy.model!r} is not in {models_dir}; pass "
                         "--from DIR")
    return models[policy.model]


def _embedder(policy: Policy, models_dir: Path, threads: int) -> Any:
    """The policy's own embedder for the k-NN pass, when it has vectors and fuses nothing."""
    if policy.embed is None or (policy.hybrid is not None and policy.hybrid.enabled):
        return None
    directory = models_dir / policy.embed.model
    if not (directory / "crossrank.json").is_file():
        print(f"[finetune] no embedder {policy.embed.model!r} in {models_dir}: mining BM25 "
              "only", file=sys.stderr, flush=True)
        return None
    from crossrank.models.embedder import Embedder

    return Embedder.load(directory, intra_op_threads=threads)


def _corpus(dataset: Path | None, cfg: TrainConfig) -> dict[str, Any]:
    """The BEIR corpus, read only when the recipe makes inverse-cloze queries from it."""
    wanted = cfg.synthetic_title_groups + cfg.synthetic_sentence_groups
    if not wanted or dataset is None or not (dataset / "corpus.jsonl").is_file():
        return {}
    return {doc.id: doc for doc in read_corpus(dataset / "corpus.jsonl")}


def _wikiqa(path: Path | None, cfg: TrainConfig) -> tuple[list[WikiQAQuestion],
                                                         list[WikiQAQuestion]]:
    """WikiQA questions to train on and those held out (``heldout.held_out``)."""
    if path is None or not cfg.wikiqa_groups:
        return [], []
    from crossrank.train.heldout import held_out

    return held_out(load_wikiqa(path), cfg.wikiqa_val_fraction, cfg.seed)
