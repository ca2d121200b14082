"""One evaluation, start to finish: load a judged collection, index it through the proxy, run
every arm at every window (or the rerank-only shortcut), score, compare, write the report.

With hybrid arms the base policy gets an ``embed`` section (``--embedder``) and is put before
indexing, so that the proxy's ingest hook embeds the documents on their way in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from opensearchpy import OpenSearch

from crossrank.eval.arms import select_arms
from crossrank.eval.datasets import CorpusSummary, Judged, load_dataset
from crossrank.eval.indexing import IndexOutcome, VectorSpec, ensure_index, vector_spec
from crossrank.eval.options import EvalOptions
from crossrank.eval.proxy_client import EvalError, ProxyClient
from crossrank.eval.report import EvalReport, write_report
from crossrank.eval.rerank_only import run_rerank_only
from crossrank.eval.results import compare_runs, comparison_pairs, score_run
from crossrank.eval.runner import ArmRun, PolicySpec, plan_runs, run_searches


def _limited(judged: Judged, limit: int | None) -> Judged:
    if not limit:
        return judged
    qids = list(judged.queries)[:limit]
    return Judged({q: judged.queries[q] for q in qids}, {q: judged.qrels[q] for q in qids},
                  judged.qrels_path, judged.skipped_no_relevant)


def _check_proxy(client: ProxyClient, models: tuple[str, ...],
                 embedder: str | None = None) -> None:
    health = client.health()
    if "status" not in health:
        raise EvalError(f"{client.url} does not look like a crossrank proxy: {health}")
    loaded = health.get("models")  # {name: kind}
    if isinstance(loaded, dict | list):
        absent = [m for m in models if m not in loaded]
        if absent:
            raise EvalError(f"model(s) {', '.join(absent)} not loaded by the proxy "
                            f"(loaded: {', '.join(map(str, loaded)) or 'none'})")
    if embedder is not None and isinstance(loaded, dict) \
            and loaded.get(embedder) != "embedder":
        embedders = ", ".join(sorted(str(n) for n, k in loaded.items() if k == "embedder"))
        raise EvalError(f"the hybrid arms need the embedder [{embedder}], which the proxy "
                        f"has not loaded as an embedder (its embedders: {embedders or 'none'}); "
                        "pass --embedder NAME")


def run_evaluation(options: EvalOptions) -> tuple[EvalReport, dict[str, Path]]:
    dataset = load_dataset(options.dataset, options.qrels)
    judged = _limited(dataset.judged, options.limit)
    settings: dict[str, object] = {
        "mode": "rerank-only" if options.rerank_only else "search", "proxy": options.proxy,
        "model": ",".join(options.models), "size": options.size}
    runs: list[ArmRun]
    notes = list(options.notes)
    with ProxyClient(options.proxy, admin_token=options.admin_token) as client:
        if options.rerank_only:
            _check_proxy(client, options.models)
            runs = run_rerank_only(client, judged, dataset.corpus_path, options.models,
                                   template=options.template, warmup=options.warmup,
                                   progress=options.progress)
            settings.update(template=options.template, size=None, windows=[])
        else:
            arms = select_arms(options.arms, options.arms_file)
            windows = tuple(sorted(set(options.windows)))
            hybrid, rerank = any(a.hybrid for a in arms), any(a.rerank for a in arms)
            if hybrid or rerank:
                _check_proxy(client, options.models[:1] if rerank else (),
                             options.embedder if hybrid else None)
            index = options.index_name(dataset)
            policy = (PolicySpec(f"{index}-eval", index, options.models[0], windows,
                                 template=options.template,
                                 embedder=options.embedder if hybrid else None,
                                 blend_alpha=options.blend_alpha)
                      if options.manage_policy else None)
            runs = plan_runs(arms, windows)
            if policy is not None and any(run.needs_policy for run in runs):
                # before indexing: the ingest hook embeds under its embed section, and without
                # vector arms one left by an earlier run must not make it embed
                client.put_policy(policy.name, policy.body({}))
            vectors = vector_spec(client, index) if hybrid else None
            indexed = _index(options, index, dataset.corpus, vectors)
            if indexed.why:
                notes.append(f"index [{index}] was indexed again: {indexed.why}")
            runs = run_searches(client, index, judged, runs, size=options.size,
                                policy=policy, warmup=options.warmup,
                                progress=options.progress)
            settings.update(index=index, indexing=indexed.action, windows=list(windows),
                            arms=[{"name": a.name, "rerank": a.rerank, "query": a.query,
                                   "policy": a.policy} for a in arms],
                            analyzer=options.analyzer,
                            policy=policy.body({}) if policy else None,
                            vectors=vectors.meta() if vectors else None)
    results = [score_run(run, judged.qrels) for run in runs]
    notes += _outcome_notes(runs)
    report = EvalReport(
        dataset={"name": dataset.name, "root": str(dataset.root),
                 "qrels": str(judged.qrels_path), "queries": len(judged.queries),
                 "judgments": sum(len(d) for d in judged.qrels.values()),
                 "skipped_no_relevant": judged.skipped_no_relevant,
                 "documents": dataset.corpus.count, "fingerprint": dataset.corpus.fingerprint},
        settings=settings, results=results,
        comparisons=compare_runs(results, comparison_pairs(runs)),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        command=options.command_line(), notes=notes,
        queries={qid: {"text": text, "judgments": judged.qrels.get(qid, {})}
                 for qid, text in judged.queries.items()})
    return report, write_report(report, options.out_dir(dataset))


def _index(options: EvalOptions, index: str, corpus: CorpusSummary,
           vectors: VectorSpec | None) -> IndexOutcome:
    # an ordinary client; embedding a bulk request in the proxy takes a while
    bulk_client = OpenSearch(options.proxy, timeout=120 if vectors is None else 600)
    try:
        return ensure_index(bulk_client, index, corpus, analyzer=options.analyzer,
                            reindex=options.reindex, vectors=vectors,
                            progress=options.progress)
    finally:
        bulk_client.close()


def _outcome_notes(runs: list[ArmRun]) -> list[str]:
    """Rerank runs in which some searches were not reranked, hybrid runs in which some were
    answered by BM25 alone: their numbers mix two arms."""
    notes = []
    for run in runs:
        missed = sum(n for status, n in run.statuses.items() if status != "reranked")
        if run.arm.rerank and missed:
            reasons = ", ".join(f"{r} x{n}" for r, n in run.reasons.items()) or "none given"
            notes.append(f"{run.key}: {missed} of {len(run.ranked)} searches were not "
                         f"reranked ({dict(run.statuses)}; reasons: {reasons})")
        if run.arm.hybrid and run.fused < len(run.ranked):
            notes.append(f"{run.key}: {len(run.ranked) - run.fused} of {len(run.ranked)} "
                         f"searches were not fused (X-Crossrank-Hybrid: {dict(run.hybrid)})")
    return notes
