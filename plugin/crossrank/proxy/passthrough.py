"""Byte-faithful forwarding: method, path, query, headers and body go up as sent; status,
headers and the raw (still encoded) body come back as OpenSearch sent them."""

from __future__ import annotations

from collections.abc import Iterable

from crossrank.proxy.http import Incoming, Send
from crossrank.proxy.upstream import HOP_BY_HOP, Upstream

_DROPPED = frozenset(name.encode("latin-1") for name in HOP_BY_HOP - {"content-length"})
# Answers up to this size (by their Content-Length) are read whole and sent in one message:
# one write to the client instead of a write per chunk plus an empty last one.
_WHOLE_BODY_BYTES = 256 * 1024


def response_headers(raw: Iterable[tuple[bytes, bytes]],
                     extra: list[tuple[bytes, bytes]] | None = None) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in raw if k.lower() not in _DROPPED]
    return kept + extra if extra else kept


async def forward(request: Incoming, upstream: Upstream, send: Send, *,
                  query: bytes | None = None, body: bytes | None = None,
                  extra_headers: list[tuple[bytes, bytes]] | None = None) -> int:
    """Stream the request to OpenSearch and its answer back; returns the upstream status.

    ``body`` is given when the caller already read it (searches); otherwise the client's body
    streams through without being buffered.
    """
    content = body if body is not None else (
        request.stream() if request.has_body() else b"")
    async with upstream.stream(request.method, request.raw_path,
                               request.query if query is None else query,
                               request.headers, content) as response:
        headers = response_headers(response.raw_headers, extra_headers)
        length = response.content_length
        if length is not None and length <= _WHOLE_BODY_BYTES:
            whole = await upstream.read_whole(response)
            await send({"type": "http.response.start", "status": response.status,
                        "headers": headers})
            await send({"type": "http.response.body", "body": whole})
            return response.status
        await send({"type": "http.response.start", "status": response.status,
                    "headers": headers})
        async for chunk in upstream.read_body(response):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return response.status
