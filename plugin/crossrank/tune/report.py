"""What `crossrank tune` found: report.json, report.md and a quality-vs-latency plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


@dataclass(frozen=True)
class CandidateResult:
    name: str
    policy_fields: dict[str, Any]
    ndcg: float
    low: float
    high: float
    latency_ms: float


@dataclass
class TuneReport:
    policy: str
    index: str
    first_stage: str
    queries: int
    folds: int
    seed: int
    judgments: str
    command: str
    candidates: list[CandidateResult]
    cross_validation: dict[str, Any]
    recommended: CandidateResult
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy, "index": self.index, "first_stage": self.first_stage,
            "queries": self.queries, "folds": self.folds, "seed": self.seed,
            "judgments": self.judgments, "command": self.command,
            "candidates": [c.__dict__ for c in self.candidates],
            "cross_validation": self.cross_validation,
            "recommended": self.recommended.__dict__, "notes": self.notes}


def write_report(report: TuneReport, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "tune.json", "markdown": out / "tune.md", "plot": out / "tune.png"}
    paths["json"].write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
    paths["markdown"].write_text(to_markdown(report), encoding="utf-8")
    plot(report, paths["plot"])
    return paths


def to_markdown(report: TuneReport, top: int = 15) -> str:
    cv = report.cross_validation
    off = next(c for c in report.candidates if c.name == "off")
    ranked = sorted(report.candidates, key=lambda c: -c.ndcg)
    lines = [
        f"# crossrank tune: policy `{report.policy}` on `{report.index}`", "",
        f"`{report.command}`", "",
        f"{report.queries} judged queries ({report.judgments}), first stage "
        f"**{report.first_stage}**, {report.folds}-fold cross-validation (seed {report.seed}).",
        "",
        f"**Recommended: {report.recommended.name}** "
        f"(`{orjson.dumps(report.recommended.policy_fields).decode()}`).", "",
        f"Held out: the setting chosen on the other folds scores nDCG@10 "
        f"{cv['held_out_ndcg']:.4f} against {off.ndcg:.4f} with reranking off: "
        f"{cv['gain']:+.4f} (95% interval {cv['gain_low']:+.4f} .. {cv['gain_high']:+.4f}; "
        f"{cv['wins']} better, {cv['ties']} same, {cv['losses']} worse; p = "
        f"{cv['p_value_t']:.3g} t-test / {cv['p_value_randomisation']:.3g} randomisation). "
        f"Chosen per fold: {', '.join(cv['chosen_per_fold'])}.", "",
        "| candidate | nDCG@10 | 95% interval | est. latency ms |", "|---|---:|---:|---:|"]
    shown = ranked[:top] + ([off] if off not in ranked[:top] else [])
    for c in shown:
        lines.append(f"| {c.name} | {c.ndcg:.4f} | {c.low:.4f} .. {c.high:.4f} | "
                     f"{c.latency_ms:.0f} |")
    lines += ["", f"{len(report.candidates)} candidates in all (report JSON). Latency is "
              "estimated from the collection run: retrieval plus scoring time scaled by "
              "K / K_max.", *[f"- {note}" for note in report.notes], ""]
    return "\n".join(lines)


def plot(report: TuneReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    best: dict[float, CandidateResult] = {}
    for c in report.candidates:
        if c.latency_ms not in best or c.ndcg > best[c.latency_ms].ndcg:
            best[c.latency_ms] = c
    ax.scatter([c.latency_ms for c in report.candidates], [c.ndcg for c in report.candidates],
               s=8, alpha=0.3, label="every candidate")
    front = sorted(best.values(), key=lambda c: c.latency_ms)
    ax.plot([c.latency_ms for c in front], [c.ndcg for c in front], "o-",
            label="best per window")
    for c in front:
        ax.annotate(c.name, (c.latency_ms, c.ndcg), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("estimated latency per search (ms)")
    ax.set_ylabel("nDCG@10")
    ax.set_title(f"crossrank tune: {report.policy} ({report.first_stage})")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
