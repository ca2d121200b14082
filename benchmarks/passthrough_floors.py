"""Baselines for `bench_passthrough.py`: what a Python process in the request path costs on
this machine before any of crossrank's own work, and crossrank under another server loop.

- ``relay``: a TCP relay on uvloop. Each client connection gets one connection to OpenSearch
  and bytes are copied both ways as they arrive: no HTTP parsing, no copies beyond the socket
  reads. This is the least any Python process between a client and OpenSearch can cost.
- ``stacks``: the two HTTP libraries crossrank serves with (uvicorn on uvloop + httptools, one
  aiohttp client session) and an ASGI app that only forwards method, path, headers and body
  and sends the answer back. The difference to crossrank's own figure is crossrank's code.
- ``granian``: crossrank's own app, built as `crossrank serve` builds it, served by granian (a
  server loop written in Rust, one worker process, single-threaded runtime) instead of uvicorn:
  what a faster server loop would save.

Benchmark baselines only, not a way to run crossrank:

    python benchmarks/passthrough_floors.py relay|stacks|granian --port P \
        --upstream http://127.0.0.1:9200
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit


class _Pipe(asyncio.Protocol):
    """One direction of the relay: what arrives here is written to ``peer``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.pending.append(data)  # the upstream connection is still being made

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


class _Client(_Pipe):
    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self._address = (host, port)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_connection(_Pipe, *self._address)
        upstream.peer, self.peer = self, upstream
        assert upstream.transport is not None
        for data in self.pending:
            upstream.transport.write(data)
        self.pending.clear()


async def relay(port: int, upstream: str) -> None:
    parts = urlsplit(upstream)
    host, target = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(host, target), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def stacks_app(upstream: str) -> Any:
    import aiohttp
    import yarl

    from crossrank.proxy.passthrough import response_headers
    from crossrank.proxy.upstream import HOP_BY_HOP

    # the headers crossrank drops each way: connection-level ones, and the request's
    # Content-Length (aiohttp sets it from the body it sends)
    dropped = {name.encode("latin-1") for name in HOP_BY_HOP}
    session: aiohttp.ClientSession | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if session is None:
            session = aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=(
                "Accept", "Accept-Encoding", "User-Agent", "Content-Type"))
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"]
                                    else b"")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k not in dropped]
        url = yarl.URL(upstream + path.decode("latin-1"), encoded=True)
        async with session.request(scope["method"], url, headers=headers,
                                   data=body or None) as response:
            content = await response.read()
            await send({"type": "http.response.start", "status": response.status,
                        "headers": response_headers(response.raw_headers)})
            await send({"type": "http.response.body", "body": content})

    return app


def crossrank_app() -> Any:
    """crossrank's app as `crossrank serve` builds it (settings from the environment, models
    from $CROSSRANK_MODELS_DIR), for granian's worker to import."""
    from crossrank.config import Settings
    from crossrank.proxy import access_log
    from crossrank.server import build_app

    access_log.configure(logging.INFO)
    return build_app(Settings.from_sources(None), Path(os.environ["CROSSRANK_MODELS_DIR"]))


def serve_on_granian(port: int, upstream: str) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes
    from granian.log import LogLevels

    os.environ["CROSSRANK_UPSTREAM_URL"] = upstream
    here = str(Path(__file__).resolve().parent)
    # granian's worker is a new process: it imports this module by name
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (here, os.environ.get("PYTHONPATH"))))
    sys.path.insert(0, here)
    Granian("passthrough_floors:crossrank_app", address="127.0.0.1", port=port,
            interface=Interfaces.ASGI, factory=True, loop=Loops.uvloop, http=HTTPModes.http1,
            websockets=False, runtime_mode=RuntimeModes.st, log_level=LogLevels.warning).serve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("relay", "stacks", "granian"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    upstream = args.upstream.rstrip("/")
    if args.kind == "relay":
        import uvloop

        uvloop.run(relay(args.port, upstream))
        return
    if args.kind == "granian":
        serve_on_granian(args.port, upstream)
        return
    import uvicorn

    uvicorn.run(stacks_app(upstream), host="127.0.0.1", port=args.port, lifespan="on",
                loop="uvloop", http="httptools", access_log=False, log_level="warning",
                server_header=False, date_header=False, proxy_headers=False)


if __name__ == "__main__":
    main()
