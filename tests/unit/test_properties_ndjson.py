"""Properties of the _msearch / _bulk NDJSON bodies: any bytes give searches or an NDJSONError
naming a line of the body; valid bodies round-trip; a bad line is the line the error names."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crossrank.ndjson import (
    BULK_ACTIONS,
    NDJSONError,
    parse_bulk,
    parse_msearch,
    render_bulk,
    render_msearch,
)
from properties_profile import deep, json_objects, props

objects = json_objects(9)
line_endings = st.sampled_from([b"\n", b"\r\n"])
# lines that are not a JSON object: broken JSON, other JSON values, bytes that are not UTF-8
bad_lines = st.sampled_from([b"{", b"}", b"[]", b"1", b'"x"', b"null", b"{'a': 1}", b"\xff{}",
                             b'{"a":}', b"{}{}", b'{"a": 1,}', b"\x00"]) | st.binary(
    min_size=1, max_size=6).filter(lambda raw: raw.strip() != b"" and b"\n" not in raw
                                   and _not_an_object(raw))


def _not_an_object(raw: bytes) -> bool:
    try:
        return not isinstance(orjson.loads(raw), dict)
    except orjson.JSONDecodeError:
        return True


def lines_of(body: bytes) -> int:
    return len(body.split(b"\n"))


@props()
@given(st.binary(max_size=200) | st.lists(
    st.sampled_from([b"{}", b'{"index": "a"}', b'{"query": {}}', b"", b" ", b"\r", b"{", b"[]",
                     b'{"index": {}}', b'{"delete": {}}', b'{"update": {"_id": 1}}',
                     b'{"create": 3}', b'{"index": {}, "x": {}}', b'{"other": {}}']),
    max_size=8).map(b"\n".join))
@example(b"\n\n{}\n")
@example(b'{"index": {}}\n\n')
def test_any_body_parses_or_names_a_line(body: bytes) -> None:
    for parse in (parse_msearch, parse_bulk):
        try:
            parsed = parse(body)
        except NDJSONError as exc:
            assert 1 <= exc.line <= lines_of(body), (exc.line, body)
            assert exc.reason and f"line [{exc.line}]" in str(exc)
            continue
        assert isinstance(parsed, list)
    try:
        items = parse_bulk(body)
    except NDJSONError:
        return
    for item in items:
        assert item.action in BULK_ACTIONS and isinstance(item.meta, dict)
        assert (item.source_line is None) == (item.action == "delete")
        try:
            item.load_source()
        except NDJSONError as exc:
            assert exc.line == item.line + 1 <= lines_of(body)
    def same(parsed: list[Any]) -> list[Any]:  # line numbers move: blank lines are dropped
        return [(i.action, i.meta, i.action_line, i.source_line) for i in parsed]

    assert same(parse_bulk(render_bulk(items))) == same(items)


@props(share=0.25)
@given(st.lists(st.tuples(objects, objects), max_size=4), line_endings, st.booleans(),
       st.booleans())
def test_msearch_round_trips_with_any_line_endings(
        searches: list[tuple[dict[str, Any], dict[str, Any]]], ending: bytes,
        blank_headers: bool, trailing_blank: bool) -> None:
    lines = []
    for header, body in searches:
        empty = blank_headers and not header
        lines += [b"" if empty else orjson.dumps(header), orjson.dumps(body)]
    raw = b"".join(line + ending for line in lines) + (ending * 2 if trailing_blank else b"")
    assert parse_msearch(raw) == searches
    assert parse_msearch(render_msearch(searches)) == searches
    kept = [(orjson.dumps(h), orjson.dumps(b)) for h, b in searches]
    assert render_msearch(kept) == render_msearch(searches)  # bytes parts written as given


@props(share=0.25)
@given(st.lists(st.tuples(objects, objects), min_size=1, max_size=4), st.data())
def test_a_bad_msearch_line_is_the_line_named(
        searches: list[tuple[dict[str, Any], dict[str, Any]]], data: st.DataObject) -> None:
    lines = render_msearch(searches).split(b"\n")[:-1]
    where = data.draw(st.integers(0, len(lines) - 1))
    lines[where] = data.draw(bad_lines)
    with pytest.raises(NDJSONError) as caught:
        parse_msearch(b"\n".join(lines))
    assert caught.value.line == where + 1


bulk_ops = st.lists(st.one_of(
    st.tuples(st.sampled_from(["index", "create", "update"]), objects, objects),
    st.tuples(st.just("delete"), objects, st.none())), max_size=5)


def bulk_body(ops: list[tuple[str, dict[str, Any], dict[str, Any] | None]], ending: bytes,
              blank_between: bool) -> tuple[bytes, list[int]]:
    """The body and the 1-based line of each action."""
    lines: list[bytes] = []
    numbers = []
    for action, meta, source in ops:
        if blank_between:
            lines.append(b"")
        numbers.append(len(lines) + 1)
        lines.append(orjson.dumps({action: meta}))
        if source is not None:
            lines.append(orjson.dumps(source))
    return b"".join(line + ending for line in lines), numbers


@props(share=0.25)
@given(bulk_ops, line_endings, st.booleans())
def test_bulk_round_trips_with_line_numbers(
        ops: list[tuple[str, dict[str, Any], dict[str, Any] | None]], ending: bytes,
        blank_between: bool) -> None:
    body, numbers = bulk_body(ops, ending, blank_between)
    items = parse_bulk(body)
    assert [(i.action, i.meta, i.load_source(), i.line) for i in items] == [
        (action, meta, source, n) for (action, meta, source), n in zip(ops, numbers, strict=True)]
    if ending == b"\n" and not blank_between:
        assert render_bulk(items) == body  # byte-faithful
    again = parse_bulk(render_bulk(items))
    assert [(i.action, i.meta, i.load_source()) for i in again] == [
        (i.action, i.meta, i.load_source()) for i in items]


@props(share=0.25)
@given(bulk_ops.filter(bool), st.data())
def test_a_bad_bulk_action_line_is_the_line_named(
        ops: list[tuple[str, dict[str, Any], dict[str, Any] | None]],
        data: st.DataObject) -> None:
    body, numbers = bulk_body(ops, b"\n", False)
    lines = body.split(b"\n")
    where = data.draw(st.sampled_from(numbers))
    lines[where - 1] = data.draw(bad_lines | st.sampled_from(
        [b'{"upsert": {}}', b'{"index": {}, "delete": {}}', b'{"index": []}', b"{}"]))
    with pytest.raises(NDJSONError) as caught:
        parse_bulk(b"\n".join(lines))
    assert caught.value.line == where


@pytest.mark.parametrize("depth", [100, 254, 1000, 1024, 1025, 5000])
def test_deep_lines_parse_or_name_the_line(depth: int) -> None:
    line = orjson.dumps({"query": deep(1, min(depth, 200))}) if depth <= 200 else (
        b'{"query":' + b"[" * depth + b"]" * depth + b"}")
    body = b"{}\n" + line + b"\n"
    try:
        parse_msearch(body)
    except NDJSONError as exc:
        assert exc.line == 2
    bulk = b'{"index": {}}\n' + line + b"\n"
    [item] = parse_bulk(bulk)
    try:
        item.load_source()
    except NDJSONError as exc:
        assert exc.line == 2
