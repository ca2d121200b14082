"""Small ASGI helpers: the incoming request, reading its body within limits, answering."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, unquote

from crossrank.proxy.errors import (
    BadRequest,
    ClientDisconnected,
    CrossrankError,
    InvalidJSON,
    PayloadTooLarge,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json; charset=UTF-8")]


@dataclass
class Incoming:
    """One HTTP request as the proxy sees it; the body is read at most once."""

    method: str
    raw_path: str  # percent-encoded, exactly as the client sent it
    query: bytes
    headers: list[tuple[bytes, bytes]]
    receive: Receive
    max_body_bytes: int
    _consumed: bool = field(default=False, repr=False)

    @classmethod
    def from_scope(cls, scope: Scope, receive: Receive, max_body_bytes: int) -> Incoming:
        raw = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw.split(b"?", 1)[0].decode("latin-1")
        return cls(scope["method"], raw_path, scope.get("query_string", b""),
                   list(scope["headers"]), receive, max_body_bytes)

    @property
    def path(self) -> str:
        return unquote(self.raw_path)

    def header(self, name: str) -> str | None:
        key = name.lower().encode("latin-1")
        for k, v in self.headers:
            if k.lower() == key:
                return v.decode("latin-1")
        return None

    def header_map(self) -> dict[str, str]:
        return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self.headers}

    def params(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query.decode("latin-1"), keep_blank_values=True)

    def declared_length(self) -> int | None:
        value = self.header("content-length")
        return int(value) if value and value.isdigit() else None

    def has_body(self) -> bool:
        length = self.declared_length()
        return bool(length) or self.header("transfer-encoding") is not None

    async def body(self) -> bytes:
        """The whole body, refusing more than max_body_bytes with a 413."""
        declared = self.declared_length()
        if declared is not None and declared > self.max_body_bytes:
            raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of "
                                  f"{self.max_body_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge(f"request body exceeds the limit of "
                                      f"{self.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def decode(self, raw: bytes) -> tuple[bytes, Incoming]:
        """The body ``raw`` (as read by :meth:`body`) without its Content-Encoding (OpenSearch
        accepts gzip and deflate), and this request as it then reads (that header dropped
        when the body was decoded); the decoded body too is held to max_body_bytes."""
        body = decode_content(raw, self.header("content-encoding"), self.max_body_bytes)
        if body is raw:
            return raw, self
        return body, self.without_header(b"content-encoding")

    def without_header(self, name: bytes) -> Incoming:
        return replace(self, headers=[(k, v) for k, v in self.headers if k.lower() != name])

    async def stream(self) -> AsyncIterator[bytes]:
        if self._consumed:
            return
        self._consumed = True
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return



async def respond(send: Send, status: int, body: bytes,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    all_headers = list(headers if headers is not None else JSON_HEADERS)
    all_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def respond_error(send: Send, error: CrossrankError,
                        extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await respond(send, error.status, error.body(), JSON_HEADERS + (extra_headers or []))


def decode_content(raw: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """``raw`` without its Content-Encoding (the same object when there is none)."""
    name = (encoding or "").strip().lower()
    if name in ("", "identity") or not raw:
        return raw
    if name not in ("gzip", "deflate"):
        raise BadRequest(f"unsupported Content-Encoding [{encoding}]")
    # gzip: a gzip header; deflate: zlib's (RFC 1950), as OpenSearch reads it
    inflater = zlib.decompressobj(wbits=31 if name == "gzip" else 15)
    try:
        body = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as exc:
        raise InvalidJSON(f"request body is not valid {name}: {exc}") from exc
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"decompressed request body exceeds the limit of {max_bytes} "
                              "bytes")
    if not inflater.eof:
        raise InvalidJSON(f"request body is not valid {name}: truncated")
    return body
