"""The client's _source filter: OpenSearch's filtering rules, and widening for the text fields."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank.search.source_filter import (
    InvalidSourceFilter,
    SourceFilter,
    covers,
    filter_source,
    parse_source_filter,
    widen,
)

SOURCE = {"a": 1, "b": {"c": 2, "d": 3}, "a.x": 4,
          "arr": [{"x": 1, "y": 2}, {"y": 3}, 4], "e": {}}


@pytest.mark.parametrize("includes, excludes, expected", [
    ((), (), SOURCE),
    (("b.c",), (), {"b": {"c": 2}}),
    (("b",), ("b.d",), {"b": {"c": 2}}),
    (("*.c",), (), {"b": {"c": 2}}),
    ((), ("b*", "arr", "e"), {"a": 1, "a.x": 4}),
    # a pattern matches a key that contains dots, as it would the object path
    (("a",), (), {"a": 1, "a.x": 4}),
    (("a.x",), (), {"a.x": 4}),
    # inside arrays, objects are filtered and dropped when empty; scalars need the array path
    (("arr.x",), (), {"arr": [{"x": 1}]}),
    (("arr",), ("arr.y",), {"arr": [{"x": 1}, 4]}),
    (("e",), (), {"e": {}}),
    (("e.f",), (), {}),
    (("*",), ("*.d", "a*"), {"b": {"c": 2}, "e": {}}),  # "a*" also matches "arr"
    (("*",), ("*.d", "a"), {"b": {"c": 2}, "arr": [{"x": 1, "y": 2}, {"y": 3}, 4], "e": {}}),
])
def test_filtering_follows_opensearch(includes: tuple[str, ...], excludes: tuple[str, ...],
                                      expected: dict[str, Any]) -> None:
    assert filter_source(SOURCE, SourceFilter(True, includes, excludes)) == expected


@pytest.mark.parametrize("body, params, expected", [
    (None, [], SourceFilter()),
    (False, [], SourceFilter(fetch=False)),
    ("title", [], SourceFilter(includes=("title",))),
    (["title", "meta.*"], [], SourceFilter(includes=("title", "meta.*"))),
    ({"include": "a", "exclude": ["b", "c"]}, [], SourceFilter(True, ("a",), ("b", "c"))),
    ({"includes": [], "excludes": "emb"}, [], SourceFilter(excludes=("emb",))),
    # URL parameters replace the body's filter
    (["title"], [("_source", "false")], SourceFilter(fetch=False)),
    (["title"], [("_source", "a,b")], SourceFilter(includes=("a", "b"))),
    (None, [("_source_includes", "a"), ("_source_excludes", "b, c")],
     SourceFilter(True, ("a",), ("b", "c"))),
    (None, [("_source", "true"), ("size", "3")], SourceFilter()),
])
def test_parse_source_filter(body: object, params: list[tuple[str, str]],
                             expected: SourceFilter) -> None:
    assert parse_source_filter(body, params) == expected


def test_stored_fields_without_source_means_no_source() -> None:
    assert parse_source_filter(None, [], stored_fields=True) == SourceFilter(fetch=False)
    assert parse_source_filter(True, [], stored_fields=True) == SourceFilter()


@pytest.mark.parametrize("body", [3, {"includes": 3}, {"fields": ["a"]}, [1, "a"]])
def test_invalid_source_filters_are_reported(body: object) -> None:
    with pytest.raises(InvalidSourceFilter):
        parse_source_filter(body, [])


def test_widen_adds_text_fields_and_drops_excludes_that_hide_them() -> None:
    client = SourceFilter(True, ("id",), ("text.raw", "embedding", "t*"))
    widened = widen(client, ["title", "text"])
    assert widened == SourceFilter(True, ("id", "title", "text"), ("embedding",))


def test_widen_is_none_when_the_client_already_gets_the_text() -> None:
    assert widen(SourceFilter(), ["title"]) is None
    assert widen(SourceFilter(True, ("title", "x"), ("embedding",)), ["title"]) is None
    assert widen(SourceFilter(True, ("meta.*",), ()), ["meta.title"]) is None


def test_widen_with_source_false_fetches_only_the_text_fields() -> None:
    assert widen(SourceFilter(fetch=False), ["a.b", "c"]) == SourceFilter(True, ("a.b", "c"))


def test_widen_keeps_include_all_when_the_client_only_excludes() -> None:
    assert widen(SourceFilter(excludes=("title",)), ["title"]) == SourceFilter()


def test_covers() -> None:
    assert covers(SourceFilter(True, ("meta",), ()), "meta.title")
    assert not covers(SourceFilter(True, ("meta.title",), ()), "meta")
    assert not covers(SourceFilter(excludes=("meta.title.raw",)), "meta.title")
    assert not covers(SourceFilter(excludes=("meta",)), "meta.title")
    assert not covers(SourceFilter(fetch=False), "meta")


# Property: what the client sees after widening then restoring is what OpenSearch would have
# returned for the client's own filter, and the widened source holds every text field.
keys = st.sampled_from(["a", "b", "c", "a.b", "t"])
patterns = st.lists(st.sampled_from(["a", "b", "c", "a.b", "a.*", "*.b", "*", "b.c", "t", "x"]),
                    max_size=3).map(tuple)
sources = st.recursive(
    st.integers(0, 9) | st.text("xy", max_size=2),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=12,
).filter(lambda value: isinstance(value, dict))
text_paths = st.lists(st.sampled_from(["a", "b", "a.b", "b.c", "t"]), min_size=1, max_size=2,
                      unique=True)


def _client_filters() -> st.SearchStrategy[SourceFilter]:
    return st.builds(SourceFilter, st.booleans(), patterns, patterns)


@settings(max_examples=400)
@given(sources, _client_filters(), text_paths)
def test_widen_then_restore_equals_the_client_filter(source: dict[str, Any],
                                                     client: SourceFilter,
                                                     paths: list[str]) -> None:
    widened = widen(client, paths)
    upstream = filter_source(source, widened) if widened is not None else (
        filter_source(source, client) if client.fetch else None)
    expected = filter_source(source, client) if client.fetch else None
    if widened is None:
        assert upstream == expected
        return
    restored = filter_source(upstream, client) if client.fetch else None
    assert restored == expected
    for path in paths:
        assert covers(widened, path)
        assert filter_source(upstream, SourceFilter(True, (path,), ())) == filter_source(
            source, SourceFilter(True, (path,), ()))
