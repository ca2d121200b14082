"""One document on its way in: text, partial updates, where the vector goes."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from crossrank.policy import EmbedSection

EMBED = EmbedSection(model="minilm", vector_field="emb", text_fields=["title", "meta.abstract"],
                     separator=" | ")


def test_text_joins_fields_arrays_and_nested_values() -> None:
    doc = {"title": ["A", "B"], "meta": [{"abstract": "x"}, {"abstract": "y"}]}
    assert document_text(doc, EMBED) == "A | B | x | y"
    assert document_text({"meta.abstract": "dotted key"}, EMBED) == "dotted key"
    assert document_text({"title": 42, "meta": {"abstract": True}}, EMBED) == "42 | true"


def test_no_text_field_means_no_text_even_with_a_template() -> None:
    templated = EMBED.model_copy(update={"template": "{title}. {meta.abstract}"})
    assert document_text({"other": "x"}, templated) is None
    assert document_text({"title": "", "meta": {"abstract": None}}, EMBED) is None
    assert document_text({"title": "T"}, templated) == "T."


def test_touches_and_determines() -> None:
    assert touches({"title": "x"}, "title")
    assert touches({"meta": {"abstract": "x"}}, "meta.abstract")
    assert touches({"meta": "replaced"}, "meta.abstract")
    assert not touches({"meta": {"year": 1}}, "meta.abstract")
    assert not touches({"tags": ["a"]}, "title")

    assert determines({"title": None}, "title")
    assert determines({"meta": {"abstract": "x"}}, "meta.abstract")
    assert determines({"meta": [{"abstract": "x"}]}, "meta.abstract")  # arrays are replaced
    assert not determines({"meta": {"year": 1}}, "meta.abstract")
    assert not determines({"title": {"en": "x"}}, "title")  # objects merge with the stored one
    assert not determines({"meta.abstract": "a", "meta": {"abstract": "b"}}, "meta.abstract")


def test_merge_partial_merges_objects_and_replaces_the_rest() -> None:
    stored = {"a": {"x": 1, "y": [1, 2]}, "b": "keep", "c": {"d": 1}}
    doc = {"a": {"y": [3], "z": 2}, "c": None}
    assert merge_partial(stored, doc) == {"a": {"x": 1, "y": [3], "z": 2}, "b": "keep",
                                          "c": None}
    assert stored == {"a": {"x": 1, "y": [1, 2]}, "b": "keep", "c": {"d": 1}}


def test_set_vector_creates_and_copies_objects() -> None:
    source = {"a": {"b": 1}}
    out = set_vector(source, "a.vec", [1.0])
    assert out == {"a": {"b": 1, "vec": [1.0]}} and source == {"a": {"b": 1}}
    assert set_vector({"a.vec": [0.0]}, "a.vec", [2.0]) == {"a.vec": [2.0]}
    assert set_vector({}, "x.y.z", None) == {"x": {"y": {"z": None}}}
    with pytest.raises(VectorPathError):
        set_vector({"a": 5}, "a.vec", [1.0])
    assert is_absent({"b": 1}, "a.vec") and not is_absent({"a": {}}, "a.vec")


def test_splice_keeps_every_byte_of_the_client() -> None:
    raw = b'  { "n": 1.50, "big": 12345678901234567890, "s": "\\u00e9" }'
    out = splice_top_level(raw, "emb", b"[0.5]")
    assert out == b'  {"emb":[0.5], "n": 1.50, "big": 12345678901234567890, "s": "\\u00e9" }'
    assert splice_top_level(b"{ }", "emb", b"[1]") == b'{"emb":[1] }'
    assert orjson.loads(splice_top_level(b'{"a":"x"}', 'q"k', b"1")) == {'q"k': 1, "a": "x"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=10)


@given(st.dictionaries(st.text(max_size=6).filter(lambda k: k != "emb"), json_values,
                       max_size=5))
def test_splice_is_the_source_plus_the_vector(source: dict[str, object]) -> None:
    raw = orjson.dumps(source, option=orjson.OPT_INDENT_2)
    spliced = orjson.loads(splice_top_level(raw, "emb", b"[1.0,2.0]"))
    assert spliced == {"emb": [1.0, 2.0], **source}
