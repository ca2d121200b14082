"""The report's PNG plots: quality against window K, latency against window K, and the
per-query win/loss chart of each reranked run against its baseline.

Figures are built with matplotlib's object API (``Figure`` + Agg canvas), never pyplot, so
plotting touches no global state and needs no display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.eval.metrics import METRICS, PRIMARY, Comparison, deltas
from crossrank.eval.results import RunResult

LABELS = {"ndcg@10": "nDCG@10", "mrr@10": "MRR@10", "map@100": "MAP@100",
          "recall@100": "Recall@100"}
_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]
DPI = 110


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _by_arm(results: Sequence[RunResult]) -> tuple[dict[str, list[RunResult]],
                                                   list[RunResult]]:
    windowed: dict[str, list[RunResult]] = {}
    flat: list[RunResult] = []
    for result in results:
        if result.window is None:
            flat.append(result)
        else:
            windowed.setdefault(result.arm, []).append(result)
    for runs in windowed.values():
        runs.sort(key=lambda r: r.window or 0)
    return windowed, flat


def _colour(names: list[str], name: str) -> str:
    return _COLOURS[names.index(name) % len(_COLOURS)]


def plot_quality(results: Sequence[RunResult], path: Path, title: str) -> Path:
    windowed, flat = _by_arm(results)
    names = [r.arm for r in results if r.arm not in windowed] + list(windowed)
    fig = _figure(11, 7.5)
    axes = fig.subplots(2, 2)
    windows = sorted({r.window for runs in windowed.values() for r in runs if r.window})
    for ax, metric in zip(axes.flat, METRICS, strict=True):
        for arm, runs in windowed.items():
            xs = [r.window for r in runs]
            ys = [r.metrics[metric] for r in runs]
            ax.plot(xs, ys, marker="o", color=_colour(names, arm), label=arm, linewidth=2)
            for x, y in zip(xs, ys, strict=True):
                ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(0, 7),
                            ha="center", fontsize=8)
        for result in flat:
            value = result.metrics[metric]
            if windows:
                ax.axhline(value, color=_colour(names, result.arm), linestyle="--",
                           label=f"{result.arm} ({value:.3f})")
            else:
                ax.bar(result.key, value, color=_colour(names, result.arm))
                ax.annotate(f"{value:.3f}", (result.key, value), textcoords="offset points",
                            xytext=(0, 3), ha="center", fontsize=8)
        if windows:
            ax.set_xscale("log")
            ax.set_xticks(windows, [str(w) for w in windows])
            ax.minorticks_off()
            ax.set_xlabel("rerank window K (top K of the first stage reranked)")
        ax.set_title(LABELS.get(metric, metric))
        ax.grid(True, alpha=0.3)
        ax.margins(y=0.15)
    handles, _ = axes.flat[0].get_legend_handles_labels()
    if handles:
        axes.flat[0].legend(fontsize=8, loc="best")
    fig.suptitle(("Quality against the rerank window" if windows else "Quality per run")
                 + f" ({title})")
    fig.savefig(path)
    return path


def plot_latency(results: Sequence[RunResult], path: Path, title: str) -> Path:
    windowed, flat = _by_arm(results)
    names = [r.arm for r in results if r.arm not in windowed] + list(windowed)
    fig = _figure(9, 5.5)
    ax = fig.subplots()
    windows = sorted({r.window for runs in windowed.values() for r in runs if r.window})
    for arm, runs in windowed.items():
        xs = [r.window for r in runs]
        colour = _colour(names, arm)
        ax.plot(xs, [r.latency.p50_ms for r in runs], marker="o", color=colour,
                label=f"{arm} p50", linewidth=2)
        ax.plot(xs, [r.latency.p95_ms for r in runs], marker="s", color=colour,
                linestyle=":", label=f"{arm} p95", linewidth=2)
    flat = [r for r in flat if r.latency.queries]  # listed-order sends no request
    for i, result in enumerate(flat):
        colour = _colour(names, result.arm)
        if windows:
            ax.axhline(result.latency.p50_ms, color=colour, linestyle="--",
                       label=f"{result.arm} p50 ({result.latency.p50_ms:.1f} ms)")
            ax.axhline(result.latency.p95_ms, color=colour, linestyle="-.",
                       label=f"{result.arm} p95 ({result.latency.p95_ms:.1f} ms)")
        else:
            for offset, value, label, alpha in ((-0.17, result.latency.p50_ms, "p50", 0.9),
                                                (0.17, result.latency.p95_ms, "p95", 0.45)):
                ax.bar(i + offset, value, width=0.3, color=colour, alpha=alpha)
                ax.annotate(f"{label} {value:.1f} ms", (i + offset, value),
                            textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    if windows:
        ax.set_xscale("log")
        ax.set_xticks(windows, [str(w) for w in windows])
        ax.minorticks_off()
        ax.set_xlabel("rerank window K")
    else:
        ax.set_xticks(range(len(flat)), [r.key for r in flat])
        ax.set_xlim(-0.7, len(flat) - 0.3)
        ax.margins(y=0.1)
    ax.set_ylabel("latency seen by the client (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left")
    ax.set_title(("Latency against the rerank window" if windows else "Latency per run")
                 + f", as the client sees it ({title})")
    fig.savefig(path)
    return path


def plot_wins(results: Sequence[RunResult], comparisons: Sequence[Comparison], path: Path,
              title: str, metric: str = PRIMARY) -> Path:
    """One panel per comparison on ``metric``: each query's delta, sorted, as a bar."""
    by_key = {r.key: r for r in results}
    chosen = [c for c in comparisons if c.metric == metric][:8]
    fig = _figure(10, 1.0 + 2.4 * max(1, len(chosen)))
    if not chosen:
        ax = fig.subplots()
        ax.text(0.5, 0.5, "no comparison to draw (a single run)", ha="center", va="center")
        ax.set_axis_off()
        fig.savefig(path)
        return path
    from matplotlib.ticker import MaxNLocator

    axes = fig.subplots(len(chosen), 1, squeeze=False, sharex=True, sharey=True)[:, 0]
    for ax, comparison in zip(axes, chosen, strict=True):
        diff = np.sort(np.array(list(deltas(
            by_key[comparison.baseline].per_query[metric],
            by_key[comparison.candidate].per_query[metric]).values())))[::-1]
        colours = np.where(diff > 1e-9, "#2ca02c", np.where(diff < -1e-9, "#d62728", "#999999"))
        ax.bar(np.arange(diff.size), diff, width=1.0, color=colours)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlim(-0.5, diff.size - 0.5)
        ax.set_ylabel(f"Δ {LABELS.get(metric, metric)}")
        ax.set_title(
            f"{comparison.candidate} vs {comparison.baseline}: {comparison.wins} better, "
            f"{comparison.ties} same, {comparison.losses} worse; mean Δ "
            f"{comparison.mean_delta:+.4f}, p = {comparison.p_value_randomisation:.3g}",
            fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("queries, sorted from the largest gain to the largest loss")
    fig.suptitle(title)
    fig.savefig(path)
    return path
