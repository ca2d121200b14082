"""Query text extraction from the query DSL (pure: no network, no model)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossrank.search.query_text import (
    extract_query_text,
    strip_query_string,
    strip_simple_query_string,
)


@pytest.mark.parametrize("query, expected", [
    ({"match": {"text": "heart attack"}}, "heart attack"),
    ({"match": {"text": {"query": "heart attack", "operator": "and"}}}, "heart attack"),
    ({"match_phrase": {"title": "vitamin d"}}, "vitamin d"),
    ({"match_phrase_prefix": {"title": {"query": "vitamin d def"}}}, "vitamin d def"),
    ({"match_bool_prefix": {"title": "quick brown f"}}, "quick brown f"),
    ({"multi_match": {"query": "gene therapy", "fields": ["title^2", "text"]}}, "gene therapy"),
    ({"combined_fields": {"query": "gene therapy", "fields": ["title", "text"]}}, "gene therapy"),
    ({"query_string": {"query": "title:(gene OR therapy) AND cancer"}}, "gene therapy cancer"),
    ({"simple_query_string": {"query": '"gene therapy" +cancer -mouse'}}, "gene therapy cancer"),
    ({"neural": {"embedding": {"query_text": "what causes gout", "k": 10}}}, "what causes gout"),
    ({"neural_sparse": {"sparse": {"query_text": "gout"}}}, "gout"),
    ({"nested": {"path": "passages", "query": {"match": {"passages.text": "gout"}}}}, "gout"),
    ({"function_score": {"query": {"match": {"t": "gout"}}, "functions": []}}, "gout"),
    ({"script_score": {"query": {"match": {"t": "gout"}}, "script": {"source": "1"}}}, "gout"),
    ({"dis_max": {"queries": [{"match": {"a": "one"}}, {"match": {"b": "two"}}]}}, "one two"),
    ({"constant_score": {"filter": {"match": {"t": "gout"}}, "boost": 1.2}}, "gout"),
    ({"boosting": {"positive": {"match": {"t": "apple"}}, "negative": {"match": {"t": "pie"}},
                   "negative_boost": 0.5}}, "apple"),
    ({"intervals": {"t": {"all_of": {"intervals": [{"match": {"query": "my favourite"}},
                                                   {"match": {"query": "food"}}]}}}},
     "my favourite food"),
])
def test_each_supported_clause_gives_its_text(query: object, expected: str) -> None:
    assert extract_query_text(query) == expected


def test_bool_reads_must_and_should_but_never_filter_or_must_not() -> None:
    query = {"bool": {
        "must": {"match": {"title": "heart"}},
        "should": [{"match_phrase": {"text": "attack"}}, {"term": {"tag": "cardio"}}],
        "filter": [{"match": {"lang": "english"}}],
        "must_not": [{"match": {"text": "mouse"}}],
    }}
    assert extract_query_text(query) == "heart attack"


def test_bool_with_only_filters_has_no_query_text() -> None:
    query = {"bool": {"filter": [{"match": {"text": "heart"}}]}}
    assert extract_query_text(query) is None


def test_hybrid_drops_repeated_texts_and_keeps_order() -> None:
    query = {"hybrid": {"queries": [
        {"match": {"text": "what causes  gout"}},
        {"neural": {"emb": {"query_text": "what causes gout", "k": 50}}},
        {"match": {"title": "uric acid"}},
    ]}}
    assert extract_query_text(query) == "what causes gout uric acid"


@pytest.mark.parametrize("query", [
    None, {}, {"match_all": {}}, {"term": {"status": "published"}},
    {"terms": {"tag": ["a", "b"]}}, {"range": {"year": {"gte": 2000}}},
    {"knn": {"emb": {"vector": [0.1, 0.2], "k": 3}}}, {"prefix": {"title": "hea"}},
    {"has_child": {"type": "c", "query": {"match": {"t": "child text"}}}},
    {"match": {"year": 2020}}, {"match": {"t": {"query": 5}}}, {"match": {"t": "   "}},
    {"query_string": {"query": "-mouse NOT rat"}}, "heart attack", ["match"],
])
def test_no_full_text_clause_gives_none(query: object) -> None:
    assert extract_query_text(query) is None


def test_deep_nesting_does_not_crash() -> None:
    query: object = {"match": {"t": "deep"}}
    for _ in range(5000):
        query = {"bool": {"must": [query]}}
    assert extract_query_text(query) is None
    shallow: object = {"match": {"t": "deep"}}
    for _ in range(20):
        shallow = {"bool": {"must": [shallow]}}
    assert extract_query_text(shallow) == "deep"


@pytest.mark.parametrize("text, expected", [
    ("title:(quick OR brown) AND fox~2^3 -lazy", "quick brown fox"),
    ('status:active AND author:"John Smith"', "active John Smith"),
    ("qu?ck bro*", "quck bro"),
    ("date:[2012-01-01 TO 2012-12-31] heart attack", "heart attack"),
    ("count:>=10 cancer", "cancer"),
    ("+python -snake NOT java", "python"),
    ("name:/joh?n/ doe", "doe"),
    (r"a\:b \(1\) e-mail", "a:b (1) e-mail"),
    ("_exists_:title vitamin D", "vitamin D"),
    ("!foo bar", "bar"),
    ("c++ && rust || go", "c rust go"),
    ("NOT (a b) c", "c"),
    ('"exact phrase"~3 x^2.5', "exact phrase x"),
    ("CANNOT ORDER", "CANNOT ORDER"),
])
def test_query_string_syntax_is_stripped(text: str, expected: str) -> None:
    assert strip_query_string(text) == expected


@pytest.mark.parametrize("text, expected", [
    ('"fried eggs" +(eggplant | potato) -frittata', "fried eggs eggplant potato"),
    ("title:foo bar*", "title:foo bar"),  # no field syntax in simple_query_string
    ("what is gout? x~2", "what is gout? x"),
    ('a -"b c" d', "a d"),
    ("well-known AND", "well-known AND"),
])
def test_simple_query_string_syntax_is_stripped(text: str, expected: str) -> None:
    assert strip_simple_query_string(text) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(
        ["match", "bool", "must", "should", "filter", "query", "queries", "hybrid", "neural",
         "query_text", "multi_match", "query_string", "simple_query_string", "dis_max",
         "intervals", "all_of", "intervals", "constant_score", "nested", "t"]) | st.text(),
        children, max_size=4),
    max_leaves=30,
)


@given(json_values)
def test_extraction_never_crashes_and_returns_clean_text(query: object) -> None:
    text = extract_query_text(query)
    assert text is None or (text == " ".join(text.split()) and text)


words = st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=1, max_size=6)


@given(words, words)
def test_plain_words_survive_every_full_text_clause(first: list[str], second: list[str]) -> None:
    query = {"bool": {"must": [{"query_string": {"query": " ".join(first)}}],
                      "should": [{"simple_query_string": {"query": " ".join(second)}}]}}
    expected = " ".join(first)
    if second != first:
        expected += " " + " ".join(second)
    # the words 'and', 'or', 'not' are operators only when written in capitals
    assert extract_query_text(query) == expected


@given(st.text(max_size=200))
def test_stripping_arbitrary_text_leaves_no_syntax_characters(text: str) -> None:
    lucene = strip_query_string(text)
    simple = strip_simple_query_string(text)
    for out in (lucene, simple):
        assert out == " ".join(out.split())
    if "\\" not in text:  # escaped characters are kept as literal text
        assert not set(lucene) & set('*?"()|^~[]{}!:')
        assert not set(simple) & set('*"()|~+')
