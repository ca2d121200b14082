"""Reproduce the shipped default cross-encoder through the one training code path.

1. starts the dev OpenSearch node (or reuses it) and `crossrank serve` in front of it;
2. indexes SciFact through the proxy with `crossrank eval` (its ingest hook embeds every
   abstract with onnx_models/minilm-l6-embedder, so the index has vectors);
3. puts the training policy: BM25 first stage, the embed section kept (so finetune mines k-NN
   neighbours too), no proxy-side hybrid;
4. runs `crossrank train --policy scifact-train` (SciFact qrels_train.tsv, WikiQA, inverse-cloze
   queries, from all-MiniLM-L6-v2) into --out, and stops the proxy.

    .venv/bin/python scripts/train_default_model.py [--out DIR] [-- more crossrank train options]
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_eval import CLI, REPO, free_port, start_opensearch, wait_ready

POLICY = "scifact-train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--opensearch-port", type=int, default=9200)
    parser.add_argument("--out", type=Path,
                        default=REPO / "onnx_models" / "crossrank-minilm-l6-scifact")
    parser.add_argument("--dataset", type=Path, default=REPO / "datasets" / "scifact")
    parser.add_argument("train_args", nargs="*", help="more `crossrank train` options")
    args = parser.parse_args()
    from crossrank.devnode import stop_child

    opensearch = start_opensearch(args.opensearch_port)
    port = free_port()
    proxy = f"http://127.0.0.1:{port}"
    token = os.environ.setdefault("CROSSRANK_ADMIN_TOKEN", secrets.token_urlsafe(16))
    headers = {"x-crossrank-admin-token": token}
    log = (REPO / ".crossrank" / "train-proxy.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen([*CLI, "serve", "--port", str(port), "--upstream", opensearch,
                               "--models-dir", str(REPO / "onnx_models")], cwd=REPO,
                              stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_ready(proxy, server)
        subprocess.run([*CLI, "eval", "--dataset", str(args.dataset), "--qrels",
                        str(args.dataset / "qrels_train.tsv"), "--arms", "bm25,hybrid",
                        "--limit", "4", "--proxy", proxy, "--out",
                        str(REPO / ".crossrank" / "train-index"), "--no-progress"],
                       cwd=REPO, check=True)
        eval_policy = httpx.get(f"{proxy}/_crossrank/policies/crossrank-eval-scifact-eval",
                                timeout=30).json()
        body = {**eval_policy, "name": POLICY,
                "hybrid": {**eval_policy["hybrid"], "enabled": False}}
        httpx.delete(f"{proxy}/_crossrank/policies/crossrank-eval-scifact-eval",
                     headers=headers, timeout=30).raise_for_status()
        httpx.put(f"{proxy}/_crossrank/policies/{POLICY}", json=body, headers=headers,
                  timeout=30).raise_for_status()
        done = subprocess.run([*CLI, "train", "--policy", POLICY, "--proxy", proxy,
                               "--out", str(args.out), "--dataset", str(args.dataset),
                               *args.train_args], cwd=REPO)
        sys.exit(done.returncode)
    finally:
        stop_child(server)


if __name__ == "__main__":
    main()
