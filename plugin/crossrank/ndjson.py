"""The newline-delimited bodies of ``_msearch`` and ``_bulk``: parse, and write back.

Shared by search (``_msearch``) and ingest (``_bulk``), so it belongs to neither. Line numbers
in errors are 1-based, as in OpenSearch's own messages. Lines the proxy does not change are
written back with their original bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import orjson

from crossrank.types import JSON, JSONObject

__all__ = ["BULK_ACTIONS", "BulkItem", "NDJSONError", "json_depth", "parse_bulk", "parse_msearch",
           "render_bulk", "render_msearch"]

BULK_ACTIONS = frozenset({"index", "create", "update", "delete"})


class NDJSONError(ValueError):
    """A newline-delimited body is malformed at ``line`` (1-based): the client's request
    cannot be used (400)."""

    def __init__(self, line: int, reason: str, body: str = "request") -> None:
        super().__init__(f"line [{line}]: {reason}")
        self.line = line
        self.reason = reason
        self.body = body
        """Which body: ``_msearch`` or ``_bulk``."""


def json_depth(value: JSON) -> int:
    """Nesting depth of a decoded JSON value (objects and arrays), without recursion: the
    limit checked before a body is read or re-serialised recursively."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in node)
    return deepest


def _lines(body: bytes) -> list[bytes]:
    lines = body.split(b"\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _object(raw: bytes, line: int, what: str) -> JSONObject:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NDJSONError(line, f"malformed {what}: {exc}") from exc
    if not isinstance(value, dict):
        raise NDJSONError(line, f"{what} must be a JSON object")
    return value


def parse_msearch(body: bytes) -> list[tuple[JSONObject, JSONObject]]:
    """(header, body) per search. An empty header line means ``{}``, as in OpenSearch."""
    try:
        return _parse_msearch(body)
    except NDJSONError as exc:
        exc.body = "_msearch"
        raise


def _parse_msearch(body: bytes) -> list[tuple[JSONObject, JSONObject]]:
    lines = _lines(body)
    searches = []
    for index in range(0, len(lines), 2):
        header_raw = lines[index]
        header = _object(header_raw, index + 1, "search header") if header_raw.strip() else {}
        if index + 1 >= len(lines):
            raise NDJSONError(index + 1, "search header without a search body line")
        if not lines[index + 1].strip():
            raise NDJSONError(index + 2, "empty search body")
        searches.append((header, _object(lines[index + 1], index + 2, "search body")))
    return searches


def render_msearch(searches: Iterable[tuple[JSONObject | bytes, JSONObject | bytes]]) -> bytes:
    """NDJSON for (header, body) pairs; a bytes part is written as given (one line, no
    newline)."""
    out = []
    for header, search in searches:
        out.append(header if isinstance(header, bytes) else orjson.dumps(header))
        out.append(search if isinstance(search, bytes) else orjson.dumps(search))
    return b"".join(line + b"\n" for line in out)


@dataclass(frozen=True)
class BulkItem:
    """One bulk operation: its action line and, except for ``delete``, its source line.

    ``source`` replaces ``source_line`` when rendered (set it with ``with_source``).
    """

    action: str
    meta: JSONObject
    action_line: bytes
    source_line: bytes | None
    line: int
    source: JSON = None

    def load_source(self) -> JSON:
        """The decoded source line (the replacement when there is one)."""
        if self.source is not None:
            return self.source
        if self.source_line is None:
            return None
        try:
            return orjson.loads(self.source_line)
        except orjson.JSONDecodeError as exc:
            raise NDJSONError(self.line + 1, f"malformed source: {exc}", "_bulk") from exc

    def with_source(self, source: JSONObject) -> BulkItem:
        if self.source_line is None:
            raise ValueError(f"a {self.action} operation has no source")
        return replace(self, source=source)


def parse_bulk(body: bytes) -> list[BulkItem]:
    """Bulk operations; source lines are kept as bytes and decoded only on demand. Blank action
    lines are skipped, as OpenSearch does."""
    try:
        return _parse_bulk(body)
    except NDJSONError as exc:
        exc.body = "_bulk"
        raise


def _parse_bulk(body: bytes) -> list[BulkItem]:
    lines = _lines(body)
    items = []
    index = 0
    while index < len(lines):
        raw = lines[index]
        number = index + 1
        index += 1
        if not raw.strip():
            continue
        action_object = _object(raw, number, "action/metadata line")
        if len(action_object) != 1:
            raise NDJSONError(number, "an action/metadata line must have exactly one action")
        action, meta = next(iter(action_object.items()))
        if action not in BULK_ACTIONS:
            raise NDJSONError(number, f"unknown action [{action}], expected one of "
                                      f"{sorted(BULK_ACTIONS)}")
        if not isinstance(meta, dict):
            raise NDJSONError(number, f"the [{action}] metadata must be a JSON object")
        source_line = None
        if action != "delete":
            if index >= len(lines):
                raise NDJSONError(number, f"[{action}] without a source line")
            source_line = lines[index]
            index += 1
        items.append(BulkItem(action, meta, raw, source_line, number))
    return items


def render_bulk(items: Sequence[BulkItem]) -> bytes:
    out = []
    for item in items:
        out.append(item.action_line)
        if item.source is not None:
            out.append(orjson.dumps(item.source))
        elif item.source_line is not None:
            out.append(item.source_line)
    return b"".join(line + b"\n" for line in out)
