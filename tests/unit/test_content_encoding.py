"""Request bodies in a Content-Encoding (gzip, deflate), as OpenSearch accepts them: decoded
for crossrank to read, held to the body limit after decoding, and refused clearly when
broken or in an encoding OpenSearch does not take."""

from __future__ import annotations

import gzip
import zlib

import pytest

from crossrank.proxy.errors import BadRequest, InvalidJSON, PayloadTooLarge
from crossrank.proxy.http import decode_content

BODY = b'{"query": {"match": {"text": "cancer cells"}}}'


def test_gzip_and_deflate_are_decoded() -> None:
    assert decode_content(gzip.compress(BODY), "gzip", 1000) == BODY
    assert decode_content(zlib.compress(BODY), "deflate", 1000) == BODY
    assert decode_content(gzip.compress(BODY), " GZIP ", 1000) == BODY


def test_no_encoding_is_the_same_bytes() -> None:
    assert decode_content(BODY, None, 1000) is BODY
    assert decode_content(BODY, "identity", 1000) is BODY


def test_the_limit_holds_after_decoding() -> None:
    bomb = gzip.compress(b" " * 1_000_000)
    assert len(bomb) < 10_000
    with pytest.raises(PayloadTooLarge):
        decode_content(bomb, "gzip", 100_000)


def test_broken_or_unknown_encodings_are_refused() -> None:
    with pytest.raises(InvalidJSON, match="not valid gzip"):
        decode_content(b"not gzip at all", "gzip", 1000)
    with pytest.raises(InvalidJSON, match="truncated"):
        decode_content(gzip.compress(BODY)[:-12], "gzip", 1000)
    with pytest.raises(BadRequest, match="unsupported Content-Encoding"):
        decode_content(BODY, "br", 1000)
