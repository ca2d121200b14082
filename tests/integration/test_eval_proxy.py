"""`crossrank eval` end to end: the tiny judged fixture, indexed and searched through a real
crossrank proxy in front of the real OpenSearch node, scored with the session's real model.

The hybrid arms run on a second proxy that also loads all-MiniLM-L6-v2 as an embedder, under
the name `crossrank serve --models-dir onnx_models` gives it (``minilm-l6-embedder``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from math import log2
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from matplotlib.image import imread
from opensearchpy import OpenSearch

from crossrank.eval.datasets import load_dataset, read_corpus
from crossrank.eval.evaluation import run_evaluation
from crossrank.eval.indexing import META_KEY
from crossrank.eval.metrics import score_rankings
from crossrank.eval.options import DEFAULT_EMBEDDER, EvalOptions
from crossrank.eval.proxy_client import EvalError
from crossrank.fusion import rrf
from crossrank.models import Embedder
from crossrank.server import build_app

from proxy_fixtures import ServedProxy, proxy_settings

pytestmark = pytest.mark.integration

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "eval_tiny"

# By hand (see tests/fixtures/eval_tiny/README.md). BM25 ranks the four-token documents by the
# query term's frequency: q1 -> d1 (rel 0), d2 (rel 1), d3 (rel 2); q2 -> d4, d5 (rel 1), and
# d6 (rel 1) is never retrieved; q3 -> d7 (rel 1), d8. nDCG: linear gain, log2(rank + 1).
Q1_NDCG = (1 / log2(3) + 2 / log2(4)) / (2 + 1 / log2(3))
Q2_NDCG = (1 / log2(3)) / (1 + 1 / log2(3))
BM25_BY_HAND = {
    "ndcg@10": {"q1": Q1_NDCG, "q2": Q2_NDCG, "q3": 1.0},
    "mrr@10": {"q1": 1 / 2, "q2": 1 / 2, "q3": 1.0},
    "map@100": {"q1": (1 / 2 + 2 / 3) / 2, "q2": 1 / 4, "q3": 1.0},
    "recall@100": {"q1": 1.0, "q2": 1 / 2, "q3": 1.0},
}


@pytest.fixture
def cleanup_policy(proxy_url: str, admin_token: str, index_name: str) -> Iterator[None]:
    yield
    httpx.delete(f"{proxy_url}/_crossrank/policies/{index_name}-eval",
                 headers={"x-crossrank-admin-token": admin_token}, timeout=30)


def _options(dataset: Path, proxy_url: str, admin_token: str, index: str, out: Path,
             **changes: object) -> EvalOptions:
    values: dict[str, object] = {
        "dataset": dataset, "proxy": proxy_url, "admin_token": admin_token, "index": index,
        "out": out, "windows": (1, 3), "warmup": 1, "progress": False}
    values.update(changes)
    return EvalOptions(**values)  # type: ignore[arg-type]


def _assert_hand_metrics(per_query: dict[str, dict[str, float]],
                         means: dict[str, float]) -> None:
    for metric, expected in BM25_BY_HAND.items():
        assert per_query[metric].keys() == expected.keys()
        for qid, value in expected.items():
            assert per_query[metric][qid] == pytest.approx(value, abs=1e-12), (metric, qid)
        assert means[metric] == pytest.approx(sum(expected.values()) / 3, abs=1e-12)


@pytest.mark.usefixtures("cleanup_policy")
def test_tiny_collection_through_the_proxy(proxy_url: str, admin_token: str, index_name: str,
                                           os_client: OpenSearch, tmp_path: Path) -> None:
    report, paths = run_evaluation(_options(TINY, proxy_url, admin_token, index_name,
                                            tmp_path / "first"))
    assert [r.key for r in report.results] == ["bm25", "bm25+rerank@1", "bm25+rerank@3"]
    bm25, window_one, window_three = report.results
    # the baseline arm is OpenSearch's own BM25, exactly as computed by hand
    _assert_hand_metrics(bm25.per_query, bm25.metrics)
    assert bm25.statuses == {"bypassed": 3}
    # reranking a window of one changes no order: the same numbers, but through the model
    _assert_hand_metrics(window_one.per_query, window_one.metrics)
    assert window_one.statuses == {"reranked": 3}
    assert window_three.statuses == {"reranked": 3}
    # all three matching documents of each query are still retrieved, in whatever order
    assert window_three.metrics["recall@100"] == pytest.approx(5 / 6, abs=1e-12)
    assert all(r.latency.queries == 3 and r.latency.p50_ms > 0 for r in report.results)
    assert window_three.server_timing_ms.get("score", -1.0) >= 0.0

    data = orjson.loads(paths["json"].read_bytes())
    assert data["settings"]["indexing"] == "created"
    assert data["dataset"]["skipped_no_relevant"] == 1
    assert {(c["baseline"], c["candidate"]) for c in data["comparisons"]} == {
        ("bm25", "bm25+rerank@1"), ("bm25", "bm25+rerank@3")}
    for name in ("quality", "latency", "wins"):
        assert imread(paths[name]).std() > 0.01
    assert "| bm25 | 0.6689 | 0.6667 | 0.6111 | 0.8333 |" in paths["markdown"].read_text()

    meta = os_client.indices.get_mapping(index=index_name)[index_name]["mappings"]["_meta"]
    assert meta[META_KEY]["state"] == "complete" and meta[META_KEY]["count"] == 10
    uuid = os_client.indices.get_settings(index=index_name)[index_name]["settings"]["index"][
        "uuid"]

    # a second run finds the same documents and does not index again
    again, _ = run_evaluation(_options(TINY, proxy_url, admin_token, index_name,
                                       tmp_path / "second", arms=("bm25",)))
    assert again.settings["indexing"] == "reused"
    assert os_client.indices.get_settings(index=index_name)[index_name]["settings"]["index"][
        "uuid"] == uuid
    _assert_hand_metrics(again.results[0].per_query, again.results[0].metrics)


def test_changed_corpus_is_reindexed(proxy_url: str, admin_token: str, index_name: str,
                                     os_client: OpenSearch, tmp_path: Path) -> None:
    data = tmp_path / "tiny"
    shutil.copytree(TINY, data)
    first, _ = run_evaluation(_options(data, proxy_url, admin_token, index_name,
                                       tmp_path / "a", arms=("bm25",)))
    assert first.settings["indexing"] == "created"
    with (data / "corpus.jsonl").open("a") as corpus:
        corpus.write('{"_id": "d11", "title": "Report eleven", "text": "kalu kalu kalu kalu"}\n')
    second, _ = run_evaluation(_options(data, proxy_url, admin_token, index_name,
                                        tmp_path / "b", arms=("bm25",)))
    assert second.settings["indexing"] == "replaced"
    assert os_client.count(index=index_name)["count"] == 11
    # d11 (tf 4) now leads q1: nDCG@10 of q1 = (1/log2(4) + 2/log2(5)) / IDCG
    expected = (1 / log2(4) + 2 / log2(5)) / (2 + 1 / log2(3))
    assert second.results[0].per_query["ndcg@10"]["q1"] == pytest.approx(expected, abs=1e-12)


def test_foreign_index_is_not_touched(proxy_url: str, admin_token: str, index_name: str,
                                      os_client: OpenSearch, tmp_path: Path) -> None:
    os_client.index(index=index_name, id="mine", body={"text": "someone's data"},
                    refresh=True)
    with pytest.raises(EvalError, match="was not created by crossrank eval; pass --reindex"):
        run_evaluation(_options(TINY, proxy_url, admin_token, index_name, tmp_path,
                                arms=("bm25",)))
    assert os_client.count(index=index_name)["count"] == 1
    report, _ = run_evaluation(_options(TINY, proxy_url, admin_token, index_name, tmp_path,
                                        arms=("bm25",), reindex=True))
    assert report.settings["indexing"] == "replaced"
    _assert_hand_metrics(report.results[0].per_query, report.results[0].metrics)


def test_rerank_only_shortcut(proxy_url: str, tmp_path: Path) -> None:
    report, paths = run_evaluation(EvalOptions(dataset=TINY, proxy=proxy_url,
                                               rerank_only=True, out=tmp_path,
                                               warmup=1, progress=False))
    listed, model = report.results
    assert (listed.key, model.key) == ("listed-order", "rerank:default")
    # listed order = the qrels file's order: q1 d1, d2, d3 (as BM25); q2 d5, d6; q3 d7
    assert listed.per_query["ndcg@10"] == pytest.approx({"q1": Q1_NDCG, "q2": 1.0, "q3": 1.0},
                                                        abs=1e-12)
    assert listed.metrics["map@100"] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 2) / 3,
                                                      abs=1e-12)
    # every judged candidate comes back, reordered by the model
    assert model.metrics["recall@100"] == 1.0
    assert model.statuses == {"reranked": 3} and model.latency.queries == 3
    assert q3_is_trivial(model.per_query)
    assert orjson.loads(paths["json"].read_bytes())["settings"]["mode"] == "rerank-only"


def q3_is_trivial(per_query: dict[str, dict[str, float]]) -> bool:
    """q3 has one candidate, judged relevant: any reranker ranks it first."""
    return all(per_query[m]["q3"] == 1.0 for m in per_query)


def test_unreachable_proxy_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match=r"cannot reach the crossrank proxy at http://127\.0\.0\.1:9"):
        run_evaluation(EvalOptions(dataset=TINY, proxy="http://127.0.0.1:9", out=tmp_path,
                                   progress=False))


# --- hybrid arms -------------------------------------------------------------------------------

# BM25's lists by hand (tests/fixtures/eval_tiny/README.md): the BM25 side of every hybrid search
BM25_LISTS = {"q1": ["d1", "d2", "d3"], "q2": ["d4", "d5"], "q3": ["d7", "d8"]}
HYBRID_ARMS = ("bm25", "bm25+rerank", "hybrid", "hybrid+rerank")


@pytest.fixture(scope="module")
def hybrid_proxy(opensearch_url: str, tiny_cross_encoder_dir: Path, minilm_embedder_dir: Path,
                 os_client: OpenSearch) -> Iterator[str]:
    settings = proxy_settings(
        opensearch_url, tiny_cross_encoder_dir,
        models={"default": tiny_cross_encoder_dir, DEFAULT_EMBEDDER: minilm_embedder_dir},
        policy_index=".crossrank-policies-eval-hybrid-test")
    served = ServedProxy(build_app(settings), settings.port).start()
    yield served.url
    served.stop()
    os_client.indices.delete(index=settings.policy_index, ignore_unavailable=True)


@pytest.fixture
def cleanup_hybrid_policy(hybrid_proxy: str, admin_token: str,
                          index_name: str) -> Iterator[None]:
    yield
    httpx.delete(f"{hybrid_proxy}/_crossrank/policies/{index_name}-eval",
                 headers={"x-crossrank-admin-token": admin_token}, timeout=30)


def _expected_hybrid(embedder: Embedder,
                     qrels: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, float]]:
    """The hybrid arm's metrics from scratch: k-NN by cosine over every document (ten, fewer
    than the depth: all are candidates), fused with BM25's hand-made lists by RRF (60)."""
    docs = list(read_corpus(TINY / "corpus.jsonl"))
    doc_vectors = np.asarray(embedder.embed([f"{d.title}. {d.text}" for d in docs]))
    queries = {q: t for q, t in load_dataset(TINY).judged.queries.items() if q in BM25_LISTS}
    query_vectors = np.asarray(embedder.embed(list(queries.values())))
    fused: dict[str, list[str]] = {}
    for qid, vector in zip(queries, query_vectors, strict=True):
        cosines = doc_vectors @ vector
        order = np.argsort(-cosines)
        # no two documents so close that float rounding in OpenSearch could swap them
        assert np.min(-np.diff(cosines[order])) > 1e-4
        knn = [docs[i].id for i in order]
        fused[qid] = [doc_id for doc_id, _ in rrf([BM25_LISTS[qid], knn], rank_constant=60)]
    return score_rankings(qrels, fused)


@pytest.mark.usefixtures("cleanup_hybrid_policy")
def test_hybrid_arms_through_the_proxy(hybrid_proxy: str, admin_token: str, index_name: str,
                                       os_client: OpenSearch, minilm_embedder_dir: Path,
                                       tmp_path: Path) -> None:
    # an index from a run without hybrid arms has no vectors ...
    plain, _ = run_evaluation(_options(TINY, hybrid_proxy, admin_token, index_name,
                                       tmp_path / "plain", arms=("bm25",)))
    assert plain.settings["indexing"] == "created" and plain.settings["vectors"] is None

    # ... so the hybrid run indexes again, the proxy embedding every document on the way in
    report, paths = run_evaluation(_options(TINY, hybrid_proxy, admin_token, index_name,
                                            tmp_path / "hybrid", arms=HYBRID_ARMS))
    assert report.settings["indexing"] == "replaced"
    assert f"index [{index_name}] was indexed again: it has no vectors" in report.notes
    assert [r.key for r in report.results] == [
        "bm25", "bm25+rerank@1", "bm25+rerank@3", "hybrid", "hybrid+rerank@1",
        "hybrid+rerank@3"]
    bm25, _, _, hybrid, hybrid_one, hybrid_three = report.results
    _assert_hand_metrics(bm25.per_query, bm25.metrics)
    assert bm25.hybrid == {}
    assert hybrid.statuses == {"bypassed": 3} and hybrid.hybrid == {"rrf": 3}
    assert hybrid_one.statuses == hybrid_three.statuses == {"reranked": 3}
    assert hybrid_one.hybrid == hybrid_three.hybrid == {"rrf": 3}

    # the fused list, computed here from the embedder and BM25's lists by hand
    expected = _expected_hybrid(Embedder.load(minilm_embedder_dir),
                                load_dataset(TINY).judged.qrels)
    for metric, values in expected.items():
        assert hybrid.per_query[metric] == pytest.approx(values, abs=1e-12), metric
        # a window of one reorders nothing: the hybrid list, through the model
        assert hybrid_one.per_query[metric] == pytest.approx(values, abs=1e-12), metric
    # k-NN brings d6, which BM25 never retrieves (q2): every relevant document is found
    assert bm25.metrics["recall@100"] == pytest.approx(5 / 6, abs=1e-12)
    assert hybrid.metrics["recall@100"] == hybrid_three.metrics["recall@100"] == 1.0

    data = orjson.loads(paths["json"].read_bytes())
    assert {(c["baseline"], c["candidate"]) for c in data["comparisons"]} >= {
        ("bm25", "hybrid"), ("hybrid", "hybrid+rerank@1"), ("hybrid", "hybrid+rerank@3")}
    assert data["settings"]["policy"]["embed"] == {"model": DEFAULT_EMBEDDER,
                                                   "vector_field": "embedding"}
    markdown = paths["markdown"].read_text()
    assert "| hybrid | " in markdown and "| reranked 3, hybrid rrf 3 |" in markdown
    assert (f"- vectors: embedder `{DEFAULT_EMBEDDER}` (dimension 384) in `embedding`"
            in markdown)

    mapping = os_client.indices.get_mapping(index=index_name)[index_name]["mappings"]
    assert mapping["properties"]["embedding"]["type"] == "knn_vector"
    assert mapping["properties"]["embedding"]["dimension"] == 384
    assert mapping["_meta"][META_KEY]["vectors"] == {
        "field": "embedding", "embedder": DEFAULT_EMBEDDER, "dimension": 384,
        "text": {"text_fields": ["title", "text"], "template": "{title}. {text}",
                 "separator": " "}}
    assert mapping["_meta"][META_KEY]["state"] == "complete"
    assert os_client.count(index=index_name, body={
        "query": {"exists": {"field": "embedding"}}})["count"] == 10

    # the vectors are reused; the bm25 arm run after a hybrid one is plain BM25 again
    again, _ = run_evaluation(_options(TINY, hybrid_proxy, admin_token, index_name,
                                       tmp_path / "again", arms=("hybrid", "bm25")))
    assert again.settings["indexing"] == "reused"
    hybrid_again, bm25_again = again.results
    assert hybrid_again.per_query == hybrid.per_query and hybrid_again.hybrid == {"rrf": 3}
    _assert_hand_metrics(bm25_again.per_query, bm25_again.metrics)
    assert bm25_again.hybrid == {}


def test_hybrid_arm_needs_a_loaded_embedder(hybrid_proxy: str, admin_token: str,
                                            index_name: str, os_client: OpenSearch,
                                            tmp_path: Path) -> None:
    with pytest.raises(EvalError, match=r"need the embedder \[nope\].*its embedders: "
                                        + DEFAULT_EMBEDDER):
        run_evaluation(_options(TINY, hybrid_proxy, admin_token, index_name, tmp_path,
                                arms=("bm25", "hybrid"), embedder="nope"))
    assert not os_client.indices.exists(index=index_name)
