"""Errors of the ingest hook.

    EmbeddingError        a request's vectors cannot be computed: nothing of it is written
    VectorPathError       (a ValueError) a vector field's path runs through a non-object

The proxy answers them through its one table (``crossrank.proxy.errors``).
"""

from __future__ import annotations


class EmbeddingError(Exception):
    """The vectors of a request cannot be computed; nothing of the request may be written."""

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"embedding with model [{model}] failed: {reason}")
        self.model = model
        self.reason = reason


class VectorPathError(ValueError):
    """The vector field cannot be set: something that is not an object is in the way."""
