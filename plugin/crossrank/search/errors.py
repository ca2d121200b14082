"""Errors raised by the pure search modules.

    ValueError
    ├── SearchInputError      the client's request cannot be used: answer 400
    │   ├── PlanError         a crossrank parameter is wrong (``field``, ``reason``)
    │   └── NDJSONError       an _msearch / _bulk body is malformed (``line``, ``reason``)
    └── ScoreError            the scorer's output cannot be merged: answer in first-stage order

The proxy maps these to OpenSearch-shaped errors; nothing here knows about HTTP.
"""

from __future__ import annotations


class SearchInputError(ValueError):
    """Bad client input found while planning a search."""

    reason: str


class PlanError(SearchInputError):
    """A crossrank request parameter (``?rerank*=`` or ``ext.crossrank``) is invalid."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"[{field}] {reason}")
        self.field = field
        self.reason = reason


class NDJSONError(SearchInputError):
    """A newline-delimited body is malformed at ``line`` (1-based)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line [{line}]: {reason}")
        self.line = line
        self.reason = reason


class ScoreError(ValueError):
    """Reranker scores that cannot be merged (wrong count, NaN or infinite values)."""
