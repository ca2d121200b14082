"""Pass-through overhead: the same requests sent to OpenSearch directly and through crossrank.

Load comes from wrk (a separate process, loopback only, bounded by duration). The proxy runs as
`crossrank serve` in its own process, as in production. Both targets are measured in the same
run, alternately, and the report gives ratios.

    .venv/bin/python benchmarks/bench_passthrough.py [--duration 10] [--connections 1,8]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from crossrank.devnode import DevNode

REPO = Path(__file__).resolve().parents[1]
SEARCH_LUA = """
wrk.method = "POST"
wrk.body = '{"query": {"match": {"text": "quick fox"}}, "size": 10}'
wrk.headers["Content-Type"] = "application/json"
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(url: str) -> None:
    for _ in range(240):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.25)
    raise SystemExit(f"{url} did not come up")


def parse_wrk(out: str) -> dict[str, float]:
    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert p50 and p99 and rps, out
    return {"p50_ms": ms(p50[1]), "p99_ms": ms(p99[1]), "rps": float(rps[1])}


def run_wrk(url: str, connections: int, duration: int, script: Path | None) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url]
    if script is not None:
        cmd[1:1] = ["-s", str(script)]
    return parse_wrk(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="1,8")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    home = Path(tempfile.mkdtemp(prefix="bench-os-"))
    node = DevNode(home=home, port=free_port())
    node.start()
    proxy_port = free_port()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "crossrank.cli", "serve", "--port", str(proxy_port),
         "--upstream", node.url, "--models-dir", str(home / "no-models")],
        env={**os.environ, "CROSSRANK_ADMIN_TOKEN": "bench-admin-token-0123"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    try:
        wait(proxy_url + "/_crossrank/health")
        httpx.put(f"{node.url}/bench", json={"settings": {"number_of_replicas": 0}})
        for i in range(200):
            httpx.put(f"{node.url}/bench/_doc/{i}",
                      json={"text": f"the quick brown fox {i} jumps over the lazy dog"})
        httpx.post(f"{node.url}/bench/_refresh")
        script = home / "search.lua"
        script.write_text(SEARCH_LUA)
        print("| request | connections | direct p50 ms | proxy p50 ms | added p50 ms | "
              "direct p99 ms | proxy p99 ms | direct req/s | proxy req/s | throughput ratio |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, path, lua in (("GET doc", "/bench/_doc/7", None),
                                ("POST _search", "/bench/_search", script)):
            for connections in (int(c) for c in args.connections.split(",")):
                direct: list[dict[str, float]] = []
                proxied: list[dict[str, float]] = []
                run_wrk(node.url + path, connections, 2, lua)  # warm both
                run_wrk(proxy_url + path, connections, 2, lua)
                for _ in range(args.rounds):  # alternate to spread drift over both
                    direct.append(run_wrk(node.url + path, connections, args.duration, lua))
                    proxied.append(run_wrk(proxy_url + path, connections, args.duration, lua))
                d = {k: sorted(r[k] for r in direct)[len(direct) // 2] for k in direct[0]}
                p = {k: sorted(r[k] for r in proxied)[len(proxied) // 2] for k in proxied[0]}
                print(f"| {name} | {connections} | {d['p50_ms']:.2f} | {p['p50_ms']:.2f} | "
                      f"{p['p50_ms'] - d['p50_ms']:.2f} | {d['p99_ms']:.2f} | "
                      f"{p['p99_ms']:.2f} | {d['rps']:.0f} | {p['rps']:.0f} | "
                      f"{p['rps'] / d['rps']:.2f} |")
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
        node.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
