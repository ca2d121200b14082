"""`make eval`: SciFact's test judgments through every arm, end to end.

1. starts the dev OpenSearch node with `crossrank opensearch start` (or reuses the one running);
2. starts `crossrank serve` in front of it on a free port, with the models in onnx_models/
   (the default cross-encoder must be there: `make models`);
3. runs `crossrank eval` on datasets/scifact (the copy inside the repository) with qrels.tsv,
   arms bm25 and bm25+rerank, windows 20, 50 and 100; the eval policy sets no scoring, so the
   proxy blends as the default model's card recommends for each kind of first stage;
4. writes reports/eval/scifact/ (report.md, report.json, three PNG plots) and stops the proxy
   it started. The node keeps running for the next run; `make stop` stops it.

Any `crossrank eval` option can be passed after `--`, e.g.
`python scripts/run_eval.py -- --limit 50 --window 50`. The hybrid arms use the embedder that
`make models` exports into onnx_models/minilm-l6-embedder (the proxy's name for it, eval's
default `--embedder`):

    .venv/bin/python scripts/run_eval.py -- --arms bm25,bm25+rerank,hybrid,hybrid+rerank

The first such run indexes the corpus again with the proxy embedding every document (SciFact:
about 14 minutes on two busy cores; later runs reuse the vectors).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "crossrank.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_opensearch(port: int) -> str:
    done = subprocess.run([*CLI, "opensearch", "start", "--port", str(port)], cwd=REPO,
                          capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        sys.exit(f"could not start OpenSearch:\n{done.stdout}")
    lines = done.stdout.strip().splitlines()
    print("\n".join(lines[:-1]))
    return lines[-1].strip()


def wait_ready(url: str, process: subprocess.Popen[bytes],
               seconds: float = 180) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"crossrank serve exited with {process.returncode}")
        try:
            response = httpx.get(f"{url}/_crossrank/health", timeout=5)
            body: dict[str, object] = response.json()
            if response.status_code == 200:
                return body
            last = f"{response.status_code} {body}"
        except (httpx.HTTPError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.5)
    sys.exit(f"the proxy at {url} was not ready within {seconds:.0f} s: {last}")


def run_eval_command(eval_args: list[str]) -> int:
    """`crossrank eval ARGS`, in this process (the same typer command the CLI registers)."""
    import typer

    from crossrank.eval.command import eval_command

    app = typer.Typer(add_completion=False)
    app.command()(eval_command)
    try:
        app(args=eval_args, prog_name="crossrank eval")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--opensearch-port", type=int, default=int(
        os.environ.get("OPENSEARCH_PORT", 9200)))
    parser.add_argument("--port", type=int, default=0, help="proxy port (default: a free one)")
    parser.add_argument("--models-dir", type=Path, default=REPO / "onnx_models")
    parser.add_argument("--dataset", type=Path, default=REPO / "datasets" / "scifact")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "eval" / "scifact")
    parser.add_argument("eval_args", nargs="*", help="more `crossrank eval` options, after --")
    args = parser.parse_args()
    from crossrank.devnode import stop_child

    # `kill` (SIGTERM) ends the run through the finally below, so the proxy is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    opensearch = start_opensearch(args.opensearch_port)
    port = args.port or free_port()
    proxy = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(16)
    os.environ["CROSSRANK_ADMIN_TOKEN"] = token  # for the proxy, and for eval's --admin-token
    args.out.mkdir(parents=True, exist_ok=True)
    log = (args.out / "proxy.log").open("wb")
    print(f"starting crossrank serve at {proxy} (log: {args.out / 'proxy.log'})", flush=True)
    server = subprocess.Popen([*CLI, "serve", "--port", str(port), "--upstream", opensearch,
                               "--models-dir", str(args.models_dir)], cwd=REPO,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        health = wait_ready(proxy, server)
        models = health.get("models")
        if not isinstance(models, dict) or models.get("default") != "cross-encoder":
            sys.exit(f"the proxy has no 'default' cross-encoder (models: {models}); "
                     "run `make models` first")
        if any("hybrid" in arg for arg in args.eval_args) \
                and "embedder" not in models.values():
            sys.exit(f"the hybrid arms need an embedder and the proxy has none (models: "
                     f"{models}); run `make models` first")
        eval_args = ["--dataset", str(args.dataset), "--qrels",
                     str(args.dataset / "qrels.tsv"), "--proxy", proxy, "--out", str(args.out),
                     *args.eval_args]
        print("$ crossrank eval " + " ".join(eval_args), flush=True)
        sys.exit(run_eval_command(eval_args))
    finally:
        stop_child(server)
        log.close()


if __name__ == "__main__":
    main()
