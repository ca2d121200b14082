"""End-to-end reranked search on SciFact: crossrank against what users write by hand.

One run, one machine, every number a ratio against a baseline measured in the same run:

1. first stage alone: opensearch-py against OpenSearch directly, the same BM25 query for the
   window (size 50), concurrency 1 (at concurrency 1, phases 1-4 run query by query in
   rotation; at 4 and 16 the two servers take turns, ABBA over the two halves of the queries);
2. pure scoring: crossrank's CrossEncoder on the same (claim, "title. abstract") windows,
   in this process, concurrency 1;
3. crossrank end to end: `crossrank serve` in its own process with the default model, policy
   window 50, score cache off, hit by AsyncOpenSearch clients at concurrency 1, 4 and 16, with
   micro-batching on and off (two servers, measured alternately);
4. by hand: opensearch-py search + sentence-transformers ``CrossEncoder`` (PyTorch fp32, the
   same trained weights and max_length) in a loop, concurrency 1;
5. memory: the batching server's RSS after start, after the phases above, and after
   ``--memory-requests`` more requests (one in four reranked at window 10, the rest
   ``rerank=false``), growth reported against the post-warm-up RSS.

Every query is a SciFact claim (train and test, shuffled with a fixed seed); each phase uses
the same list.

    .venv/bin/python benchmarks/bench_e2e.py [--opensearch URL] [--queries 96]
        [--memory-requests 10000] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from opensearchpy import AsyncOpenSearch, OpenSearch, helpers

from crossrank.devnode import stop_child
from crossrank.models import CrossEncoder
from crossrank.models.sample_texts import join_title, scifact_dir

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "onnx_models" / "crossrank-minilm-l6-scifact"
CHECKPOINT = REPO / ".crossrank" / "train" / "checkpoint"
INDEX = "bench-e2e-scifact"
TOKEN = "bench-e2e-admin-token"
WINDOW = 50
SIZE = 10
BEGIN, END = "<!-- bench_e2e:begin -->", "<!-- bench_e2e:end -->"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def body(claim: str, size: int) -> dict[str, Any]:
    return {"query": {"multi_match": {"query": claim, "fields": ["title", "text"],
                                      "tie_breaker": 0.3}}, "size": size}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def summary(latencies: list[float], wall: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"p50_ms": 1000 * statistics.median(ordered),
            "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            "qps": len(ordered) / wall}


@contextmanager
def opensearch(url: str | None) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
        return
    from crossrank.devnode import DevNode

    home = Path(tempfile.mkdtemp(prefix="bench-e2e-os-"))
    node = DevNode(home=home, port=free_port(), heap="1g")
    status, _ = node.start(timeout_s=240)
    try:
        yield status.url
    finally:
        node.stop()
        shutil.rmtree(home, ignore_errors=True)


def index_corpus(client: OpenSearch) -> int:
    directory = scifact_dir()
    assert directory is not None, "no SciFact copy (datasets/scifact)"
    rows = [json.loads(line) for line in (directory / "corpus.jsonl").read_text().splitlines()]
    if client.indices.exists(index=INDEX) and client.count(index=INDEX)["count"] == len(rows):
        return len(rows)
    client.indices.delete(index=INDEX, ignore_unavailable=True)
    client.indices.create(index=INDEX, body={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0,
                     "analysis": {"analyzer": {"default": {"type": "english"}}}},
        "mappings": {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}})
    helpers.bulk(client, ({"_index": INDEX, "_id": r["_id"], "title": r["title"],
                           "text": r["text"]} for r in rows), chunk_size=500, refresh=True)
    return len(rows)


def claims(count: int) -> list[str]:
    directory = scifact_dir()
    assert directory is not None
    texts = [json.loads(line)["text"]
             for line in (directory / "queries.jsonl").read_text().splitlines()]
    random.Random(7).shuffle(texts)
    return texts[:count]


class Server:
    """`crossrank serve` in its own process, as in production."""

    def __init__(self, upstream: str, batching: bool, work: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = work / f"serve-{'on' if batching else 'off'}.yaml"
        config.write_text(json.dumps({
            "score_cache_entries": 0, "batching": {"enabled": batching},
            "policy_index": ".crossrank-policies-bench-e2e",
            "models": {"default": str(MODEL_DIR)}}))
        self.log = (work / f"serve-{'on' if batching else 'off'}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "crossrank.cli", "serve", "--config", str(config),
             "--port", str(self.port), "--upstream", upstream,
             "--models-dir", str(work / "no-other-models")],
            env={**os.environ, "CROSSRANK_ADMIN_TOKEN": TOKEN},
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.url + "/_crossrank/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"crossrank serve did not come up (log: {self.log.name})")
            time.sleep(0.3)

    def put_policy(self) -> None:
        reply = httpx.put(f"{self.url}/_crossrank/policies/bench-e2e",
                          headers={"x-crossrank-admin-token": TOKEN},
                          json={"indices": [INDEX], "text_fields": ["title", "text"],
                                "template": "{title}. {text}", "window": WINDOW,
                                "max_window": 100, "budget_ms": 60000})
        assert reply.status_code in (200, 201), reply.text

    def check_reranks(self, query: str) -> None:
        """The policy is in force here: a search comes back reranked, not bypassed."""
        deadline = time.monotonic() + 30
        while True:
            reply = httpx.post(f"{self.url}/{INDEX}/_search", json=body(query, SIZE),
                               timeout=120)
            if reply.headers.get("x-crossrank-status") == "reranked":
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.url} does not rerank: {reply.headers}")
            time.sleep(0.5)

    def stop(self) -> None:
        stop_child(self.process)
        self.log.close()


async def load(call: Callable[[str], Awaitable[None]], queries: list[str],
               concurrency: int) -> dict[str, float]:
    pending = list(reversed(queries))
    latencies: list[float] = []

    async def worker() -> None:
        while pending:
            query = pending.pop()
            began = time.perf_counter()
            await call(query)
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summary(latencies, time.perf_counter() - began)


async def through_proxy(url: str, queries: list[str], concurrency: int,
                        rerank: bool = True, window: int | None = None) -> dict[str, float]:
    client = AsyncOpenSearch(url, timeout=300, maxsize=concurrency)
    params: dict[str, Any] = {"rerank": "true" if rerank else "false"}
    if window is not None:
        params["rerank_window"] = str(window)

    async def call(query: str) -> None:
        reply = await client.search(index=INDEX, body=body(query, SIZE), params=params)
        assert reply["hits"]["hits"], reply

    try:
        return await load(call, queries, concurrency)
    finally:
        await client.close()


def rotation(queries: list[str],
             contenders: dict[str, Callable[[str], object]]) -> dict[str, dict[str, float]]:
    """Each query through every contender in turn (in this order: a contender may use what
    an earlier one left); queries per second from the sum of each contender's latencies."""
    latencies: dict[str, list[float]] = {name: [] for name in contenders}
    for query in queries:
        for name, run in contenders.items():
            start = time.perf_counter()
            run(query)
            latencies[name].append(time.perf_counter() - start)
    return {name: summary(values, sum(values)) for name, values in latencies.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opensearch", help="use this node (default: start a dev node)")
    parser.add_argument("--queries", type=int, default=96)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--memory-requests", type=int, default=10_000)
    parser.add_argument("--hf-model", type=Path, default=CHECKPOINT,
                        help="PyTorch weights of the default model, for the by-hand loop")
    parser.add_argument("--write", type=Path, help="replace the results block of this file")
    args = parser.parse_args()
    levels = sorted({1, *(int(c) for c in args.concurrency.split(","))})
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    (work / "no-other-models").mkdir()
    lines: list[str] = []

    def say(line: str = "") -> None:
        lines.append(line)
        print(line, flush=True)

    with opensearch(args.opensearch) as url:
        direct = OpenSearch(url, timeout=120)
        docs = index_corpus(direct)
        queries = claims(args.queries)
        model = CrossEncoder.load(MODEL_DIR)
        max_length = model.manifest.max_length
        servers = {True: Server(url, True, work), False: Server(url, False, work)}
        try:
            servers[True].put_policy()
            for server in servers.values():  # both read the shared policy index; warm up
                server.check_reranks(queries[0])
                asyncio.run(through_proxy(server.url, queries[:4], 1))
            rss_start = rss_mb(servers[True].process.pid)

            reference: Any = None
            if (args.hf_model / "config.json").is_file():
                from sentence_transformers import CrossEncoder as STCrossEncoder

                reference = STCrossEncoder(str(args.hf_model), max_length=max_length,
                                           device="cpu")
            proxied = {batching: OpenSearch(server.url, timeout=300)
                       for batching, server in servers.items()}
            windows: dict[str, list[str]] = {}

            def first_stage(query: str) -> None:
                hits = direct.search(index=INDEX, body=body(query, WINDOW))["hits"]["hits"]
                windows[query] = [join_title(h["_source"]["title"], h["_source"]["text"])
                                  for h in hits]

            def by_hand(query: str) -> None:
                hits = direct.search(index=INDEX, body=body(query, WINDOW))["hits"]["hits"]
                texts = [join_title(h["_source"]["title"], h["_source"]["text"]) for h in hits]
                scores = reference.predict([(query, t) for t in texts], batch_size=32,
                                           show_progress_bar=False)
                sorted(zip(scores, hits, strict=True), key=lambda x: -x[0])[:SIZE]

            # Concurrency 1: every contender once per query, in rotation, so that whatever
            # else loads the machine loads them all alike.
            contenders: dict[str, Callable[[str], object]] = {
                "first stage": first_stage,
                "scoring": lambda q: model.score([(q, t) for t in windows[q]]),
                "on": lambda q: proxied[True].search(index=INDEX, body=body(q, SIZE)),
                "off": lambda q: proxied[False].search(index=INDEX, body=body(q, SIZE)),
            }
            if reference is not None:
                contenders["hand"] = by_hand
                by_hand(queries[0])
            one_at_a_time = rotation(queries, contenders)
            stage, scoring = one_at_a_time["first stage"], one_at_a_time["scoring"]
            hand = one_at_a_time.get("hand")

            results: dict[tuple[int, bool], dict[str, float]] = {}
            results[(1, True)], results[(1, False)] = one_at_a_time["on"], one_at_a_time["off"]
            half = len(queries) // 2
            for level in (c for c in levels if c != 1):
                # ABBA over the two halves of the queries, so drift hits both servers alike
                parts: dict[bool, list[dict[str, float]]] = {True: [], False: []}
                for batching, chunk in ((True, queries[:half]), (False, queries[:half]),
                                        (False, queries[half:]), (True, queries[half:])):
                    parts[batching].append(asyncio.run(
                        through_proxy(servers[batching].url, chunk, level)))
                for batching, (a, b) in parts.items():
                    results[(level, batching)] = {
                        "p50_ms": (a["p50_ms"] + b["p50_ms"]) / 2,
                        "p95_ms": max(a["p95_ms"], b["p95_ms"]),
                        "qps": 2 / (1 / a["qps"] + 1 / b["qps"])}
            rss_warm = rss_mb(servers[True].process.pid)

            began = time.perf_counter()
            memory_queries = claims(10_000)

            async def memory_run() -> None:
                client = AsyncOpenSearch(servers[True].url, timeout=300, maxsize=16)
                counter = iter(range(args.memory_requests))

                async def worker() -> None:
                    for n in counter:
                        query = memory_queries[n % len(memory_queries)]
                        rerank = n % 4 == 0
                        await client.search(index=INDEX, body=body(query, SIZE), params={
                            "rerank": str(rerank).lower(), "rerank_window": "10"})

                try:
                    await asyncio.gather(*(worker() for _ in range(16)))
                finally:
                    await client.close()

            asyncio.run(memory_run())
            memory_s = time.perf_counter() - began
            rss_end = rss_mb(servers[True].process.pid)
        finally:
            for server in servers.values():
                server.stop()

    say(f"Command: `.venv/bin/python benchmarks/bench_e2e.py --queries {args.queries} "
        f"--memory-requests {args.memory_requests}`")
    say()
    say(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs; load average at the end "
        f"{os.getloadavg()[0]:.1f}. Model `{MODEL_DIR.name}` (int8 ONNX, max_length "
        f"{max_length}); SciFact corpus ({docs} docs, BM25 english); {len(queries)} claims; "
        f"window {WINDOW}, size {SIZE}; score cache off.")
    say()
    say("| path | concurrency | p50 ms | p95 ms | queries/s |")
    say("|---|---:|---:|---:|---:|")
    say(f"| first stage only (OpenSearch direct, size {WINDOW}) | 1 | {stage['p50_ms']:.0f} | "
        f"{stage['p95_ms']:.0f} | {stage['qps']:.1f} |")
    say(f"| pure scoring (CrossEncoder.score, in process) | 1 | {scoring['p50_ms']:.0f} | "
        f"{scoring['p95_ms']:.0f} | {scoring['qps']:.1f} |")
    for (level, batching), r in results.items():
        say(f"| crossrank end to end, batching {'on' if batching else 'off'} | {level} | "
            f"{r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['qps']:.1f} |")
    if hand is not None:
        say(f"| by hand: opensearch-py + sentence-transformers (PyTorch fp32) | 1 | "
            f"{hand['p50_ms']:.0f} | {hand['p95_ms']:.0f} | {hand['qps']:.1f} |")
    say()
    one = results[(levels[0], True)]
    overhead = one["p50_ms"] - stage["p50_ms"] - scoring["p50_ms"]
    say(f"- crossrank's own overhead at concurrency {levels[0]}: p50 end to end "
        f"{one['p50_ms']:.0f} ms = first stage {stage['p50_ms']:.0f} + scoring "
        f"{scoring['p50_ms']:.0f} + {overhead:.0f} ms ({overhead / scoring['p50_ms']:.1%} of "
        f"the scoring time).")
    top = levels[-1]
    say(f"- micro-batching at concurrency {top}: {results[(top, True)]['qps']:.2f} vs "
        f"{results[(top, False)]['qps']:.2f} queries/s = "
        f"{results[(top, True)]['qps'] / results[(top, False)]['qps']:.2f}x.")
    if hand is not None:
        say(f"- against the hand-written loop: {one['qps'] / hand['qps']:.2f}x the queries/s at "
            f"concurrency {levels[0]}, {results[(top, True)]['qps'] / hand['qps']:.2f}x at "
            f"concurrency {top}.")
    else:
        say(f"- the hand-written loop was skipped: no PyTorch weights at {args.hf_model}.")
    say(f"- memory (batching server): RSS {rss_start:.0f} MB after start and warm-up, "
        f"{rss_warm:.0f} MB after the phases above, {rss_end:.0f} MB after "
        f"{args.memory_requests} more requests ({memory_s:.0f} s, concurrency 16, one in four "
        f"reranked at window 10): growth {(rss_end - rss_warm) / rss_warm:+.1%}.")
    shutil.rmtree(work, ignore_errors=True)
    if args.write:
        text = args.write.read_text()
        block = f"{BEGIN}\n" + "\n".join(lines) + f"\n{END}"
        if BEGIN in text and END in text:
            text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
        args.write.write_text(text)


if __name__ == "__main__":
    main()
