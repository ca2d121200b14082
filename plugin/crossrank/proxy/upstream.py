"""The one client that talks to the upstream OpenSearch.

Every request crossrank makes goes to ``settings.upstream.url`` and nowhere else: the path of
an incoming request is appended to that base, never parsed as a URL of its own, and the
client's Host header is replaced. httpx's exceptions are translated here, once, into
crossrank's own (``errors.py``).
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx

from crossrank.config import UpstreamSettings
from crossrank.proxy.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

# Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus Host, which
# must name the upstream, and Content-Length, which httpx sets from the body it sends.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
})


@contextmanager
def _translate() -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"OpenSearch did not answer in time ({type(exc).__name__})") from exc
    except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
        raise UpstreamUnavailable(f"OpenSearch is unreachable: {exc or type(exc).__name__}") \
            from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"error talking to OpenSearch: {exc or type(exc).__name__}") from exc


class Upstream:
    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        verify: ssl.SSLContext | bool = settings.verify_certs
        if settings.url.startswith("https://") and settings.verify_certs:
            verify = ssl.create_default_context(
                cafile=str(settings.ca_certs) if settings.ca_certs else None)
        # The proxy's own credentials are used only when the client sent none: a client's
        # Authorization header always reaches OpenSearch as it was sent.
        self._auth_header: tuple[bytes, bytes] | None = None
        if settings.username:
            userpass = f"{settings.username}:{settings.password or ''}".encode()
            self._auth_header = (b"authorization", b"Basic " + base64.b64encode(userpass))
        self._client = httpx.AsyncClient(
            base_url=settings.url,
            verify=verify,
            timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(max_connections=settings.pool_size,
                                max_keepalive_connections=settings.pool_size),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _build(self, method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]],
               content: Any) -> httpx.Request:
        # The raw path and query are kept byte for byte (no re-encoding of %2F, '+', ...).
        url = self._client.base_url.copy_with(
            raw_path=self._client.base_url.raw_path.rstrip(b"/") + path.encode("latin-1")
            + (b"?" + query if query else b""))
        # A streamed body keeps the client's Content-Length (else httpx would send it chunked);
        # a body given as bytes gets its length from httpx.
        streamed = not isinstance(content, bytes | None)
        forwarded = [(k, v) for k, v in headers
                     if k.lower().decode("latin-1") not in HOP_BY_HOP
                     or (streamed and k.lower() == b"content-length")]
        if self._auth_header and not any(k.lower() == b"authorization" for k, _ in forwarded):
            forwarded.append(self._auth_header)
        return self._client.build_request(method, url, headers=forwarded, content=content)

    @asynccontextmanager
    async def stream(self, method: str, path: str, query: bytes,
                     headers: list[tuple[bytes, bytes]], content: Any) -> AsyncIterator[
                         httpx.Response]:
        """Send a request and yield the response with its body not yet read."""
        request = self._build(method, path, query, headers, content)
        with _translate():
            response = await self._client.send(request, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def request(self, method: str, path: str, query: bytes = b"",
                      headers: list[tuple[bytes, bytes]] | None = None,
                      content: bytes | None = None) -> httpx.Response:
        """Send a request and read the whole (decoded) response body."""
        request = self._build(method, path, query, headers or [], content)
        with _translate():
            response = await self._client.send(request)
            await response.aread()
        return response

    async def read_body(self, response: httpx.Response) -> AsyncIterator[bytes]:
        with _translate():
            async for chunk in response.aiter_raw():
                yield chunk
