"""Errors crossrank answers itself, in OpenSearch's error shape.

    CrossrankError                 error.type                     status
    ├── BadRequest                 illegal_argument_exception     400
    │   ├── InvalidJSON            parse_exception                400
    │   └── InvalidPolicy          illegal_argument_exception     400
    ├── Unauthorized               security_exception             401
    ├── NotFound                   resource_not_found_exception   404
    ├── PayloadTooLarge            content_too_long_exception     413
    ├── Overloaded                 rejected_execution_exception   429
    └── UpstreamError                                              502 / 503 / 504
        ├── UpstreamUnavailable    crossrank_upstream_unavailable 502 (connection refused)
        └── UpstreamTimeout        crossrank_upstream_timeout     504

opensearch-py reads the body of a JSON error and shows ``error.root_cause[0].reason``, so every
body carries ``error.type``, ``error.reason``, ``error.root_cause`` and ``status``.
"""

from __future__ import annotations

import orjson


class CrossrankError(Exception):
    status: int = 500
    error_type: str = "crossrank_exception"

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field

    def body(self) -> bytes:
        return error_body(self.status, self.error_type, self.reason)


class BadRequest(CrossrankError):
    status = 400
    error_type = "illegal_argument_exception"


class InvalidJSON(BadRequest):
    error_type = "parse_exception"


class InvalidPolicy(BadRequest):
    pass


class Unauthorized(CrossrankError):
    status = 401
    error_type = "security_exception"


class Forbidden(CrossrankError):
    status = 403
    error_type = "security_exception"


class NotFound(CrossrankError):
    status = 404
    error_type = "resource_not_found_exception"


class MethodNotAllowed(CrossrankError):
    status = 405
    error_type = "method_not_allowed_exception"


class PayloadTooLarge(CrossrankError):
    status = 413
    error_type = "content_too_long_exception"


class Overloaded(CrossrankError):
    status = 429
    error_type = "rejected_execution_exception"


class UpstreamError(CrossrankError):
    status = 502
    error_type = "crossrank_upstream_error"


class UpstreamUnavailable(UpstreamError):
    status = 502
    error_type = "crossrank_upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    error_type = "crossrank_upstream_timeout"


def error_body(status: int, error_type: str, reason: str) -> bytes:
    cause = {"type": error_type, "reason": reason}
    return orjson.dumps({"error": {"root_cause": [cause], **cause}, "status": status})
