"""One document on its way in: its text, where its vector goes, and what a partial update
changes.

Paths are dotted (``meta.title``) and, as in OpenSearch, a key may itself contain dots: the
longest key that matches a prefix of the path is taken first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from crossrank.ingest.errors import VectorPathError
from crossrank.policy import EmbedSection
from crossrank.search.doc_text import source_text
from crossrank.types import JSON, JSONObject

__all__ = ["VectorPathError", "determines", "document_text", "is_absent", "merge_partial",
           "set_vector", "splice_top_level", "touches"]


def document_text(source: JSON, embed: EmbedSection) -> str | None:
    """The text to embed, or None when the document has none of the text fields."""
    fields = embed.fields
    text, missing = source_text(source, fields, embed.template, embed.separator or " ")
    return None if missing == len(fields) else text


def _keys(node: JSONObject, parts: Sequence[str]) -> list[tuple[str, int]]:
    """(key, number of path parts it covers) for every key of ``node`` naming a prefix of
    ``parts``, longest first."""
    found = []
    for cut in range(len(parts), 0, -1):
        key = ".".join(parts[:cut])
        if key in node:
            found.append((key, cut))
    return found


def touches(doc: JSONObject, path: str) -> bool:
    """Whether merging the partial ``doc`` into a document can change the value at ``path``."""
    return _touches(doc, path.split("."))


def _touches(node: JSONObject, parts: list[str]) -> bool:
    for key, cut in _keys(node, parts):
        value = node[key]
        if cut == len(parts) or not isinstance(value, dict) or _touches(value, parts[cut:]):
            return True
    return False


def determines(doc: JSONObject, path: str) -> bool:
    """Whether the partial ``doc`` alone fixes the value at ``path`` after the merge, whatever
    the stored document holds (an object at the path would be merged with the stored one)."""
    return _determines(doc, path.split("."))


def _determines(node: JSONObject, parts: list[str]) -> bool:
    keys = _keys(node, parts)
    if len(keys) != 1:  # absent (the stored value stays), or spelled two ways: ask the store
        return False
    key, cut = keys[0]
    value = node[key]
    if not isinstance(value, dict):
        return True  # replaced whole, arrays included
    return cut < len(parts) and _determines(value, parts[cut:])


def merge_partial(stored: JSONObject, doc: JSONObject) -> JSONObject:
    """The document after a partial update, as OpenSearch merges it: objects are merged key by
    key, every other value (arrays included) is replaced."""
    merged = dict(stored)
    for key, value in doc.items():
        current = merged.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged[key] = merge_partial(current, value)
        else:
            merged[key] = value
    return merged


def is_absent(source: JSONObject, path: str) -> bool:
    """Whether no key of ``source`` names ``path`` or a prefix of it."""
    return not _keys(source, path.split("."))


def set_vector(source: JSONObject, path: str, vector: Any) -> JSONObject:
    """A copy of ``source`` with ``vector`` at the dotted ``path`` (objects on the way are
    created or copied; a key spelled with dots is replaced where it stands)."""
    return _set(source, path.split("."), vector, path)


def _set(node: JSONObject, parts: list[str], value: Any, path: str) -> JSONObject:
    out = dict(node)
    keys = _keys(node, parts)
    key, cut = keys[0] if keys else (parts[0], 1)
    if cut == len(parts):
        out[key] = value
        return out
    child = node.get(key, {})
    if not isinstance(child, dict):
        raise VectorPathError(f"cannot set [{path}]: [{key}] is not an object")
    out[key] = _set(child, parts[cut:], value, path)
    return out


def splice_top_level(raw: bytes, key: str, value: bytes) -> bytes:
    """The JSON object ``raw`` with ``"key": value`` added as its first member, every other
    byte kept as sent. The caller has checked that ``raw`` is an object without ``key``."""
    start = raw.index(b"{") + 1
    rest = raw[start:]
    member = orjson.dumps(key) + b":" + value
    if rest.lstrip(b" \t\r\n").startswith(b"}"):
        return raw[:start] + member + rest
    return raw[:start] + member + b"," + rest

