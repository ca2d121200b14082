"""Properties of the ingest hook's pure part over arbitrary ``_bulk`` bodies: an NDJSONError or a
plan, and a rewritten body that holds the same operations with only the vectors added."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossrank.ingest.documents import is_absent
from crossrank.ingest.plan import (
    MAX_DEPTH,
    Slot,
    bulk_ops,
    complete,
    plan_ingest,
    render,
    rewrite_bulk,
)
from crossrank.ndjson import NDJSONError, parse_bulk
from crossrank.policy import EmbedSection
from properties_profile import json_objects, json_values, props

EMBED = EmbedSection(model="minilm", vector_field="emb", text_fields=["title", "text"],
                     separator=" ")
NESTED = EmbedSection(model="minilm", vector_field="meta.vec", text_fields=["meta.title"],
                      template="{meta.title}!", separator=" ")


def section_for(index: str) -> EmbedSection | None:
    return {"docs": EMBED, "nested": NESTED}.get(index)


texts = st.text(max_size=6) | json_values(4)
documents = st.fixed_dictionaries({}, optional={
    "title": texts, "text": texts, "emb": json_values(2), "meta": json_objects(4)
    | st.fixed_dictionaries({}, optional={"title": texts, "vec": json_values(2)})}) | json_values(8)
metas = st.fixed_dictionaries({}, optional={
    "_index": st.sampled_from(["docs", "nested", "other"]) | json_values(1),
    "_id": st.text(max_size=3) | st.integers(-(2**63), 2**64 - 1), "routing": st.text(max_size=3)})
updates = st.fixed_dictionaries({}, optional={
    "doc": documents, "upsert": documents, "doc_as_upsert": st.booleans(),
    "script": st.just({"source": "ctx._source.x = 1"})})


@st.composite
def bulk_bodies(draw: st.DrawFn) -> bytes:
    lines: list[bytes] = []
    for _ in range(draw(st.integers(0, 6))):
        action = draw(st.sampled_from(["index", "create", "update", "delete"]))
        lines.append(orjson.dumps({action: draw(metas)}))
        if action == "update":
            lines.append(orjson.dumps(draw(updates)))
        elif action != "delete":
            lines.append(orjson.dumps(draw(documents)) if draw(st.integers(0, 9)) else
                         draw(st.sampled_from([b"{", b"[]", b"  {}  ", b'{"title": "a"}\r'])))
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(st.sampled_from([b"", b" ", b"\r"])))
    return b"\n".join(lines) + draw(st.sampled_from([b"", b"\n"]))


@props(share=0.5)
@given(bulk_bodies(), st.sampled_from([None, "docs", "nested"]), st.data())
def test_rewritten_bulk_keeps_every_operation_and_adds_only_vectors(
        body: bytes, default_index: str | None, data: st.DataObject) -> None:
    try:
        ops = bulk_ops(body, default_index, None)
    except NDJSONError as exc:
        assert 1 <= exc.line <= len(body.split(b"\n"))
        return
    plan = plan_ingest(ops, section_for)
    complete(plan, {lookup.op: data.draw(st.none() | json_objects(4)) for lookup in plan.lookups})
    vectors: dict[Slot, Any] = {e.slot: None if e.text is None else [0.5, -1.0]
                                for e in plan.embeddings}
    new_bodies = render(plan, vectors)
    out = rewrite_bulk(body, ops, new_bodies)
    if not new_bodies:
        assert out is body
        return

    before, after = parse_bulk(body), parse_bulk(out)
    assert [(i.action, i.meta, i.line) for i in after] == [
        (i.action, i.meta, i.line) for i in before]
    for number, (old, new) in enumerate(zip(before, after, strict=True)):
        if number not in new_bodies:
            assert new.source_line == old.source_line
            continue
        section = plan.sections[number]
        head = section.vector_field.split(".")[0]
        written, sent = orjson.loads(new.source_line or b""), orjson.loads(old.source_line or b"")
        if ops[number].action == "update":
            for part in ("doc", "upsert"):
                if Slot(number, part) not in vectors:
                    assert written.get(part) == sent.get(part)
        else:
            if is_absent(sent, section.vector_field):
                assert next(iter(written)) == head  # spliced in first, every other byte kept
            assert {k: v for k, v in written.items() if k != head} == {
                k: v for k, v in sent.items() if k != head}


# Regression: a document nested about 1,000 levels deep (orjson reads up to 1,024) raised
# RecursionError in reading its text, or in re-serialising it; the proxy answered 500.
@pytest.mark.parametrize("depth", [150, 198, 199, 200, 900, 990, 1000, 1020])
@pytest.mark.parametrize("where", ["text", "other", "emb"])
def test_deep_documents_never_raise(depth: int, where: str) -> None:
    nested = b"[" * depth + b'"x"' + b"]" * depth
    source = b'{"title": "t", "' + where.encode() + b'": ' + nested + b"}"
    body = b'{"index": {"_index": "docs"}}\n' + source + b"\n"
    ops = bulk_ops(body, None, None)
    plan = plan_ingest(ops, section_for)
    vectors: dict[Slot, Any] = {e.slot: [0.5] for e in plan.embeddings}
    out = rewrite_bulk(body, ops, render(plan, vectors))
    assert [(i.action, i.meta) for i in parse_bulk(out)] == [("index", {"_index": "docs"})]
    assert (out != body) == (depth + 1 <= MAX_DEPTH)  # too deep: left as sent
