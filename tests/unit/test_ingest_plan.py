"""Planning the vectors of a write request and writing them in (no model: vectors are given)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank.ingest.plan import (
    Slot,
    WriteOp,
    bulk_ops,
    complete,
    plan_ingest,
    render,
    rewrite_bulk,
)
from crossrank.ndjson import NDJSONError
from crossrank.policy import EmbedSection

EMBED = EmbedSection(model="minilm", vector_field="emb", text_fields=["title", "text"],
                     template="{title}. {text}", separator=" ")


def section_for(index: str) -> EmbedSection | None:
    return EMBED if index.startswith("docs") else None


def ndjson(*lines: object) -> bytes:
    return b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n"
                    for line in lines)


def vectors_for(plan_embeddings: list) -> dict[Slot, object]:  # type: ignore[type-arg]
    return {e.slot: None if e.text is None else np.full(3, float(len(e.text)), np.float32)
            for e in plan_embeddings}


def test_bulk_ops_take_the_url_defaults() -> None:
    body = ndjson({"index": {"_id": 1}}, {"title": "a"},
                  {"delete": {"_index": "other", "_id": "2", "routing": "r"}},
                  {"update": {"_id": "3"}}, {"doc": {}})
    ops = bulk_ops(body, "docs", "default-routing")
    assert [(o.action, o.index, o.doc_id, o.routing, o.line) for o in ops] == [
        ("index", "docs", "1", "default-routing", 1),
        ("delete", "other", "2", "r", 3),
        ("update", "docs", "3", "default-routing", 4)]
    assert ops[1].body is None
    with pytest.raises(NDJSONError):
        bulk_ops(b'{"index":{}}\n', None, None)


def test_which_operations_get_a_vector() -> None:
    body = ndjson(
        {"index": {"_id": "1"}}, {"title": "Cells", "text": "grow"},
        {"create": {"_id": "2"}}, {"tags": ["no text fields"]},
        {"index": {"_index": "logs", "_id": "3"}}, {"title": "other policy"},
        {"delete": {"_id": "4"}},
        {"index": {"_id": "5"}}, b'{"title": broken json',
        {"index": {"_id": "6"}}, b'["not", "an", "object"]',
        {"index": {"_id": "7"}}, {"title": ["A", "B"], "text": {"en": "nested", "n": 3}})
    plan = plan_ingest(bulk_ops(body, "docs", None), section_for)
    assert [(e.slot, e.text) for e in plan.embeddings] == [
        (Slot(0, "source"), "Cells. grow"), (Slot(6, "source"), "A B. nested 3")]
    assert set(plan.sections) == {0, 1, 4, 5, 6}  # every write to docs*, even unparsable ones
    assert plan.targets == {"docs": EMBED}
    assert plan.models == {"minilm"}


def test_render_splices_the_vector_and_keeps_every_other_byte() -> None:
    body = (b'{"index":{"_id":"1"}}\r\n{"title": "T",  "n": 1.50}\r\n\n'
            b'{"delete":{"_id":"9"}}\n'
            b'{"index":{"_id":"2"}}\n{"title":"U","emb":[9,9,9]}\n'
            b'{"index":{"_id":"3"}}\n{"other":"x"}\n')
    ops = bulk_ops(body, "docs", None)
    plan = plan_ingest(ops, section_for)
    new = render(plan, {Slot(0, "source"): np.array([0.25, -1.0, 3.5], np.float32),
                        Slot(2, "source"): np.array([1.0, 2.0, 3.0], np.float32)})
    out = rewrite_bulk(body, ops, new)
    assert out == (b'{"index":{"_id":"1"}}\r\n{"emb":[0.25,-1.0,3.5],"title": "T",  "n": 1.50}'
                   b'\r\n\n{"delete":{"_id":"9"}}\n'
                   b'{"index":{"_id":"2"}}\n{"title":"U","emb":[1.0,2.0,3.0]}\n'
                   b'{"index":{"_id":"3"}}\n{"other":"x"}\n')
    assert rewrite_bulk(body, ops, {}) is body


def test_float32_vectors_are_written_exactly() -> None:
    ops = [WriteOp("index", "docs", "1", None, b'{"title":"x"}')]
    plan = plan_ingest(ops, section_for)
    vector = np.random.default_rng(7).standard_normal(384).astype(np.float32)
    written = orjson.loads(render(plan, {Slot(0, "source"): vector})[0])["emb"]
    assert np.array_equal(np.array(written, dtype=np.float32), vector)


def test_nested_vector_field() -> None:
    nested = EMBED.model_copy(update={"vector_field": "vectors.content"})
    ops = [WriteOp("index", "docs", "1", None, b'{"title":"x"}'),
           WriteOp("index", "docs", "2", None, b'{"title":"y","vectors":{"old":1}}'),
           WriteOp("index", "docs", "3", None, b'{"title":"z","vectors":"in the way"}')]
    plan = plan_ingest(ops, lambda index: nested)
    new = render(plan, {Slot(n, "source"): [1.0] for n in range(3)})
    assert new[0] == b'{"vectors":{"content":[1.0]},"title":"x"}'
    assert orjson.loads(new[1]) == {"title": "y", "vectors": {"old": 1, "content": [1.0]}}
    assert 2 not in new  # left for OpenSearch to refuse, as it would without crossrank


def update(doc: object = None, **extra: object) -> bytes:
    body = dict(extra)
    if doc is not None:
        body["doc"] = doc
    return orjson.dumps(body)


def test_updates() -> None:
    ops = [
        WriteOp("update", "docs", "1", None, update({"views": 3})),
        WriteOp("update", "docs", "2", None, update({"title": "New", "text": "body"})),
        WriteOp("update", "docs", "3", "r", update({"title": "Only the title"})),
        WriteOp("update", "docs", "4", None, update({"title": None, "text": None})),
        WriteOp("update", "docs", "5", None, update(script={"source": "ctx._source.title='x'"},
                                                    upsert={"title": "Up", "text": "sert"})),
        WriteOp("update", "docs", "6", None, update({"title": "T"}, doc_as_upsert=True)),
        WriteOp("update", "docs", "7", None, update({"title": "T"})),
        WriteOp("update", "docs", "8", None, update({"text": "D"},
                                                    upsert={"title": "U", "text": "D"})),
    ]
    plan = plan_ingest(ops, section_for)
    assert [(e.slot, e.text) for e in plan.embeddings] == [
        (Slot(1, "doc"), "New. body"), (Slot(3, "doc"), None),
        (Slot(4, "upsert"), "Up. sert"), (Slot(7, "upsert"), "U. D")]
    assert [(lk.op, lk.doc_id, lk.routing, lk.paths) for lk in plan.lookups] == [
        (2, "3", "r", ("title", "text")), (5, "6", None, ("title", "text")),
        (6, "7", None, ("title", "text")), (7, "8", None, ("title", "text"))]
    complete(plan, {2: {"text": "stored body", "title": "Old"}, 5: None, 6: None,
                    7: {"title": "S"}})
    assert [(e.slot, e.text) for e in plan.embeddings[4:]] == [
        (Slot(2, "doc"), "Only the title. stored body"), (Slot(5, "doc"), "T."),
        (Slot(7, "doc"), "S. D")]

    new = render(plan, vectors_for(plan.embeddings))
    assert orjson.loads(new[2]) == {"doc": {"title": "Only the title", "emb": [27.0] * 3}}
    assert orjson.loads(new[3]) == {"doc": {"title": None, "text": None, "emb": None}}
    assert orjson.loads(new[4])["upsert"]["emb"] == [8.0] * 3
    assert orjson.loads(new[4])["script"] == {"source": "ctx._source.title='x'"}
    assert orjson.loads(new[7]) == {"doc": {"text": "D", "emb": [4.0] * 3},
                                    "upsert": {"title": "U", "text": "D", "emb": [4.0] * 3}}
    assert 0 not in new and 6 not in new


def test_integers_beyond_64_bits_are_kept() -> None:
    big = b'{"title":"x","n":123456789012345678901234567890}'
    ops = [WriteOp("index", "docs", "1", None, big),
           WriteOp("index", "docs", "2", None, big.replace(b"{", b'{"emb":[0],', 1))]
    plan = plan_ingest(ops, section_for)
    new = render(plan, {Slot(0, "source"): np.ones(2, np.float32),
                        Slot(1, "source"): np.ones(2, np.float32)})
    assert new[0] == b'{"emb":[1.0,1.0],' + big[1:]
    assert new[1] == b'{"emb":[1.0,1.0],"title":"x","n":123456789012345678901234567890}'
    update = WriteOp("update", "docs", "3", None, b'{"doc":{"title":"y","n":' + b"9" * 30 + b"}}")
    plan = plan_ingest([update], section_for)
    assert render(plan, {Slot(0, "doc"): [0.5]})[0] == (
        b'{"doc":{"title":"y","n":' + b"9" * 30 + b',"emb":[0.5]}}')


texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
documents = st.fixed_dictionaries({}, optional={
    "title": texts, "text": texts, "n": st.integers(-2**63, 2**63 - 1), "emb": st.just([0])})
operations = st.lists(st.tuples(st.sampled_from(["index", "create", "delete"]),
                                st.sampled_from(["docs", "logs"]), documents), max_size=8)


@settings(max_examples=200)
@given(operations)
def test_bulk_rewrite_changes_only_the_vectors(items: list[tuple[str, str, dict]]) -> None:  # type: ignore[type-arg]
    lines: list[object] = []
    for number, (action, index, doc) in enumerate(items):
        lines.append({action: {"_index": index, "_id": str(number)}})
        if action != "delete":
            lines.append(orjson.dumps(doc, option=orjson.OPT_INDENT_2).replace(b"\n", b""))
    body = ndjson(*lines)
    ops = bulk_ops(body, None, None)
    plan = plan_ingest(ops, section_for)
    out = rewrite_bulk(body, ops, render(plan, vectors_for(plan.embeddings)))
    embedded = {e.slot.op for e in plan.embeddings}
    before, after = body.split(b"\n"), out.split(b"\n")
    assert len(before) == len(after)
    for number, op in enumerate(ops):
        assert after[op.line - 1] == before[op.line - 1]  # action lines never change
        if op.body is None:
            continue
        doc = orjson.loads(before[op.line])
        if number in embedded:
            title, text = (doc.get(k, "") if doc.get(k, "").strip() else "" for k in EMBED.fields)
            text = f"{title}. {text}".strip()
            assert orjson.loads(after[op.line]) == {**doc, "emb": [float(len(text))] * 3}
        else:
            assert after[op.line] == before[op.line]
            assert op.index == "logs" or not (doc.get("title", "").strip()
                                              or doc.get("text", "").strip())
