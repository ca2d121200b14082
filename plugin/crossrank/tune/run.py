"""One `crossrank tune` run: judgments → collect through the proxy → every candidate →
cross-validation → report (and, when asked, the policy or the model card)."""

from __future__ import annotations

import statistics
from pathlib import Path

from crossrank.eval.arms import Arm
from crossrank.eval.proxy_client import EvalError, ProxyClient
from crossrank.models.manifest import FirstStageKind, Manifest, Scoring
from crossrank.policy import Policy
from crossrank.search.scoring import first_stage_kind
from crossrank.tune.candidates import Candidate
from crossrank.tune.collect import collect
from crossrank.tune.crossval import mean_ci
from crossrank.tune.options import TuneOptions, load_judgments, only_index, search_query
from crossrank.tune.report import CandidateResult, TuneReport, write_report
from crossrank.tune.select import scoring_of, select


def run_tune(options: TuneOptions) -> tuple[TuneReport, dict[str, Path]]:
    judged = load_judgments(options)
    with ProxyClient(options.proxy, admin_token=options.admin_token) as client:
        policy = Policy.model_validate(client.get_policy(options.policy))
        index = options.index or only_index(policy)
        query = search_query(options.query, policy.text_fields)
        widest = max(options.windows)
        if widest > policy.max_window:
            raise EvalError(f"window {widest} exceeds the policy's max_window "
                            f"({policy.max_window}); raise it or try smaller --windows")
        collected = collect(client, index, judged.queries, Arm("tune", query, rerank=True),
                            widest, progress=options.progress)
        weights = policy.hybrid.weights if policy.hybrid is not None else None
        selection = select(collected.windows, judged.qrels, options.windows, weights,
                           options.folds, options.seed)
        candidates, scores, cv = selection.candidates, selection.scores, selection.cv
        retrieve = statistics.median(collected.retrieve_ms)
        score = statistics.median(collected.score_ms)
        results = {c.name: _result(c, list(scores[c.name].values()), retrieve, score, widest,
                                   options.seed) for c in candidates}
        chosen = selection.recommended
        kind = first_stage_kind(policy, query)
        notes = []
        if options.apply:
            client.put_policy(policy.name, {**policy.model_dump(mode="json"),
                                            **chosen.policy_fields()})
            notes.append(f"applied to policy {policy.name}: {chosen.policy_fields()}")
    off = results["off"]
    report = TuneReport(
        policy=policy.name, index=index, first_stage=kind, queries=len(judged.queries),
        folds=options.folds, seed=options.seed, judgments=str(judged.qrels_path),
        command=options.command_line(), candidates=list(results.values()),
        cross_validation={
            "chosen_per_fold": cv.chosen_per_fold, "best": cv.best,
            "held_out_ndcg": sum(cv.held_out.values()) / len(cv.held_out),
            "off_ndcg": off.ndcg, "gain": cv.interval[0], "gain_low": cv.interval[1],
            "gain_high": cv.interval[2], "wins": cv.versus_off.wins,
            "ties": cv.versus_off.ties, "losses": cv.versus_off.losses,
            "p_value_t": cv.versus_off.p_value_t,
            "p_value_randomisation": cv.versus_off.p_value_randomisation},
        recommended=results[cv.recommended], notes=notes)
    if options.write_card is not None:
        record_scoring(options.write_card, kind, scoring_of(selection, _measured(report, kind)))
    return report, write_report(report, options.out or Path("reports") / "tune" / policy.name)


def _result(candidate: Candidate, values: list[float], retrieve_ms: float, score_ms: float,
            widest: int, seed: int) -> CandidateResult:
    mean, low, high = mean_ci(values, seed=seed)
    latency = retrieve_ms + (score_ms * candidate.window / widest if candidate.window else 0.0)
    return CandidateResult(candidate.name, candidate.policy_fields(), mean, low, high, latency)


def _measured(report: TuneReport, kind: FirstStageKind) -> str:
    cv = report.cross_validation
    return (f"crossrank tune on {report.judgments} ({report.queries} queries, "
            f"{report.folds}-fold): held-out nDCG@10 {cv['held_out_ndcg']:.4f} vs "
            f"{cv['off_ndcg']:.4f} for the {kind} first stage alone "
            f"(p {cv['p_value_randomisation']:.3g})")


def record_scoring(directory: Path, kind: FirstStageKind, scoring: Scoring) -> None:
    """Record a recommendation in the model's card (``recommended[kind]``); the card's
    checksums cover the model files, not the card itself."""
    manifest = Manifest.read(directory)
    recommended = {**manifest.recommended, kind: scoring}
    manifest.model_copy(update={"recommended": recommended}).write(directory)
