"""Pass-through overhead: the same requests sent to OpenSearch directly, through crossrank, and
through the front-proxy recipe (nginx from `crossrank front-config`, which sends non-search
traffic straight to OpenSearch), and through the baselines of benchmarks/passthrough_floors.py:
a TCP relay on uvloop (the least a Python process in the path costs), uvicorn + aiohttp with an
app that only forwards (the two HTTP libraries crossrank serves with, without crossrank's code)
and, when granian is installed, crossrank's own app served by granian instead of uvicorn.

Load comes from wrk (a separate process, loopback only, bounded by duration). The proxy runs as
`crossrank serve` in its own process, as in production, pinned to core 0 with nginx and the
baselines; wrk and OpenSearch are pinned to core 1. The proxy's own CPU time (user + system,
from /proc) divided by the requests wrk completed gives its CPU cost per request (the same for
each baseline). All targets are measured in the same run, alternately; the report gives ratios.

    .venv/bin/python benchmarks/bench_passthrough.py [--duration 10] [--connections 1,8] \
        [--profile 10]

``--profile S`` also samples the proxy with py-spy for S seconds while wrk sends GET doc on 8
connections, and prints where its CPU went: each sample counted once, for the innermost frame
of the first library named in PROFILE_GROUPS (the code that was running, not its callers).
"""

from __future__ import annotations

import argparse
import importlib.util
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
from crossrank.devnode.nginx import FrontNginx
from crossrank.proxy.front import FrontTargets

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
        match = re.match(r"([\d.]+)(us|ms|s|m)$", value)
        if match is None:  # wrk prints e.g. "-nan" when no request completed
            raise SystemExit(f"wrk gave no latency ({value!r}); its output:\n{out}")
        number, unit = match.groups()
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]

    # the Latency Distribution lines only: "94.50%" in the thread stats also ends in "50%"
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    assert p50 and p99 and rps and done, out
    return {"p50_ms": ms(p50[1]), "p99_ms": ms(p99[1]), "rps": float(rps[1]),
            "requests": float(done[1])}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process, its threads and its child processes
    (granian serves from a worker process of its own)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]
    return own + sum(cpu_seconds(child) for child in children)


def run_wrk(url: str, connections: int, duration: int, script: Path | None,
            watch: int | None = None) -> dict[str, float]:
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
           "--latency", url]
    if script is not None:
        cmd[4:4] = ["-s", str(script)]
    before = cpu_seconds(watch) if watch else 0.0
    result = parse_wrk(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    if watch:
        result["cpu_us"] = (cpu_seconds(watch) - before) / result["requests"] * 1e6
    return result


def pin(pid: int, cores: str) -> None:
    subprocess.run(["taskset", "-a", "-p", "-c", cores, str(pid)], check=True,
                   capture_output=True)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def median(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: sorted(r[k] for r in rows)[len(rows) // 2] for k in rows[0]}


PROXY_CORE, LOAD_CORE = "0", "1"
# A sample's group: the innermost frame whose file path contains one of these (checked in
# order); "other" when none does.
PROFILE_GROUPS = (
    ("aiohttp (client to OpenSearch)", ("aiohttp/", "yarl/", "multidict/")),
    ("uvicorn + httptools (server)", ("uvicorn/", "httptools/")),
    ("prometheus_client (metrics)", ("prometheus_client/",)),
    ("logging (access log)", ("logging/", "orjson")),
    # without --native, C code called straight from crossrank's lines lands here too: the
    # event loop's run under server.py's uvicorn.run, aiohttp's request call in upstream.py
    ("crossrank's frames (and C code they call directly)", ("crossrank/",)),
    ("event loop (asyncio, uvloop)", ("asyncio/", "uvloop/")),
)


def profile_groups(raw: str) -> list[tuple[str, float]]:
    """Shares of py-spy's raw samples (``frame;frame;... count``) by PROFILE_GROUPS."""
    counts: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        frames = stack.split(";")
        group = "other"
        for frame in reversed(frames):  # innermost first
            # py-spy writes "function (path/to/file.py:line)", paths absolute or shortened
            found = next((name for name, marks in PROFILE_GROUPS
                          if any(f"({mark}" in frame or f"/{mark}" in frame
                                 for mark in marks)), None)
            if found:
                group = found
                break
        counts[group] = counts.get(group, 0) + int(number)
        total += int(number)
    return sorted(((g, n / total) for g, n in counts.items()), key=lambda x: -x[1])


def profile_proxy(pid: int, url: str, seconds: int, home: Path) -> str:
    """py-spy over the proxy while wrk sends GET doc on 8 connections; a markdown table."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    raw = home / "profile.txt"
    sampler = subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(seconds),
                                "--rate", "250", "--format", "raw", "--output", str(raw)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1)  # the sampler attaches
    load = run_wrk(url, 8, max(1, seconds - 2), None, pid)
    _, errors = sampler.communicate(timeout=seconds + 30)
    if sampler.returncode != 0 or not raw.is_file():
        raise SystemExit(f"py-spy failed: {errors.decode(errors='replace')}")
    rows = [f"| {group} | {share:.0%} |" for group, share in profile_groups(raw.read_text())]
    return "\n".join([f"py-spy over the proxy, GET doc, 8 connections, {seconds} s "
                      f"({load['rps']:.0f} req/s, {load['cpu_us']:.0f} µs CPU per request "
                      "while sampled):", "", "| where | share of samples |", "|---|---:|",
                      *rows])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="1,8")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", type=int, default=0, metavar="SECONDS",
                        help="also sample the proxy with py-spy for this long (GET doc, c 8)")
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed: apt-get install wrk util-linux")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; proxy and nginx on core {PROXY_CORE}, "
          f"wrk and OpenSearch on core {LOAD_CORE}")

    home = Path(tempfile.mkdtemp(prefix="bench-os-"))
    node = DevNode(home=home, port=free_port())
    node.start()
    pin(int(node.pid_file.read_text()), LOAD_CORE)
    proxy_port = free_port()
    proxy = subprocess.Popen(
        ["taskset", "-c", PROXY_CORE, sys.executable, "-m", "crossrank.cli", "serve",
         "--port", str(proxy_port), "--upstream", node.url,
         "--models-dir", str(home / "no-models")],
        env={**os.environ, "CROSSRANK_ADMIN_TOKEN": "bench-admin-token-0123"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    # the baselines (benchmarks/passthrough_floors.py), on the proxy's core
    kinds = ("relay", "stacks") + (("granian",) if importlib.util.find_spec("granian") else ())
    floors = {kind: free_port() for kind in kinds}
    floor_procs = {kind: subprocess.Popen(
        ["taskset", "-c", PROXY_CORE, sys.executable, str(REPO / "benchmarks" /
                                                          "passthrough_floors.py"),
         kind, "--port", str(port), "--upstream", node.url],
        env={**os.environ, "CROSSRANK_ADMIN_TOKEN": "bench-admin-token-0123",
             "CROSSRANK_MODELS_DIR": str(home / "no-models")},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for kind, port in floors.items()}
    front = FrontNginx(home / "nginx", FrontTargets(
        str(free_port()), (f"127.0.0.1:{proxy_port}",), (f"127.0.0.1:{node.port}",)),
        cores=PROXY_CORE)
    try:
        wait(proxy_url + "/_crossrank/health")
        for port in floors.values():
            wait(f"http://127.0.0.1:{port}/")
        front.start()
        httpx.put(f"{node.url}/bench", json={"settings": {"number_of_replicas": 0}})
        for i in range(200):
            httpx.put(f"{node.url}/bench/_doc/{i}",
                      json={"text": f"the quick brown fox {i} jumps over the lazy dog"})
        httpx.post(f"{node.url}/bench/_refresh")
        script = home / "search.lua"
        script.write_text(SEARCH_LUA)
        print("| request | connections | direct req/s | relay req/s | stacks req/s | "
              "crossrank req/s | crossrank on granian req/s | front req/s | "
              "crossrank / direct | front / direct | CPU µs/req: relay | stacks | crossrank | "
              "crossrank on granian | crossrank p50 ms |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        watched = {"proxy": proxy.pid, **{kind: p.pid for kind, p in floor_procs.items()}}
        for name, path, lua in (("GET doc", "/bench/_doc/7", None),
                                ("POST _search", "/bench/_search", script)):
            for connections in (int(c) for c in args.connections.split(",")):
                targets = {"direct": node.url, "proxy": proxy_url, "front": front.url,
                           **{kind: f"http://127.0.0.1:{port}" for kind, port in floors.items()}}
                rows: dict[str, list[dict[str, float]]] = {k: [] for k in targets}
                for url in targets.values():  # warm every path
                    run_wrk(url + path, connections, 2, lua)
                for _ in range(args.rounds):  # alternate to spread drift over all
                    for key, url in targets.items():
                        rows[key].append(run_wrk(url + path, connections, args.duration, lua,
                                                 watched.get(key)))
                d, p, f, r, st = (median(rows[k])
                                  for k in ("direct", "proxy", "front", "relay", "stacks"))
                g = median(rows["granian"]) if rows.get("granian") else None
                g_rps, g_cpu = (f"{g['rps']:.0f}", f"{g['cpu_us']:.0f}") if g else ("n/a",) * 2
                print(f"| {name} | {connections} | {d['rps']:.0f} | {r['rps']:.0f} | "
                      f"{st['rps']:.0f} | {p['rps']:.0f} | {g_rps} | {f['rps']:.0f} | "
                      f"{p['rps'] / d['rps']:.2f} | {f['rps'] / d['rps']:.2f} | "
                      f"{r['cpu_us']:.0f} | {st['cpu_us']:.0f} | {p['cpu_us']:.0f} | "
                      f"{g_cpu} | {p['p50_ms']:.2f} |", flush=True)
        if args.profile:
            print()
            print(profile_proxy(proxy.pid, proxy_url + "/bench/_doc/7", args.profile, home))
    finally:
        front.stop()
        for process in floor_procs.values():
            process.terminate()
            process.wait(timeout=30)
        proxy.terminate()
        proxy.wait(timeout=30)
        node.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
