"""The full model, the student and the cascade through the proxy: latency and queries/s.

Each contender is a policy on its own alias of one SciFact index (the index `crossrank eval`
builds), so that every search goes through the same proxy, node and window; only the policy's
model and cascade differ. Concurrency 1: the contenders take each query in rotation; at higher
concurrency they take turns over the same queries, ABBA, so that drift hits all alike. The
relevance of each contender comes from `crossrank eval --arms-file benchmarks/eval_cascade.json`
(SciFact test judgments), not from here.

    crossrank eval ... --arms bm25,bm25+rerank --window 50   # builds the index and its policy
    # a proxy with score_cache_entries: 0 in its config: repeated queries must be scored again
    .venv/bin/python benchmarks/bench_cascade.py --proxy http://127.0.0.1:8090 \\
        --opensearch http://127.0.0.1:9200 --admin-token TOKEN [--queries 96] [--window 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from typing import Any

import httpx
import orjson
from opensearchpy import AsyncOpenSearch

from crossrank.models.quantize import machine_summary
from crossrank.models.sample_texts import scifact_dir

INDEX = "crossrank-eval-scifact"
FULL = "crossrank-minilm-l6-scifact"
STUDENT = "crossrank-minilm-l3-scifact"


def contenders() -> dict[str, dict[str, Any]]:
    return {
        "full": {"model": FULL},
        "student": {"model": STUDENT},
        "cascade10": {"model": FULL, "cascade": {"model": STUDENT, "rescore": 10}},
        "cascade20": {"model": FULL, "cascade": {"model": STUDENT, "rescore": 20}},
    }


def claims(n: int) -> list[str]:
    directory = scifact_dir()
    if directory is None:
        raise SystemExit("SciFact not found (datasets/scifact or ../shared/datasets/scifact)")
    lines = (directory / "queries.jsonl").read_bytes().splitlines()
    texts = [orjson.loads(line)["text"] for line in lines]
    random.Random(0).shuffle(texts)
    return texts[:n]


def body(query: str) -> dict[str, Any]:
    return {"query": {"multi_match": {"query": query, "fields": ["title", "text"],
                                      "tie_breaker": 0.3}}, "size": 10, "_source": ["title"]}


def set_up(proxy: str, opensearch: str, token: str, window: int) -> None:
    headers = {"x-crossrank-admin-token": token}
    with httpx.Client(timeout=60) as http:
        actions = [{"add": {"index": INDEX, "alias": f"bench-{name}"}}
                   for name in contenders()]
        http.post(f"{opensearch}/_aliases", json={"actions": actions}).raise_for_status()
        for name, fields in contenders().items():
            policy = {"indices": [f"bench-{name}"], "text_fields": ["title", "text"],
                      "template": "{title}. {text}", "window": window, "max_window": window,
                      **fields}
            http.put(f"{proxy}/_crossrank/policies/bench-{name}", headers=headers,
                     json=policy).raise_for_status()
        time.sleep(2)  # the proxy re-reads its policies


async def run(proxy: str, names: list[str], queries: list[str],
              concurrency: int) -> dict[str, dict[str, float]]:
    client = AsyncOpenSearch(proxy, timeout=300, maxsize=concurrency)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    spent: dict[str, float] = dict.fromkeys(names, 0.0)
    try:
        half = len(queries) // 2
        turns = ([(name, queries[:half]) for name in names]
                 + [(name, queries[half:]) for name in reversed(names)]
                 if concurrency > 1 else [("rotation", queries)])
        for name, chunk in turns:
            order = iter(chunk)  # shared by the workers

            async def worker(name: str = name, order: Any = order) -> None:
                for query in order:
                    for each in (names if name == "rotation" else [name]):
                        start = time.perf_counter()
                        response = await client.search(index=f"bench-{each}", body=body(query))
                        latencies[each].append(time.perf_counter() - start)
                        assert response["hits"]["hits"], query

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            if name != "rotation":
                spent[name] += time.perf_counter() - began
    finally:
        await client.close()
    results = {}
    for name, values in latencies.items():
        values.sort()
        total = spent[name] or sum(values)
        results[name] = {"p50_ms": statistics.median(values) * 1000,
                         "p95_ms": values[int(0.95 * (len(values) - 1))] * 1000,
                         "qps": len(values) / total}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", required=True)
    parser.add_argument("--opensearch", required=True)
    parser.add_argument("--admin-token", default=os.environ.get("CROSSRANK_ADMIN_TOKEN"))
    parser.add_argument("--queries", type=int, default=96)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--concurrency", default="1,16")
    args = parser.parse_args()
    print(machine_summary(), flush=True)  # speed claims hold for this CPU kind only
    set_up(args.proxy, args.opensearch, args.admin_token, args.window)
    names = list(contenders())
    queries = claims(args.queries)
    asyncio.run(run(args.proxy, names, queries[:4], 1))  # warm up every model
    print(f"window {args.window}, {len(queries)} SciFact claims, score cache as the proxy has "
          "it (off for a fair measure)")
    hits_before = cache_hits(args.proxy)
    print("| contender | concurrency | p50 ms | p95 ms | queries/s | p50 / full |")
    print("|---|---:|---:|---:|---:|---:|")
    for level in sorted(int(c) for c in args.concurrency.split(",")):
        results = asyncio.run(run(args.proxy, names, queries, level))
        full = results["full"]["p50_ms"]
        for name in names:
            r = results[name]
            print(f"| {name} | {level} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                  f"{r['qps']:.2f} | {r['p50_ms'] / full:.2f} |", flush=True)
    hits = cache_hits(args.proxy) - hits_before
    if hits:  # a repeated query answered from the cache is not a speed measure
        raise SystemExit(f"the proxy's score cache answered {hits:.0f} lookups during the run: "
                         "these times are not scoring times; serve with score_cache_entries: 0")


def cache_hits(proxy: str) -> float:
    """The proxy's score cache hits so far (its Prometheus counter)."""
    text = httpx.get(f"{proxy}/_crossrank/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("crossrank_score_cache_lookups_total")
               and 'result="hit"' in line)


if __name__ == "__main__":
    main()
