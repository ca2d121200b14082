"""_msearch and _bulk bodies: parsing, errors naming the line, faithful write-back."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossrank.ndjson import (
    BulkItem,
    NDJSONError,
    parse_bulk,
    parse_msearch,
    render_bulk,
    render_msearch,
)


def test_parse_msearch_pairs() -> None:
    body = (b'{"index": "a"}\n{"query": {"match_all": {}}}\n'
            b'\n{"size": 0}\n'  # an empty header line means {}
            b'{"index": ["b", "c"], "preference": "x"}\r\n{"query": {}}\r\n\n')
    assert parse_msearch(body) == [
        ({"index": "a"}, {"query": {"match_all": {}}}),
        ({}, {"size": 0}),
        ({"index": ["b", "c"], "preference": "x"}, {"query": {}}),
    ]


def test_parse_msearch_without_trailing_newline() -> None:
    assert parse_msearch(b'{}\n{"size": 1}') == [({}, {"size": 1})]
    assert parse_msearch(b"") == []


@pytest.mark.parametrize("body, line, words", [
    (b'{"index": "a"}\n{"query": \n', 2, "malformed search body"),
    (b'{"index": "a"\n{}\n', 1, "malformed search header"),
    (b'{}\n{}\n{"index": "b"}\n', 3, "without a search body"),
    (b'{}\n[1]\n', 2, "must be a JSON object"),
    (b'"a"\n{}\n', 1, "must be a JSON object"),
    (b'{}\n\n{}\n{}\n', 2, "empty search body"),
])
def test_msearch_errors_name_the_line(body: bytes, line: int, words: str) -> None:
    with pytest.raises(NDJSONError) as caught:
        parse_msearch(body)
    assert caught.value.line == line
    assert words in caught.value.reason
    assert f"line [{line}]" in str(caught.value)


def test_render_msearch_keeps_given_bytes() -> None:
    out = render_msearch([({"index": "a"}, b'{"query" : {}}'), (b"{}", {"size": 2})])
    assert out == b'{"index":"a"}\n{"query" : {}}\n{}\n{"size":2}\n'


json_objects = st.dictionaries(
    st.text(max_size=5),
    st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=8)
                 | st.floats(allow_nan=False, allow_infinity=False),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c,
                                                                      max_size=3),
                 max_leaves=6),
    max_size=4)


@given(st.lists(st.tuples(json_objects, json_objects), max_size=5))
def test_msearch_round_trip(searches: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    rendered = render_msearch(searches)
    assert rendered.endswith(b"\n") or not searches
    assert parse_msearch(rendered) == searches


BULK = (b'{"index": {"_index": "a", "_id": "1"}}\n{"title" : "x",  "n": 1}\n'
        b'{"delete": {"_index": "a", "_id": "2"}}\n'
        b'\n'
        b'{"create": {"_index": "b"}}\n{"title": "y"}\n'
        b'{"update": {"_id": "3", "_index": "a"}}\n{"doc": {"title": "z"}}\n')


def test_parse_bulk_items() -> None:
    items = parse_bulk(BULK)
    assert [(i.action, i.meta, i.line) for i in items] == [
        ("index", {"_index": "a", "_id": "1"}, 1),
        ("delete", {"_index": "a", "_id": "2"}, 3),
        ("create", {"_index": "b"}, 5),
        ("update", {"_id": "3", "_index": "a"}, 7),
    ]
    assert items[0].source_line == b'{"title" : "x",  "n": 1}'
    assert items[1].source_line is None and items[1].load_source() is None
    assert items[3].load_source() == {"doc": {"title": "z"}}


def test_render_bulk_is_byte_faithful_for_unchanged_lines() -> None:
    items = parse_bulk(BULK)
    assert render_bulk(items) == BULK.replace(b"\n\n", b"\n")
    changed = [items[0].with_source({"title": "x", "emb": [0.5]}), *items[1:]]
    out = render_bulk(changed).split(b"\n")
    assert out[0] == b'{"index": {"_index": "a", "_id": "1"}}'
    assert orjson.loads(out[1]) == {"title": "x", "emb": [0.5]}
    assert out[2:] == render_bulk(items[1:]).split(b"\n")
    with pytest.raises(ValueError):
        items[1].with_source({"a": 1})


@pytest.mark.parametrize("body, line, words", [
    (b'{"index": {}}\n', 1, "without a source line"),
    (b'{"index": {}}\n{}\n{"upsert": {}}\n{}\n', 3, "unknown action"),
    (b'{"index": {}, "delete": {}}\n{}\n', 1, "exactly one action"),
    (b'{"index": 3}\n{}\n', 1, "must be a JSON object"),
    (b'{"delete": {}}\n{"index": \n', 2, "malformed action"),
    (b'[]\n', 1, "must be a JSON object"),
])
def test_bulk_errors_name_the_line(body: bytes, line: int, words: str) -> None:
    with pytest.raises(NDJSONError) as caught:
        parse_bulk(body)
    assert caught.value.line == line and words in caught.value.reason


def test_bad_source_json_is_reported_when_loaded() -> None:
    item = parse_bulk(b'{"index": {}}\n{"a": \n')[0]
    with pytest.raises(NDJSONError) as caught:
        item.load_source()
    assert caught.value.line == 2


bulk_items = st.one_of(
    st.tuples(st.sampled_from(["index", "create", "update"]), json_objects, json_objects),
    st.tuples(st.just("delete"), json_objects, st.none()),
)


@given(st.lists(bulk_items, max_size=6))
def test_bulk_round_trip(ops: list[tuple[str, dict[str, Any], dict[str, Any] | None]]) -> None:
    lines = []
    for action, meta, source in ops:
        lines.append(orjson.dumps({action: meta}))
        if source is not None:
            lines.append(orjson.dumps(source))
    body = b"".join(line + b"\n" for line in lines)
    items = parse_bulk(body)
    assert [(i.action, i.meta, i.load_source()) for i in items] == ops
    assert render_bulk(items) == body
    assert all(isinstance(i, BulkItem) for i in items)
