"""Errors of the model layer.

    ModelError                 base of everything below
    ├── ExportError            a model cannot be exported (wrong kind, no fast tokenizer, ...)
    ├── ManifestError          crossrank.json is missing, malformed or does not match its files
    ├── ModelLookupError       (also a LookupError) a registry has no model of that name ...
    │   └── ModelKindError     ... or the model is not of the kind asked for
    └── QueueFull              too many pairs wait for a model's batcher: try again later
"""

from __future__ import annotations


class ModelError(Exception):
    """Base class of the model layer's errors."""


class ExportError(ModelError):
    """The source model cannot be exported as asked; the message says what to change."""


class ManifestError(ModelError):
    """A model directory's manifest is missing, malformed, or its checksums do not match."""


class ModelLookupError(ModelError, LookupError):
    """A registry was asked for a model name it does not hold."""

    def __init__(self, name: str, available: list[str]) -> None:
        self.name = name
        self.available = available
        super().__init__(f"unknown model {name!r}; configured models: {available or 'none'}")


class ModelKindError(ModelLookupError):
    """The model exists but is of another kind (an embedder asked to score pairs, say)."""

    def __init__(self, name: str, kind: str, wanted: str, available: list[str]) -> None:
        self.kind = kind
        self.wanted = wanted
        ModelError.__init__(self, f"model {name!r} is {_article(kind)} {kind}, "
                                  f"not {_article(wanted)} {wanted}")
        self.name = name
        self.available = available


def _article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


class QueueFull(ModelError):
    """Too many pairs are waiting for this model; try again later."""
