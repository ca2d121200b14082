"""Safe defaults end to end: a policy that says nothing about scoring gets the settings its
model's card recommends for the kind of first stage, through a real proxy and a real node."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opensearchpy import OpenSearch, helpers

from crossrank.models import Manifest
from crossrank.models.manifest import Scoring
from crossrank.server import build_app

from proxy_fixtures import ADMIN_TOKEN, ServedProxy, proxy_settings

pytestmark = pytest.mark.integration

QUERY = {"match": {"text": "cells"}}


@pytest.fixture
def carded(tiny_cross_encoder_dir: Path, tmp_path: Path, opensearch_url: str,
           os_client: OpenSearch, index_name: str) -> Iterator[tuple[httpx.Client, str]]:
    """The tiny model with a card: BM25 blended z_score 0.7 at K 4; k-NN not reranked."""
    model = tmp_path / "carded"
    shutil.copytree(tiny_cross_encoder_dir, model)
    manifest = Manifest.read(model)
    manifest.model_copy(update={"recommended": {
        "bm25": Scoring(score_mode="blend", blend_alpha=0.7, normalization="z_score",
                        window=4),
        "knn": Scoring(rerank=False, window=6)}}).write(model)
    os_client.indices.create(index=index_name, body={"settings": {"number_of_replicas": 0}})
    helpers.bulk(os_client, ({"_index": index_name, "_id": f"d{i}",
                              "text": f"cells {'tumour ' * (i % 5)}growth sample {i}"}
                             for i in range(12)), refresh=True)
    settings = proxy_settings(opensearch_url, model, policy_index=f"{index_name}-policies")
    served = ServedProxy(build_app(settings), settings.port).start()
    client = httpx.Client(base_url=served.url, timeout=30)
    put = client.put(f"/_crossrank/policies/{index_name}", json={"indices": [index_name]},
                     headers={"x-crossrank-admin-token": ADMIN_TOKEN})
    assert put.status_code == 201, put.text
    assert put.json()["policy"]["window"] is None  # left to the card
    time.sleep(1.0)  # the policy store refreshes every 0.5 s
    yield client, index_name
    client.close()
    served.stop()
    os_client.indices.delete(index=f"{index_name}-policies", ignore_unavailable=True)


def test_a_policy_without_scoring_takes_the_cards_bm25_settings(
        carded: tuple[httpx.Client, str]) -> None:
    client, index = carded
    body = {"query": QUERY, "size": 8, "ext": {"crossrank": {"explain": True}}}
    response = client.post(f"/{index}/_search", json=body)
    assert response.headers["x-crossrank-status"] == "reranked", response.headers
    hits = response.json()["hits"]["hits"]
    reranked = [h for h in hits if h["_crossrank"]["rerank_score"] is not None]
    assert len(reranked) == 4  # the card's window, not the built-in 50
    scores = [h["_score"] for h in reranked]
    assert scores == sorted(scores, reverse=True)
    assert not all(0.0 <= s <= 1.0 for s in scores)  # z_score, not min_max's [0, 1]


def test_the_cards_advice_not_to_rerank_a_knn_first_stage(
        carded: tuple[httpx.Client, str]) -> None:
    client, index = carded
    body = {"query": {"bool": {"must": [QUERY, {"knn": {"v": {"vector": [1.0], "k": 3}}}]}}}
    advised = client.post(f"/{index}/_search", json=body)
    # not reranked, and answered by OpenSearch as sent (here: its error for the unknown field)
    assert advised.headers["x-crossrank-status"] == "bypassed"
    assert advised.headers["x-crossrank-reason"] == "not_recommended"
    assert advised.headers["x-crossrank-arm"] == "rerank"
