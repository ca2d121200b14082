"""`make run`: OpenSearch + the crossrank proxy + the default model + SciFact as demo data.

Starts (or reuses) the dev OpenSearch node, starts `crossrank serve` in front of it, indexes
SciFact through the proxy, enables reranking for it, shows both arms of a few example queries,
then keeps the proxy in the foreground until Ctrl-C. `make stop` stops the node.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

from crossrank.devnode import DevNode

REPO = Path(__file__).resolve().parents[1]
INDEX = "scifact"
TOKEN = os.environ.get("CROSSRANK_ADMIN_TOKEN", "demo-admin-token")
EXAMPLES = [
    "Vitamin D deficiency is associated with multiple sclerosis",
    "ALDH1 expression is associated with poorer prognosis in breast cancer",
    "Smoking increases the risk of lung cancer",
]


def dataset_dir() -> Path:
    for candidate in (REPO / "datasets/scifact", REPO.parent / "shared/datasets/scifact"):
        if (candidate / "corpus.jsonl").exists():
            return candidate
    sys.exit("SciFact not found under datasets/scifact")


def wait_for(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit(f"{url} did not answer within {seconds:.0f} s")


def index_corpus(proxy: str) -> None:
    corpus = dataset_dir() / "corpus.jsonl"
    with corpus.open("rb") as f:
        docs = [orjson.loads(line) for line in f]
    count = httpx.get(f"{proxy}/{INDEX}/_count", timeout=30)
    if count.status_code == 200 and count.json()["count"] == len(docs):
        print(f"index '{INDEX}' already holds the {len(docs)} SciFact documents")
        return
    httpx.delete(f"{proxy}/{INDEX}", timeout=30)
    httpx.put(f"{proxy}/{INDEX}", timeout=30, json={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0,
                     "analysis": {"analyzer": {"default": {"type": "english"}}}},
        "mappings": {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}})
    began = time.monotonic()
    it = iter(docs)
    while batch := list(itertools.islice(it, 500)):
        lines = b"".join(orjson.dumps({"index": {"_index": INDEX, "_id": d["_id"]}}) + b"\n"
                         + orjson.dumps({"title": d["title"], "text": d["text"]}) + b"\n"
                         for d in batch)
        r = httpx.post(f"{proxy}/_bulk", content=lines, timeout=120,
                       headers={"content-type": "application/x-ndjson"})
        r.raise_for_status()
    httpx.post(f"{proxy}/{INDEX}/_refresh", timeout=60)
    print(f"indexed {len(docs)} SciFact documents in {time.monotonic() - began:.1f} s")


def enable_policy(proxy: str) -> bool:
    health = httpx.get(f"{proxy}/_crossrank/health", timeout=10).json()
    if health.get("models", {}).get("default") != "cross-encoder":
        print("no cross-encoder in onnx_models/: the proxy runs as a pass-through")
        return False
    # no window or score mode: the model card's recommendation for a BM25 first stage applies
    policy = {"indices": [INDEX], "text_fields": ["title", "text"],
              "template": "{title}. {text}"}
    r = httpx.put(f"{proxy}/_crossrank/policies/{INDEX}", timeout=30,
                  headers={"x-crossrank-admin-token": TOKEN}, json=policy)
    r.raise_for_status()
    print(f"reranking enabled for '{INDEX}': {orjson.dumps(policy).decode()}")
    return True


def show_examples(proxy: str) -> None:
    for query in EXAMPLES:
        print(f"\n=== {query}")
        for arm in ("false", "true"):
            r = httpx.post(f"{proxy}/{INDEX}/_search", params={"rerank": arm}, timeout=60,
                           json={"query": {"multi_match": {"query": query,
                                                           "fields": ["title", "text"]}},
                                 "size": 3, "_source": ["title"]})
            label = "reranked" if arm == "true" else "BM25    "
            print(f"  {label} [{r.headers.get('x-crossrank-status')}, "
                  f"{r.headers.get('server-timing', '')}]")
            for hit in r.json()["hits"]["hits"]:
                print(f"    {hit['_score']:8.3f}  {hit['_source']['title'][:90]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--opensearch-port", type=int, default=9200)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()

    node = DevNode(home=(REPO / ".crossrank/opensearch").resolve(), port=args.opensearch_port)
    status, started = node.start()
    print(("started " if started else "reusing ") + status.describe())

    proxy = f"http://127.0.0.1:{args.port}"
    env = {**os.environ, "CROSSRANK_ADMIN_TOKEN": TOKEN}
    server = subprocess.Popen(
        [sys.executable, "-m", "crossrank.cli", "serve", "--port", str(args.port),
         "--upstream", node.url, "--models-dir", str(REPO / "onnx_models")], env=env)
    try:
        wait_for(proxy + "/_crossrank/health")
        index_corpus(proxy)
        reranking = enable_policy(proxy)
        show_examples(proxy)
        print(f"""
crossrank is serving at {proxy} in front of OpenSearch at {node.url}.
Compare both arms in a browser: {proxy}/_crossrank/ui/#/compare?index={INDEX}&q=statins
Try:
  curl -s '{proxy}/{INDEX}/_search?rerank=true' -H 'content-type: application/json' \\
       -d '{{"query": {{"match": {{"text": "statins reduce mortality"}}}}, "size": 3}}'
  curl -s '{proxy}/{INDEX}/_search?rerank=false' ...      (the baseline arm)
  curl -s '{proxy}/_crossrank/policies'                   (policies)
  curl -s '{proxy}/_crossrank/metrics'                    (Prometheus)
Admin token for PUT/DELETE /_crossrank/policies: {TOKEN}
Reranking enabled for '{INDEX}': {reranking}. Ctrl-C stops the proxy; `make stop` the node.""")
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
