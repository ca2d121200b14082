"""The text of a document, read from its ``_source``: what the reranker scores and the
ingest hook embeds, so that both read a document the same way.

A path is dotted (``meta.title``) and may also name a key that itself contains dots; arrays
on the way are flattened, and several values are joined with the separator. Numbers and
booleans count as text; an object contributes every value under it. A field that is absent,
null or empty counts as missing and contributes "". A template such as ``"{title}. {text}"``
lays the fields out; without one the present fields are joined with the separator.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from functools import lru_cache

from crossrank.types import JSON

__all__ = ["field_values", "source_text"]


def source_text(source: JSON, fields: Sequence[str], template: str | None,
                separator: str) -> tuple[str, int]:
    """The document's text and how many of ``fields`` were missing."""
    values: dict[str, str] = {}
    missing = 0
    for path in fields:
        found = field_values(source, path)
        values[path] = separator.join(found)
        missing += not found
    if template is None:
        return separator.join(value for value in values.values() if value), missing
    return "".join(values[part[1:]] if part.startswith("\0") else part
                   for part in _template(template)).strip(), missing


def field_values(source: JSON, path: str) -> list[str]:
    """The non-empty text values found at a dotted ``path``."""
    found: list[str] = []
    _collect(source, path.split("."), found)
    return found


@lru_cache(maxsize=256)
def _template(template: str) -> tuple[str, ...]:
    """Literal parts and ``"\\0" + field`` parts. ``str.format`` is not used: it would read
    ``{meta.title}`` as an attribute lookup."""
    parts: list[str] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(literal)
        if name is not None:
            parts.append("\0" + name)
    return tuple(parts)


def _collect(node: JSON, parts: list[str], out: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect(item, parts, out)
    elif not parts:
        _leaves(node, out)
    elif isinstance(node, dict):
        for cut in range(len(parts), 0, -1):
            key = ".".join(parts[:cut]) if cut > 1 else parts[0]
            if key in node:
                _collect(node[key], parts[cut:], out)


def _leaves(node: JSON, out: list[str]) -> None:
    if isinstance(node, str):
        if node.strip():
            out.append(node)
    elif isinstance(node, bool):
        out.append("true" if node else "false")
    elif isinstance(node, int | float):
        out.append(str(node))
    elif isinstance(node, dict):
        for value in node.values():
            _leaves(value, out)
    elif isinstance(node, list):
        for value in node:
            _leaves(value, out)
