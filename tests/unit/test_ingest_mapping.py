"""The mapping an embed policy needs: created, or checked with a reason for each problem."""

from __future__ import annotations

import pytest

from crossrank.ingest.mapping import check_mappings, index_body, put_mapping_body

KNN = {"type": "knn_vector", "dimension": 384,
       "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}}


def index(properties: dict[str, object], knn: object = "true") -> dict[str, object]:
    settings = {"index": {"knn": knn}} if knn is not None else {"index": {}}
    return {"settings": settings, "mappings": {"properties": properties}}


def test_index_body_maps_a_lucene_knn_vector() -> None:
    assert index_body("emb", 384) == {"settings": {"index": {"knn": True}},
                                      "mappings": {"properties": {"emb": KNN}}}
    nested = index_body("vectors.content", 8, "innerproduct")["mappings"]
    assert nested["properties"]["vectors"]["properties"]["content"]["dimension"] == 8
    assert put_mapping_body("emb", 384) == {"properties": {"emb": KNN}}
    with pytest.raises(ValueError, match="space_type"):
        index_body("emb", 3, "hamming")


def test_a_right_mapping_has_no_problems() -> None:
    assert check_mappings({"docs": index({"emb": KNN, "title": {"type": "text"}})},
                          "emb", 384) == []
    nested = {"vectors": {"properties": {"content": KNN}}}
    assert check_mappings({"docs": index(nested)}, "vectors.content", 384) == []
    assert check_mappings({"docs": index({"emb": KNN})}, "emb", None) == []
    flat = {"docs": {"settings": {"index.knn": "true"}, "mappings": {"properties": {"emb": KNN}}}}
    assert check_mappings(flat, "emb", 384) == []


@pytest.mark.parametrize(("entry", "expected"), [
    (index({"title": {"type": "text"}}), "field [emb] is not mapped"),
    (index({"emb": {"type": "float"}}), "mapped as [float], expected [knn_vector]"),
    (index({"emb": {**KNN, "dimension": 768}}), "dimension [768], the embedder gives vectors "
                                                "of dimension [384]"),
    (index({"emb": {**KNN, "data_type": "byte"}}), "data_type [byte]"),
    (index({"emb": KNN}, knn=None), "index.knn is not true"),
    (index({"emb": KNN}, knn="false"), "index.knn is not true"),
])
def test_each_problem_is_named(entry: dict[str, object], expected: str) -> None:
    [problem] = check_mappings({"docs-1": entry}, "emb", 384)
    assert problem.startswith("index [docs-1]: ") and expected in problem


def test_every_index_behind_an_alias_is_checked() -> None:
    problems = check_mappings({"a": index({"emb": KNN}), "b": index({})}, "emb", 384)
    assert len(problems) == 1 and problems[0].startswith("index [b]")
    assert check_mappings({}, "emb", 384) == ["no index found"]
