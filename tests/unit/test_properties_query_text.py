"""Properties of query text extraction over arbitrary DSL and query strings: never an exception,
always clean text, even on inputs large enough to expose super-linear patterns (a query string
comes straight from the client, and planning runs on the event loop)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crossrank.search.query_text import (
    extract_query_text,
    strip_query_string,
    strip_simple_query_string,
)
from properties_profile import deep, json_values, props

SYNTAX = ' \t\n()[]{}"\\/:*?~^+-!|&<>=._@aAbTONRD0123\u00e9\U000f0001'
query_strings = st.text(alphabet=SYNTAX, max_size=40) | st.text(max_size=40) | st.lists(
    st.sampled_from(["TO", "AND", "OR", "NOT", "a:", "[", "]", "{", "}", "-", "!", "\\", "\"",
                     "/", "(", ")", "_exists_:", ">=", "<", " ", "x", "*", "~2", "^3"]),
    max_size=20).map("".join)
leaf_kinds = ["match", "match_phrase", "multi_match", "combined_fields", "query_string",
              "simple_query_string", "neural", "intervals"]


@st.composite
def queries(draw: st.DrawFn) -> Any:
    """DSL with full-text leaves at random places in random compounds (and random junk)."""
    return draw(st.recursive(
        st.builds(lambda kind, text: _leaf(kind, text), st.sampled_from(leaf_kinds),
                  query_strings) | json_values(6),
        lambda children: st.builds(
            lambda kind, part, clauses: {kind: {part: clauses}},
            st.sampled_from(["bool", "dis_max", "hybrid", "function_score", "boosting",
                             "nested", "constant_score", "script_score"]),
            st.sampled_from(["must", "should", "filter", "must_not", "queries", "query",
                             "positive"]),
            children | st.lists(children, max_size=3)),
        max_leaves=12))


def _leaf(kind: str, text: str) -> Any:
    if kind in ("match", "match_phrase"):
        return {kind: {"title": text}}
    if kind == "neural":
        return {kind: {"emb": {"query_text": text, "k": 3}}}
    if kind == "intervals":
        return {kind: {"title": {"all_of": {"intervals": [{"match": {"query": text}}]}}}}
    return {kind: {"query": text}}


def clean(text: str | None) -> bool:
    return text is None or (bool(text) and text == " ".join(text.split()))


@props()
@given(queries() | json_values())
def test_extraction_returns_clean_text_or_none(query: Any) -> None:
    text = extract_query_text(query)
    assert clean(text)
    if text is not None:  # repeats are dropped: the same text never appears twice in a row
        assert extract_query_text({"bool": {"should": [query, query]}}) == text


@props()
@given(query_strings)
@example("[TO ] x")
@example("a\\:b c:[1 TO 2] -d")
def test_query_string_stripping_returns_clean_words(text: str) -> None:
    for strip in (strip_query_string, strip_simple_query_string):
        out = strip(text)
        assert out == " ".join(out.split())
        assert not any(0xF0000 <= ord(char) <= 0xFFFFD for char in out)  # no escape leaks


@props(share=0.25)
@given(st.integers(1, 3000))
def test_nesting_is_read_to_a_fixed_depth_without_recursion_errors(depth: int) -> None:
    query: Any = {"match": {"title": "gout"}}
    for n in range(depth):
        query = {"bool": {"must": [query]}} if n % 2 else {"dis_max": {"queries": query}}
    assert extract_query_text(query) == ("gout" if depth <= 100 else None)
    assert extract_query_text(deep(query, depth)) is None  # lists are not queries


# Regression: the range pattern of strip_query_string was cubic ("[TO " * 2000, 8 kB, took
# 136 s) and the field-prefix patterns quadratic; extraction deduplicated with a list (40,000
# clauses took 8.5 s). Each case below took seconds or minutes; now all take milliseconds.
# The tests check the answers on inputs that large; how the time grows with the input is
# measured by benchmarks/bench_query_text.py (tests assert no wall-clock limits).
ADVERSARIAL = ["[TO ", "[ TO", "{TO ", "a", "a:", "a.", "-a", " ", "-", "a:>", "!a:", "NOT ",
               "/", "a:/", "_exists_:", "\\", "[TO]", '-"', "-(", "a:[", "(", "TO "]


@pytest.mark.parametrize("unit", ADVERSARIAL)
def test_stripping_is_linear_in_the_length_of_the_query(unit: str) -> None:
    text = unit * (40_000 // len(unit))
    for stripped in (strip_query_string(text), strip_simple_query_string(text)):
        assert len(stripped) <= len(text) and stripped == " ".join(stripped.split())


def test_extraction_is_linear_in_the_number_of_clauses() -> None:
    many = {"bool": {"should": [{"match": {"title": f"word{i}"}} for i in range(100_000)]}}
    text = extract_query_text(many)
    assert text is not None and text.split() == [f"word{i}" for i in range(100_000)]
