"""Errors crossrank answers itself, and the one table that turns any known error into an
OpenSearch-shaped answer.

The proxy's own errors::

    CrossrankError
    ├── BadRequest
    │   ├── InvalidJSON
    │   ├── InvalidPolicy
    │   ├── MappingMismatch        an index cannot hold the policy's vectors
    │   └── UpstreamRefused        OpenSearch refused a request made for the client (its 4xx)
    ├── Unauthorized, Forbidden, NotFound, MethodNotAllowed, PayloadTooLarge, Overloaded
    ├── EmbeddingFailed            a write's vectors could not be computed (nothing written)
    ├── DimensionUnknown           no vector dimension to create a mapping with
    ├── EmbedderMissing            the policy names an embedder that is not loaded
    └── UpstreamError
        ├── UpstreamUnavailable    connection refused
        └── UpstreamTimeout
    ClientDisconnected             the client went away (no answer is sent)

``ERRORS`` below maps each class, the proxy's and those of the layers beneath it (search's
``PlanError``, the shared ``NDJSONError``, the models' ``QueueFull``), to its HTTP status and
OpenSearch error type; ``describe`` finds the entry of the nearest class in an exception's MRO.
Handlers raise; the app's boundary answers (``crossrank.proxy.app``).

opensearch-py reads the body of a JSON error and shows ``error.root_cause[0].reason``, so every
body carries ``error.type``, ``error.reason``, ``error.root_cause`` and ``status``.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from crossrank.models.errors import QueueFull
from crossrank.ndjson import NDJSONError
from crossrank.search.errors import PlanError


class CrossrankError(Exception):
    """An error the proxy answers with; its status and type are in ``ERRORS``."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field

    @property
    def status(self) -> int:
        return describe(self).status

    def body(self) -> bytes:
        return describe(self).body()


class BadRequest(CrossrankError):
    pass


class InvalidJSON(BadRequest):
    pass


class InvalidPolicy(BadRequest):
    pass


class MappingMismatch(BadRequest):
    """A target index cannot hold the vectors (no knn_vector field, wrong dimension, ...)."""


class Unauthorized(CrossrankError):
    pass


class Forbidden(CrossrankError):
    pass


class NotFound(CrossrankError):
    pass


class MethodNotAllowed(CrossrankError):
    pass


class PayloadTooLarge(CrossrankError):
    pass


class Overloaded(CrossrankError):
    pass


class EmbeddingFailed(CrossrankError):
    """The documents' vectors could not be computed; nothing was written."""


class DimensionUnknown(CrossrankError):
    """A vector mapping is needed and no vector (nor the embedder) tells its dimension."""


class EmbedderMissing(CrossrankError):
    """The policy names an embedder this proxy has not loaded (or a model that is not an
    embedder): its settings, not the request, are wrong, and no index can be made for the
    vectors until they are."""


class UpstreamRefused(BadRequest):
    """OpenSearch refused a request crossrank made for the client (a 4xx): answered with
    OpenSearch's own status."""

    def __init__(self, reason: str, *, upstream_status: int) -> None:
        super().__init__(reason)
        self.upstream_status = upstream_status


class UpstreamError(CrossrankError):
    pass


class UpstreamUnavailable(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    pass


class ClientDisconnected(Exception):
    """The client went away before its request body was read."""


@dataclass(frozen=True)
class Described:
    status: int
    error_type: str
    reason: str

    def body(self) -> bytes:
        return error_body(self.status, self.error_type, self.reason)


# class: (status, OpenSearch error type)
ERRORS: dict[type[BaseException], tuple[int, str]] = {
    CrossrankError: (500, "crossrank_exception"),
    BadRequest: (400, "illegal_argument_exception"),
    InvalidJSON: (400, "parse_exception"),
    InvalidPolicy: (400, "illegal_argument_exception"),
    MappingMismatch: (400, "crossrank_mapping_exception"),
    PlanError: (400, "parse_exception"),
    NDJSONError: (400, "parse_exception"),
    Unauthorized: (401, "security_exception"),
    Forbidden: (403, "security_exception"),
    NotFound: (404, "resource_not_found_exception"),
    MethodNotAllowed: (405, "method_not_allowed_exception"),
    EmbedderMissing: (409, "crossrank_embedding_exception"),
    PayloadTooLarge: (413, "content_too_long_exception"),
    Overloaded: (429, "rejected_execution_exception"),
    QueueFull: (429, "rejected_execution_exception"),
    EmbeddingFailed: (500, "crossrank_embedding_exception"),
    DimensionUnknown: (500, "crossrank_embedding_exception"),
    UpstreamError: (502, "crossrank_upstream_error"),
    UpstreamUnavailable: (502, "crossrank_upstream_unavailable"),
    UpstreamTimeout: (504, "crossrank_upstream_timeout"),
}


def describe(exc: BaseException) -> Described:
    """Status, type and reason for a known error (the nearest class of ``ERRORS`` in its MRO);
    anything else is an internal 500 whose details stay in the log."""
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            status, error_type = ERRORS[cls]
            if isinstance(exc, UpstreamRefused):
                status = exc.upstream_status
            return Described(status, error_type, _reason(exc))
    return Described(500, "crossrank_exception", "internal error in crossrank (see its log)")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, NDJSONError):
        return f"{exc.body} body, line {exc.line}: {exc.reason}"
    if isinstance(exc, PlanError):
        return str(exc)  # "[field] reason"
    if isinstance(exc, QueueFull):
        return f"the reranker is overloaded: {exc}"
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, str) else str(exc)


def error_body(status: int, error_type: str, reason: str) -> bytes:
    cause = {"type": error_type, "reason": reason}
    return orjson.dumps({"error": {"root_cause": [cause], **cause}, "status": status})
