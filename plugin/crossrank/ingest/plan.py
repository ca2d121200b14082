"""Plan the embedding of one write request (a ``_bulk`` body or a single-document request) and
write the vectors into it.

The request is a list of write operations. For each one that writes to an index whose policy
has an ``embed`` section:

- ``index`` / ``create``: the document's text gives the vector.
- ``update`` with a partial ``doc`` that touches a text field: the text of the document
  *after* the merge gives the vector, written into ``doc``. When ``doc`` alone does not fix
  every text field, the stored document is looked up first (``Lookup``); a missing one counts
  as empty with ``doc_as_upsert``, and otherwise gets no vector (OpenSearch answers that item
  ``document_missing_exception``). A ``doc`` that empties every text field sets the vector to
  null. An ``upsert`` document gets its own vector. Scripted updates cannot be foreseen: the
  script is sent as is (its ``upsert`` still gets a vector).
- ``delete``, documents without any text field, bodies that are not JSON objects and bodies
  nested deeper than ``MAX_DEPTH`` levels (reading them would exhaust Python's recursion
  limit; OpenSearch's own mapping depth limit is 20) are left exactly as sent; OpenSearch
  answers them as it would without crossrank.

Bodies that change are written back with only the vector added: an ``index``/``create`` source
without the vector field keeps every byte and gets the field spliced in first; otherwise the
body is re-serialised. Nothing else in the request changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from crossrank.ingest.documents import (
    VectorPathError,
    determines,
    document_text,
    is_absent,
    merge_partial,
    set_vector,
    splice_top_level,
    touches,
)
from crossrank.ndjson import json_depth, parse_bulk
from crossrank.policy import EmbedSection
from crossrank.types import JSONObject

__all__ = ["Embedding", "IngestPlan", "Lookup", "Slot", "WriteOp", "bulk_ops", "complete",
           "plan_ingest", "render", "rewrite_bulk"]

Part = Literal["source", "doc", "upsert"]

MAX_DEPTH = 200
"""Bodies nested deeper are not embedded: their text is read, and the body re-serialised,
recursively."""


@dataclass(frozen=True)
class WriteOp:
    action: str  # index | create | update | delete
    index: str | None
    doc_id: str | None
    routing: str | None
    body: bytes | None
    line: int = -1
    """0-based line of ``body`` in a bulk request; -1 for a single-document request."""


@dataclass(frozen=True)
class Slot:
    """Where a vector goes: the source of an index/create, or an update's doc or upsert."""

    op: int
    part: Part


@dataclass(frozen=True)
class Embedding:
    slot: Slot
    model: str
    text: str | None
    """None: an update removed every text field, so the vector is cleared."""


@dataclass(frozen=True)
class Lookup:
    """An update whose stored document is needed to know its text after the merge."""

    op: int
    index: str
    doc_id: str
    routing: str | None
    paths: tuple[str, ...]


@dataclass
class IngestPlan:
    ops: list[WriteOp]
    sections: dict[int, EmbedSection] = field(default_factory=dict)
    bodies: dict[int, JSONObject] = field(default_factory=dict)
    embeddings: list[Embedding] = field(default_factory=list)
    lookups: list[Lookup] = field(default_factory=list)

    @property
    def targets(self) -> dict[str, EmbedSection]:
        """Each index written under an embed policy (its mapping must hold the vector)."""
        return {index: self.sections[n] for n, op in enumerate(self.ops)
                if n in self.sections and (index := op.index) is not None}

    @property
    def models(self) -> set[str]:
        return {section.model for section in self.sections.values()}


def bulk_ops(body: bytes, index: str | None, routing: str | None) -> list[WriteOp]:
    """The operations of a ``_bulk`` body; ``index`` and ``routing`` are the URL's defaults.
    Raises ``NDJSONError`` where OpenSearch would refuse the whole request."""
    ops = []
    for item in parse_bulk(body):
        meta = item.meta
        target = meta.get("_index", index)
        doc_id = meta.get("_id")
        item_routing = meta.get("routing", meta.get("_routing", routing))
        ops.append(WriteOp(
            item.action, target if isinstance(target, str) else None,
            None if doc_id is None else str(doc_id),
            None if item_routing is None else str(item_routing),
            None if item.source_line is None else item.source_line.removesuffix(b"\r"),
            item.line))  # item.line is 1-based: the source is the next line
    return ops


def plan_ingest(ops: Sequence[WriteOp],
                section_for: Callable[[str], EmbedSection | None]) -> IngestPlan:
    plan = IngestPlan(list(ops))
    for number, op in enumerate(ops):
        if op.action == "delete" or op.index is None or op.body is None:
            continue
        section = section_for(op.index)
        if section is None:
            continue
        plan.sections[number] = section
        body = _loads(op.body)
        if not isinstance(body, dict) or json_depth(body) > MAX_DEPTH:
            continue  # not an object, not JSON, or too deep: OpenSearch answers it as sent
        plan.bodies[number] = body
        if op.action in ("index", "create"):
            _embed(plan, Slot(number, "source"), section, body, keep_empty=False)
        elif op.action == "update":
            _plan_update(plan, number, op, section, body)
    return plan


def _embed(plan: IngestPlan, slot: Slot, section: EmbedSection, document: JSONObject, *,
           keep_empty: bool) -> None:
    text = document_text(document, section)
    if text is not None or keep_empty:
        plan.embeddings.append(Embedding(slot, section.model, text))


def _plan_update(plan: IngestPlan, number: int, op: WriteOp, section: EmbedSection,
                 body: JSONObject) -> None:
    upsert = body.get("upsert")
    if isinstance(upsert, dict):
        _embed(plan, Slot(number, "upsert"), section, upsert, keep_empty=False)
    doc = body.get("doc")
    if not isinstance(doc, dict) or "script" in body:
        return
    fields = section.fields
    if not any(touches(doc, path) for path in fields):
        return  # the stored vector still matches the stored text
    if all(determines(doc, path) for path in fields):
        _embed(plan, Slot(number, "doc"), section, doc, keep_empty=True)
    elif op.doc_id is not None and op.index is not None:
        plan.lookups.append(Lookup(number, op.index, op.doc_id, op.routing, tuple(fields)))


def complete(plan: IngestPlan, stored: Mapping[int, JSONObject | None]) -> None:
    """Add the embeddings of looked-up updates; ``stored`` maps each lookup's op to the stored
    ``_source`` (None: no such document)."""
    for lookup in plan.lookups:
        body = plan.bodies[lookup.op]
        doc = body["doc"]
        source = stored.get(lookup.op)
        if source is None and body.get("doc_as_upsert") is not True:
            continue  # the update fails as document_missing_exception: nothing to embed
        merged = merge_partial(source or {}, doc)
        _embed(plan, Slot(lookup.op, "doc"), plan.sections[lookup.op], merged, keep_empty=True)


def render(plan: IngestPlan, vectors: Mapping[Slot, Any]) -> dict[int, bytes]:
    """The new body of every operation that gets a vector. ``vectors`` holds one vector (a
    float32 array or a list) per embedding slot, None to clear it."""
    changed: dict[int, dict[Part, Any]] = {}
    for slot, vector in vectors.items():
        changed.setdefault(slot.op, {})[slot.part] = _plain(vector)
    out: dict[int, bytes] = {}
    for number, parts in changed.items():
        field_path = plan.sections[number].vector_field
        op = plan.ops[number]
        assert op.body is not None
        try:
            if op.action != "update" and is_absent(plan.bodies[number], field_path):
                head, *rest = field_path.split(".")
                value: Any = parts["source"]
                for key in reversed(rest):
                    value = {key: value}
                out[number] = splice_top_level(op.body, head, orjson.dumps(value))
                continue
            # Re-serialised: parsed again exactly (orjson reads integers beyond 64 bits as
            # floats), so only the vector differs from what the client sent.
            body = json.loads(op.body)
            if op.action == "update":
                for part, vector in parts.items():
                    body[part] = set_vector(body[part], field_path, vector)
            else:
                body = set_vector(body, field_path, parts["source"])
        except VectorPathError:
            continue  # OpenSearch refuses that document's mapping as it would without crossrank
        out[number] = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return out


def _plain(vector: Any) -> Any:
    """A vector as plain floats, each with the shortest digits of its float32 value."""
    if vector is None:
        return None
    return orjson.loads(orjson.dumps(vector, option=orjson.OPT_SERIALIZE_NUMPY))


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def rewrite_bulk(body: bytes, ops: Sequence[WriteOp], new_bodies: Mapping[int, bytes]) -> bytes:
    """The bulk body with the changed source lines replaced; every other byte as sent."""
    if not new_bodies:
        return body
    lines = body.split(b"\n")
    for number, new in new_bodies.items():
        line = ops[number].line
        # keep a CR of a CRLF line ending
        lines[line] = new + (b"\r" if lines[line].endswith(b"\r") else b"")
    return b"\n".join(lines)
