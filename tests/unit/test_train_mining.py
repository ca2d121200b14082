"""BM25 hard-negative mining against the real OpenSearch node (no fake: see DESIGN.md)."""

from __future__ import annotations

import pytest
from opensearchpy import OpenSearch

from crossrank.eval.datasets import Document
from crossrank.train.mining import ensure_index, search_many

pytestmark = pytest.mark.integration

CORPUS = {
    "a": Document("a", "Vitamin D and bone density", "Vitamin D supplements raise bone density."),
    "b": Document("b", "Statins and cholesterol", "Statins lower LDL cholesterol in adults."),
    "c": Document("c", "Running", "Runners have denser bones than swimmers."),
}


def test_the_english_analyzer_stems_and_the_index_is_reused(os_client: OpenSearch,
                                                             index_name: str) -> None:
    assert ensure_index(os_client, index_name, CORPUS, "fp1", "english") is True
    assert ensure_index(os_client, index_name, CORPUS, "fp1", "english") is False  # reused
    [bones, cholesterol, nothing] = search_many(
        os_client, index_name, ["bone", "lowering cholesterol", "zebra"], k=2)
    # "bone" finds "bones" and "denser bones" only because the english analyzer stems
    assert {doc_id for doc_id, _ in bones} == {"a", "c"}
    assert cholesterol[0][0] == "b" and cholesterol[0][1] > 0
    assert nothing == []
    # another corpus fingerprint rebuilds the index
    assert ensure_index(os_client, index_name, CORPUS, "fp2", "english") is True
