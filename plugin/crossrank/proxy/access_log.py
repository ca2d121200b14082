"""Structured JSON logs: one line per request, with the request id that also went upstream.

Only method, path, status, route, timings and crossrank's outcome are logged: never headers,
bodies or query strings, so credentials and query text stay out of the logs.
"""

from __future__ import annotations

import itertools
import logging
import os
import time

import orjson

REQUEST_ID_HEADER = b"x-request-id"
log = logging.getLogger("crossrank.access")
# New ids: 64 random bits per process, then a counter (32 hex digits, as a uuid4's hex); a
# uuid4 per request cost a getrandom() call.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def _new_prefix() -> None:  # a forked worker must not repeat its parent's ids
    global _ID_PREFIX
    _ID_PREFIX = os.urandom(8).hex()


os.register_at_fork(after_in_child=_new_prefix)


def request_id(headers: list[tuple[bytes, bytes]]) -> tuple[str, bool]:
    """The client's X-Request-Id if it sent a sane one, else a new id (and False)."""
    for key, value in headers:
        if key.lower() == REQUEST_ID_HEADER and 0 < len(value) <= 128 and value.isascii():
            return value.decode("ascii"), True
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}", False


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                 "logger": record.name, "message": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def log_request(request_id: str, method: str, path: str, status: int, route: str,
                began: float, outcome: str | None) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    log.info("request", extra={"fields": {
        "request_id": request_id, "method": method, "path": path, "status": status,
        "route": route, "duration_ms": round((time.perf_counter() - began) * 1000, 2),
        "crossrank": outcome}})
