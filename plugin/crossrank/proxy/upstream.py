"""The one client that talks to the upstream OpenSearch.

Every request crossrank makes goes to a node of ``settings.upstream.url`` and nowhere else:
the path of an incoming request is appended to that base, never parsed as a URL of its own, and
the client's Host header is replaced. With several nodes (comma-separated) requests rotate over
them; a node whose connection cannot be made in time (so nothing was sent) is skipped for
``NODE_RETRY_S`` and the request goes to the next one, for every method alike. aiohttp's
exceptions are translated here, once, into crossrank's own (``errors.py``).

aiohttp (pooled keep-alive connections, a C response parser) rather than httpx: httpx spent
over 1 ms of CPU per request here, which capped pass-through at ~600 req/s
(docs/benchmarks.md, "Pass-through overhead"). The client adds nothing of its own to a
request but Host and, for a body given as bytes, Content-Length; bodies are never
decompressed on the way back to a client.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from crossrank.config import UpstreamSettings
from crossrank.proxy.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

# Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus Host, which
# must name the upstream, and Content-Length, which the client sets from the body it sends.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
})
_HOP_BY_HOP_BYTES = frozenset(name.encode("latin-1") for name in HOP_BY_HOP)
# Defaults aiohttp would add to every request; a request carries only what its client sent.
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
NODE_RETRY_S = 5.0  # a node that refused a connection is tried again after this long


@dataclass(frozen=True)
class Reply:
    """A whole answer from OpenSearch (``Upstream.request``), or one crossrank composed."""

    status_code: int
    content: bytes
    headers: Mapping[str, str] = field(default_factory=CIMultiDict)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def reply(status: int, content: bytes, headers: list[tuple[str, str]]) -> Reply:
    return Reply(status, content, CIMultiDict(headers))


@contextmanager
def _translate() -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:  # asyncio's and aiohttp's ServerTimeoutError alike
        raise UpstreamTimeout(f"OpenSearch did not answer in time ({type(exc).__name__})") from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        raise UpstreamUnavailable(f"OpenSearch is unreachable: {exc or type(exc).__name__}") \
            from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"error talking to OpenSearch: {exc or type(exc).__name__}") from exc


class Upstream:
    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self._bases = settings.urls
        self._turn = itertools.count()
        self._down_until = [0.0] * len(self._bases)
        self._ssl: ssl.SSLContext | bool = settings.verify_certs
        if any(url.startswith("https://") for url in settings.urls) and settings.verify_certs:
            self._ssl = ssl.create_default_context(
                cafile=str(settings.ca_certs) if settings.ca_certs else None)
        # The proxy's own credentials are used only when the client sent none: a client's
        # Authorization header always reaches OpenSearch as it was sent.
        self._auth_header: tuple[str, str] | None = None
        if settings.username:
            userpass = f"{settings.username}:{settings.password or ''}".encode()
            self._auth_header = ("authorization", "Basic " + base64.b64encode(userpass).decode())
        # aiohttp wants a running loop: the session is made on first use.
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            s = self.settings
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=s.pool_size, ssl=self._ssl),
                # connect: waiting for a pooled connection and opening one; sock_read: each
                # read, as httpx's read timeout was.
                timeout=aiohttp.ClientTimeout(total=None, connect=s.read_timeout_s,
                                              sock_connect=s.connect_timeout_s,
                                              sock_read=s.read_timeout_s),
                auto_decompress=False, skip_auto_headers=_NO_AUTO_HEADERS,
                cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            await asyncio.sleep(0)  # lets TLS transports finish closing

    def _order(self) -> list[int]:
        """The nodes to try for one request: the next in turn first, nodes that recently
        refused a connection last."""
        start = next(self._turn) % len(self._bases)
        order = [(start + i) % len(self._bases) for i in range(len(self._bases))]
        now = time.monotonic()
        return sorted(order, key=lambda i: self._down_until[i] > now)

    @staticmethod
    def _url(base: str, path: str, query: bytes) -> URL:
        # The raw path and query are kept byte for byte (no re-encoding of %2F, '+', ...).
        return URL(base + path + ("?" + query.decode("latin-1") if query else ""), encoded=True)

    def _headers(self, headers: list[tuple[bytes, bytes]], streamed: bool) -> CIMultiDict[str]:
        # A streamed body keeps the client's Content-Length (else it would be sent chunked);
        # a body given as bytes gets its length from aiohttp.
        forwarded: CIMultiDict[str] = CIMultiDict()
        for k, v in headers:
            key = k.lower()
            if key not in _HOP_BY_HOP_BYTES or (streamed and key == b"content-length"):
                forwarded.add(k.decode("latin-1"), v.decode("latin-1"))
        if self._auth_header and "authorization" not in forwarded:
            forwarded.add(*self._auth_header)
        return forwarded

    async def _send(self, method: str, path: str, query: bytes,
                    headers: list[tuple[bytes, bytes]], content: Any, *,
                    decompress: bool) -> aiohttp.ClientResponse:
        """The response of the first node that takes the connection; raises the last node's
        connection error when none does (the caller translates it)."""
        streamed = not isinstance(content, bytes | None)
        forwarded = self._headers(headers, streamed)
        order = self._order()
        for attempt, node in enumerate(order):
            try:
                response: aiohttp.ClientResponse = await self._client().request(
                    method, self._url(self._bases[node], path, query), headers=forwarded,
                    data=content or None, allow_redirects=False, auto_decompress=decompress)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
                # refused, unresolvable or not connected in time: nothing was sent
                self._down_until[node] = time.monotonic() + NODE_RETRY_S
                if attempt == len(order) - 1:
                    raise
                continue
            self._down_until[node] = 0.0
            return response
        raise AssertionError("unreachable: there is at least one node")

    @asynccontextmanager
    async def stream(self, method: str, path: str, query: bytes,
                     headers: list[tuple[bytes, bytes]], content: Any
                     ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a request and yield the response with its body not yet read (and raw:
        ``response.raw_headers`` as received, ``read_body`` still content-encoded)."""
        with _translate():
            response = await self._send(method, path, query, headers, content,
                                        decompress=False)
        try:
            yield response
        finally:
            response.release()

    async def request(self, method: str, path: str, query: bytes = b"",
                      headers: list[tuple[bytes, bytes]] | None = None,
                      content: bytes | None = None) -> Reply:
        """Send a request and read the whole (decoded) response body."""
        with _translate():
            response = await self._send(method, path, query, headers or [], content,
                                        decompress=True)
            try:
                body = await response.read()
            finally:
                response.release()
        return Reply(response.status, body, response.headers)

    async def read_whole(self, response: aiohttp.ClientResponse) -> bytes:
        """The rest of a streamed response's body, still content-encoded."""
        with _translate():
            return await response.read()

    async def read_body(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        with _translate():
            async for chunk in response.content.iter_any():
                yield chunk
