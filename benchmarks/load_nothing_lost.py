"""Nothing lost: a bounded mixed load through `crossrank serve`, with faults, then an audit.

50 concurrent clients (asyncio, aiohttp) for 60 s on loopback send, by weight: reranked
searches, `rerank=false` searches, `_bulk` writes to a plain index, `_bulk` writes through the
embed hook, single-document writes, writes that must fail as a whole (their bulk also names an
index whose policy embeds with a cross-encoder: the embedder call fails, nothing may be
written), and policy changes (window 20 <-> 30). Faults during the run: the OpenSearch node is
stopped and restarted once; one request in twenty is abandoned by its client after 50 ms.
With ``--cluster 3`` the proxy's OpenSearch is a 3-node cluster on loopback (indices with 3
shards and 1 replica); the proxy is given every node (``--upstream a,b,c``) and the last node
is stopped and restarted: the proxy skips it while it is down and keeps answering while the
cluster promotes replicas and recovers. With ``--proxies N`` there are N proxy processes (each
given the same nodes and policy index, as replicas behind a load balancer), the clients split
across them round-robin, and the policy changes go through the first one.

Audit afterwards: every acknowledged document is in OpenSearch exactly once, with the body that
was sent (and a vector where the embed hook applies); every write of a failed embed is absent;
writes the client was told failed are counted if they landed anyway (possible only when the
node died after writing and before answering), and so are writes whose client gave up before
the answer (the proxy still completes them, as OpenSearch would). Reported: requests and
errors by kind, every answer that was not 2xx by its error type and reason, the proxies' RSS
before and after.

    .venv/bin/python benchmarks/load_nothing_lost.py [--clients 50] [--seconds 60]
        [--cluster 3] [--proxies 2] [--write docs/reliability.md]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from opensearchpy import OpenSearch

from crossrank.devnode import DevCluster, DevNode, free_cluster_port, stop_child

REPO = Path(__file__).resolve().parents[1]
TOKEN = "load-nothing-lost-token"
PLAIN, EMBED, BROKEN, SEARCH = "nl-plain", "nl-embed", "nl-broken", "nl-search"
MARKERS = {False: ("<!-- nothing_lost:begin -->", "<!-- nothing_lost:end -->"),
           True: ("<!-- nothing_lost_cluster:begin -->", "<!-- nothing_lost_cluster:end -->")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Ledger:
    def __init__(self) -> None:
        self.acked: dict[str, dict[str, Any]] = {}  # "index/id" -> body
        self.failed: dict[str, dict[str, Any]] = {}  # the proxy answered: not written
        self.unknown: dict[str, dict[str, Any]] = {}  # the client gave up before the answer
        self.must_be_absent: set[str] = set()
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        # (kind, status, error type, reason) of every answer that was not 2xx
        self.errors: collections.Counter[tuple[str, int, str, str]] = collections.Counter()

    def count(self, kind: str, outcome: str) -> None:
        self.counts[(kind, outcome)] += 1

    def error(self, kind: str, status: int, payload: bytes) -> None:
        """What OpenSearch's error shape says (its root cause first), numbers and ids cut."""
        try:
            error = json.loads(payload)["error"]
            cause = (error.get("root_cause") or [error])[0] if isinstance(error, dict) else {}
            kind_of = str(cause.get("type", "?")) if cause else str(error)
            reason = str(cause.get("reason", "")) if cause else ""
        except (ValueError, KeyError, TypeError):
            kind_of, reason = "not OpenSearch's error shape", payload[:120].decode(errors="replace")
        reason = re.sub(r"\[[^\]]*\]", "[...]", reason)[:140]
        self.errors[(kind, status, kind_of, reason)] += 1


def bulk_body(items: list[tuple[str, str, dict[str, Any]]]) -> bytes:
    lines = []
    for index, doc_id, doc in items:
        lines.append(json.dumps({"index": {"_index": index, "_id": doc_id}}))
        lines.append(json.dumps(doc))
    return ("\n".join(lines) + "\n").encode()


async def client_loop(n: int, proxy: str, ledger: Ledger, deadline: float,
                      queries: list[str]) -> None:
    rng = random.Random(n)
    sequence = 0
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < deadline:
            sequence += 1
            kind = rng.choices(["rerank", "plain_search", "bulk_plain", "bulk_embed", "doc",
                                "bulk_broken", "policy"],
                               weights=[30, 20, 15, 12, 10, 3, 30 if n == 0 else 0])[0]
            abandon = rng.random() < 0.05 and kind != "policy"
            items: list[tuple[str, str, dict[str, Any]]] = []
            if kind in ("rerank", "plain_search"):
                method, url = "POST", f"{proxy}/{SEARCH}/_search"
                params = {"rerank": "true" if kind == "rerank" else "false"}
                data = json.dumps({"query": {"match": {"text": rng.choice(queries)}},
                                   "size": 10}).encode()
                headers = {"content-type": "application/json"}
            elif kind == "policy":
                method, url = "PUT", f"{proxy}/_crossrank/policies/nl-search"
                params = {}
                data = json.dumps({"indices": [SEARCH], "text_fields": ["title", "text"],
                                   "template": "{title}. {text}",
                                   "window": 20 if sequence % 2 else 30}).encode()
                headers = {"content-type": "application/json",
                           "x-crossrank-admin-token": TOKEN}
            elif kind == "doc":
                doc_id = f"c{n}-{sequence}"
                doc = {"title": f"single {n} {sequence}", "text": f"single write {sequence}"}
                items = [(PLAIN if sequence % 2 else EMBED, doc_id, doc)]
                method, url, params = "PUT", f"{proxy}/{items[0][0]}/_doc/{doc_id}", {}
                data, headers = json.dumps(doc).encode(), {"content-type": "application/json"}
            else:
                index = {"bulk_plain": PLAIN, "bulk_embed": EMBED, "bulk_broken": EMBED}[kind]
                items = [(index, f"c{n}-{sequence}-{i}",
                          {"title": f"doc {n} {sequence} {i}", "text": f"bulk text {i}"})
                         for i in range(10)]
                if kind == "bulk_broken":
                    items.append((BROKEN, f"c{n}-{sequence}-x", {"title": "x", "text": "x"}))
                method, url, params = "POST", f"{proxy}/_bulk", {}
                data = bulk_body(items)
                headers = {"content-type": "application/x-ndjson"}
            try:
                request = session.request(method, url, params=params, data=data,
                                          headers=headers)
                if abandon:
                    async with asyncio.timeout(0.05):
                        async with request as reply:
                            status, payload = reply.status, await reply.read()
                else:
                    async with request as reply:
                        status, payload = reply.status, await reply.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                outcome = "abandoned" if abandon else f"client_error:{type(exc).__name__}"
                ledger.count(kind, outcome)
                for index, doc_id, doc in items:  # outcome unknown to the client
                    ledger.unknown[f"{index}/{doc_id}"] = doc
                continue
            ledger.count(kind, str(status))
            if status >= 300:
                ledger.error(kind, status, payload)
            if not items:
                continue
            if kind == "bulk_broken":
                if status < 300:
                    raise SystemExit(f"a bulk naming {BROKEN} was accepted: {payload[:300]!r}")
                ledger.must_be_absent.update(f"{i}/{d}" for i, d, _ in items)
                continue
            if kind == "doc":
                target = ledger.acked if status in (200, 201) else ledger.failed
                target[f"{items[0][0]}/{items[0][1]}"] = items[0][2]
                continue
            if status != 200:
                for index, doc_id, doc in items:
                    ledger.failed[f"{index}/{doc_id}"] = doc
                continue
            results = json.loads(payload)["items"]
            for (index, doc_id, doc), result in zip(items, results, strict=True):
                ok = 200 <= result["index"]["status"] < 300
                (ledger.acked if ok else ledger.failed)[f"{index}/{doc_id}"] = doc


def audit(node_url: str, ledger: Ledger) -> dict[str, int]:
    client = OpenSearch(node_url, timeout=120)
    client.indices.refresh(index=f"{PLAIN},{EMBED}")
    found: dict[str, dict[str, Any]] = {}
    keys = sorted(set(ledger.acked) | set(ledger.failed) | set(ledger.unknown)
                  | ledger.must_be_absent)
    for start in range(0, len(keys), 500):
        docs = [{"_index": k.split("/")[0], "_id": k.split("/")[1]}
                for k in keys[start:start + 500] if not k.startswith(BROKEN)]
        if not docs:
            continue
        for doc in client.mget(body={"docs": docs})["docs"]:
            if doc.get("found"):
                found[f"{doc['_index']}/{doc['_id']}"] = doc["_source"]
    lost = [k for k in ledger.acked if k not in found]
    changed = [k for k, body in ledger.acked.items() if k in found and
               {f: found[k].get(f) for f in body} != body]
    no_vector = [k for k in ledger.acked if k.startswith(EMBED) and k in found
                 and not isinstance(found[k].get("embedding"), list)]
    written_broken = [k for k in ledger.must_be_absent if k in found]
    if client.indices.exists(index=BROKEN):
        written_broken += [f"{BROKEN}/*: {client.count(index=BROKEN)['count']} docs"]
    counts = {name: int(client.count(index=name)["count"]) for name in (PLAIN, EMBED)}
    expected_max = len([k for k in keys if not k.startswith(BROKEN)])
    return {"acknowledged": len(ledger.acked), "lost": len(lost), "changed": len(changed),
            "acknowledged without vector": len(no_vector),
            "failed-embed writes present": len(written_broken),
            "reported failed but present": len([k for k in ledger.failed if k in found]),
            "abandoned by the client, present": len([k for k in ledger.unknown if k in found]),
            "abandoned by the client, absent": len([k for k in ledger.unknown
                                                    if k not in found]),
            "docs in indices": sum(counts.values()),
            "docs never sent present": max(0, sum(counts.values()) - expected_max)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--cluster", type=int, default=0,
                        help="N >= 3: a cluster of N nodes; one data node is restarted")
    parser.add_argument("--proxies", type=int, default=1,
                        help="proxy processes (replicas); the clients split across them")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="nothing-lost-"))
    cluster = DevCluster(home=home / "cluster", port=free_cluster_port(args.cluster),
                         size=args.cluster, heap="512m") if args.cluster else None
    if cluster is not None:
        cluster.start(timeout_s=240)
        node = cluster.nodes[0]  # the proxy's upstream; the last node is the one restarted
    else:
        node = DevNode(home=home / "node", port=free_port(), heap="1g")
        node.start(timeout_s=240)
    index_settings = {"number_of_shards": 3, "number_of_replicas": 1} if cluster \
        else {"number_of_replicas": 0}
    ports = [free_port() for _ in range(args.proxies)]
    proxy_urls = [f"http://127.0.0.1:{port}" for port in ports]
    proxy_url = proxy_urls[0]  # set-up and policy changes
    log = (home / "proxy.log").open("wb")
    # A policy the admin API would refuse (its embedder is a cross-encoder), so it comes from
    # the settings file: every write to its index fails in the embed hook.
    config = home / "crossrank.yaml"
    config.write_text(json.dumps({"policies": [{
        "name": BROKEN, "indices": [BROKEN],
        "embed": {"model": "default", "vector_field": "embedding"}}]}))
    proxies = [subprocess.Popen(
        [sys.executable, "-m", "crossrank.cli", "serve", "--port", str(port),
         "--config", str(config),
         "--upstream", ",".join(cluster.urls) if cluster else node.url,
         "--models-dir", str(REPO / "onnx_models")],
        env={**os.environ, "CROSSRANK_ADMIN_TOKEN": TOKEN}, stdout=log,
        stderr=subprocess.STDOUT) for port in ports]
    lines: list[str] = []
    try:
        for url in proxy_urls:
            for _ in range(600):
                try:
                    if httpx.get(url + "/_crossrank/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        admin = {"x-crossrank-admin-token": TOKEN}
        corpus = [json.loads(line) for line in
                  (REPO / "datasets/scifact/corpus.jsonl").read_text().splitlines()[:500]]
        queries = [json.loads(line)["text"] for line in
                   (REPO / "datasets/scifact/queries.jsonl").read_text().splitlines()[:200]]
        direct = OpenSearch(node.url, timeout=120)
        direct.indices.create(index=SEARCH, body={"settings": index_settings})
        direct.bulk(body=bulk_body([(SEARCH, d["_id"], {"title": d["title"], "text": d["text"]})
                                    for d in corpus]).decode(), refresh=True)
        direct.indices.create(index=PLAIN, body={"settings": index_settings})
        for name, body in ((SEARCH, {"indices": [SEARCH], "text_fields": ["title", "text"],
                                     "template": "{title}. {text}", "window": 20}),
                           (EMBED, {"indices": [EMBED], "embed": {
                               "model": "minilm-l6-embedder", "vector_field": "embedding",
                               "text_fields": ["title", "text"]}})):
            reply = httpx.put(f"{proxy_url}/_crossrank/policies/{name}", headers=admin,
                              json=body, timeout=30)
            assert reply.status_code in (200, 201), reply.text
        reply = httpx.put(f"{proxy_url}/_crossrank/mappings/{EMBED}", headers=admin, timeout=30)
        assert reply.status_code in (200, 201), reply.text
        time.sleep(3)  # every proxy re-reads the policies (every 2 s)
        rss_before = [rss_mb(proxy.pid) for proxy in proxies]
        ledger = Ledger()
        began = time.monotonic()

        async def run() -> None:
            deadline = time.monotonic() + args.seconds
            loops = [asyncio.create_task(client_loop(
                n, proxy_urls[n % len(proxy_urls)], ledger, deadline, queries))
                for n in range(args.clients)]
            await asyncio.sleep(args.seconds / 3)
            if cluster is not None:  # fault: a data node goes away mid-load
                await asyncio.to_thread(cluster.nodes[-1].stop)
                await asyncio.sleep(3)
                await asyncio.to_thread(cluster.start_node, cluster.size - 1)
            else:  # fault: the node goes away mid-load
                await asyncio.to_thread(node.stop)
                await asyncio.sleep(3)
                await asyncio.to_thread(node.start, timeout_s=240)
            await asyncio.gather(*loops)

        asyncio.run(run())
        elapsed = time.monotonic() - began
        OpenSearch(node.url, timeout=120).cluster.health(
            wait_for_status="green" if cluster else "yellow")
        rss_after = [rss_mb(proxy.pid) for proxy in proxies]
        result = audit(node.url, ledger)
    finally:
        for proxy in proxies:
            stop_child(proxy)
        log.close()
        if cluster is not None:
            cluster.stop()
        else:
            node.stop()

    total = sum(ledger.counts.values())
    flag = (f" --cluster {args.cluster}" if cluster else "") + \
        (f" --proxies {args.proxies}" if args.proxies > 1 else "")
    lines.append(f"Command: `.venv/bin/python benchmarks/load_nothing_lost.py --clients "
                 f"{args.clients} --seconds {args.seconds:.0f}{flag}`")
    lines.append("")
    which = (f"a {args.cluster}-node cluster, indices of 3 shards and 1 replica, the proxy "
             f"given every node; node {args.cluster - 1}") if cluster else "the node"
    through = f"{args.proxies} proxies, the clients split across them" if args.proxies > 1 \
        else "one proxy"
    mb = ", ".join
    lines.append(f"{total} requests in {elapsed:.0f} s from {args.clients} clients through "
                 f"{through} ({which} was stopped at {args.seconds / 3:.0f} s and started "
                 f"again); proxy RSS {mb(f'{r:.0f}' for r in rss_before)} MB before, "
                 f"{mb(f'{r:.0f}' for r in rss_after)} MB after.")
    lines.append("")
    lines.append("| request | outcome | count |")
    lines.append("|---|---|---:|")
    for (kind, outcome), count in sorted(ledger.counts.items()):
        lines.append(f"| {kind} | {outcome} | {count} |")
    lines.append("")
    if ledger.errors:
        lines.append("Answers that were not 2xx, by what they said:")
        lines.append("")
        lines.append("| request | status | error type | reason | count |")
        lines.append("|---|---:|---|---|---:|")
        for (kind, status, type_, reason), count in sorted(ledger.errors.items()):
            reason = reason.replace("|", "\\|")
            lines.append(f"| {kind} | {status} | {type_} | {reason} | {count} |")
        lines.append("")
    lines.append("| audit | count |")
    lines.append("|---|---:|")
    for key, value in result.items():
        lines.append(f"| {key} | {value} |")
    print("\n".join(lines))
    shutil.rmtree(home, ignore_errors=True)
    if args.write:
        text = args.write.read_text() if args.write.is_file() else ""
        begin, end = MARKERS[cluster is not None]
        block = f"{begin}\n" + "\n".join(lines) + f"\n{end}"
        if begin in text and end in text:
            text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
        else:
            text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
        args.write.write_text(text)
    bad = result["lost"] + result["changed"] + result["failed-embed writes present"] + \
        result["acknowledged without vector"] + result["docs never sent present"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
