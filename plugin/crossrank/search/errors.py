"""Errors raised by the pure search modules.

    ValueError
    ├── SearchInputError      the client's request cannot be used: answer 400
    │   └── PlanError         a crossrank parameter is wrong (``field``, ``reason``)
    ├── ScoreError            the scorer's output cannot be merged: answer in first-stage order
    └── HybridSkip            a search cannot be made hybrid (``reason``): BM25 answers alone

A malformed ``_msearch`` body is ``crossrank.ndjson.NDJSONError`` (shared with ``_bulk``). The
proxy maps these to OpenSearch-shaped errors in one table (``crossrank.proxy.errors``);
nothing here knows about HTTP.
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


class ScoreError(ValueError):
    """Reranker scores that cannot be merged (wrong count, NaN or infinite values)."""


class HybridSkip(SearchInputError):
    """This search is not made hybrid; ``reason`` is short enough for a header. Never an
    error to the client: the search is answered by BM25 alone."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
