"""What the access log costs a request, in-process: crossrank's ``log_request`` through the
stdlib logging machinery (configured as ``crossrank serve`` configures it) against the same
JSON line written straight to the stream with orjson, and against logging with its per-record
lookups turned off (caller, thread, process, task: process-wide switches, so they would change
every record the user's own code logs too). The stream is /dev/null, so only Python's side is
measured; a real stderr adds one write per line to every row alike.

    .venv/bin/python benchmarks/bench_access_log.py [--calls 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable

import orjson

from bench_passthrough import cpu_name
from crossrank.models.quantize import cpu_isa
from crossrank.proxy import access_log

_SWITCHES = ("logThreads", "logProcesses", "logMultiprocessing", "logAsyncioTasks")


def per_call_us(call: Callable[[], None], calls: int, rounds: int) -> float:
    """Best of ``rounds`` rounds of ``calls`` calls, in microseconds a call."""
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - began) / calls * 1e6)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    access_log.configure()
    with open(os.devnull, "w") as sink:
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(sink)

        def through_logging() -> None:
            access_log.log_request("4bf92f3577b34da6a3ce929d0e0e4736", "GET", "/products/_doc/1",
                                   200, "pass_through", time.perf_counter(), None)

        raw = sink.buffer

        def direct() -> None:
            raw.write(orjson.dumps({
                "ts": round(time.time(), 3), "level": "info", "logger": "crossrank.access",
                "message": "request", "request_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "method": "GET", "path": "/products/_doc/1", "status": 200,
                "route": "pass_through", "duration_ms": 0.01, "crossrank": None}) + b"\n")

        rows = [("crossrank's log_request, stdlib logging (as served)",
                 per_call_us(through_logging, args.calls, args.rounds)),
                ("the same line, orjson straight to the stream",
                 per_call_us(direct, args.calls, args.rounds))]
        saved = {name: getattr(logging, name) for name in _SWITCHES if hasattr(logging, name)}
        source_file = logging._srcfile  # type: ignore[attr-defined]
        try:
            logging._srcfile = None  # type: ignore[attr-defined]
            for name in saved:
                setattr(logging, name, False)
            rows.append(("log_request, logging's caller/thread/process/task lookups off",
                         per_call_us(through_logging, args.calls, args.rounds)))
        finally:
            logging._srcfile = source_file  # type: ignore[attr-defined]
            for name, value in saved.items():
                setattr(logging, name, value)

    print(f"CPU: {cpu_name()}, ISA {cpu_isa()}, {os.cpu_count()} cores; Python "
          f"{sys.version.split()[0]}; best of {args.rounds} rounds of {args.calls} calls")
    print("| access log line | µs a request | vs logging |\n|---|---:|---:|")
    baseline = rows[0][1]
    for name, us in rows:
        print(f"| {name} | {us:.2f} | {us / baseline:.2f}x |")


if __name__ == "__main__":
    main()
