"""The evaluation report: ``report.json`` (everything, per-query values included),
``report.md`` (the tables a person reads) and three PNG plots, in one output directory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from crossrank.eval.metrics import METRICS, PRIMARY, Comparison
from crossrank.eval.plots import LABELS, plot_latency, plot_quality, plot_wins
from crossrank.eval.results import RunResult

# 2: ``queries`` (each evaluated query's text and judgments), for the page's evaluation view
REPORT_FORMAT = 2
PLOTS = {"quality": "quality_vs_window.png", "latency": "latency_vs_window.png",
         "wins": "per_query_wins.png"}


@dataclass(frozen=True)
class EvalReport:
    dataset: dict[str, Any]
    settings: dict[str, Any]
    results: list[RunResult]
    comparisons: list[Comparison]
    created_at: str
    command: str = ""
    notes: list[str] = field(default_factory=list)
    # qid -> {"text": the query, "judgments": {doc_id: grade}} (0: judged not relevant)
    queries: dict[str, dict[str, Any]] = field(default_factory=dict)

    def result(self, key: str) -> RunResult:
        for result in self.results:
            if result.key == key:
                return result
        raise KeyError(key)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = REPORT_FORMAT
        data["metrics"] = list(METRICS)
        data["plots"] = dict(PLOTS)
        return data


def write_report(report: EvalReport, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    title = f"{report.dataset.get('name', '')}: {report.dataset.get('queries', 0)} queries"
    paths = {
        "json": out / "report.json",
        "markdown": out / "report.md",
        "quality": plot_quality(report.results, out / PLOTS["quality"], title),
        "latency": plot_latency(report.results, out / PLOTS["latency"], title),
        "wins": plot_wins(report.results, report.comparisons, out / PLOTS["wins"],
                          f"Per-query change in {LABELS[PRIMARY]} ({title})"),
    }
    paths["json"].write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2
                                           | orjson.OPT_SERIALIZE_NUMPY))
    paths["markdown"].write_text(to_markdown(report), encoding="utf-8")
    return paths


def _ms(value: float) -> str:
    return f"{value:.1f}"


def _latency(result: RunResult) -> str:
    if not result.latency.queries:  # a run that sent no request (listed-order)
        return "- | -"
    return f"{_ms(result.latency.p50_ms)} | {_ms(result.latency.p95_ms)}"


def _outcomes(result: RunResult) -> str:
    outcomes = [f"{status} {n}" for status, n in sorted(result.statuses.items())]
    outcomes += [f"hybrid {how} {n}" for how, n in sorted(result.hybrid.items())]
    return ", ".join(outcomes) or "-"


def to_markdown(report: EvalReport) -> str:
    ds, st = report.dataset, report.settings
    lines = [
        f"# crossrank eval: {ds.get('name')}",
        "",
        f"- judgments: `{ds.get('qrels')}`: {ds.get('queries')} queries with a relevant "
        f"document (judged queries without one, left out: {ds.get('skipped_no_relevant', 0)})",
        f"- corpus: {ds.get('documents')} documents, "
        f"fingerprint `{str(ds.get('fingerprint'))[:16]}`",
        f"- mode: {st.get('mode')}; proxy {st.get('proxy')}; model `{st.get('model')}`"
        + (f"; index `{st.get('index')}` ({st.get('indexing')})" if st.get("index") else ""),
        (f"- {st['size']} hits per query; windows K = {st.get('windows') or '-'}; "
         if st.get("size") else "- the judged candidates of each query; ")
        + f"created {report.created_at}",
    ]
    vectors = st.get("vectors")
    if isinstance(vectors, dict):
        lines.append(f"- vectors: embedder `{vectors.get('embedder')}` (dimension "
                     f"{vectors.get('dimension')}) in `{vectors.get('field')}`, embedded by "
                     "the proxy while indexing")
    lines += [
        "",
        "## Quality and latency",
        "",
        "| run | " + " | ".join(LABELS[m] for m in METRICS)
        + " | p50 ms | p95 ms | proxy outcome |",
        "|---|" + "---:|" * (len(METRICS) + 2) + "---|",
    ]
    for r in report.results:
        lines.append(f"| {r.key} | " + " | ".join(f"{r.metrics[m]:.4f}" for m in METRICS)
                     + f" | {_latency(r)} | {_outcomes(r)} |")
    if report.comparisons:
        lines += [
            "",
            "## Paired comparisons (per query)",
            "",
            "Δ is candidate minus baseline, averaged over queries; W/T/L counts the queries "
            "that got better, stayed the same, got worse. p-values: two-sided paired t-test "
            "and paired randomisation (sign-flip, 10,000 resamples, seed 0).",
            "",
            "| candidate | baseline | metric | Δ mean | W / T / L | p (t-test) | "
            "p (randomisation) |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for c in report.comparisons:
            mark = " *" if c.significant() else ""
            lines.append(f"| {c.candidate} | {c.baseline} | {LABELS.get(c.metric, c.metric)} "
                         f"| {c.mean_delta:+.4f}{mark} | {c.wins} / {c.ties} / {c.losses} | "
                         f"{c.p_value_t:.3g} | {c.p_value_randomisation:.3g} |")
        lines += ["", "`*`: p (randomisation) < 0.05."]
    timed = [r for r in report.results if r.server_timing_ms]
    if timed:
        lines += ["", "## Where the proxy's time went (Server-Timing, mean ms)", ""]
        names = sorted({n for r in timed for n in r.server_timing_ms})
        lines += ["| run | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        lines += [f"| {r.key} | " + " | ".join(_ms(r.server_timing_ms.get(n, 0.0))
                                               for n in names) + " |" for r in timed]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    lines += ["", "## Plots", ""]
    lines += [f"![{name}]({file})" for name, file in PLOTS.items()]
    if report.command:
        lines += ["", "## Reproduce", "", "```", report.command, "```"]
    return "\n".join(lines) + "\n"
