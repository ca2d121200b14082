"""The request and response shapes of the rerank APIs RAG code already calls, and their errors.

Each ``Shape`` turns a request body into a ``RerankCall`` (or a ``RerankInputError``), a ranking
into the answer's bytes, and an error into the status and body that API's own clients expect
(the SDKs pick their exception class by status):

- ``crossrank`` (``POST /_crossrank/rerank``): Cohere v1's fields plus ``raw_scores``,
  ``max_length`` and ``max_chunks``; OpenSearch-shaped errors, as every crossrank route.
- ``v1`` (``POST /v1/rerank``): Cohere v1 (``rank_fields``, ``return_documents``,
  ``max_chunks_per_doc``) and Jina (``documents`` as strings or ``{"text"}`` objects). Jina
  returns the documents unless told not to, Cohere v1 only when asked; this route follows
  Jina (Cohere's SDK reads ``document`` as optional). Errors: ``{"message"}`` (Cohere) with
  ``detail`` (Jina) beside it; 400 invalid, 404 unknown model.
- ``v2`` (``POST /v2/rerank``): Cohere v2 (``documents`` strings, ``max_tokens_per_doc``).
- ``tei`` (``POST /rerank``): TEI's ``RerankRequest`` (``texts``, ``raw_scores``,
  ``return_text``, ``truncate``, ``truncation_direction``), answered as a list of
  ``{index, score[, text]}``; errors ``{"error", "error_type"}``: 422 for a body that is not
  the schema, 413 for a valid body TEI refuses (no texts, a text too long without
  ``truncate``), 424 for an unknown model, as TEI's router maps its error types.

Chunking is opt-in everywhere: ``max_chunks`` (crossrank), ``max_chunks_per_doc`` (Cohere
v1) above 1 read a long document in that many windows, scored as its best window.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crossrank.models.tokenization import Chunking
from crossrank.proxy.errors import BadRequest, describe
from crossrank.proxy.policies_api import validation_reason

__all__ = ["SHAPES", "Ranked", "RerankCall", "RerankInputError", "Shape"]

MAX_DOCUMENTS = 10_000
DEFAULT_MODEL = "default"


@dataclass(frozen=True)
class RerankCall:
    """One rerank request, whatever its shape."""

    query: str
    texts: Sequence[str]
    model: str
    top_n: int | None = None
    max_length: int | None = None
    chunking: Chunking | None = None
    truncate: bool = True
    """False: a pair longer than the model's window is refused, not cut (TEI's
    ``truncate: false``)."""
    return_documents: bool = False
    raw_scores: bool = False
    ids: Sequence[Any] | None = None
    """crossrank's own shape: each document's ``id`` as sent (None where it had none)."""


@dataclass(frozen=True)
class Ranked:
    index: int
    relevance: float | None
    raw: float | None


class RerankInputError(Exception):
    """A request the API refuses; ``kind`` picks the status in each shape."""

    def __init__(self, message: str, *, field: str | None = None,
                 kind: Literal["schema", "invalid", "not_found", "too_long"] = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.kind = kind


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        field, reason = validation_reason(exc)
        raise RerankInputError(reason, field=field, kind="schema") from exc


def _chunking(max_chunks: int | None, doc_tokens: int | None = None) -> Chunking | None:
    if (max_chunks is None or max_chunks == 1) and doc_tokens is None:
        return None
    return Chunking(max_chunks=max_chunks or 1, doc_tokens=doc_tokens)


class Shape:
    name: str

    def parse(self, body: bytes) -> RerankCall:
        raise NotImplementedError

    def render(self, call: RerankCall, ranked: list[Ranked], took_ms: float,
               request_id: str) -> bytes:
        raise NotImplementedError

    def error(self, exc: RerankInputError) -> tuple[int, bytes]:
        raise NotImplementedError


# --- crossrank's own: POST /_crossrank/rerank -------------------------------------------------

class RerankDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Echoed back as given; the JSON encoder writes integers of at most 64 bits.
    id: Annotated[int, Field(ge=-(2**63), le=2**64 - 1)] | str | None = None
    text: str


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1)
    documents: list[RerankDocument | str] = Field(max_length=MAX_DOCUMENTS)
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = False
    model: str = DEFAULT_MODEL
    max_length: int | None = Field(None, ge=8, le=8192)
    raw_scores: bool = False
    """Add ``raw_score`` (the model's logit) to each result."""
    max_chunks: int | None = Field(None, ge=1, le=64)
    """Read a document longer than the model's window in up to this many windows (1: off)."""


class CrossrankShape(Shape):
    name = "crossrank"

    def parse(self, body: bytes) -> RerankCall:
        req = _parse(RerankRequest, body)
        docs = req.documents
        return RerankCall(
            query=req.query, texts=[d if isinstance(d, str) else d.text for d in docs],
            model=req.model, top_n=req.top_n, max_length=req.max_length,
            chunking=_chunking(req.max_chunks), return_documents=req.return_documents,
            raw_scores=req.raw_scores,
            ids=[None if isinstance(d, str) else d.id for d in docs])

    def render(self, call: RerankCall, ranked: list[Ranked], took_ms: float,
               request_id: str) -> bytes:
        results = _v1_results(call, ranked)
        for result, item in zip(results, ranked, strict=True):
            if call.raw_scores:
                result["raw_score"] = item.raw
            if call.ids is not None and call.ids[item.index] is not None:
                result["id"] = call.ids[item.index]
        return orjson.dumps({"model": call.model, "results": results,
                             "meta": {"took_ms": took_ms, "documents": len(call.texts)}})

    def error(self, exc: RerankInputError) -> tuple[int, bytes]:
        # an unknown model too is a 400 here, as it has always been on this route
        answer = describe(BadRequest(exc.message, field=exc.field))
        return answer.status, answer.body()


# --- Cohere v1 and Jina: POST /v1/rerank ------------------------------------------------------

class _V1Document(BaseModel):
    """Cohere v1 takes objects of string fields (``rank_fields`` picks them), Jina ``{"text"}``."""

    model_config = ConfigDict(extra="allow")
    text: str | None = None


class CohereV1Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = DEFAULT_MODEL
    query: str = Field(min_length=1)
    documents: list[str | _V1Document] = Field(max_length=MAX_DOCUMENTS)
    top_n: int | None = Field(None, ge=1)
    rank_fields: list[str] | None = Field(None, min_length=1)
    return_documents: bool = True
    max_chunks_per_doc: int | None = Field(None, ge=1, le=64)


def _v1_text(doc: str | _V1Document, fields: list[str] | None, position: int) -> str:
    if isinstance(doc, str):
        return doc
    values = doc.model_dump(exclude_none=True)
    chosen = fields or ["text"]
    missing = [name for name in chosen if not isinstance(values.get(name), str)]
    if missing:
        raise RerankInputError(f"[documents.{position}] has no string field "
                               f"'{missing[0]}' to rank by", field=f"documents.{position}")
    if len(chosen) == 1:
        return str(values[chosen[0]])
    return "\n".join(f"{name}: {values[name]}" for name in chosen)


def _v1_results(call: RerankCall, ranked: list[Ranked]) -> list[dict[str, Any]]:
    """Cohere v1's results (crossrank's own route adds to them): index, relevance_score and,
    when asked for, the document."""
    results = []
    for item in ranked:
        result: dict[str, Any] = {"index": item.index, "relevance_score": item.relevance}
        if call.return_documents:
            result["document"] = {"text": call.texts[item.index]}
        results.append(result)
    return results


def _cohere_meta(version: str, took_ms: float, documents: int) -> dict[str, Any]:
    return {"api_version": {"version": version}, "billed_units": {"search_units": 1},
            "took_ms": took_ms, "documents": documents}


class CohereV1Shape(Shape):
    name = "v1"

    def parse(self, body: bytes) -> RerankCall:
        req = _parse(CohereV1Request, body)
        texts = [_v1_text(doc, req.rank_fields, i) for i, doc in enumerate(req.documents)]
        return RerankCall(query=req.query, texts=texts, model=req.model, top_n=req.top_n,
                          chunking=_chunking(req.max_chunks_per_doc),
                          return_documents=req.return_documents)

    def render(self, call: RerankCall, ranked: list[Ranked], took_ms: float,
               request_id: str) -> bytes:
        return orjson.dumps({"id": request_id or str(uuid.uuid4()), "model": call.model,
                             "results": _v1_results(call, ranked),
                             "meta": _cohere_meta("1", took_ms, len(call.texts))})

    def error(self, exc: RerankInputError) -> tuple[int, bytes]:
        status = 404 if exc.kind == "not_found" else 400
        return status, orjson.dumps({"message": exc.message, "detail": exc.message})


# --- Cohere v2: POST /v2/rerank ---------------------------------------------------------------

class CohereV2Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    query: str = Field(min_length=1)
    documents: list[str] = Field(max_length=MAX_DOCUMENTS)
    top_n: int | None = Field(None, ge=1)
    max_tokens_per_doc: int | None = Field(None, ge=1)
    priority: int | None = None
    """A scheduling hint; crossrank has one class of requests, so every priority is served
    the same way."""


class CohereV2Shape(Shape):
    name = "v2"

    def parse(self, body: bytes) -> RerankCall:
        req = _parse(CohereV2Request, body)
        return RerankCall(query=req.query, texts=req.documents, model=req.model,
                          top_n=req.top_n, chunking=_chunking(None, req.max_tokens_per_doc))

    def render(self, call: RerankCall, ranked: list[Ranked], took_ms: float,
               request_id: str) -> bytes:
        results = [{"index": item.index, "relevance_score": item.relevance} for item in ranked]
        return orjson.dumps({"id": request_id or str(uuid.uuid4()), "results": results,
                             "meta": _cohere_meta("2", took_ms, len(call.texts))})

    def error(self, exc: RerankInputError) -> tuple[int, bytes]:
        status = 404 if exc.kind == "not_found" else 400
        return status, orjson.dumps({"message": exc.message})


# --- Hugging Face TEI: POST /rerank -----------------------------------------------------------

class TeiRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str
    texts: list[str]
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool | None = None
    """None: the server's choice, as TEI's ``--auto-truncate``; crossrank cuts."""
    truncation_direction: Literal["Right", "right", "Left", "left"] = "Right"
    model: str = DEFAULT_MODEL
    """Not in TEI (one model per server): picks one of crossrank's models."""


class TeiShape(Shape):
    name = "tei"

    def parse(self, body: bytes) -> RerankCall:
        req = _parse(TeiRequest, body)
        if not req.texts:
            raise RerankInputError("`texts` cannot be empty", field="texts")
        if len(req.texts) > MAX_DOCUMENTS:
            raise RerankInputError(f"batch size {len(req.texts)} > maximum allowed batch size "
                                   f"{MAX_DOCUMENTS}", field="texts")
        if req.truncation_direction.lower() == "left":
            raise RerankInputError("truncation_direction Left is not supported: crossrank "
                                   "cuts the end of each text", field="truncation_direction")
        return RerankCall(query=req.query, texts=req.texts, model=req.model,
                          truncate=req.truncate is not False, return_documents=req.return_text,
                          raw_scores=req.raw_scores)

    def render(self, call: RerankCall, ranked: list[Ranked], took_ms: float,
               request_id: str) -> bytes:
        results = []
        for item in ranked:
            result: dict[str, Any] = {
                "index": item.index, "score": item.raw if call.raw_scores else item.relevance}
            if call.return_documents:
                result["text"] = call.texts[item.index]
            results.append(result)
        return orjson.dumps(results)

    def error(self, exc: RerankInputError) -> tuple[int, bytes]:
        status = {"schema": 422, "not_found": 424}.get(exc.kind, 413)
        kind = "backend" if exc.kind == "not_found" else "validation"
        return status, orjson.dumps({"error": exc.message, "error_type": kind})


SHAPES: dict[str, Shape] = {shape.name: shape for shape in (
    CrossrankShape(), CohereV1Shape(), CohereV2Shape(), TeiShape())}
